"""PyTorch model -> ONNX with the annealed-mean decode fused into the graph.

Interface (every exported model, whatever its variant or precision):
  inputs  ``L`` float32 [N, 1, H, W] (CIE L*, 0..100; H, W multiples of 8),
          ``temperature`` float32 scalar, a real (required) graph input, never an initializer: TensorRT's
          ONNX parser would freeze an initializer as a constant and OpenCV dnn could not set it. Its
          default (0.38 = ``DEFAULT_T`` unless ``--temperature`` says otherwise) is recorded in the
          metadata ``default_temperature`` and the input's doc string; every client feeds it,
  output  ``ab`` float32 [N, 2, H, W],
  output  ``logits`` float32 [N, 313, H/4, W/4] (classification heads only): the network's logits before the
          temperature softmax, computed only when a caller asks for it (the palette re-weighting).

Exact simplifications only: BN-after-ReLU scales folded into the preceding conv (``fold.py``), the
exporter's constant folding (which also folds BN that directly follows a conv), then ONNX Runtime's
*basic* offline optimisation (constant folding, identity/no-op cast elimination, Conv+Add/Mul fusion:
all semantics-preserving rewrites into standard ONNX ops). Nodes are named ``pre/``, ``net/``,
``decode/`` (see ``graph.py``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.atomic import atomic_path
from ..core.bins import bins_hash
from ..core.constants import AB_NORM, DEFAULT_T, L_CENT, L_NORM
from ..core.lazy import require
from ..models.decode import ColorizationGraph
from .fold import fold_bn_after_relu
from .graph import decode_nodes, expose_logits, name_nodes, set_metadata, temperature_as_input
from .probe import probe_metadata

OPSET = 17


def ort_basic_optimize(src: Path, dst: Path) -> None:
    """ONNX Runtime's basic (hardware-independent, standard-op) graph rewrites, saved as ONNX."""
    from ..runtime.backends.session import ort_session

    ort_session(src, optimization="basic", optimized_path=dst)


def _width(net: nn.Module) -> str:
    args = getattr(net, "variant_args", {}) or {}
    for key in ("width", "decoder_width"):
        if key in args:
            return str(args[key])
    return ""


def config_hash(config: dict | None) -> str:
    """Short sha256 of a training config (canonical JSON)."""
    blob = json.dumps(config or {}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def export_onnx(
    net: nn.Module,
    out_path: str | Path,
    metadata: dict[str, Any] | None = None,
    *,
    opset: int = OPSET,
    sample_hw: tuple[int, int] = (64, 64),
    default_temperature: float = DEFAULT_T,
    fold_bn: bool = True,
    simplify: bool = True,
) -> Path:
    """Export ``net`` (a factory model) wrapped in the fused decode; written atomically."""
    onnx = require("onnx")
    if opset < 17:
        raise ValueError(f"opset must be >= 17; got {opset}")
    net = net.eval()
    folded, report = fold_bn_after_relu(net) if fold_bn else (net, None)
    graph = ColorizationGraph(folded).eval()
    L = torch.full((1, 1, *sample_hw), 50.0)
    T = torch.tensor(default_temperature, dtype=torch.float32)
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="colorize-export.") as tmpdir, torch.no_grad():
        raw = Path(tmpdir) / "raw.onnx"
        torch.onnx.export(
            graph,
            (L, T),
            str(raw),
            input_names=["L", "temperature"],
            output_names=["ab"],
            dynamic_axes={"L": {0: "N", 2: "H", 3: "W"}, "ab": {0: "N", 2: "H", 3: "W"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        proto = onnx.load(str(raw))
        name_nodes(proto.graph)
        n_raw = len(proto.graph.node)
        if simplify:
            onnx.save(proto, str(raw))
            opt = Path(tmpdir) / "opt.onnx"
            ort_basic_optimize(raw, opt)
            proto = onnx.load(str(opt))
            name_nodes(proto.graph)
        if not decode_nodes(proto):
            raise RuntimeError("export produced no decode/ nodes; the graph naming pass failed")
        simplification = f"nodes {n_raw} -> {len(proto.graph.node)}"
        if report is not None:
            simplification += "; " + report.summary()
        meta = {
            "variant": getattr(net, "variant", type(net).__name__),
            "variant_args": json.dumps(getattr(net, "variant_args", {}), sort_keys=True),
            "width": _width(net),
            "head": getattr(net, "head", "classification"),
            "bins_hash": bins_hash(),
            "default_temperature": str(default_temperature),
            "l_cent": str(L_CENT),
            "l_norm": str(L_NORM),
            "ab_norm": str(AB_NORM),
            "precision": "fp32",
            "opset": str(opset),
            "graph_simplification": simplification,
        }
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        set_metadata(proto, meta)
        temperature_as_input(proto, default_temperature)
        expose_logits(proto)  # the optional 313-bin output the palette reads (classification heads only)
        onnx.checker.check_model(proto)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        final = Path(tmpdir) / "final.onnx"
        onnx.save(proto, str(final))
        meta.update(probe_metadata(final))  # the known-answer probe: this fp32 export is its own reference
        set_metadata(proto, meta)
        with atomic_path(out_path) as tmp:
            onnx.save(proto, str(tmp))
    return out_path


def export_checkpoint(
    checkpoint: str | Path,
    out_path: str | Path,
    *,
    use_ema: bool = True,
    default_temperature: float = DEFAULT_T,
    **kwargs: Any,
) -> Path:
    """Export a training checkpoint; metadata records its sha256, training config hash and step."""
    from ..core.hashing import file_sha256
    from ..models.checkpoint import model_from_checkpoint, weights_key

    net, state = model_from_checkpoint(checkpoint, use_ema=use_ema)
    meta = {
        "source_checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": file_sha256(checkpoint),
        "training_config_hash": state.get("config_hash") or config_hash(state.get("config")),
        "training_step": "" if state.get("step") is None else str(state["step"]),  # a soup has none
        "weights": weights_key(state, use_ema),
    }
    return export_onnx(net, out_path, meta, default_temperature=default_temperature, **kwargs)
