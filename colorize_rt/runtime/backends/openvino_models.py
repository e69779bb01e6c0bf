"""What OpenVINO compiles for a colorize-rt model: loaders build, ``openvino_runner`` runs.

* **Outputs nobody asked for are not computed** (``lean_source``). Our models also output ``logits`` (for hints
  and palettes), which OpenVINO would otherwise reorder into a plain layout at every call: 1.3 ms of a 13.6 ms
  256² bf16 call (one thread, per-layer counters, 2-core Xeon with AVX-512 VNNI and AMX; an AVX2-only CPU has
  no bf16 and was not timed). ``lean_source`` gives the model without
  the on-request outputs (an OpenVINO IR saved once per model file in the cache folder, so a start compiles from
  it as fast as from the ONNX file); the runner compiles ``whole_model`` only when a call asks for ``logits``.
* **The decode without a Softmax node** (``softmax_expectation_as_sums``). The fused decode is Softmax over the
  313 bins, then a 1x1 convolution (the expectation of ab). OpenVINO runs its Softmax in a planar layout, with a
  reorder before and after it (1.7 ms of the call above). Both compiled models compute it instead as
  ``conv(exp(x - max)) / sum(exp(x - max))``, the same formula in ops that keep the channels-last layout: one
  256² call, one thread, interleaved, 1.14x faster in bf16 and 1.12x in INT8, ab within 0.5 of the Softmax
  graph in bf16 (mean 0.02) and within 1e-4 in f32. The lean and the whole model carry the same rewrite, so
  ``ab`` does not depend on whether ``logits`` was asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...core.atomic import atomic_write_text
from .selfcheck import model_sha256

ON_REQUEST = ("logits",)  # optional outputs computed and returned only when asked for (runners.LOGITS_OUTPUT)
LEAN_VERSION = 2  # of what ``lean_model`` does: saved IRs of another version are not reused


def softmax_expectation_as_sums(model) -> bool:
    """Rewrite every ``Softmax(x, channels) -> 1x1 Convolution`` (the decode's expectation over the bins) as
    ``Convolution(e) / ReduceSum(e)`` with ``e = Exp(x - ReduceMax(x))``, in place (see the module doc).

    Returns:
        Whether anything was rewritten.
    """
    import openvino.opset13 as ops

    changed = False
    for softmax in model.get_ordered_ops():
        if softmax.get_type_name() != "Softmax":
            continue
        rank = softmax.input_value(0).get_partial_shape().rank.get_length()
        axis = int(softmax.get_attributes().get("axis", 1))
        users = list(softmax.output(0).get_target_inputs())
        if (axis + rank if axis < 0 else axis) != 1 or len(users) != 1:
            continue
        conv = users[0].get_node()
        attrs = conv.get_attributes() if conv.get_type_name() == "Convolution" else {}
        weights = conv.input_value(1) if attrs else None
        if not attrs or users[0].get_index() != 0 or list(weights.get_partial_shape().to_shape())[2:] != [1, 1]:
            continue
        if any(v != 1 for v in attrs["strides"] + attrs["dilations"]) or any(attrs["pads_begin"] + attrs["pads_end"]):
            continue
        x = softmax.input_value(0)
        e = ops.exp(ops.subtract(x, ops.reduce_max(x, np.array([1], np.int64), keep_dims=True)))
        expectation = ops.convolution(e, weights, [1, 1], [0, 0], [0, 0], [1, 1])
        out = ops.divide(expectation, ops.reduce_sum(e, np.array([1], np.int64), keep_dims=True))
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(out.output(0))
        changed = True
    if changed:
        model.validate_nodes_and_infer_types()
    return changed


def _lean_paths(model_path: Path, folder: Path) -> tuple[Path, Path]:
    """Returns: (IR ``.xml``, JSON note) of ``model_path``'s lean model in ``folder``, named by the file's content
    (sha256, remembered on disk as for the self-check: no rehash at each start) and ``LEAN_VERSION``; ``folder``
    carries OpenVINO's version."""
    stem = f"{model_path.stem}-{model_sha256(model_path)[:16]}-lean{LEAN_VERSION}"
    return folder / f"{stem}.xml", folder / f"{stem}.json"


def _save_lean(ov, model, xml: Path, note: Path, dropped: list[str], changed: bool) -> None:
    """Save the IR (where it differs from the file) and the note atomically; an unwritable cache is ignored."""
    try:
        xml.parent.mkdir(parents=True, exist_ok=True)
        if changed:
            tmp = Path(tempfile.mkdtemp(prefix=".lean.", dir=xml.parent))
            try:
                ov.save_model(model, str(tmp / xml.name), compress_to_fp16=False)
                os.replace(tmp / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
                os.replace(tmp / xml.name, xml)  # the .xml last: it is what a start looks for
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        atomic_write_text(note, json.dumps({"dropped": dropped, "changed": changed}))
    except OSError:
        pass


def lean_model(ov, core, model_path: Path):
    """The model without its on-request outputs and with its decode rewritten.

    Returns:
        (the ``ov.Model``, [dropped output names], whether it differs from the file).
    """
    model = core.read_model(str(model_path))
    results = model.get_results()
    keep = [r for r in results if not set(r.output(0).get_names()) & set(ON_REQUEST)]
    dropped = sorted({n for r in results if r not in keep for n in r.output(0).get_names()} & set(ON_REQUEST))
    lean = ov.Model(keep, model.get_parameters(), model.get_friendly_name()) if dropped else model
    rewritten = softmax_expectation_as_sums(lean)
    return lean, dropped, bool(dropped) or rewritten


def whole_model(core, model_path: Path):
    """Every output, the decode rewritten as in the lean model (so ``ab`` is the same in both)."""
    model = core.read_model(str(model_path))
    softmax_expectation_as_sums(model)
    return model


def forget_lean(model_path: Path, folder: Path) -> None:
    """Delete the saved lean IR and its note in ``folder`` (the next ``lean_source`` builds and saves them again)."""
    xml, note = _lean_paths(model_path, folder)
    for path in (note, xml, xml.with_suffix(".bin")):
        path.unlink(missing_ok=True)


def lean_source(ov, core, model_path: Path, folder: Path, mode: str = "on"):
    """What to compile for calls that ask for no on-request output, and the outputs it leaves out.

    Args:
        ov: the ``openvino`` module.
        core: an ``ov.Core``.
        model_path: the ONNX model.
        folder: where lean IRs are saved.
        mode: ``on`` (read and save), ``read`` (read only) or ``off`` (neither: built in memory every time).

    Returns:
        (a file path or an in-memory ``ov.Model``, [dropped output names]).
    """
    if mode == "off":
        lean, dropped, _ = lean_model(ov, core, model_path)
        return lean, dropped
    xml, note = _lean_paths(model_path, folder)
    try:
        saved = json.loads(note.read_text())
        dropped = list(saved["dropped"])
        if not saved["changed"]:
            return str(model_path), dropped
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return str(xml), dropped
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lean, dropped, changed = lean_model(ov, core, model_path)
    if mode == "on":
        _save_lean(ov, lean, xml, note, dropped, changed)
    if not changed:
        return str(model_path), dropped
    return (str(xml), dropped) if mode == "on" and xml.is_file() else (lean, dropped)
