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


def get_metadata(model_proto) -> dict[str, str]:
    return {p.key: p.value for p in model_proto.metadata_props}


def set_metadata(model_proto, meta: dict) -> None:
    del model_proto.metadata_props[:]
    for k, v in sorted(meta.items()):
        model_proto.metadata_props.add(key=str(k), value=str(v))


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata props of an ONNX file without loading its weights into a session."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


def has_initializer(model_proto, name: str) -> bool:
    return any(i.name == name for i in model_proto.graph.initializer)


def drop_initializer(model_proto, name: str) -> bool:
    """Remove initializer ``name`` (e.g. the temperature default); returns whether it was there."""
    for i, init in enumerate(model_proto.graph.initializer):
        if init.name == name:
            del model_proto.graph.initializer[i]
            return True
    return False
