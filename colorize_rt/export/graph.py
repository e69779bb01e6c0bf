"""Small helpers over exported ONNX graphs: stable node names, metadata, hashes (torch-free).

The exporter names every node by the part of the graph it belongs to, so later passes (FP16 block
list, INT8 exclusions) can find the parts that must stay fp32 without guessing:

* ``pre/…``    input normalisation ``(L - 50) / 100``,
* ``net/…``    the network proper,
* ``decode/…`` the decode head: scale by 1/T, softmax over the 313 bins, expectation against the bin
  table (a fixed 1×1 conv), ×4 bilinear resize (for L2 models: ×110 and the resize).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRE_PREFIX = "pre/"
NET_PREFIX = "net/"
DECODE_PREFIX = "decode/"
FP32_PREFIXES = (PRE_PREFIX, DECODE_PREFIX)


def name_nodes(graph) -> None:
    """Rename the torch exporter's nodes in place (idempotent): ``/net/…`` → ``net/…``; other nodes are
    ``decode/…`` if they depend on a network output, ``pre/…`` if they depend on a graph input, and
    constant-only nodes take the part of their first consumer. Names stay unique."""
    nodes = list(graph.node)
    prefix: dict[int, str] = {}
    part_of: dict[str, str] = {i.name: PRE_PREFIX for i in graph.input}  # tensor -> part that made it
    for i, node in enumerate(nodes):
        name = node.name or ""
        if name.startswith(("/net/", NET_PREFIX)):
            prefix[i] = NET_PREFIX
        else:
            parts = {part_of[x] for x in node.input if x in part_of}
            if parts & {NET_PREFIX, DECODE_PREFIX}:
                prefix[i] = DECODE_PREFIX
            elif parts:
                prefix[i] = PRE_PREFIX
            else:
                continue  # constant-only: decided below
        for out in node.output:
            part_of[out] = prefix[i]
    consumers: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for x in node.input:
            consumers.setdefault(x, i)
    for i in reversed(range(len(nodes))):
        if i not in prefix:
            users = [consumers[o] for o in nodes[i].output if o in consumers]
            prefix[i] = prefix.get(min(users), PRE_PREFIX) if users else PRE_PREFIX
    used: set[str] = set()
    for i, node in enumerate(nodes):
        stem = node.name or f"{node.op_type}_{i}"
        for p in ("/net/", NET_PREFIX, PRE_PREFIX, DECODE_PREFIX, "/"):
            if stem.startswith(p):
                stem = stem[len(p) :]
                break
        new = prefix[i] + stem
        base, k = new, 1
        while new in used:
            new, k = f"{base}_{k}", k + 1
        used.add(new)
        node.name = new


def fp32_nodes(model_proto) -> list[str]:
    """Names of the nodes that stay fp32 in FP16 and INT8 models (input normalisation + decode head)."""
    return [n.name for n in model_proto.graph.node if n.name.startswith(FP32_PREFIXES)]


def decode_nodes(model_proto) -> list[str]:
    return [n.name for n in model_proto.graph.node if n.name.startswith(DECODE_PREFIX)]


def load_onnx(path: str | Path, *, load_external_data: bool = True):
    """``onnx.load`` for a user's file, with one-line errors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``"PATH is not an ONNX model"`` (a text file, a checkpoint, a truncated file).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError, or an OSError from external data
        raise ValueError(f"{path} is not an ONNX model ({type(exc).__name__})") from None


def check_interface(model_proto, path: str | Path) -> None:
    """Refuse an ONNX model that is not a colorize-rt export, from its graph alone (``runtime.runners.
    check_model_inputs`` on its non-initializer inputs and its outputs; an older export may keep
    ``temperature`` as an initializer).

    Raises:
        ValueError: one line naming ``path`` and the inputs it has.
    """
    from ..runtime.backends.runners import check_model_inputs

    inits = {i.name for i in model_proto.graph.initializer}
    inputs = [i.name for i in model_proto.graph.input if i.name not in inits]
    check_model_inputs(inputs, path, [o.name for o in model_proto.graph.output])


def get_metadata(model_proto) -> dict[str, str]:
    return {p.key: p.value for p in model_proto.metadata_props}


def set_metadata(model_proto, meta: dict) -> None:
    del model_proto.metadata_props[:]
    for k, v in sorted(meta.items()):
        model_proto.metadata_props.add(key=str(k), value=str(v))


def drop_initializer(model_proto, name: str) -> bool:
    """Remove initializer ``name`` (e.g. the temperature default); returns whether it was there."""
    for i, init in enumerate(model_proto.graph.initializer):
        if init.name == name:
            del model_proto.graph.initializer[i]
            return True
    return False


