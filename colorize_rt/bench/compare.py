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
    """Measure backends on one feed: open each, run interleaved rounds, then summarise.

    Args:
        backends: the backends to compare (``REFERENCE`` among them for ratios and agreement).
        feed: the network inputs (``L`` (N, 1, H, W) and ``temperature``).
        policy: warm-up, round count and time budget.
        macs: multiply-accumulates per inference (whole batch); 0 skips GFLOP/s.
        peaks: the machine's measured peaks (``fp32_gflops``, ``int8_gops``) for the fraction of peak.

    Returns:
        ``{backend name: result dict}``; a backend that failed records its exact error.
    """
    results: dict[str, dict] = {}
    first_out: dict[str, np.ndarray] = {}
    active = []
    for b in backends:
        opened = _open_backend(b, feed, policy, results, first_out)
        if opened is not None:
            active.append((b, opened, results[b.name], []))
    try:
        _interleaved_rounds(active, feed, policy)
    finally:
        for _, runner, _, _ in active:
            runner.deactivate()
    _summarize_case(active, first_out, int(feed["L"].shape[0]), macs, peaks or {})
    return results


def _open_backend(b: Backend, feed: dict, policy: RunPolicy, results: dict, first_out: dict):
    """Activate one backend and warm it up; records the result entry; returns its runner or None."""
    if b.make is None:
        results[b.name] = {"status": "unavailable", "reason": b.unavailable}
        return None
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
        return runner
    except Exception as exc:  # noqa: BLE001 - the exact error is the result for this backend
        results[b.name] = {"status": "error", "error": _err(exc)}
        if runner is not None:
            runner.deactivate()
        return None


def _infer_once(runner, feed: dict, res: dict, times: list, settle_s: float) -> None:
    """One timed inference (after the settle pause); peak RSS is tracked, an error ends this backend."""
    time.sleep(settle_s)
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


def _interleaved_rounds(active: list, feed: dict, policy: RunPolicy) -> None:
    """Rounds over the open backends in rotating order (A B C, B C A, ...) until the policy says stop."""
    start = time.perf_counter()
    rounds = 0
    while active:
        order = active[rounds % len(active) :] + active[: rounds % len(active)]
        for _b, runner, res, times in order:
            if res["status"] == "ok":
                _infer_once(runner, feed, res, times, policy.settle_s)
        rounds += 1
        elapsed = time.perf_counter() - start
        if rounds >= policy.max_runs or (rounds >= policy.min_runs and elapsed >= policy.target_s):
            break
        if not any(res["status"] == "ok" for _, _, res, _ in active):
            break


def _summarize_case(active: list, first_out: dict, batch: int, macs: int, peaks: dict) -> None:
    """Latency statistics, GFLOP/s and fraction of peak, paired speed-up and agreement vs the reference."""
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


def pairwise(results: dict[str, dict], numerator: str, denominator: str) -> dict | None:
    """Speed of ``denominator`` relative to ``numerator`` (> 1: denominator is faster), from paired rounds."""
    a, b = results.get(numerator, {}), results.get(denominator, {})
    if a.get("status") != "ok" or b.get("status") != "ok" or "times_ms" not in a or "times_ms" not in b:
        return None
    return paired_ratio(a["times_ms"], b["times_ms"])
