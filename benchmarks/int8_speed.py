"""CPU speed of an INT8 model against its fp32 sibling, and the known-answer probe's overhead.

    python -m benchmarks.int8_speed --fp32 colorize_rt/assets/default.onnx --int8 colorize_rt/assets/default-int8.onnx \
        [--record] [--json benchmarks/results/<tag>/int8_speed.json]

* speed: 256x256, batch 1, ONNX Runtime CPU (all cores), fp32 and INT8 runs interleaved, median of ``--reps``.
* ``--record`` writes the measured ratio into the INT8 model's ``cpu_int8_speedup`` metadata under this CPU's
  integer path (``vnni`` / ``avx2`` / ``other``), which ``runtime.selfcheck.int8_cpu_choice`` reads at start
  (the runtime never times anything itself). Other paths' records are kept; the file is rewritten atomically.
* probe overhead: fresh sessions, the first 256x256 inference with and without the probe before it (the
  probe also pays the session's first-run costs), and warm probe vs warm 256x256 inference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _feed(side: int) -> dict:
    from colorize_rt.core.probe import decode_L, load_probe_input

    L = np.random.default_rng(0).uniform(0, 100, (1, 1, side, side)).astype(np.float32)
    if side == 32:
        L = decode_L(load_probe_input())[None, None]
    return {"L": L, "temperature": np.array(0.38, np.float32)}


def _time(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def speed(fp32: str, int8: str, reps: int) -> dict:
    from benchmarks.model_latency import measure

    m32, m8 = (row["median_ms"] for row in measure([fp32, int8], 256, reps)["models"])  # interleaved
    return {"fp32_ms": m32, "int8_ms": m8, "speedup": round(m32 / m8, 3), "reps": reps}


def probe_overhead(model: str, reps: int) -> dict:
    from colorize_rt.core.probe import PROBE_KEY
    from colorize_rt.runtime.backends.runners import OrtRunner
    from colorize_rt.runtime.backends.selfcheck import run_probe

    big = _feed(256)
    cold_plain, cold_probe, warm_probe, warm_big = [], [], [], []
    for _ in range(reps):
        with OrtRunner(model) as r:
            cold_plain += _time(lambda r=r: r.infer(big), 1)
        with OrtRunner(model) as r:
            text = dict(r.session.get_modelmeta().custom_metadata_map)[PROBE_KEY]
            t = time.perf_counter()
            run_probe(r, text, "int8")
            r.infer(big)
            cold_probe.append((time.perf_counter() - t) * 1e3)
            warm_probe += _time(lambda r=r, text=text: run_probe(r, text, "int8"), 3)
            warm_big += _time(lambda r=r: r.infer(big), 3)
    med = statistics.median
    out = {
        "first_256_ms_without_probe": round(med(cold_plain), 2),
        "probe_plus_first_256_ms": round(med(cold_probe), 2),
        "warm_probe_ms": round(med(warm_probe), 2),
        "warm_256_ms": round(med(warm_big), 2),
        "reps": reps,
    }
    out["first_run_overhead_ms"] = round(out["probe_plus_first_256_ms"] - out["first_256_ms_without_probe"], 2)
    out["first_run_overhead_pct_of_256"] = round(100 * out["first_run_overhead_ms"] / out["warm_256_ms"], 1)
    out["warm_probe_pct_of_256"] = round(100 * out["warm_probe_ms"] / out["warm_256_ms"], 1)
    return out


def record(int8: str, result: dict) -> None:
    import onnx

    from colorize_rt.core.atomic import atomic_path
    from colorize_rt.core.cpu import cpu_model, int8_dot_path
    from colorize_rt.export.graph import get_metadata, set_metadata
    from colorize_rt.runtime.backends.selfcheck import SPEED_KEY

    proto = onnx.load(int8)
    meta = get_metadata(proto)
    rec = json.loads(meta.get(SPEED_KEY, "{}"))
    rec[int8_dot_path()] = {
        "speedup": result["speedup"],
        "fp32_ms": result["fp32_ms"],
        "int8_ms": result["int8_ms"],
        "cpu": cpu_model(),
    }
    meta[SPEED_KEY] = json.dumps(rec, sort_keys=True)
    set_metadata(proto, meta)
    with atomic_path(int8) as tmp:
        onnx.save(proto, str(tmp))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.int8_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8", required=True)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--probe-reps", type=int, default=7)
    ap.add_argument("--record", action="store_true", help="write the speed ratio into the INT8 model's metadata")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    from colorize_rt.core.cpu import cpu_model, int8_dot_path

    res = {"cpu": cpu_model(), "int8_path": int8_dot_path(), "speed_256": speed(args.fp32, args.int8, args.reps)}
    if args.probe_reps:
        res["probe_overhead"] = {Path(m).name: probe_overhead(m, args.probe_reps) for m in (args.fp32, args.int8)}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.record:
        record(args.int8, res["speed_256"])
        print(f"recorded {res['speed_256']['speedup']}x for the {res['int8_path']} path in {args.int8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
