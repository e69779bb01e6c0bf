"""The paper's objective: soft-encoded targets and the class-rebalanced multinomial cross-entropy (eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.constants import AB_NORM, SIGMA_SOFT


def soft_encode_torch(ab: torch.Tensor, bins: torch.Tensor, k: int = 5, sigma: float = SIGMA_SOFT) -> torch.Tensor:
    """ab (N, 2, h, w) -> soft targets (N, 313, h, w): k nearest bins, Gaussian weights, sum to 1.

    The torch twin of ``soft_encode`` (``colorize_rt.core.bins``; tested against it)."""
    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    d2 = torch.cdist(flat, bins.float()).square()
    d2k, idx = d2.topk(k, dim=1, largest=False)
    wts = torch.softmax(-d2k / (2 * sigma**2), dim=1)
    target = torch.zeros(flat.shape[0], bins.shape[0], device=ab.device).scatter_(1, idx, wts)
    return target.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def rebalanced_ce(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """L = -Σ_hw v(Z_hw) Σ_q Z_hwq log Ẑ_hwq, v = w[argmax_q Z_hw], averaged over pixels."""
    logp = F.log_softmax(logits.float(), dim=1)
    v = class_weights[target.argmax(1)]
    return -(v * (target * logp).sum(1)).mean()


def l2_loss(pred: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Smooth L2 (Huber, δ = 10 ab units) between predicted ab (pred · 110) and ground truth."""
    return F.huber_loss(pred.float() * AB_NORM, ab.float(), delta=10.0) / 100.0
