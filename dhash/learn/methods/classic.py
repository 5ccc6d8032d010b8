"""Unsupervised baselines that need no gradient training: LSH, ITQ and PCA-RR.

Both work on backbone features (or raw pixels, ``--backbone pixels``): ``fit`` computes a linear
map in closed form, ``project(x) = (x − mean) · W`` gives real values whose signs are the bits.
The fitted arrays are buffers, so they are saved with the model; their shapes depend on the feature
size, so they are resized when a saved model is loaded.

- ``lsh``: random projections (Charikar, STOC 2002): ``W`` has i.i.d. N(0, 1) entries. dhash
  centres the features first (``centre``) so each bit splits the data roughly in half; on raw,
  non-negative pixels uncentred hyperplanes through the origin give very unbalanced bits.
- ``itq``: Iterative Quantization (Gong & Lazebnik, CVPR 2011, Section 2): centre, project onto the
  top ``bits`` principal components (``V = X W``), then alternate ``B = sgn(V R)`` and the orthogonal
  Procrustes solution ``R = S Ŝᵀ`` from the SVD ``Vᵀ B = S Ω Ŝᵀ``, starting from a random orthogonal
  R (50 iterations in the paper). Each half-step minimises the quantisation loss ``‖B − V R‖²_F``
  over one variable, so the recorded loss never increases. ``W`` is the ``projection`` buffer and
  ``R`` the ``rotation`` buffer.
- ``pca-rr``: ITQ's own training-free baseline (Gong & Lazebnik): PCA, then the random
  orthogonal rotation ITQ starts from, then the sign — ``itq`` with no iterations. On frozen pretrained
  features (``--backbone efficientnet-lite0 --pretrained``) it and ITQ are the training-free references.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import DHashError
from .base import Method, Params


class _LinearHash(Method):
    """A closed-form linear hash ``sgn((x − mean) · projection)`` with buffers sized by ``fit``."""

    trainable = False
    uses_hash_head = False

    def __init__(self, bits: int, num_classes: int, params: Params | None = None) -> None:
        super().__init__(bits, num_classes, params)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("projection", torch.zeros(0, bits))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("mean", "projection"):  # fitted shapes depend on the feature size
            if prefix + name in state_dict:
                old = getattr(self, name)
                setattr(self, name, torch.empty(state_dict[prefix + name].shape, dtype=old.dtype, device=old.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _set(self, mean: np.ndarray, projection: np.ndarray) -> None:
        device = self.projection.device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)
        self.projection = torch.tensor(projection, dtype=torch.float32, device=device)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        if self.projection.shape[0] == 0:
            raise DHashError(f"{self.name}: the model has not been fitted")
        x = h.flatten(1)
        if x.shape[1] != self.projection.shape[0]:
            raise DHashError(f"{self.name}: fitted on {self.projection.shape[0]}-dimensional features, got {x.shape[1]}")
        return (x - self.mean.to(x)) @ self.projection.to(x)


def _features(features: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if len(x) < 2:
        raise DHashError(f"{name}: fit needs at least 2 training items, got {len(x)}")
    return x


@dataclass
class LSHParams(Params):
    centre: bool = field(default=True, metadata={"help": "subtract the training mean before projecting (dhash's choice)"})


class LSH(_LinearHash):
    """Locality-sensitive hashing by random Gaussian hyperplanes."""

    name = "lsh"
    paper = "Charikar, Similarity Estimation Techniques from Rounding Algorithms, STOC 2002"
    params_cls = LSHParams

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int) -> None:
        x = _features(features, self.name)
        mean = x.mean(axis=0) if self.params.centre else np.zeros(x.shape[1], np.float32)
        self._set(mean, np.random.default_rng(seed).standard_normal((x.shape[1], self.bits)))


@dataclass
class ITQParams(Params):
    iterations: int = field(default=50, metadata={"help": "alternations of B = sgn(VR) and the Procrustes rotation"})


def pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the ``D × dims`` top principal directions of ``x`` (N × D)."""
    mean = x.mean(axis=0, dtype=np.float64)
    centred = x - mean.astype(x.dtype)
    cov = (centred.T @ centred).astype(np.float64) / len(x)
    values, vectors = np.linalg.eigh(cov)
    return mean, vectors[:, np.argsort(values)[::-1][:dims]]


def itq_rotation(v: np.ndarray, iterations: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """ITQ's alternating minimisation on PCA-projected data ``v`` (N × K): ``(R, loss per iteration)``."""
    k = v.shape[1]
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((k, k)))
    rot = q * np.sign(np.diag(r))
    losses = []
    for _ in range(iterations):
        b = np.where(v @ rot > 0, 1.0, -1.0)
        s, _, s_hat_t = np.linalg.svd(v.T @ b)
        rot = s @ s_hat_t
        losses.append(float(np.square(b - v @ rot).sum()))
    return rot, losses


class ITQ(_LinearHash):
    """Iterative Quantization: PCA followed by the rotation that minimises the quantisation loss."""

    name = "itq"
    paper = "Gong & Lazebnik, Iterative Quantization: A Procrustean Approach to Learning Binary Codes, CVPR 2011"
    params_cls = ITQParams

    def __init__(self, bits: int, num_classes: int, params: Params | None = None) -> None:
        super().__init__(bits, num_classes, params)
        self.register_buffer("rotation", torch.eye(bits))
        self.quantisation_loss: list[float] = []  # ‖B − V R‖²_F after each iteration of the last fit

    def fit(self, features: np.ndarray, labels: np.ndarray, seed: int) -> None:
        x = _features(features, self.name)
        if self.bits > x.shape[1]:
            raise DHashError(f"itq: {self.bits} bits need at least {self.bits}-dimensional features, got {x.shape[1]}")
        mean, directions = pca(x, self.bits)
        v = (x - mean.astype(np.float32)).astype(np.float64) @ directions
        rot, self.quantisation_loss = itq_rotation(v, self.params.iterations, seed)
        self._set(mean, directions)
        self.rotation = torch.tensor(rot, dtype=torch.float32, device=self.rotation.device)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return super().project(h) @ self.rotation.to(h)


@dataclass
class PCARRParams(ITQParams):
    iterations: int = field(default=0, metadata={"help": "ITQ alternations after the random rotation (PCA-RR: 0)"})


class PCARR(ITQ):
    """PCA followed by a random orthogonal rotation: ITQ's training-free baseline (PCA-RR)."""

    name = "pca-rr"
    paper = "Gong & Lazebnik, Iterative Quantization, CVPR 2011 (its PCA-RR baseline)"
    params_cls = PCARRParams
