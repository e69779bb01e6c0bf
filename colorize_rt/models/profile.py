"""Parameter count and multiply-accumulates of a model at an input size (convs and transposed convs)."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 256, width: int = 256) -> int:
    macs = 0

    def hook(mod, inputs, output):
        nonlocal macs
        if isinstance(mod, nn.ConvTranspose2d):
            x = inputs[0]
            macs += x.numel() // x.shape[0] * mod.out_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        else:  # Conv2d: every output element costs k·k·cin/groups MACs
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs += output.numel() // output.shape[0] * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 1, height, width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return macs
