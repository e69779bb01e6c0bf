"""A trainable torch ``LiteColorizer`` from an exported ONNX file (there is no checkpoint of the shipped default).

The exporter folds every BatchNorm into the conv before it, so the ONNX file holds one (weight, bias) pair per conv,
in the order the network runs them; its weights may be stored as fp16 (``Cast`` nodes to fp32). ``fold_batchnorm``
makes the same change to a torch model (BN -> ``nn.Identity``, its affine map moved into the conv, which gets a
bias), and ``lite_from_onnx`` fills such a folded model with the ONNX file's weights, in order, checking every shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .efficientnet_lite import LiteColorizer, MBConv


def _conv_bn_pairs(net: nn.Module) -> list[tuple[nn.Module, str, nn.Conv2d, nn.BatchNorm2d]]:
    """(parent, BN attribute name, conv, BN) for every BN that follows a conv directly, in run order."""
    pairs = []
    for module in net.modules():
        if isinstance(module, MBConv):
            if module.has_expand:
                pairs.append((module, "_bn0", module._expand_conv, module._bn0))
            pairs.append((module, "_bn1", module._depthwise_conv[1], module._bn1))
            pairs.append((module, "_bn2", module._project_conv, module._bn2))
        elif hasattr(module, "_conv_stem") and isinstance(getattr(module, "_bn0", None), nn.BatchNorm2d):
            pairs.append((module, "_bn0", module._conv_stem[1], module._bn0))
        elif isinstance(module, nn.Sequential):
            mods = list(module.children())
            for i in range(1, len(mods)):
                if isinstance(mods[i - 1], nn.Conv2d) and isinstance(mods[i], nn.BatchNorm2d):
                    pairs.append((module, str(i), mods[i - 1], mods[i]))
    return pairs


@torch.no_grad()
def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every conv -> BN of ``net`` in place: the conv takes the BN's eval-mode affine map, the BN becomes
    ``nn.Identity``. Outputs in eval mode are unchanged up to float rounding; the net then has no BN to train.

    Args:
        net: a ``LiteColorizer`` (or a module holding one).

    Returns:
        ``net`` itself.
    """
    for parent, name, conv, bn in _conv_bn_pairs(net):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - scale * bn.running_mean
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.bias = nn.Parameter(bias.clone())
        setattr(parent, name, nn.Identity())
    return net


def _onnx_conv_params(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every Conv node that has an initializer weight, in graph order, as fp32."""
    from ..core.lazy import require

    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    graph = onnx.load(str(path)).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:  # fp16-stored weights: Cast(name__fp16) -> name
        if node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32)
    convs = []
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in values or len(node.input) < 3:
            continue
        convs.append((values[node.input[1]].astype(np.float32), values[node.input[2]].astype(np.float32)))
    return convs


def lite_from_onnx(path: str | Path, **lite_args) -> LiteColorizer:
    """A BN-folded ``LiteColorizer`` (``fold_batchnorm``) holding the weights of an exported ONNX file.

    Args:
        path: an ONNX export of a ``LiteColorizer`` variant (e.g. ``colorize_rt/assets/default.onnx``).
        lite_args: ``LiteColorizer`` args (``pretrained`` is forced off); they must match the export's.

    Returns:
        The model in eval mode.

    Raises:
        ValueError: the file's convolutions do not match the model's (count or shapes).
    """
    net = fold_batchnorm(LiteColorizer(**{**lite_args, "pretrained": False}).eval())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    params = _onnx_conv_params(Path(path))
    if len(params) != len(convs):
        raise ValueError(f"{path}: {len(params)} convolutions with weights, the model has {len(convs)}")
    with torch.no_grad():
        for i, (conv, (w, b)) in enumerate(zip(convs, params, strict=True)):
            if tuple(conv.weight.shape) != w.shape or conv.bias is None or tuple(conv.bias.shape) != b.shape:
                raise ValueError(f"{path}: conv {i} has shape {w.shape}, the model's is {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
    return net
