"""FP16 conversion of an exported fp32 model with onnxconverter-common's maintained converter.

Weights and activations of the network become fp16; inputs/outputs stay fp32 (``keep_io_types``) and
the input normalisation and decode head (``pre/``, ``decode/`` nodes: scale by 1/T, softmax,
expectation, resize) stay fp32 through the converter's node block list. ``temperature`` stays a real
fp32 graph input (an initializer left by an older export is removed first; its value becomes the
metadata ``default_temperature``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.constants import DEFAULT_T
from ..core.hashing import file_sha256
from ..core.lazy import require
from .graph import TEMPERATURE_INPUT, fp32_nodes, get_metadata, set_metadata, temperature_as_input


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp32 colorize-rt ONNX ``src`` -> mixed-precision ``dst`` (written atomically; ORT CPU runs it)."""
    onnx = require("onnx")
    float16 = require("onnxconverter_common.float16")

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    meta = get_metadata(model)
    if meta.get("precision", "fp32") != "fp32":
        raise ValueError(f"{src} is already {meta['precision']}; convert the fp32 export")
    block = fp32_nodes(model)
    if not any(n.startswith("decode/") for n in block):
        raise ValueError(f"{src} has no decode/ nodes: re-export it with this version of colorize-export")
    default_t = temperature_as_input(model)  # older exports kept the default as an initializer
    _unshare_initializers(model, set(block))
    model16 = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block)
    _fp32_outputs(model16, set(block))
    meta.update(default_temperature=str(default_t))
    meta.update(precision="fp16", source_onnx_sha256=file_sha256(src), fp16_converter="onnxconverter_common.float16")
    set_metadata(model16, meta)
    onnx.checker.check_model(model16)
    with atomic_path(dst) as tmp:
        onnx.save(model16, str(tmp))
        _check_runs(tmp)
    return dst


def _unshare_initializers(model, fp32: set[str]) -> None:
    """Give fp32 (blocked) nodes their own copy of initializers they share with fp16 nodes.

    The converter turns a shared initializer into fp16 for one user and leaves it fp32 for the other,
    which makes the graph ill-typed (ORT's optimiser deduplicates equal constants such as 100.0).
    """
    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, set[bool]] = {}
    for node in model.graph.node:
        for x in node.input:
            if x in inits:
                users.setdefault(x, set()).add(node.name in fp32)
    for node in model.graph.node:
        if node.name not in fp32:
            continue
        for k, x in enumerate(node.input):
            if x in inits and users[x] == {True, False}:
                copy_name = f"{x}__fp32"
                if copy_name not in inits:
                    dup = type(inits[x])()
                    dup.CopyFrom(inits[x])
                    dup.name = copy_name
                    model.graph.initializer.append(dup)
                    inits[copy_name] = dup
                node.input[k] = copy_name


def _fp32_outputs(model, fp32: set[str]) -> None:
    """Undo the converter's trailing ``Cast(to=fp16)`` on outputs produced by a blocked (fp32) node.

    With ``keep_io_types=True`` and a block-listed last node, onnxconverter-common casts the graph
    output to fp16 and declares it fp16; the interface (and the spec: decode in fp32) wants the
    blocked node's fp32 result as is.
    """
    from onnx import TensorProto

    producer = {o: n for n in model.graph.node for o in n.output}
    for out in model.graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        cast = producer.get(out.name)
        if cast is None or cast.op_type != "Cast":
            continue
        src = producer.get(cast.input[0])
        if src is None or src.name not in fp32:
            continue
        src.output[list(src.output).index(cast.input[0])] = out.name
        model.graph.node.remove(cast)
        out.type.tensor_type.elem_type = TensorProto.FLOAT
        for vi in [v for v in model.graph.value_info if v.name in (cast.input[0], out.name)]:
            model.graph.value_info.remove(vi)


def _check_runs(path: Path) -> None:
    """Fail before the file lands if ONNX Runtime CPU cannot load and run it."""
    from ..runtime.backends.session import ort_session

    sess = ort_session(path)
    feed = {"L": np.full((1, 1, 64, 64), 50.0, np.float32), TEMPERATURE_INPUT: np.array(DEFAULT_T, np.float32)}
    out = sess.run(["ab"], feed)[0]
    if out.dtype != np.float32 or out.shape != (1, 2, 64, 64) or not np.isfinite(out).all():
        raise RuntimeError(f"converted model produced {out.dtype} {out.shape} (finite={np.isfinite(out).all()})")


__all__ = ["convert_fp16"]