TEMPERATURE_INPUT = "temperature"
TEMPERATURE_DOC = (
    "Annealed-mean temperature T, float32 scalar (shape []), a required input: feed the model's metadata "
    "'default_temperature' (0.38, DEFAULT_T, the paper's value) unless you want another; L2 models ignore it."
)


def _scalar_float_input(name: str):
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info(name, TensorProto.FLOAT, [])
    vi.doc_string = TEMPERATURE_DOC
    return vi


def temperature_as_input(model_proto, default: float | None = None) -> float:
    """Make ``temperature`` a real graph input (in place): never an initializer, so TensorRT's ONNX parser
    and OpenCV dnn see an input instead of a constant, and ONNX Runtime can fold around it.

    The initializer (older exports kept the default there) is removed; the input is declared as a
    float32 scalar if it was not listed; the default is recorded in the metadata ``default_temperature``
    and in the input's doc string. Other metadata is kept. Idempotent.

    Args:
        model_proto: a colorize-rt ``onnx.ModelProto``.
        default: the default to record; None keeps the initializer's value, else the metadata's, else
            ``DEFAULT_T``.

    Returns:
        The recorded default temperature.
    """
    from onnx import numpy_helper

    from ..core.constants import DEFAULT_T

    graph = model_proto.graph
    init_value = None
    for i, init in enumerate(graph.initializer):
        if init.name == TEMPERATURE_INPUT:
            init_value = float(numpy_helper.to_array(init).reshape(-1)[0])
            del graph.initializer[i]
            break
    meta = get_metadata(model_proto)
    if default is None:
        default = float(meta.get("default_temperature", DEFAULT_T))
        if init_value is not None and np.float32(init_value) != np.float32(default):
            default = init_value  # the initializer is what the model really used
    inputs = {i.name: i for i in graph.input}
    if TEMPERATURE_INPUT not in inputs:
        graph.input.append(_scalar_float_input(TEMPERATURE_INPUT))
    else:
        inputs[TEMPERATURE_INPUT].doc_string = TEMPERATURE_DOC
    set_metadata(model_proto, {**meta, "default_temperature": str(float(default))})
    return float(default)


