"""The comparator loop and the budgeted suite, with real ONNX Runtime / OpenCV / torch runners on a tiny
model and instrumented fake runners for ordering and time-budget behaviour."""

import time
from pathlib import Path

import numpy as np
import pytest

from colorize_rt.bench.compare import RunPolicy, run_case
from colorize_rt.bench.models import BenchModel
from colorize_rt.bench.runners import Backend, OpenCVRunner, TorchRunner, build_backends
from colorize_rt.bench.suite import SuiteConfig, plan_cases, run_suite
from colorize_rt.runtime.backends.runners import OrtRunner, Runner

FAST = RunPolicy(warmup=1, min_runs=3, max_runs=4, target_s=0.0, settle_s=0.0)


class Sleeper(Runner):
    """Sleeps ``seconds`` per inference and logs every call in a shared list."""

    def __init__(self, name, seconds, log, fail_on=None):
        super().__init__()
        self.name, self.seconds, self.log, self.fail_on = name, seconds, log, fail_on

    def infer_impl(self, feed):
        self.log.append(self.name)
        if self.fail_on is not None and len([n for n in self.log if n == self.name]) == self.fail_on:
            raise RuntimeError("device lost")
        time.sleep(self.seconds)
        return {"ab": np.zeros((feed["L"].shape[0], 2, *feed["L"].shape[2:]), np.float32)}


def _feed(batch=1, size=16):
    return {"L": np.full((batch, 1, size, size), 50.0, np.float32), "temperature": np.array(0.38, np.float32)}


def test_runs_are_interleaved_and_rotated():
    log = []
    backends = [Backend(n, lambda n=n: Sleeper(n, 0.001, log), "fp32") for n in ("ort-fp32", "B", "C")]
    res = run_case(backends, _feed(), RunPolicy(warmup=1, min_runs=3, max_runs=3, target_s=0.0, settle_s=0.0))
    warm, rounds = log[:3], log[3:]
    assert warm == ["ort-fp32", "B", "C"]
    assert rounds == ["ort-fp32", "B", "C", "B", "C", "ort-fp32", "C", "ort-fp32", "B"]
    assert all(res[n]["runs"] == 3 for n in ("ort-fp32", "B", "C"))


def test_timings_ratios_and_errors_are_recorded():
    log = []
    backends = [
        Backend("ort-fp32", lambda: Sleeper("ort-fp32", 0.02, log), "fp32"),
        Backend("ort-int8", lambda: Sleeper("ort-int8", 0.005, log), "int8"),
        Backend("flaky", lambda: Sleeper("flaky", 0.001, log, fail_on=3), "fp32"),
        Backend("broken", lambda: (_ for _ in ()).throw(OSError("cannot open libfoo.so")), "fp32"),
        Backend("trt-fp16", None, "fp16", "gpu", unavailable="TensorRT not installed"),
    ]
    res = run_case(backends, _feed(batch=2), FAST, macs=10**9, peaks={"fp32_gflops": 100.0, "int8_gops": 400.0})
    ref, int8 = res["ort-fp32"], res["ort-int8"]
    assert ref["median_ms"] == pytest.approx(20, rel=0.5) and int8["median_ms"] < ref["median_ms"]
    assert int8["throughput_img_s"] == pytest.approx(2 / (int8["mean_ms"] / 1e3))
    assert int8["speedup_vs_ort_fp32"]["median"] > 2
    assert int8["gflops"] == pytest.approx(2 / (int8["median_ms"] / 1e3))
    assert int8["fraction_of_peak"] == pytest.approx(int8["gflops"] / 400.0)  # int8 rows use the int8 peak
    assert ref["fraction_of_peak"] == pytest.approx(ref["gflops"] / 100.0)
    assert res["flaky"] == {**res["flaky"], "status": "error", "error": "RuntimeError: device lost"}
    assert res["broken"] == {"status": "error", "error": "OSError: cannot open libfoo.so"}
    assert res["trt-fp16"] == {"status": "unavailable", "reason": "TensorRT not installed"}
    assert ref["peak_rss_mb"] > 0 and "warmup_ms" in ref


def _model(tmp_path: Path) -> BenchModel:
    torch = pytest.importorskip("torch")
    from colorize_rt.export.onnx_export import export_onnx
    from colorize_rt.models import create_model

    def make():
        torch.manual_seed(0)
        return create_model("mobile", width=0.125).eval()

    path = export_onnx(make(), tmp_path / "tiny.onnx")
    return BenchModel(
        "mobile",
        path,
        None,
        "mobile",
        {"width": 0.125},
        macs_256=10**8,
        make_net=make,
        torch_same_weights=True,
    )


