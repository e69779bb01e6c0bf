"""The video phase of ``make bench`` (issue 29): one gray clip, four ways, rounds interleaved, one run.

* **decode + encode alone**: decode every frame, turn it into the 8-bit gray plane the job uses, and encode
  it again with the job's codec settings (the least any tool that reads and writes the clip must spend);
* **network alone**: the model on every frame's network input (decoded beforehand), nothing else;
* **end to end, per frame**: ``colorize_video`` with the stabiliser off;
* **end to end, stabilised**: ``colorize_video`` as ``colorize-rt clip.mp4`` runs it.

Frames per second are medians over the rounds; the stabiliser's cost is the median over rounds of
(stabilised wall time / per-frame wall time - 1). The clip is a pan over a real photo (the benchmark's photo
folder, else scikit-image's astronaut), gray, 854x480 by default, H.264.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..core.cpu import cpu_model
from ..runtime.api import Colorizer
from ..runtime.pipeline.images import DecodedImage, gray3
from ..runtime.pipeline.modes import prepare_fit
from ..runtime.video.io import VideoSink, describe, frame_gray, open_input, read_items
from ..runtime.video.job import VideoOptions, colorize_video
from .inputs import gray_photo


def make_pan_clip(path: Path, frames: int, width: int, height: int, photo_dir: str | None = None) -> Path:
    """Write a gray pan (2 px right, 1 px down per frame) over a photo as H.264 yuv420p at 25 fps."""
    import av

    canvas = gray_photo(photo_dir, 2 * width, 2 * height)  # the pan's canvas
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        for i in range(frames):
            g = canvas[i : i + height, 2 * i : 2 * i + width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.repeat(g[..., None], 3, 2)), format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def _codec_floor(clip: Path, out: Path, opts: VideoOptions) -> int:
    """Decode + gray plane + encode (no network, no recombination); returns frames."""
    container = open_input(clip)
    try:
        info = describe(clip, container)
        sink = VideoSink(out, "mp4", info, container, opts.codec, opts.crf, opts.preset)
        n = 0
        for kind, item in read_items(container, info):
            if kind == "frame":
                g = frame_gray(item)
                sink.add_frame(np.repeat(g[..., None], 3, 2), item.pts)
                n += 1
        sink.close()
    finally:
        container.close()
    return n


def _network_inputs(clip: Path, size: int) -> list[np.ndarray]:
    container = open_input(clip)
    try:
        info = describe(clip, container)
        return [
            prepare_fit(DecodedImage(gray3(frame_gray(item)), gray=True), size)
            for kind, item in read_items(container, info)
            if kind == "frame"
        ]
    finally:
        container.close()


def video_throughput(
    model: str = "default",
    *,
    frames: int = 48,
    width: int = 854,
    height: int = 480,
    rounds: int = 3,
    threads: int = 0,
    photo_dir: str | None = None,
    preset: str = "veryfast",
    log=print,
) -> dict:
    """Measure the four ways on one synthetic clip (see the module docstring).

    Args:
        model: the model (name or path) for ``Colorizer``.
        frames: clip length.
        width: clip width.
        height: clip height.
        rounds: interleaved rounds (medians reported).
        threads: ONNX Runtime threads (0 = all).
        photo_dir: photos to pan over.
        preset: x264 preset of the output (and of the codec floor).
        log: progress lines.

    Returns:
        ``{"status": "ok", "clip": {...}, "fps": {...}, "stabilizer_overhead": ..., "rounds": [...]}``.
    """
    opts = VideoOptions(preset=preset)
    with tempfile.TemporaryDirectory(prefix="colorize-bench-video.") as tmp:
        tmp = Path(tmp)
        clip = make_pan_clip(tmp / "pan.mp4", frames, width, height, photo_dir)
        inputs = _network_inputs(clip, opts.size)
        per_round = []
        with Colorizer(model, threads=threads, warn=lambda m: None) as colorizer:
            colorizer.infer_fit(inputs[0])  # warm-up
            for r in range(rounds):
                row = {}
                t0 = time.perf_counter()
                n = _codec_floor(clip, tmp / "floor.mp4", opts)
                row["codec"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                for L in inputs:
                    colorizer.infer_fit(L)
                row["network"] = time.perf_counter() - t0
                for name, stab in (("per_frame", False), ("stabilized", True)):
                    o = VideoOptions(preset=preset, stabilize=stab)
                    t0 = time.perf_counter()
                    res = colorize_video(clip, colorizer, o, tmp / f"{name}.mp4", report=lambda m: None)
                    row[name] = time.perf_counter() - t0
                    row[f"{name}_stages"] = res.stage_seconds
                per_round.append(row)
                log(
                    f"[bench] video round {r + 1}: codec {n / row['codec']:.1f} fps, network {n / row['network']:.1f} fps, "
                    f"per-frame {n / row['per_frame']:.1f} fps, stabilised {n / row['stabilized']:.1f} fps"
                )
    med = {k: statistics.median(r[k] for r in per_round) for k in ("codec", "network", "per_frame", "stabilized")}
    overhead = statistics.median(r["stabilized"] / r["per_frame"] - 1 for r in per_round)
    # the stabiliser's own time (timed inside the job) over the per-frame job's wall time: less noisy than the
    # difference of two wall times on a shared machine
    share = statistics.median(r["stabilized_stages"]["stabilize"] / r["per_frame"] for r in per_round)
    return {
        "status": "ok",
        "model": model,
        "clip": {"frames": n, "width": width, "height": height, "codec": opts.codec, "preset": preset, "crf": opts.crf},
        "fps": {k: n / v for k, v in med.items()},
        "stabilizer_overhead": overhead,
        "stabilizer_share": share,
        "cpu": cpu_model(),
        "end_to_end_vs_codec": med["codec"] / med["stabilized"],
        "rounds": per_round,
    }


def video_markdown(video: dict | None) -> list[str]:
    """The report's video section."""
    if not video:
        return []
    lines = ["", "## Video (854x480 gray clip, decode -> network -> recombine + encode)", ""]
    if video.get("status") != "ok":
        return lines + [f"{video.get('status')}: {video.get('reason') or video.get('error')}"]
    c, f = video["clip"], video["fps"]
    lines += [
        f"{c['frames']} frames {c['width']}x{c['height']}, {c['codec']} preset {c['preset']} crf {c['crf']}, "
        f"model `{video['model']}`; CPU: {video.get('cpu', '?')}",
        "",
        "| decode + encode alone | network alone | end to end, per frame | end to end, stabilised | stabiliser cost |",
        "|---:|---:|---:|---:|---:|",
        f"| {f['codec']:.1f} fps | {f['network']:.1f} fps | {f['per_frame']:.1f} fps | {f['stabilized']:.1f} fps "
        f"| {100 * video['stabilizer_overhead']:+.1f} % |",
        "",
        f"Stabiliser cost: wall time of the stabilised job over the per-frame job's, median over rounds "
        f"({100 * video['stabilizer_overhead']:+.1f} %); its own time inside the job: "
        f"{100 * video['stabilizer_share']:.1f} % of the per-frame job's wall time. End to end is "
        f"{100 * video['end_to_end_vs_codec']:.0f} % of the decode + encode speed.",
    ]
    return lines
