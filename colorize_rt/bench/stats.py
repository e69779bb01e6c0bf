"""Timing statistics: pure functions over lists of seconds (numpy percentiles, linear interpolation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CV_FLAG = 0.05  # coefficient of variation above this marks a noisy measurement
PERCENTILES = (50, 90, 95, 99)


def summarize(seconds: Sequence[float], batch: int = 1, warmup: int = 0) -> dict:
    """Latency summary of per-inference times (seconds) -> figures in milliseconds.

    ``cv`` is the sample standard deviation (ddof=1) over the mean; ``cv_flag`` is set when it exceeds
    5 %. Throughput is images per second at the mean latency (``batch`` images per inference).
    """
    t = np.asarray(seconds, dtype=np.float64)
    if t.size == 0:
        raise ValueError("summarize needs at least one timing")
    if np.any(t <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("timings must be finite and positive")
    mean = float(t.mean())
    std = float(t.std(ddof=1)) if t.size > 1 else 0.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(t, PERCENTILES))
    cv = std / mean
    ms = 1e3
    return {
        "warmup": int(warmup),
        "runs": int(t.size),
        "mean_ms": mean * ms,
        "median_ms": p50 * ms,
        "p90_ms": p90 * ms,
        "p95_ms": p95 * ms,
        "p99_ms": p99 * ms,
        "min_ms": float(t.min()) * ms,
        "max_ms": float(t.max()) * ms,
        "std_ms": std * ms,
        "cv": cv,
        "cv_flag": bool(cv > CV_FLAG),
        "throughput_img_s": batch / mean,
    }


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict:
    """Speed ratio from interleaved runs: per-round ``numerator[i] / denominator[i]``.

    With ``numerator`` the reference's times and ``denominator`` the candidate's, a value > 1 means the
    candidate is faster. Reports the median ratio and its spread (5th/95th percentiles, min, max) over
    rounds; pairing the runs of one round cancels drift that affects both alike.
    """
    a = np.asarray(numerator, dtype=np.float64)
    b = np.asarray(denominator, dtype=np.float64)
    n = min(a.size, b.size)
    if n == 0:
        raise ValueError("paired_ratio needs at least one pair")
    r = a[:n] / b[:n]
    p5, p50, p95 = (float(v) for v in np.percentile(r, (5, 50, 95)))
    return {
        "median": p50,
        "p5": p5,
        "p95": p95,
        "min": float(r.min()),
        "max": float(r.max()),
        "ratio_of_medians": float(np.median(a[:n]) / np.median(b[:n])),
        "pairs": int(n),
    }


def format_ratio(r: dict | None) -> str:
    """``3.12× [2.95–3.30]`` (median and 5–95 % spread) or ``–``."""
    if not r:
        return "–"
    return f"{r['median']:.2f}× [{r['p5']:.2f}–{r['p95']:.2f}]"
