"""Half-size fp32 models: weights stored as fp16 initializers, each followed by a Cast to fp32.

Compute stays fp32 (ONNX Runtime folds the Casts into fp32 constants when the session loads, so speed
is unchanged); only the file is half as large. The weight rounding (relative 2^-11) moves ab by far
less than the fp16 model does, and the shipped models are checked with the paper's metric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.lazy import require
from .graph import get_metadata, set_metadata

MIN_ELEMENTS = 1024  # small tensors (biases, the bin table, shapes) are left as they are


def store_weights_fp16(src: str | Path, dst: str | Path) -> Path:
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < MIN_ELEMENTS:
            continue
        name = init.name
        half_name = f"{name}__fp16"
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [name], to=TensorProto.FLOAT, name=f"weights/{name}"))
    if not casts:
        raise ValueError(f"{src}: no fp32 weights to store as fp16 (already converted?)")
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    set_metadata(model, {**get_metadata(model), "weights_storage": "fp16"})
    onnx.checker.check_model(model)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    return Path(dst)
