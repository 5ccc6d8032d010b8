"""HashNet: class-balanced pairwise likelihood on tanh(βz) codes, with β raised by continuation.

Cao, Long, Wang & Yu, "HashNet: Deep Learning to Hash by Continuation", ICCV 2017.

Paper's parts:
- weighted maximum likelihood (WML, Eq. 1–4): p(s_ij | h_i, h_j) = σ(α⟨h_i, h_j⟩)^{s_ij}(1 − σ(α⟨h_i, h_j⟩))^{1−s_ij}
  with the adaptive sigmoid bandwidth α, and the loss Σ w_ij (log(1 + e^{α⟨h_i,h_j⟩}) − α s_ij ⟨h_i,h_j⟩);
- class-balance weights w_ij = |S|/|S₁| for similar and |S|/|S₀| for dissimilar pairs (Eq. 2, binary
  similarity: c_ij = 1), so that both kinds weigh the same in total;
- continuation: h = tanh(β_t z) with β_t = β₀(1 + γ t)^{p}, β₀ = 1, γ = 0.005, p = 0.5, raised in stages
  of 200 iterations (the authors' release), so tanh(β z) → sgn(z) as training proceeds;
- α = 10/K (the authors' release; DHA cites HashNet for "α < 1" and also uses 10/K).

dhash's choices: S, S₁, S₀ are the batch's pairs i ≠ j and the loss is the weighted mean
Σ w_ij ℓ_ij / Σ w_ij = ½(mean over similar pairs + mean over dissimilar pairs) (``Pairs.balanced_mean``);
β_t is a function of ``TrainState.step`` only (t = the first step of the current stage), so a
resumed run reproduces it exactly; codes are sgn(z), which equals sgn(tanh(βz)) for every β.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import Params, TrainState
from .pairs import PairMethod, Pairs


@dataclass
class HashNetParams(Params):
    alpha_scale: float = field(default=10.0, metadata={"help": "sigmoid bandwidth α = alpha_scale / bits (paper's release: 10/K)"})
    beta0: float = field(default=1.0, metadata={"help": "initial tanh scale β₀ of the continuation (paper: 1)"})
    beta_gamma: float = field(default=0.005, metadata={"help": "growth rate γ in β_t = β₀(1 + γt)^p (paper: 0.005)"})
    beta_power: float = field(default=0.5, metadata={"help": "power p in β_t = β₀(1 + γt)^p (paper: 0.5)"})
    beta_stage: int = field(default=200, metadata={"help": "steps between increases of β (paper's release: 200; 1 = every step)"})


class HashNet(PairMethod):
    """WML pair loss with |S|/|S₁|, |S|/|S₀| balance on tanh(β_t z), β_t growing with the step."""

    name = "hashnet"
    paper = "Cao, Long, Wang & Yu, HashNet: Deep Learning to Hash by Continuation, ICCV 2017"
    params_cls = HashNetParams
    # The authors fine-tune ImageNet AlexNet: SGD, momentum 0.9, weight decay 5e-4, lr 3e-4 (hash layer ×10),
    # lr ×0.5 every 2000 steps. Not dhash's defaults: on the small CNN trained from scratch they learn far
    # slower than dhash's Adam (1 epoch on 3,000 Fashion-MNIST images: mAP 0.27 vs 0.39); use --config to apply them.
    train_defaults: ClassVar[dict] = {}

    def beta(self, step: int) -> float:
        """Continuation scale β_t = β₀(1 + γ t)^p, t = the step at which the current stage began."""
        p = self.params
        stage = max(int(p.beta_stage), 1)
        t = (step // stage) * stage
        return p.beta0 * (1 + p.beta_gamma * t) ** p.beta_power

    def pair_loss(self, pairs: Pairs, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        beta = self.beta(state.step)
        h, g = pairs.both(lambda z: torch.tanh(beta * z))
        s = pairs.similarity()
        dot = (self.params.alpha_scale / self.bits) * (h @ g.T)
        total = pairs.balanced_mean(F.softplus(dot) - s * dot, s, pairs.mask())  # weights |S|/|S₁|, |S|/|S₀|: both kinds weigh the same
        return total, {"pair": total.item(), "beta": beta}
