"""INT8 Q/DQ calibration: data reader, TensorRT-compatible Q/DQ, ORT integer kernels, cache, accuracy gate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from colorize_rt.calibration.cli import main as calibrate_main
from colorize_rt.calibration.quantize import (
    calibration_key,
    check_qdq,
    int8_plan,
    integer_kernel_ops,
    quantize_int8,
    split_files,
)
from colorize_rt.calibration.reader import ImageCalibrationReader
from colorize_rt.core.files import list_images
from colorize_rt.core.hashing import file_sha256
from colorize_rt.eval.gate import GateResult
from colorize_rt.export.graph import get_metadata
from colorize_rt.export.onnx_export import export_onnx
from colorize_rt.models import create_model

skdata = pytest.importorskip("skimage.data")
CALIB = ["astronaut", "chelsea", "coffee", "rocket"]
HELD_OUT = ["immunohistochemistry", "colorwheel", "cat", "hubble_deep_field"]


def _write_images(d: Path, names: list[str], short: int = 128) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        rgb = getattr(skdata, name)()[..., :3]
        s = short / min(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return d


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _write_images(root / "calib", CALIB), _write_images(root / "eval", HELD_OUT)


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    torch.manual_seed(0)
    net = create_model("mobile", width=0.125).eval()
    for m in net.modules():  # non-trivial BN so the shift Adds carry real values
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return export_onnx(net, tmp_path_factory.mktemp("m") / "model.onnx")


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, fp32_model, dirs):
    """One CLI run (entropy) and the same run again (cache hit)."""
    calib, held = dirs
    out_dir = tmp_path_factory.mktemp("out")
    args = [
        str(fp32_model),
        "--data",
        str(calib),
        "--eval",
        str(held),
        "--cache-dir",
        str(out_dir / "cache"),
        "--no-progress",
    ]
    runs = []
    for i in range(2):
        t0 = time.perf_counter()
        res = CliRunner().invoke(calibrate_main, [*args, "-o", str(out_dir / f"int8_{i}.onnx")])
        runs.append((res, time.perf_counter() - t0))
    return out_dir, runs


def test_reader_uses_runtime_preprocessing(dirs):
    calib, _ = dirs
    files = list_images(calib)
    r = ImageCalibrationReader(files)
    feeds = list(iter(r.get_next, None))
    assert len(feeds) == len(files) == len(r)
    for f, feed in zip(files, feeds, strict=True):
        L = feed["L"]
        assert L.dtype == np.float32 and L.shape[:2] == (1, 1)
        assert L.shape[2] % 8 == 0 and L.shape[3] % 8 == 0
        assert min(L.shape[2:]) >= 256 > min(L.shape[2:]) - 8  # shorter side 256, padded to 8
        assert 0 <= L.min() and L.max() <= 100.5 and L.std() > 5
        h, w = cv2.imread(str(f)).shape[:2]
        assert abs(L.shape[3] / L.shape[2] - w / h) < 0.05
    r.set_range(1, 2)
    assert r.get_next()["L"].shape == feeds[1]["L"].shape and r.get_next() is None


def test_cli_writes_int8_and_reports_both_numbers(calibrated):
    out_dir, runs = calibrated
    res, _ = runs[0]
    assert res.exit_code == 0, res.output
    assert "fp32" in res.output and "int8" in res.output and "cache written" in res.output
    meta = get_metadata(onnx.load(str(out_dir / "int8_0.onnx")))
    assert meta["precision"] == "int8" and meta["calibration_method"] == "entropy"
    assert float(meta["auc_rebal_fp32"]) > 0 and float(meta["auc_rebal_int8"]) > 0
    assert meta["variant"] == "mobile"  # the export's metadata carries over


def test_rerun_hits_cache_and_is_identical(calibrated):
    out_dir, runs = calibrated
    (r0, _), (r1, _) = runs
    assert r1.exit_code == 0, r1.output
    assert "cache reused" in r1.output
    assert len(list((out_dir / "cache").glob("*.json"))) == 1
    a, b = onnx.load(str(out_dir / "int8_0.onnx")), onnx.load(str(out_dir / "int8_1.onnx"))
    scales = lambda m: {i.name: numpy_helper.to_array(i) for i in m.graph.initializer if "scale" in i.name}  # noqa: E731
    sa, sb = scales(a), scales(b)
    assert sa.keys() == sb.keys() and sa
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_qdq_is_tensorrt_compatible(calibrated):
    out_dir, _ = calibrated
    m = onnx.load(str(out_dir / "int8_0.onnx"))
    assert check_qdq(m) == []
    inits = {i.name: i for i in m.graph.initializer}
    consumers = {x: n for n in m.graph.node for x in n.input}
    n_weight_dq = 0
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any()  # symmetric INT8
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            user = consumers[n.output[0]]
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if user.op_type == "Conv":
                n_weight_dq += 1
                assert inits[n.input[1]].dims[0] > 1 and axis == 0  # per output channel
            if user.op_type == "ConvTranspose":
                assert numpy_helper.to_array(inits[n.input[1]]).size == 1  # per tensor
    assert n_weight_dq >= 15
    # decode head and the logits layer are not quantized
    producer = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.name.startswith("decode/"):
            assert all(producer[x].op_type != "DequantizeLinear" for x in n.input if x in producer), n.name
    biases = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT32]
    assert not biases


def test_ort_cpu_runs_integer_kernels(calibrated, fp32_model):
    out_dir, _ = calibrated
    int8 = out_dir / "int8_0.onnx"
    ops = integer_kernel_ops(int8)
    assert ops["QLinearConv"] >= 15, ops
    so = ort.SessionOptions()
    so.log_severity_level = 3
    L = np.random.default_rng(0).uniform(0, 100, (2, 1, 64, 96)).astype(np.float32)
    feed = {"L": L, "temperature": np.array(0.38, np.float32)}  # a real graph input: always fed
    a = ort.InferenceSession(str(int8), so, providers=["CPUExecutionProvider"]).run(["ab"], feed)[0]
    b = ort.InferenceSession(str(fp32_model), so, providers=["CPUExecutionProvider"]).run(["ab"], feed)[0]
    assert a.shape == b.shape == (2, 2, 64, 96) and a.dtype == np.float32
    assert np.abs(a - b).mean() < 5.0 and np.abs(a - b).max() > 0  # quantized, yet close


def test_gate_failure_writes_nothing(fp32_model, dirs, tmp_path):
    calib, held = dirs
    out = tmp_path / "never.onnx"
    res = CliRunner().invoke(
        calibrate_main,
        [
            str(fp32_model),
            "--data",
            str(calib),
            "--eval",
            str(held),
            "--cache-dir",
            str(tmp_path / "c"),
            "--max-drop",
            "-50",
            "--no-progress",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 1
    assert "FAILED" in res.output and "fp32" in res.output and "int8" in res.output
    assert "nothing written" in res.output and "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_usage_errors_exit_2(fp32_model, tmp_path):
    r = CliRunner().invoke(calibrate_main, [str(fp32_model), "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "o.onnx")])
    assert r.exit_code == 2 and r.output.startswith("error:") and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(
        calibrate_main,
        [str(fp32_model), "--data", str(tmp_path), "--method", "magic", "-o", str(tmp_path / "o.onnx")],
    )
    assert r.exit_code == 2


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_other_methods(fp32_model, dirs, tmp_path, method):
    calib, _ = dirs
    files = list_images(calib)[:2]
    out = tmp_path / f"{method}.onnx"
    info = quantize_int8(fp32_model, out, files, method, cache_dir=tmp_path)
    assert not info["cache_hit"] and Path(info["cache_path"]).is_file()
    assert json.loads(Path(info["cache_path"]).read_text())  # a readable JSON cache
    assert check_qdq(onnx.load(str(out))) == []


def test_cache_key_depends_on_model_data_and_method(fp32_model, dirs):
    calib, held = dirs
    a, b = list_images(calib), list_images(held)
    sha = file_sha256(fp32_model)
    k = calibration_key(sha, a, "entropy")
    assert k == calibration_key(sha, a, "entropy")
    assert (
        len(
            {
                k,
                calibration_key(sha, b, "entropy"),
                calibration_key(sha, a, "minmax"),
                calibration_key("0" * 64, a, "entropy"),
            }
        )
        == 4
    )


def test_plan_excludes_decode_and_logits(fp32_model):
    m = onnx.load(str(fp32_model))
    exclude, overrides = int8_plan(m)
    by_name = {n.name: n for n in m.graph.node}
    assert {by_name[n].op_type for n in exclude if n.startswith("decode/")} >= {
        "Div",
        "Softmax",
        "Conv",
        "Resize",
    }
    logits = [n for n in exclude if n.startswith("net/")]
    assert len(logits) == 1 and by_name[logits[0]].op_type == "Conv"
    assert len(overrides) == 1  # the ConvTranspose weight


def test_split_and_gate_logic():
    files = [Path(f"{i}.jpg") for i in range(10)]
    cal, held = split_files(files)
    assert len(held) == 2 and not set(cal) & set(held) and len(cal) + len(held) == 10
    assert GateResult(70.0, 69.5, 1.0, 5).passed
    assert not GateResult(70.0, 68.9, 1.0, 5).passed
    assert not GateResult(70.0, float("nan"), 1.0, 5).passed


def test_weights_are_7_bit_so_cpus_without_vnni_agree(calibrated):
    """|w| <= 64: VPMADDUBSW (AVX2, no VNNI) cannot saturate, so both x86 paths compute the same integers."""
    from colorize_rt.calibration.quantize import saturation_risks

    out_dir, _ = calibrated
    m = onnx.load(str(out_dir / "int8_0.onnx"))
    weights = [numpy_helper.to_array(i) for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2]
    assert len(weights) >= 15 and max(int(np.abs(w).max()) for w in weights) <= 64
    assert saturation_risks(m) == []
    full = onnx.load(str(out_dir / "int8_0.onnx"))
    w = next(i for i in full.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2)
    arr = numpy_helper.to_array(w).copy()
    arr.flat[0] = 127
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    assert len(saturation_risks(full)) == 1


def test_int8_model_carries_a_probe_it_passes(calibrated):
    from colorize_rt.core.probe import PROBE_KEY
    from colorize_rt.runtime.backends.runners import OrtRunner
    from colorize_rt.runtime.backends.selfcheck import check_runner

    out_dir, _ = calibrated
    path = out_dir / "int8_0.onnx"
    meta = get_metadata(onnx.load(str(path), load_external_data=False))
    assert PROBE_KEY in meta and meta["int8_target"] == "tensorrt"
    with OrtRunner(path) as runner:
        v = check_runner(runner, path, "cpu", use_cache=False)
    assert v.status == "pass" and v.precision == "int8"


def test_cpu_target_uses_uint8_activations(fp32_model, dirs, tmp_path):
    from colorize_rt.calibration.quantize import calibrate

    calib, held = dirs
    out = tmp_path / "cpu.onnx"
    report = calibrate(fp32_model, out, calib, eval_dir=held, method="minmax", max_drop=100, cache_dir=tmp_path, target="cpu")
    m = onnx.load(str(out))
    inits = {i.name: i for i in m.graph.initializer}
    act_zp = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert act_zp and all(z.data_type == onnx.TensorProto.UINT8 for z in act_zp)
    assert get_metadata(m)["int8_target"] == "cpu" and report["gate"].passed
    assert check_qdq(m)  # not for TensorRT: asymmetric activations are reported