def test_real_backends_agree_and_opencv_error_is_the_result(tmp_path):
    m = _model(tmp_path)
    backends = build_backends(
        m.fp32,
        None,
        m.make_net,
        torch_comparable=True,
        names=("ort-fp32", "torch-fp32", "opencv-dnn", "ort-int8", "ort-cuda-fp32"),
    )
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(m.fp32.read_bytes()[:500])
    backends.append(Backend("opencv-dnn-broken", lambda: OpenCVRunner(bad), "fp32"))
    res = run_case(
        backends,
        {
            "L": np.random.default_rng(0).uniform(0, 100, (1, 1, 32, 32)).astype(np.float32),
            "temperature": np.array(0.38, np.float32),
        },
        FAST,
        macs=m.macs(32),
    )
    assert res["ort-fp32"]["status"] == "ok"
    for name in ("torch-fp32", "opencv-dnn"):  # same weights, same graph: same output
        assert res[name]["status"] == "ok", res[name]
        assert res[name]["agreement_vs_ort_fp32"]["max_abs_ab"] < 0.05
    assert res["ort-int8"] == {"status": "unavailable", "reason": "no INT8 model"}
    assert res["ort-cuda-fp32"]["status"] == "unavailable"
    broken = res["opencv-dnn-broken"]
    assert broken["status"] == "error" and broken["error"].startswith("error:")  # cv2.error, verbatim


def test_torch_bf16_runner_runs_in_bfloat16(tmp_path):
    m = _model(tmp_path)
    feed = {"L": np.full((1, 1, 32, 32), 60.0, np.float32), "temperature": np.array(0.38, np.float32)}
    with (
        TorchRunner(m.make_net, "bf16") as bf16,
        TorchRunner(m.make_net, "fp32") as fp32,
        OrtRunner(m.fp32) as ort,
    ):
        a, b, c = (r.infer(feed)["ab"] for r in (bf16, fp32, ort))
    assert a.dtype == np.float32 and a.shape == (1, 2, 32, 32)
    assert np.abs(b - c).max() < 1e-3  # torch fp32 == the ONNX export
    assert 0 < np.abs(a - b).max() < 5  # bf16 differs a little, not wildly


def test_suite_skips_what_does_not_fit_the_budget(tmp_path, monkeypatch):
    import colorize_rt.bench.suite as suite

    m = BenchModel(
        "mobile",
        tmp_path / "x.onnx",
        None,
        "mobile",
        {},
        macs_256=10**9,
        make_net=None,
        torch_same_weights=True,
    )
    cases = plan_cases([m], (64, 128), (1, 4))
    assert [(s, b) for _, s, b in cases] == [(64, 1), (64, 4), (128, 1), (128, 4)]  # cheapest first (stable)

    def fake_backends(fp32, int8, make_net, **kw):
        # seconds per GMAC: the 64x64 case costs 0.016 s per inference for ort-fp32, 128x128x4 costs 0.25 s
        speeds = (("ort-fp32", 0.25), ("slow", 2.5))
        return [Backend(n, lambda n=n, k=k: _Scaled(n, k), "fp32") for n, k in speeds]

    monkeypatch.setattr(suite, "build_backends", fake_backends)
    cfg = SuiteConfig(
        sizes=(64, 128),
        batches=(1, 4),
        budget_s=1.5,
        max_case_s=1.0,
        min_case_s=0.0,
        policy=RunPolicy(warmup=1, min_runs=3, max_runs=3, target_s=0.0, settle_s=0.0),
    )
    out = run_suite([m], cfg, peaks={}, log=lambda msg: None)
    first, last = out[0]["results"], out[-1]["results"]
    assert first["ort-fp32"]["status"] == "ok" and first["slow"]["status"] == "ok"
    # the slow backend's 4 inferences at 128x128x4 would take ~10 s: predicted from the first cases, skipped
    assert last["slow"]["status"] == "skipped" and last["slow"]["reason"].startswith("time budget (predicted")
    assert out[0]["ratios"]["int8_vs_ort_fp32"] is None  # no INT8 row, no ratio


class _Scaled(Runner):
    def __init__(self, name, sec_per_gmac):
        super().__init__()
        self.name, self.k = name, sec_per_gmac

    def infer_impl(self, feed):
        n, _, h, w = feed["L"].shape
        time.sleep(self.k * n * (h * w) / 256**2)  # macs_256 = 1 GMAC
        return {"ab": np.zeros((n, 2, h, w), np.float32)}


def test_default_model_is_read_from_the_assets_or_reported_missing(tmp_path, monkeypatch):
    import onnx

    from colorize_rt.bench.models import prepare_models
    from colorize_rt.export.graph import get_metadata, set_metadata

    monkeypatch.setenv("COLORIZE_RT_ASSETS", str(tmp_path / "empty"))
    ready, missing = prepare_models(["default"])
    assert ready == [] and "no model yet" in missing["default"]

    m = _model(tmp_path)
    assets = tmp_path / "assets"
    assets.mkdir()
    proto = onnx.load(str(m.fp32))
    onnx.save(proto, str(assets / "default.onnx"))
    meta = get_metadata(proto)
    meta.update(precision="int8", auc_rebal_fp32="0.612", auc_rebal_int8="0.605", gate_images="50")
    set_metadata(proto, meta)  # stands in for a gated INT8 model: only the metadata is read here
    onnx.save(proto, str(assets / "default-int8.onnx"))
    monkeypatch.setenv("COLORIZE_RT_ASSETS", str(assets))
    ready, missing = prepare_models(["default"])
    assert missing == {}
    (d,) = ready
    assert (d.variant, d.variant_args["width"]) == ("mobile", 0.125)
    assert d.macs_256 > 0 and not d.torch_same_weights and d.make_net is not None
    assert d.int8_gate == {"auc_rebal_fp32": "0.612", "auc_rebal_int8": "0.605", "gate_images": "50"}
