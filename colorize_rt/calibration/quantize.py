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
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.hashing import file_sha256
from ..evaluation import EVAL_SHORT_SIDE, evaluate, list_images, onnx_predictor
from ..export.graph import DECODE_PREFIX, NET_PREFIX, fp32_nodes, get_metadata, set_metadata
from .reader import ImageCalibrationReader

METHODS = ("entropy", "percentile", "minmax")
DEFAULT_MAX_DROP = 1.0
EVAL_EVERY = 5  # without --eval, every 5th image of --data is held out for the gate


class GateFailed(RuntimeError):
    """INT8 accuracy dropped by more than allowed; nothing was written."""

    def __init__(self, gate: GateResult):
        super().__init__(gate.message())
        self.gate = gate


@dataclass
class GateResult:
    reference_auc: float
    candidate_auc: float
    max_drop: float
    n_images: int
    reference: str = "fp32"
    candidate: str = "int8"
    table: dict = field(default_factory=dict)

    @property
    def drop(self) -> float:
        return self.reference_auc - self.candidate_auc

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.drop)) and self.drop <= self.max_drop

    def message(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"accuracy gate {verdict}: rebalanced AuC {self.reference} {self.reference_auc:.2f}, "
            f"{self.candidate} {self.candidate_auc:.2f} (drop {self.drop:.2f}, allowed {self.max_drop:.2f}; "
            f"{self.n_images} images)"
        )


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "colorize-rt" / "calibration"


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


def int8_plan(model_proto) -> tuple[list[str], dict]:
    """(nodes to exclude, TensorQuantOverrides) for a colorize-rt graph, from its node names."""
    exclude = fp32_nodes(model_proto)
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
) -> dict:
    """Calibrate on ``calib_files`` and write the Q/DQ model to ``out_path`` (no gate, not atomic:
    callers write to a temp path). Returns {cache_path, cache_hit, key}."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    fp32_path = Path(fp32_path)
    key = calibration_key(file_sha256(fp32_path), calib_files, method, short_side)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
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
            exclude, overrides = int8_plan(onnx.load(str(pre)))
            quantize_static(
                str(pre),
                str(out_path),
                None if cache_hit else ImageCalibrationReader(calib_files, short_side),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=calib_method,
                extra_options={
                    "ActivationSymmetric": True,
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


def check_qdq(model_proto) -> list[str]:
    """Problems that would stop TensorRT compiling the Q/DQ model as INT8 (empty when fine)."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model_proto.graph.initializer}
    consumers: dict[str, list] = {}
    for n in model_proto.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    problems = []
    n_qdq = 0
    for n in model_proto.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        n_qdq += 1
        if len(n.input) > 2 and n.input[2]:
            zp = inits.get(n.input[2])
            if zp is None:
                problems.append(f"{n.name}: zero point is not a constant")
                continue
            if zp.data_type != TensorProto.INT8:
                problems.append(f"{n.name}: zero point type {zp.data_type} is not INT8")
            if np.any(numpy_helper.to_array(zp) != 0):
                problems.append(f"{n.name}: zero point is not 0 (TensorRT needs symmetric quantization)")
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            per_channel = len(inits[n.input[1]].dims) > 0 and int(np.prod(inits[n.input[1]].dims)) > 1
            src = inits[n.input[0]]
            if src.data_type == TensorProto.INT32:
                problems.append(f"{n.name}: INT32 (bias) dequantization is not supported by TensorRT")
            for c in consumers.get(n.output[0], []):
                if per_channel and c.op_type == "Conv" and axis != 0:
                    problems.append(f"{n.name}: Conv weight quantized on axis {axis}, TensorRT needs 0")
                if per_channel and c.op_type == "ConvTranspose":
                    problems.append(f"{n.name}: ConvTranspose weights must be per-tensor for TensorRT")
    for n in model_proto.graph.node:
        if n.name.startswith(DECODE_PREFIX) and n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.append(f"{n.name}: the decode head must not be quantized")
    if n_qdq == 0:
        problems.append("no QuantizeLinear/DequantizeLinear nodes: the model is not quantized")
    return problems


def integer_kernel_ops(path: str | Path) -> Counter:
    """Op types of the graph ONNX Runtime CPU actually runs (after its optimiser); an INT8 model should
    show ``QLinearConv``."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="colorize-ortopt.") as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def accuracy_gate(
    reference: str | Path,
    candidate: str | Path,
    eval_files: list[Path],
    max_drop: float,
    *,
    names: tuple[str, str] = ("fp32", "int8"),
    progress: bool = False,
) -> GateResult:
    """Score both models with the paper's metric (``evaluation.evaluate``) on ``eval_files``."""
    res = evaluate(
        eval_files,
        {names[0]: onnx_predictor(reference), names[1]: onnx_predictor(candidate)},
        progress=progress,
    )
    m = res["methods"]
    return GateResult(
        reference_auc=m[names[0]]["auc_rebal"],
        candidate_auc=m[names[1]]["auc_rebal"],
        max_drop=max_drop,
        n_images=m[names[0]]["n_images"],
        reference=names[0],
        candidate=names[1],
        table=res,
    )


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
) -> dict:
    """fp32 ONNX -> INT8 Q/DQ ONNX at ``out_path``, written only if the accuracy gate passes
    (raises GateFailed otherwise). Returns a report dict."""
    import onnx

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise FileNotFoundError(f"model not found: {fp32_path}")
    meta = get_metadata(onnx.load(str(fp32_path), load_external_data=False))
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
    with tempfile.TemporaryDirectory(prefix="colorize-int8.") as tmp:
        cand = Path(tmp) / "model.int8.onnx"
        info = quantize_int8(fp32_path, cand, calib_files, method, cache_dir)
        proto = onnx.load(str(cand))
        problems = check_qdq(proto)
        if problems:
            raise RuntimeError("quantized model is not TensorRT-compatible: " + "; ".join(problems[:3]))
        ops = integer_kernel_ops(cand)
        gate = accuracy_gate(fp32_path, cand, eval_files, max_drop, progress=progress)
        if not gate.passed:
            raise GateFailed(gate)
        meta.update(
            precision="int8",
            quantization="qdq-int8-symmetric per-channel weights, per-tensor activations",
            calibration_method=method,
            calibration_images=str(len(calib_files)),
            calibration_key=info["key"],
            source_onnx_sha256=file_sha256(fp32_path),
            auc_rebal_fp32=f"{gate.reference_auc:.3f}",
            auc_rebal_int8=f"{gate.candidate_auc:.3f}",
            gate_images=str(gate.n_images),
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
