"""INT8 explicit quantization (Q/DQ ONNX) with ONNX Runtime's ``quantize_static`` and an accuracy gate.

What the Q/DQ model looks like (what TensorRT 10/11 and ONNX Runtime's integer kernels both take):

* symmetric INT8 everywhere (zero point 0): activations per tensor, weights per output channel
  (axis 0 of Conv weights); ConvTranspose weights per tensor, because TensorRT's deconvolution
  kernels do not take per-output-channel scales (ORT would put them on axis 1);
* biases stay float (``QuantizeBias=False``): TensorRT does not dequantize INT32 biases; ORT CPU still
  fuses DQ→Conv→Q into ``QLinearConv``;
* not quantized: the input normalisation, the decode head (``decode/`` nodes: 1/T, softmax,
  expectation, resize) and the network's output layer, whose logits feed the annealed softmax
  (quantising them would be amplified by 1/T ≈ 2.6).

Calibration ranges are cached (ORT's ``calibration_cache_path``) under a key of the fp32 model's
sha256, the calibration images (names and content hashes), the method and the preprocessing, so a
rerun skips calibration.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from ..core import paths
from ..core.atomic import atomic_path
from ..core.files import list_images, same_file
from ..core.hashing import file_sha256
from ..eval.gate import GateResult, accuracy_gate, require_colour_images
from ..eval.scoring import EVAL_SHORT_SIDE
from ..export.graph import DECODE_PREFIX, NET_PREFIX, check_interface, fp32_nodes, get_metadata, load_onnx, set_metadata
from .reader import ImageCalibrationReader

CALIBRATION_METHODS = ("entropy", "percentile", "minmax")
DEFAULT_MAX_DROP = 1.0
# Layers left in fp32 by default: the stem and the first two MBConv blocks (full-resolution activations,
# the largest INT8 error per MAC saved; 3 % of the MACs at 256x256). Measured in benchmarks/results/int8.md.
KEEP_FP32 = ("net/encoder/_conv_stem", "net/encoder/_blocks.0/", "net/encoder/_blocks.1/")
INT8_TARGETS = ("tensorrt", "cpu")
QUANTIZATION = {
    "tensorrt": "qdq-int8-symmetric per-channel 7-bit weights (reduce_range), per-tensor int8 activations",
    "cpu": "qdq per-channel 7-bit int8 weights (reduce_range), per-tensor asymmetric uint8 activations (not for TensorRT)",
}
EVAL_EVERY = 5  # without --eval, every 5th image of --data is held out for the gate


class GateFailed(RuntimeError):
    """INT8 accuracy dropped by more than allowed; nothing was written."""

    def __init__(self, gate: GateResult):
        super().__init__(gate.message())
        self.gate = gate


def calibration_key(model_sha256: str, files: list[Path], method: str, short_side: int = EVAL_SHORT_SIDE) -> str:
    """Cache key: model hash + the image list (names and content hashes) + method + preprocessing."""
    import onnxruntime as ort

    h = hashlib.sha256()
    h.update(f"{model_sha256}|{method}|{short_side}|ort{ort.__version__}".encode())
    for f in files:
        h.update(f"|{Path(f).name}:{file_sha256(f)}".encode())
    return h.hexdigest()[:24]


def split_files(files: list[Path], every: int = EVAL_EVERY) -> tuple[list[Path], list[Path]]:
    """Deterministic split of one folder: every ``every``-th image is held out for evaluation."""
    held = [f for i, f in enumerate(files) if i % every == every - 1]
    return [f for i, f in enumerate(files) if i % every != every - 1], held


def int8_plan(model_proto, keep_fp32: tuple[str, ...] = ()) -> tuple[list[str], dict]:
    """(nodes to exclude, TensorQuantOverrides) for a colorize-rt graph, from its node names.

    Args:
        model_proto: the (pre-processed) fp32 model.
        keep_fp32: name prefixes of further network nodes to leave in fp32 (e.g. ``KEEP_FP32``).
    """
    exclude = fp32_nodes(model_proto)
    exclude += [n.name for n in model_proto.graph.node if keep_fp32 and n.name.startswith(keep_fp32) and n.name not in exclude]
    producer = {o: n for n in model_proto.graph.node for o in n.output}
    for node in model_proto.graph.node:
        if node.name.startswith(DECODE_PREFIX):
            for x in node.input:
                p = producer.get(x)
                if p is not None and p.name.startswith(NET_PREFIX) and p.name not in exclude:
                    exclude.append(p.name)  # the output layer: logits stay fp32
    overrides = {
        n.input[1]: [{"symmetric": True}]  # one dict = per-tensor scale
        for n in model_proto.graph.node
        if n.op_type == "ConvTranspose" and n.name not in exclude
    }
    return exclude, overrides


def quantize_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    calib_files: list[Path],
    method: str = "entropy",
    cache_dir: str | Path | None = None,
    short_side: int = EVAL_SHORT_SIDE,
    *,
    reduce_range: bool = True,
    keep_fp32: tuple[str, ...] = (),
    target: str = "tensorrt",
    progress: bool = False,
) -> dict:
    """Calibrate on ``calib_files`` and write the Q/DQ model to ``out_path`` (no gate, not atomic:
    callers write to a temp path). ``reduce_range``: 7-bit weights (|q| <= 64), which x86 CPUs without VNNI
    compute exactly (see ``core.int8sim``). ``target``: ``"tensorrt"`` (symmetric INT8 activations, zero point 0,
    what TensorRT takes) or ``"cpu"`` (asymmetric UINT8 activations: all 8 bits for the non-negative ReLU6
    outputs, ~40 % less error on ONNX Runtime CPU; not for TensorRT). ``progress``: a progress bar over the
    calibration images (on stderr). Returns {cache_path, cache_hit, key, excluded}."""
    if target not in INT8_TARGETS:
        raise ValueError(f"target must be one of {', '.join(INT8_TARGETS)}; got {target!r}")
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(CALIBRATION_METHODS)}; got {method!r}")
    fp32_path = Path(fp32_path)
    key = calibration_key(file_sha256(fp32_path), calib_files, method, short_side)
    cache_dir = Path(cache_dir) if cache_dir else paths.cache_dir("calibration")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_path = cache_dir / f"{key}.json"
    cache_hit = cache_path.is_file()
    calib_method = {
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "minmax": CalibrationMethod.MinMax,
    }[method]
    ort.set_default_logger_severity(3)  # the temperature default's input/initializer warning is expected
    try:
        # ORT prints a line per calibration step
        with (
            tempfile.TemporaryDirectory(prefix="colorize-int8.") as tmp,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(fp32_path), str(pre))
            exclude, overrides = int8_plan(onnx.load(str(pre)), keep_fp32)
            quantize_static(
                str(pre),
                str(out_path),
                None if cache_hit else ImageCalibrationReader(calib_files, short_side, progress=progress),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=calib_method,
                extra_options={
                    "ActivationSymmetric": target == "tensorrt",
                    "WeightSymmetric": True,
                    "QuantizeBias": False,
                    "TensorQuantOverrides": overrides,
                    # One image per collection step: images differ in size, and histograms merge.
                    "CalibStridedMinMax": 1,
                },
                calibration_cache_path=str(cache_path),
            )
    finally:
        ort.set_default_logger_severity(2)
    return {"cache_path": str(cache_path), "cache_hit": cache_hit, "key": key, "excluded": exclude}


def _zero_point_problems(n, inits: dict) -> list[str]:
    """TensorRT needs a constant INT8 zero point of 0 on every Q/DQ node."""
    from onnx import TensorProto, numpy_helper

    if len(n.input) <= 2 or not n.input[2]:
        return []
    zp = inits.get(n.input[2])
    if zp is None:
        return [f"{n.name}: zero point is not a constant"]
    problems = []
    if zp.data_type != TensorProto.INT8:
        problems.append(f"{n.name}: zero point type {zp.data_type} is not INT8")
    if np.any(numpy_helper.to_array(zp) != 0):
        problems.append(f"{n.name}: zero point is not 0 (TensorRT needs symmetric quantization)")
    return problems


def _weight_dq_problems(n, inits: dict, consumers: dict) -> list[str]:
    """Weight dequantization TensorRT takes: no INT32 (bias), Conv per-channel on axis 0, ConvTranspose per tensor."""
    from onnx import TensorProto

    if n.op_type != "DequantizeLinear" or n.input[0] not in inits:
        return []
    problems = []
    if inits[n.input[0]].data_type == TensorProto.INT32:
        problems.append(f"{n.name}: INT32 (bias) dequantization is not supported by TensorRT")
    axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
    if not (len(inits[n.input[1]].dims) > 0 and int(np.prod(inits[n.input[1]].dims)) > 1):
        return problems  # per tensor: fine for every consumer
    for c in consumers.get(n.output[0], []):
        if c.op_type == "Conv" and axis != 0:
            problems.append(f"{n.name}: Conv weight quantized on axis {axis}, TensorRT needs 0")
        if c.op_type == "ConvTranspose":
            problems.append(f"{n.name}: ConvTranspose weights must be per-tensor for TensorRT")
    return problems


def _checked_probe(fp32_path: Path, candidate: Path) -> dict[str, str]:
    """The probe metadata (reference: the fp32 model), after checking the candidate passes it here."""
    from ..export.probe import probe_metadata
    from ..runtime.backends.runners import OrtRunner
    from ..runtime.backends.selfcheck import PROBE_KEY, run_probe

    meta = probe_metadata(fp32_path)
    with OrtRunner(candidate) as runner:
        stats, ok = run_probe(runner, meta[PROBE_KEY], "int8")
    if not ok:
        raise RuntimeError(
            f"INT8 model fails its known-answer probe on this CPU: mean |Δab| {stats['mean']:.2f}, p99 {stats['p99']:.2f}"
        )
    return meta


def check_qdq(model_proto) -> list[str]:
    """Problems that would stop TensorRT compiling the Q/DQ model as INT8 (empty when fine)."""
    inits = {i.name: i for i in model_proto.graph.initializer}
    consumers: dict[str, list] = {}
    for n in model_proto.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    qdq = [n for n in model_proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    problems = []
    for n in qdq:
        problems += _zero_point_problems(n, inits)
        problems += _weight_dq_problems(n, inits, consumers)
        if n.name.startswith(DECODE_PREFIX):
            problems.append(f"{n.name}: the decode head must not be quantized")
    if not qdq:
        problems.append("no QuantizeLinear/DequantizeLinear nodes: the model is not quantized")
    return problems


def saturation_risks(model_proto) -> list[str]:
    """INT8 weights that x86 CPUs without VNNI would not compute exactly (empty when both paths agree).

    ONNX Runtime's u8s8 kernels on AVX2 (no VNNI) add uint8 x int8 products in int16 pairs with saturation
    (VPMADDUBSW, modelled in ``core.int8sim``); with |w| <= 64 (7-bit, ``reduce_range``) no pair can saturate,
    so the AVX2 path computes the same integers as VNNI and the accuracy gate measured here holds for both.
    """
    from onnx import TensorProto, numpy_helper

    from ..core.int8sim import saturation_free, worst_pair_sum

    inits = {i.name: i for i in model_proto.graph.initializer}
    risks = []
    for n in model_proto.graph.node:
        w = inits.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if w is None or w.data_type != TensorProto.INT8:
            continue
        q = numpy_helper.to_array(w)
        if not saturation_free(q):
            risks.append(f"{n.input[0]} (pair sums up to {worst_pair_sum(q)} > 32767)")
    return risks


def integer_kernel_ops(path: str | Path) -> Counter:
    """Op types of the graph ONNX Runtime CPU actually runs (after its optimiser); an INT8 model should
    show ``QLinearConv``."""
    import onnx

    from ..runtime.backends.session import ort_session

    with tempfile.TemporaryDirectory(prefix="colorize-ortopt.") as tmp:
        optimized = Path(tmp) / "opt.onnx"
        ort_session(path, optimized_path=optimized)
        return Counter(n.op_type for n in onnx.load(optimized).graph.node)


def calibrate(
    fp32_path: str | Path,
    out_path: str | Path,
    data_dir: str | Path,
    *,
    eval_dir: str | Path | None = None,
    method: str = "entropy",
    max_drop: float = DEFAULT_MAX_DROP,
    num_images: int | None = 256,
    eval_images: int | None = 200,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    keep_fp32: tuple[str, ...] | None = None,
    target: str = "tensorrt",
) -> dict:
    """fp32 ONNX -> INT8 Q/DQ ONNX at ``out_path``, written only if the accuracy gate passes
    (raises GateFailed otherwise). Returns a report dict.

    Weights are 7-bit (``reduce_range``), so x86 CPUs with and without VNNI compute the same integers and the
    gate covers both kernel paths; a model that could saturate on the AVX2 path is refused. The written model
    carries the known-answer probe (reference: ``fp32_path``), and its own probe check must pass.
    ``keep_fp32``: name prefixes of layers left in fp32 (default ``KEEP_FP32``); ``target``: see ``quantize_int8``
    (only ``"tensorrt"`` models are checked for TensorRT compatibility)."""
    import onnx

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise FileNotFoundError(f"model not found: {fp32_path}")
    if same_file(out_path, fp32_path):
        raise ValueError(f"refusing to overwrite the fp32 model {fp32_path} with the INT8 model: choose another -o")
    source = load_onnx(fp32_path, load_external_data=False)
    check_interface(source, fp32_path)
    meta = get_metadata(source)
    if meta.get("precision", "fp32") != "fp32":
        raise ValueError(f"{fp32_path} is {meta['precision']}; calibrate the fp32 export")
    files = list_images(data_dir)
    if eval_dir is None:
        calib_files, eval_files = split_files(files)
    else:
        calib_files, eval_files = files, list_images(eval_dir)
    calib_files = calib_files[:num_images] if num_images else calib_files
    eval_files = eval_files[:eval_images] if eval_images else eval_files
    if not calib_files:
        raise ValueError(f"no calibration images in {data_dir}")
    if not eval_files:
        raise ValueError("no held-out images for the accuracy gate (pass --eval DIR)")
    if eval_dir is None:
        require_colour_images(eval_files, data_dir, f"--data (held-out every {EVAL_EVERY}th image)")
    else:
        require_colour_images(eval_files, eval_dir, "--eval")
    with tempfile.TemporaryDirectory(prefix="colorize-int8.") as tmp:
        cand = Path(tmp) / "model.int8.onnx"
        keep = KEEP_FP32 if keep_fp32 is None else tuple(keep_fp32)
        info = quantize_int8(fp32_path, cand, calib_files, method, cache_dir, keep_fp32=keep, target=target, progress=progress)
        proto = onnx.load(str(cand))
        problems = check_qdq(proto) if target == "tensorrt" else []
        if problems:
            raise RuntimeError("quantized model is not TensorRT-compatible: " + "; ".join(problems[:3]))
        risks = saturation_risks(proto)
        if risks:
            raise RuntimeError("INT8 weights would saturate on x86 CPUs without VNNI: " + "; ".join(risks[:3]))
        probe = _checked_probe(fp32_path, cand)
        ops = integer_kernel_ops(cand)
        gate = accuracy_gate(fp32_path, cand, eval_files, max_drop, progress=progress)
        if not gate.passed:
            raise GateFailed(gate)
        meta.update(
            precision="int8",
            quantization=QUANTIZATION[target],
            int8_target=target,
            int8_kernel_paths="vnni and avx2 compute identical integers (|w| <= 64: VPMADDUBSW cannot saturate)",
            fp32_layers=",".join(keep) or "none",
            calibration_method=method,
            calibration_images=str(len(calib_files)),
            calibration_key=info["key"],
            source_onnx_sha256=file_sha256(fp32_path),
            auc_rebal_fp32=f"{gate.reference_auc:.3f}",
            auc_rebal_int8=f"{gate.candidate_auc:.3f}",
            gate_images=str(gate.n_images),
            **probe,
        )
        set_metadata(proto, meta)
        with atomic_path(out_path) as tmp_out:
            onnx.save(proto, str(tmp_out))
    return {
        "output": str(out_path),
        "gate": gate,
        "cache_hit": info["cache_hit"],
        "cache_path": info["cache_path"],
        "calibration_images": len(calib_files),
        "eval_images": len(eval_files),
        "qlinear_ops": sum(v for k, v in ops.items() if k.startswith("QLinear")),
        "excluded_nodes": info["excluded"],
        "summary": json.dumps({"fp32": gate.reference_auc, "int8": gate.candidate_auc}),
    }
