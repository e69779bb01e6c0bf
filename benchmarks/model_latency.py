"""CPU latency of several colorize-rt ONNX models side by side, and each one's ratio to the first.

    python -m benchmarks.model_latency OLD.onnx NEW.onnx [MORE.onnx ...] [--size 256] [--reps 40] [--json OUT]

ONNX Runtime on the CPU (all cores), batch 1, a size x size L* map. The models run interleaved (A B C, A B C,
...) so a change in the machine's load hits all of them alike; the ratio is the median of per-round ratios,
which is what the model card quotes ("within 1.5x of today's default" and quality against latency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def measure(models: list[str], size: int = 256, reps: int = 40) -> dict:
    """Interleaved latency of ``models``.

    Args:
        models: ONNX files with the colorize-rt interface (inputs ``L`` and ``temperature``).
        size: side of the square input (a multiple of 8).
        reps: rounds; each round runs every model once.

    Returns:
        ``{"size", "reps", "models": [{"model", "median_ms", "ratio_to_first"}]}``.
    """
    from colorize_rt.core.constants import DEFAULT_T
    from colorize_rt.runtime.backends.session import ort_session

    sessions = [ort_session(m) for m in models]
    L = np.random.default_rng(0).uniform(0, 100, (1, 1, size, size)).astype(np.float32)
    feed = {"L": L, "temperature": np.array(DEFAULT_T, np.float32)}
    for s in sessions:  # warm-up: first-run allocations and kernel choice
        s.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(reps):
        for s, t in zip(sessions, times, strict=True):
            start = time.perf_counter()
            s.run(None, feed)
            t.append((time.perf_counter() - start) * 1e3)
            time.sleep(0.02)  # let ONNX Runtime's spinning threads settle before the next model
    rows = []
    for m, t in zip(models, times, strict=True):
        ratio = statistics.median(a / b for a, b in zip(t, times[0], strict=True))
        rows.append({"model": m, "median_ms": round(statistics.median(t), 2), "ratio_to_first": round(ratio, 3)})
    return {"size": size, "reps": reps, "models": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="ONNX models; ratios are to the first")
    ap.add_argument("--size", type=int, default=256, help="square input side, a multiple of 8 (default 256)")
    ap.add_argument("--reps", type=int, default=40, help="interleaved rounds (default 40)")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    if not 8 <= args.size <= 4096 or args.size % 8:
        ap.error("--size: a multiple of 8 between 8 and 4096")
    if not 1 <= args.reps <= 10_000:
        ap.error("--reps: between 1 and 10000")
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        ap.error(f"no such model: {missing[0]}")
    result = measure(args.models, args.size, args.reps)
    for row in result["models"]:
        print(f"{row['model']}: {row['median_ms']:.2f} ms, x{row['ratio_to_first']:.3f} of the first")
    if args.json:
        from colorize_rt.core.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