def per_sample_temperature(model_proto) -> None:
    """Turn the scalar ``temperature`` input into one value per sample, shape ``[N, 1]`` (in place).

    For batching servers (Triton's dynamic batcher stacks every input along N): a Reshape to
    ``[N, 1, 1, 1]`` feeds the nodes that used the scalar, which broadcast it per sample. The input must
    already be a real input (``temperature_as_input``).

    Args:
        model_proto: a colorize-rt ``onnx.ModelProto`` with a scalar ``temperature`` input.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model_proto.graph
    if any(i.name == TEMPERATURE_INPUT for i in graph.initializer):
        raise ValueError("temperature is still an initializer: call temperature_as_input first")
    (inp,) = [i for i in graph.input if i.name == TEMPERATURE_INPUT]
    inner, shape_name = f"{PRE_PREFIX}{TEMPERATURE_INPUT}_per_sample", f"{PRE_PREFIX}{TEMPERATURE_INPUT}_per_sample_shape"
    for node in graph.node:
        for k, x in enumerate(node.input):
            if x == TEMPERATURE_INPUT:
                node.input[k] = inner
    graph.initializer.append(numpy_helper.from_array(np.array([-1, 1, 1, 1], dtype=np.int64), shape_name))
    reshape = helper.make_node("Reshape", [TEMPERATURE_INPUT, shape_name], [inner], name=inner)
    nodes = [reshape, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    new = helper.make_tensor_value_info(TEMPERATURE_INPUT, TensorProto.FLOAT, ["N", 1])
    new.doc_string = "Annealed-mean temperature, one per sample (N, 1) float32; 0.38 is the paper's value."
    inp.CopyFrom(new)


def rewrite_temperature_input(src: str | Path, dst: str | Path | None = None, *, atol: float = 0.0) -> dict:
    """File-level ``temperature_as_input``: rewrite an ONNX whose temperature is an initializer.

    The new file is written atomically (to ``dst``, default: in place), keeps every metadata entry, and
    lands only if ONNX Runtime gives the same ``ab`` as the old file at the default temperature (and
    a different one at another temperature, so the input is live).

    Args:
        src: the ONNX file.
        dst: where to write (default ``src``).
        atol: largest allowed |Δab| between old and new at the default temperature.

    Returns:
        {"changed": bool, "default_temperature": float, "max_abs_diff": float}.
    """
    import onnx

    from ..core.atomic import atomic_path
    from ..runtime.backends.session import ort_session

    src = Path(src)
    dst = Path(dst) if dst is not None else src
    model = onnx.load(str(src))
    had_init = any(i.name == TEMPERATURE_INPUT for i in model.graph.initializer)
    default = temperature_as_input(model)
    onnx.checker.check_model(model)
    L = np.random.default_rng(0).uniform(0, 100, (1, 1, 64, 48)).astype(np.float32)
    t = np.array(default, np.float32)
    old = ort_session(src).run(["ab"], {"L": L, TEMPERATURE_INPUT: t})[0]
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
        new_sess = ort_session(tmp)
        new = new_sess.run(["ab"], {"L": L, TEMPERATURE_INPUT: t})[0]
        diff = float(np.abs(new - old).max())
        if diff > atol:
            raise RuntimeError(f"{src.name}: output changed by {diff} after the temperature rewrite; nothing written")
        if TEMPERATURE_INPUT not in [i.name for i in new_sess.get_inputs()]:
            raise RuntimeError(f"{src.name}: temperature is not an input after the rewrite")
    return {"changed": had_init or dst != src, "default_temperature": default, "max_abs_diff": diff}


LOGITS_DOC = (
    "The network's 313-bin logits (N, 313, H/4, W/4) float32 before the temperature softmax, at network resolution; "
    "ONNX Runtime computes it only when asked for (the palette re-weighting reads it); 'ab' does not depend on it."
)


def expose_logits(model_proto) -> bool:
    """Add the graph output ``logits`` (in place): the tensor the decode head divides by ``temperature``, renamed.

    Nothing is computed differently: the tensor is renamed and listed as an output, so ``ab`` stays
    bit-identical and a runner that asks only for ``ab`` pays nothing. L2 models (no 313-bin head) are left
    alone. Idempotent.

    Args:
        model_proto: a colorize-rt ``onnx.ModelProto`` (fp32, fp16 or INT8 Q/DQ).

    Returns:
        Whether the model has a ``logits`` output now.
    """
    from onnx import TensorProto, helper

    from ..runtime.backends.runners import LOGITS_OUTPUT

    graph = model_proto.graph
    if any(o.name == LOGITS_OUTPUT for o in graph.output):
        return True
    divs = [n for n in graph.node if n.name.startswith(DECODE_PREFIX) and n.op_type == "Div" and TEMPERATURE_INPUT in n.input]
    if len(divs) != 1:
        return False  # an L2 head: no distribution to expose
    old = next(x for x in divs[0].input if x != TEMPERATURE_INPUT)
    for node in graph.node:
        node.input[:] = [LOGITS_OUTPUT if x == old else x for x in node.input]
        node.output[:] = [LOGITS_OUTPUT if x == old else x for x in node.output]
    for vi in graph.value_info:
        if vi.name == old:
            vi.name = LOGITS_OUTPUT
    out = helper.make_tensor_value_info(LOGITS_OUTPUT, TensorProto.FLOAT, ["N", 313, "h", "w"])
    out.doc_string = LOGITS_DOC
    graph.output.append(out)
    return True


def rewrite_logits_output(src: str | Path, dst: str | Path | None = None) -> dict:
    """File-level ``expose_logits``: written atomically (default: in place), every metadata entry kept, and
    only if ONNX Runtime gives a bit-identical ``ab`` (at two temperatures and two sizes) from the new file.

    Args:
        src: the ONNX file.
        dst: where to write (default ``src``).

    Returns:
        {"changed": bool, "has_logits": bool}.

    Raises:
        RuntimeError: ``ab`` changed; nothing written.
    """
    import onnx

    from ..core.atomic import atomic_path
    from ..runtime.backends.session import ort_session

    src = Path(src)
    dst = Path(dst) if dst is not None else src
    model = onnx.load(str(src))
    before = model.SerializeToString()
    if not expose_logits(model):
        return {"changed": False, "has_logits": False}
    if model.SerializeToString() == before and dst == src:
        return {"changed": False, "has_logits": True}
    onnx.checker.check_model(model)
    rng = np.random.default_rng(0)
    feeds = [
        {"L": rng.uniform(0, 100, (1, 1, h, w)).astype(np.float32), TEMPERATURE_INPUT: np.array(t, np.float32)}
        for (h, w), t in (((64, 48), 0.38), ((256, 192), 1.0))
    ]
    old_sess = ort_session(src)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
        new_sess = ort_session(tmp)
        for feed in feeds:
            old = old_sess.run(["ab"], feed)[0]
            new, logits = new_sess.run(["ab", "logits"], feed)
            if not np.array_equal(old, new):
                raise RuntimeError(f"{src.name}: 'ab' changed after exposing the logits; nothing written")
            if logits.shape[1] != 313:
                raise RuntimeError(f"{src.name}: the exposed logits have shape {logits.shape}, not (N, 313, h, w)")
    return {"changed": True, "has_logits": True}
