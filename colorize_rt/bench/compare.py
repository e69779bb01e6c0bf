"""The comparator loop: several backends on one feed, interleaved (A B C, B C A, ...), so drift in the
machine's speed hits every backend alike; per-round ratios then cancel it.

A backend that fails to load or run records its exact error as its result; the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .memory import PeakRss, gpu_memory_used_mb
from .models import output_agreement
from .runners import REFERENCE, Backend
from .stats import paired_ratio, summarize


@dataclass
class RunPolicy:
    warmup: int = 1
    min_runs: int = 3  # per backend, whatever the time
    max_runs: int = 30
    target_s: float = 10.0  # stop adding rounds after this much time in the case (once min_runs are done)
    # Pause between two inferences so the previous backend's worker threads (ONNX Runtime's spin-wait,
    # OpenMP) are idle before the next one starts; without it, interleaved torch runs measured ~1.6x slower.
    settle_s: float = 0.025


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()}"[:2000]


def run_case(
    backends: list[Backend],
    feed: dict[str, np.ndarray],
    policy: RunPolicy,
    *,
    macs: int = 0,
    peaks: dict | None = None,
) -> dict:
    """Measure ``backends`` on ``feed`` -> {name: result}; ``macs`` per inference (whole batch)."""
    batch = int(feed["L"].shape[0])
    peaks = peaks or {}
    results: dict[str, dict] = {}
    active = []
    first_out: dict[str, np.ndarray] = {}
    for b in backends:
        if b.make is None:
            results[b.name] = {"status": "unavailable", "reason": b.unavailable}
            continue
        res = results[b.name] = {"status": "ok", "precision": b.precision, "device": b.device}
        gpu0 = gpu_memory_used_mb() if b.device == "gpu" else None
        runner = None
        try:
            with PeakRss() as mem:
                t0 = time.perf_counter()
                runner = b.make()
                runner.activate()
                res["activate_s"] = time.perf_counter() - t0
                warm = []
                for _ in range(max(policy.warmup, 1)):  # at least one: its output is compared
                    t0 = time.perf_counter()
                    out = runner.infer(feed)
                    warm.append(time.perf_counter() - t0)
                first_out[b.name] = out["ab"]
            res["activate_rss_delta_mb"] = mem.delta_mb
            res["warmup_ms"] = [t * 1e3 for t in warm]
            if gpu0 is not None and (gpu1 := gpu_memory_used_mb()) is not None:
                res["gpu_memory_mb"] = gpu1 - gpu0
            active.append((b, runner, res, []))
        except Exception as exc:  # noqa: BLE001 - the exact error is the result for this backend
            results[b.name] = {"status": "error", "error": _err(exc)}
            if runner is not None:
                runner.deactivate()

    start = time.perf_counter()
    rounds = 0
    while active:
        order = active[rounds % len(active) :] + active[: rounds % len(active)]  # rotate: A B C, B C A, ...
        for _b, runner, res, times in order:
            if res["status"] != "ok":
                continue
            time.sleep(policy.settle_s)
            try:
                with PeakRss() as mem:
                    t0 = time.perf_counter()
                    runner.infer(feed)
                    times.append(time.perf_counter() - t0)
                res["peak_rss_mb"] = max(res.get("peak_rss_mb", 0.0), mem.peak_mb)
                res["infer_rss_delta_mb"] = max(res.get("infer_rss_delta_mb", 0.0), mem.delta_mb)
                res["rss_exact"] = mem.exact
            except Exception as exc:  # noqa: BLE001
                res.update(status="error", error=_err(exc))
        rounds += 1
        elapsed = time.perf_counter() - start
        if rounds >= policy.max_runs or (rounds >= policy.min_runs and elapsed >= policy.target_s):
            break
        if not any(res["status"] == "ok" for _, _, res, _ in active):
            break
    for _, runner, _, _ in active:
        runner.deactivate()

    ref_times = next((times for b, _, res, times in active if b.name == REFERENCE and res["status"] == "ok"), None)
    ref_out = first_out.get(REFERENCE)
    for b, _, res, times in active:
        if res["status"] != "ok" or not times:
            continue
        res.update(summarize(times, batch=batch, warmup=len(res["warmup_ms"])))
        res["times_ms"] = [t * 1e3 for t in times]
        if macs:
            gflops = 2 * macs / (res["median_ms"] / 1e3) / 1e9
            res["gflops"] = gflops
            peak = peaks.get("int8_gops" if b.precision == "int8" else "fp32_gflops")
            # bf16/fp16 are compared with the fp32 peak: the benchmark measures no half-precision GEMM peak
            res["fraction_of_peak"] = gflops / peak if peak else None
        if ref_times is not None and b.name != REFERENCE:
            res["speedup_vs_ort_fp32"] = paired_ratio(ref_times, times)
        if ref_out is not None and b.name != REFERENCE and b.name in first_out and b.comparable:
            res["agreement_vs_ort_fp32"] = output_agreement(ref_out, first_out[b.name])
    return results


def pairwise(results: dict[str, dict], numerator: str, denominator: str) -> dict | None:
    """Speed of ``denominator`` relative to ``numerator`` (> 1: denominator is faster), from paired rounds."""
    a, b = results.get(numerator, {}), results.get(denominator, {})
    if a.get("status") != "ok" or b.get("status") != "ok" or "times_ms" not in a or "times_ms" not in b:
        return None
    return paired_ratio(a["times_ms"], b["times_ms"])
