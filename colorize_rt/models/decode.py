"""Torch side of decoding: the full L -> ab graph that export, evaluation and parity tests share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.bins import ab_bins
from ..core.constants import AB_NORM, DEFAULT_T, L_CENT, L_NORM


def bins_tensor() -> torch.Tensor:
    return torch.from_numpy(ab_bins().copy())


def annealed_mean_torch(logits: torch.Tensor, temperature: torch.Tensor | float, bins: torch.Tensor) -> torch.Tensor:
    """(N, 313, h, w) logits -> (N, 2, h, w) ab: softmax(z / T) · bins, as a fixed 1×1 conv.

    The torch twin of ``annealed_mean`` (``colorize_rt.core.decode``; tested against it)."""
    p = torch.softmax(logits / temperature, dim=1)
    return F.conv2d(p, bins.to(p.dtype)[:, :, None, None].transpose(0, 1))


class ColorizationGraph(nn.Module):
    """L* (N, 1, H, W), 0..100, H and W multiples of 8, and a scalar temperature -> ab (N, 2, H, W).

    Classification models are decoded with the annealed mean; regression (L2) models ignore T.
    The decode runs in fp32 whatever the network's precision.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("bins", bins_tensor(), persistent=False)

    def forward(self, L: torch.Tensor, temperature: torch.Tensor | float = DEFAULT_T) -> torch.Tensor:
        out = self.net((L - L_CENT) / L_NORM).float()
        if getattr(self.net, "head", "classification") == "classification":
            ab = annealed_mean_torch(out, temperature, self.bins)
        else:
            # T is unused, but kept in the graph so every exported model has the same interface.
            ab = out * AB_NORM + 0.0 * temperature
        return F.interpolate(ab, scale_factor=4.0, mode="bilinear", align_corners=False)
