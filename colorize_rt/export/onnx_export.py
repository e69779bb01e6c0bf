"""PyTorch model -> ONNX with the annealed-mean decode fused into the graph.

Interface (every exported model, whatever its variant or precision):
  inputs  ``L`` float32 [N, 1, H, W] (CIE L*, 0..100; H, W multiples of 8),
          ``temperature`` float32 scalar (initializer default 0.38, so it may be omitted),
  output  ``ab`` float32 [N, 2, H, W].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.atomic import atomic_path
from ..core.bins import bins_hash
from ..core.constants import AB_NORM, DEFAULT_T, L_CENT, L_NORM
from ..core.lazy import require
from ..models.decode import Colorizer

OPSET = 17


def _add_temperature_default(model_proto, temperature: float) -> None:
    """Give the ``temperature`` input an initializer so callers may omit it."""
    onnx = require("onnx")
    from onnx import numpy_helper

    init = numpy_helper.from_array(np.array(temperature, dtype=np.float32), name="temperature")
    model_proto.graph.initializer.append(init)
    del onnx


def export_onnx(
    net: nn.Module,
    out_path: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    opset: int = OPSET,
    sample_hw: tuple[int, int] = (64, 64),
) -> Path:
    """Export ``net`` (a factory model) wrapped in the fused decode; written atomically."""
    onnx = require("onnx")
    graph = Colorizer(net).eval()
    L = torch.full((1, 1, *sample_hw), 50.0)
    T = torch.tensor(DEFAULT_T, dtype=torch.float32)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, torch.no_grad():
        torch.onnx.export(
            graph,
            (L, T),
            str(tmp),
            input_names=["L", "temperature"],
            output_names=["ab"],
            dynamic_axes={"L": {0: "N", 2: "H", 3: "W"}, "ab": {0: "N", 2: "H", 3: "W"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        proto = onnx.load(str(tmp))
        _add_temperature_default(proto, DEFAULT_T)
        meta = {
            "variant": getattr(net, "variant", type(net).__name__),
            "variant_args": json.dumps(getattr(net, "variant_args", {}), sort_keys=True),
            "head": getattr(net, "head", "classification"),
            "bins_hash": bins_hash(),
            "default_temperature": str(DEFAULT_T),
            "l_cent": str(L_CENT),
            "l_norm": str(L_NORM),
            "ab_norm": str(AB_NORM),
            "precision": "fp32",
        }
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        del proto.metadata_props[:]
        for k, v in sorted(meta.items()):
            proto.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return out_path
