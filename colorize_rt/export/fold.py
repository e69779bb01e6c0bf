"""Exact BatchNorm folding for BN layers that follow a ReLU (the paper's layout: conv → ReLU → BN).

An eval-mode BN is the per-channel affine map ``y = s·x + t`` (``s = γ/√(σ²+ε)``, ``t = β - s·μ``).

* Where it sits right after a conv (the Lite0 model), the exporter folds it into that conv already.
* After ``conv → ReLU`` the scale can still move into the preceding conv when every ``s > 0``, because
  ReLU is positively homogeneous: ``s·ReLU(z) = ReLU(s·z)``. What is left of the BN is the shift
  ``t``, a per-channel Add. That Add cannot move into the *next* conv: that conv zero-pads its input,
  and ``conv(x + t)`` differs from ``conv(x) + conv(t)`` on the border pixels, so doing it would not
  be exact. A BN with any ``s ≤ 0`` is left untouched (the sign would have to cross the ReLU).

Only these exact rewrites are made; outputs are unchanged up to float rounding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn


class ChannelShift(nn.Module):
    """What remains of a BN whose scale was folded away: ``x + t`` per channel (an ONNX Add)."""

    def __init__(self, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.detach().clone()[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


@dataclass
class FoldReport:
    folded: list[str] = field(default_factory=list)  # BN scale moved into the conv before the ReLU
    kept: list[str] = field(default_factory=list)  # BN left as is (a scale ≤ 0)

    def summary(self) -> str:
        n = len(self.folded) + len(self.kept)
        if not n:
            return "no BN after ReLU (BN after conv is folded by the exporter)"
        return (
            f"{len(self.folded)}/{n} BN-after-ReLU scales folded into the preceding conv, "
            "shift kept as Add (the next conv zero-pads)"
        )


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - scale * bn.running_mean


@torch.no_grad()
def fold_bn_after_relu(net: nn.Module) -> tuple[nn.Module, FoldReport]:
    """A copy of ``net`` (eval mode) with every ``Conv2d → ReLU → BatchNorm2d`` run inside an
    ``nn.Sequential`` rewritten as ``Conv2d(scaled) → ReLU → ChannelShift`` where exact."""
    net = copy.deepcopy(net).eval()
    report = FoldReport()
    for seq_name, seq in net.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        mods = list(seq.children())
        for i in range(2, len(mods)):
            conv, relu, bn = mods[i - 2], mods[i - 1], mods[i]
            if not (isinstance(conv, nn.Conv2d) and isinstance(relu, nn.ReLU) and isinstance(bn, nn.BatchNorm2d)):
                continue
            if not bn.track_running_stats or bn.running_var is None or not bn.affine:
                continue
            name = f"{seq_name}.{i}" if seq_name else str(i)
            scale, shift = _bn_affine(bn)
            if bool((scale <= 0).any()):
                report.kept.append(name)
                continue
            conv.weight.mul_(scale[:, None, None, None])
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros_like(scale))
            conv.bias.mul_(scale)
            seq[i] = ChannelShift(shift)
            report.folded.append(name)
    return net, report
