"""DPSH: pairwise-label likelihood on real-valued codes with a quantisation penalty.

Li, Wang & Kang, "Feature Learning based Deep Supervised Hashing with Pairwise Labels", IJCAI 2016.

Paper's parts (equation numbers of the IJCAI version): the likelihood
p(s_ij | B) = σ(Ω_ij)^{s_ij} (1 − σ(Ω_ij))^{1−s_ij}, Ω_ij = ½ b_iᵀb_j (Eq. 1), whose negative log is
−Σ (s_ij Ω_ij − log(1 + e^{Ω_ij})) (Eq. 2); relaxed by replacing b with the network output u (linear
hash layer, no tanh) and adding η Σ_i ‖b_i − u_i‖², b_i = sgn(u_i) (the relaxed objective J, Eq. 3);
η = 10 (the authors' CIFAR-10 setting, chosen on a validation set).
log(1 + e^Θ) is computed as softplus(Θ), so the loss stays finite for any Θ.
dhash's reading of the sums: both run over the mini-batch (pairs i ≠ j, images i) and the total is
divided by the number of pairs, so each image's η-term weighs against its B − 1 pair terms (as
against its n − 1 in J over the whole training set) and the lr does not grow with B². (Weighing it
against n − 1 terms, as an unbiased estimate of J/n² would, leaves codes nearly unquantised and
trains worse: Fashion-MNIST, 150 steps, mAP 0.36 vs 0.50.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import Method, NetOutput, Params, TrainState
from .pairs import label_similarity, off_diagonal


@dataclass
class DPSHParams(Params):
    eta: float = field(default=10.0, metadata={"help": "weight η of the quantisation term Σ‖b − u‖² (paper: 10 on CIFAR-10)"})


class DPSH(Method):
    """Negative log-likelihood of the pair labels under σ(½ u_iᵀu_j) plus η‖sgn(u) − u‖²."""

    name = "dpsh"
    paper = "Li, Wang & Kang, Feature Learning based Deep Supervised Hashing with Pairwise Labels, IJCAI 2016"
    params_cls = DPSHParams
    # Authors' release (pretrained AlexNet, 150 epochs): SGD without momentum, lr 0.05, weight decay 1e-5,
    # batch 128, lr ×0.1 every 50 epochs. Not dhash's defaults: on the small CNN they learn slower than
    # dhash's Adam (1 epoch on 3,000 Fashion-MNIST images: mAP 0.25 vs 0.33); use --config to apply them.
    train_defaults: ClassVar[dict] = {}

    def loss(self, out: NetOutput, labels: torch.Tensor, state: TrainState) -> tuple[torch.Tensor, dict[str, float]]:
        u = out.h
        s = label_similarity(labels)
        theta = 0.5 * (u @ u.T)
        mask = off_diagonal(len(u), device=u.device).to(u.dtype)
        pair = ((F.softplus(theta) - s * theta) * mask).sum() / mask.sum().clamp_min(1)
        quant = (torch.sign(u).detach() - u).pow(2).sum(1).mean()
        # (Σ_pairs ℓ + η Σ_i ‖b_i − u_i‖²) / #pairs: each image's η-term against its B − 1 pair terms
        total = pair + self.params.eta * quant / max(len(u) - 1, 1)
        return total, {"pair": pair.item(), "quant": quant.item()}
