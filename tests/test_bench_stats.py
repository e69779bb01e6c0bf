"""Benchmark statistics, memory measurement, machine tag and report rendering (pure, fast)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from colorize_rt.bench.machine import machine_tag
from colorize_rt.bench.report import headline, markdown
from colorize_rt.bench.stats import CV_FLAG, format_ratio, paired_ratio, summarize


def test_summarize_matches_numpy_on_known_data():
    rng = np.random.default_rng(0)
    t = rng.lognormal(mean=-3.0, sigma=0.2, size=200)  # seconds
    s = summarize(t, batch=8, warmup=2)
    for key, q in (("median_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99)):
        assert s[key] == pytest.approx(np.percentile(t, q) * 1e3)
    assert s["mean_ms"] == pytest.approx(t.mean() * 1e3)
    assert s["min_ms"] == pytest.approx(t.min() * 1e3) and s["max_ms"] == pytest.approx(t.max() * 1e3)
    assert s["cv"] == pytest.approx(t.std(ddof=1) / t.mean())
    assert s["throughput_img_s"] == pytest.approx(8 / t.mean())
    assert (s["runs"], s["warmup"]) == (200, 2)


def test_summarize_exact_small_sample():
    s = summarize([0.010, 0.020, 0.030, 0.040])
    assert s["median_ms"] == pytest.approx(25.0)
    assert s["p90_ms"] == pytest.approx(37.0)  # linear interpolation between 30 and 40
    assert s["std_ms"] == pytest.approx(np.std([10, 20, 30, 40], ddof=1))


def test_cv_flag_threshold():
    steady = summarize([0.100, 0.101, 0.099, 0.100])
    noisy = summarize([0.100, 0.130, 0.080, 0.110])
    assert not steady["cv_flag"] and steady["cv"] < CV_FLAG
    assert noisy["cv_flag"] and noisy["cv"] > CV_FLAG
    assert summarize([0.05])["cv"] == 0.0  # one run: no spread, no flag


@pytest.mark.parametrize("bad", [[], [0.1, 0.0], [0.1, float("nan")], [-1.0]])
def test_summarize_rejects_bad_timings(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_paired_ratio_cancels_common_drift():
    # The machine slows down 3x over the run; B is always exactly twice as fast as A in the same round.
    drift = np.linspace(1.0, 3.0, 20)
    a, b = 0.2 * drift, 0.1 * drift
    r = paired_ratio(a, b)
    assert r["median"] == pytest.approx(2.0) and r["p5"] == pytest.approx(2.0) and r["p95"] == pytest.approx(2.0)
    assert r["pairs"] == 20
    # Unpaired, the spread of either side alone would be 3x; the paired ratio has none.
    assert format_ratio(r) == "2.00× [2.00–2.00]"
    assert format_ratio(None) == "–"


def test_paired_ratio_spread():
    a = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    b = np.array([0.5, 0.25, 0.5, 0.5, 1.0])
    r = paired_ratio(a, b)
    assert r["median"] == pytest.approx(2.0)
    assert r["min"] == pytest.approx(1.0) and r["max"] == pytest.approx(4.0)
    assert r["p5"] == pytest.approx(np.percentile(a / b, 5)) and r["p95"] == pytest.approx(np.percentile(a / b, 95))


_PEAK_RSS_PROBE = """
import json
import numpy as np
from colorize_rt.bench.memory import PeakRss
with PeakRss() as m:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
with PeakRss() as m2:
    pass
