"""The paper's network (Table 4), layer for layer as in the official eccv16 PyTorch release.

Block k is ``self.model{k}``, an ``nn.Sequential`` with conv/ReLU pairs and BatchNorm at its end, so
the ``state_dict`` keys (``model1.0.weight`` … ``model8.6.weight``) match the release file at width 1.
The release's fixed ``model_out`` 1×1 conv is not a parameter here: decoding lives in ``decode_ab``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..core.constants import NUM_BINS


def _block(cin: int, cout: int, n: int, stride_last: int = 1, dilation: int = 1, bn: bool = True):
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, stride, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
        ]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class PaperNet(nn.Module):
    """ECCV16 colorization net at a width multiplier (1.0 = the paper, 32.2 M parameters).

    ``head="classification"`` ends in 313 logits; ``head="regression"`` in 2 channels (ab / 110),
    the paper's L2 baseline.
    """

    def __init__(self, width: float = 1.0, head: str = "classification"):
        super().__init__()
        if head not in ("classification", "regression"):
            raise ValueError(f"head must be 'classification' or 'regression'; got {head!r}")
        c = [max(8, int(round(ch * width))) for ch in (64, 128, 256, 512, 256)]
        self.head = head
        self.model1 = _block(1, c[0], 2, stride_last=2)
        self.model2 = _block(c[0], c[1], 2, stride_last=2)
        self.model3 = _block(c[1], c[2], 3, stride_last=2)
        self.model4 = _block(c[2], c[3], 3)
        self.model5 = _block(c[3], c[3], 3, dilation=2)
        self.model6 = _block(c[3], c[3], 3, dilation=2)
        self.model7 = _block(c[3], c[3], 3)
        out_ch = NUM_BINS if head == "classification" else 2
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(c[3], c[4], 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[4], c[4], 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[4], c[4], 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[4], out_ch, 1),
        )

    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"model{i}") for i in range(1, 9)]

    grad_checkpointing = False  # recompute activations in backward: trades ~30% time for memory

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        x = l_norm
        for block in self.blocks():
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x
