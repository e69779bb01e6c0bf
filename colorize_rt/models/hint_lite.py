"""The hint-conditioned ``mobile-lite0`` of issue 30 (after Zhang et al. 2017, "siggraph17").

The network takes L plus a hint image: the hint ab (divided by ``AB_NORM``, zero where there is no hint) and a
hint mask (1 at hint pixels), 3 channels at the input's resolution. They enter twice, both times through
convolutions whose last layer starts at zero, so that before fine-tuning the variant computes exactly what its base
``LiteColorizer`` computes, with or without hints:

* at the first conv (siggraph17 concatenates L, hint ab and mask there): a 3x3 stride-2 conv of the hints is added
  to the encoder stem's conv output, which is the same as giving the stem 3 more input channels;
* at the decoder's 1/4-resolution level: the hints average-pooled by 4, through a small conv stack, are added to
  the pre-activation of the first ``up4`` conv, so that a hint can act where it was given.

No hint convolution has a bias, so an all-zero hint image adds exactly zero: the no-hint output is the base's until
the base's own weights are trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.constants import AB_NORM
from .efficientnet_lite import LiteColorizer, SameConv, _gray_lite_input, _resize_like

HINT_CHANNELS = 3  # hint a / AB_NORM, hint b / AB_NORM, mask


class HintLiteColorizer(nn.Module):
    """A ``LiteColorizer`` that also takes point hints; equal to the base until fine-tuned.

    Args:
        base: the colorizer to condition (its ``head`` must be ``classification``).
        hint_width: channels of the hidden layers of the 1/4-resolution hint branch.
    """

    def __init__(self, base: LiteColorizer, hint_width: int = 32):
        super().__init__()
        if not 1 <= hint_width <= 256:
            raise ValueError(f"hint_width must be in 1..256; got {hint_width}")
        self.base = base
        self.head = base.head
        stem = base.encoder._conv_stem[1]
        self.hint_stem = SameConv(HINT_CHANNELS, stem.out_channels, 3, 2)
        up4 = base.up4[0][0]
        self.hint4 = nn.Sequential(
            nn.Conv2d(HINT_CHANNELS, hint_width, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hint_width, hint_width, 3, padding=2, dilation=2, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hint_width, up4.out_channels, 3, padding=1, bias=False),
        )
        nn.init.zeros_(self.hint_stem.weight)
        nn.init.zeros_(self.hint4[-1].weight)

    def hint_parameters(self) -> list[nn.Parameter]:
        """The parameters that are new in this variant (the hint branches)."""
        return [*self.hint_stem.parameters(), *self.hint4.parameters()]

    def forward(self, l_norm: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, 313, H/4, W/4).

        Args:
            l_norm: (N, 1, H, W) normalised lightness, as ``LiteColorizer`` takes it.
            hints: (N, 3, H, W) from ``hint_tensor``; None means no hints (all zeros).
        """
        if hints is None:
            hints = l_norm.new_zeros(l_norm.shape[0], HINT_CHANNELS, *l_norm.shape[-2:])
        net, enc = self.base, self.base.encoder
        x = enc._conv_stem(_gray_lite_input(l_norm)) + self.hint_stem(hints)
        x = F.relu6(enc._bn0(x))
        feats = []
        for i, block in enumerate(enc._blocks):
            x = block(x)
            if i in enc.taps:
                feats.append(x)
        f4, f8, f16, f32 = feats
        y = net.lat32(f32)
        y = net.up16(torch.cat([_resize_like(y, f16), f16], 1))
        y = net.up8(torch.cat([_resize_like(y, f8), f8], 1))
        first, second = net.up4[0], net.up4[1]
        y = first[1](first[0](torch.cat([_resize_like(y, f4), f4], 1)))  # conv, BN (or its folded Identity)
        h4 = F.avg_pool2d(hints, 4, ceil_mode=True)
        y = first[2](y + self.hint4(_resize_like(h4, y)))
        return net.out(second(y))


def hint_tensor(mask: torch.Tensor, hint_ab: torch.Tensor) -> torch.Tensor:
    """The network's hint input from a mask and hint colours.

    Args:
        mask: (N, 1, H, W), 1 at hint pixels, 0 elsewhere.
        hint_ab: (N, 2, H, W) hint colours in ab units (ignored where the mask is 0).

    Returns:
        (N, 3, H, W): hint ab / AB_NORM (zero off the mask), then the mask.
    """
    return torch.cat([hint_ab * mask / AB_NORM, mask], 1)