print(json.dumps({"delta": m.delta_mb, "exact": m.exact, "delta_after": m2.delta_mb}))
"""


def test_peak_rss_sees_a_transient_allocation():
    # A fresh process: in the test session's own process, threads left by earlier tests free and
    # allocate memory inside the window, so the transient 64 MiB can hide behind their frees.
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout)
    assert m["delta"] > 50
    if m["exact"]:  # Linux: the high-water mark was reset on entry, so the next window starts fresh
        assert m["delta_after"] < 30


def test_machine_tag():
    assert machine_tag("AMD EPYC", 2, []) == "amd-epyc-2cpu"
    assert machine_tag("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", 8, ["NVIDIA H100 80GB HBM3, 81559 MiB"]) == (
        "intel-xeon-platinum-8cpu-nvidia-h100-80gb-hbm3"
    )


def _record(cases):
    machine = {
        "tag": "t-2cpu",
        "cpu": "CPU",
        "arch": "x86_64",
        "cores": 2,
        "memory_gb": 1.0,
        "gpus": [],
        "cpu_flags": ["avx2"],
        "versions": {"python": "3"},
    }
    return {
        "created": "now",
        "mode": "quick",
        "elapsed_s": 1.0,
        "command": "colorize-bench",
        "machine": machine,
        "peaks": {"fp32_gflops": 100.0, "int8_gops": 400.0, "method": "m"},
        "inputs": "x",
        "config": {"threads": 0},
        "models": [],
        "missing_models": {"default": "no model yet"},
        "cases": cases,
        "end_to_end": {"status": "skipped", "reason": "no photos"},
        "tiled": None,
    }


def _ok(times_ms, prec="fp32"):
    s = summarize(np.asarray(times_ms) / 1e3)
    return {"status": "ok", "precision": prec, "times_ms": list(times_ms), **s}


def test_headline_and_markdown_from_a_record():
    results = {
        "ort-fp32": _ok([20, 21, 19]),
        "ort-int8": {**_ok([5, 5, 5], "int8"), "fraction_of_peak": 0.5},
        "torch-fp32": _ok([30, 30, 30]),
        "opencv-dnn": {"status": "error", "error": "cv2.error: Can't create layer 'Softmax'\nmore"},
        "torch-bf16": {"status": "skipped", "reason": "time budget (predicted 99 s)"},
        "trt-int8": {"status": "unavailable", "reason": "TensorRT not installed"},
    }
    cases = [{"model": "mobile", "size": 64, "batch": 1, "results": results}]
    h = headline(cases, size=64, batch=1)
    assert h["model"] == "mobile"
    assert h["int8_vs_torch_fp32"]["median"] == pytest.approx(6.0)
    assert h["int8_vs_opencv_dnn"] is None  # errored backend: no ratio, never a crash
    rec = _record(cases)
    rec["headline"] = h
    md = markdown(rec)
    assert "6.00× [6.00–6.00]" in md
    assert "error: cv2.error: Can't create layer 'Softmax'" in md and "more" not in md.split("Softmax")[1][:10]
    assert "skipped: time budget (predicted 99 s)" in md
    assert "not available on this machine: trt-int8 (TensorRT not installed)" in md
    assert "model `default` not benchmarked: no model yet" in md
    json.dumps(rec)  # the record is plain JSON


def test_peaks_before_and_after_take_the_higher_and_rescale_fractions():
    from colorize_rt.bench.peak import best_of, rescale_fractions

    before = {"fp32_gflops": 100.0, "int8_gops": 800.0, "details": {"a": 1}, "method": "m."}
    after = {"fp32_gflops": 200.0, "int8_gops": 400.0, "details": {"a": 2}, "method": "m."}
    peaks = best_of(before, after)
    assert (peaks["fp32_gflops"], peaks["int8_gops"]) == (200.0, 800.0)
    cases = [
        {
            "results": {
                "a": {"precision": "fp32", "gflops": 50.0, "fraction_of_peak": 0.5},
                "b": {"precision": "int8", "gflops": 400.0, "fraction_of_peak": 0.5},
                "c": {"status": "skipped"},
            }
        }
    ]
    rescale_fractions(cases, peaks)
    assert cases[0]["results"]["a"]["fraction_of_peak"] == pytest.approx(0.25)
    assert cases[0]["results"]["b"]["fraction_of_peak"] == pytest.approx(0.5)


def test_gemm_peak_models_compute_the_product():
    import onnxruntime as ort

    from colorize_rt.bench.peak import _matmul_model, numpy_fp32_gflops, ort_gflops
    from colorize_rt.core.int8sim import PATHS, matmul_u8s8

    n = 64
    sess = ort.InferenceSession(_matmul_model(n, True, seed=3), providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).integers(0, 256, (n, n), dtype=np.uint8)
    b = np.random.default_rng(3).integers(-127, 128, size=(n, n), dtype=np.int8)  # the model's weights
    (y,) = sess.run(["Y"], {"A": a})
    # Full-range weights: x86 CPUs without VNNI saturate int16 pair sums (VPMADDUBSW), so the result is the
    # exact product (VNNI/AMX, ARM) or core.int8sim's saturating model (AVX2), bit for bit, never anything else.
    paths = {p: np.array_equal(y, matmul_u8s8(a, b, 128, p)) for p in PATHS}
    assert any(paths.values()), "MatMulInteger matches neither the exact nor the VPMADDUBSW-saturating product"
    np.testing.assert_array_equal(matmul_u8s8(a, b, 128, "vnni"), (a.astype(np.int32) - 128) @ b.astype(np.int32))
    assert np.isfinite(numpy_fp32_gflops(n, repeats=2)) and ort_gflops(n, integer=False, repeats=2) > 0
    assert ort_gflops(n, integer=True, repeats=2) > 0
