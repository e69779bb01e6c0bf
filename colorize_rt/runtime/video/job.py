"""One video, end to end: decode, the network (+ the stabiliser), recombine + encode, overlapped.

Three stages run at once, linked by small bounded queues (so memory is bounded for any length):

* a reader thread demuxes and decodes, turns each frame into an 8-bit gray plane and its network input
  (fit mode's ``prepare_fit``), and passes audio/subtitle packets along in file order;
* the calling thread runs the network and the stabiliser (they depend on the previous frame);
* a writer thread recombines the upsampled ab with the frame's own full-resolution gray through the
  image pipeline's 8-bit table path (L* kept) and encodes/muxes in order.

The output is written atomically: a temp file next to it, renamed at the end; Ctrl-C, a kill or an error
leaves nothing under the final name (``keep_partial`` keeps the frames before a damaged part).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ...core.atomic import atomic_path
from ..limits import CRF, SIZE, START_SECONDS, TEMPERATURE
from ..pipeline.compose import gray_table_pixels
from ..pipeline.images import DEFAULT_MAX_PIXELS, DecodedImage, gray3
from ..pipeline.modes import TABLE_MIN_PIXELS, prepare_fit, recombine_bgr
from .io import (
    VIDEO_CODECS,
    X264_PRESETS,
    DamagedVideo,
    VideoError,
    VideoSink,
    container_format_for,
    describe,
    frame_gray,
    open_input,
    read_items,
    unholdable_streams,
)
from .stabilize import StabilizerSettings, TemporalStabilizer
from .twopass import TwoPassColour

QUEUE_BYTES = 64 * 2**20  # frames in flight per queue: about this many bytes of full-resolution pixels
_END = "end"


@dataclass
class VideoOptions:
    """Settings of one video job (every number bounded in ``runtime.limits``)."""

    size: int = 256  # network input, longer side
    temperature: float | None = None
    stabilize: bool = True
    stabilizer: StabilizerSettings = field(default_factory=StabilizerSettings)
    two_pass: bool = False  # forward + backward stabiliser (decodes the clip twice; twopass.py)
    start: float = 0.0  # seconds
    duration: float | None = None  # seconds (None: to the end)
    codec: str = "h264"
    crf: int = 18
    preset: str = "medium"
    keep_partial: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS  # per frame (0 = no limit)

    def check(self) -> VideoOptions:
        """Returns: self, validated.

        Raises:
            ParameterError / ValueError: a value out of its bounds (one line).
        """
        SIZE.check(self.size)
        CRF.check(self.crf)
        START_SECONDS.check(self.start)
        if self.duration is not None:
            START_SECONDS.check(self.duration)
            if self.duration <= 0:
                raise ValueError(f"duration must be positive; got {self.duration:g}")
        if self.temperature is not None:
            TEMPERATURE.check(self.temperature)
        if self.codec not in VIDEO_CODECS:
            raise ValueError(f"unknown codec '{self.codec}': use one of {', '.join(VIDEO_CODECS)}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown preset '{self.preset}': use one of {', '.join(X264_PRESETS)}")
        if self.two_pass and not self.stabilize:
            raise ValueError("--two-pass is a mode of the stabiliser: drop --no-stabilize or --two-pass")
        return self


@dataclass
class VideoResult:
    """What a video job did: frames written, scene cuts found, seconds per stage, notes (one line each)."""

    src: Path
    dst: Path
    frames: int = 0
    cuts: int = 0
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        fps = self.frames / self.seconds if self.seconds else 0.0
        done = f"{self.frames} frames in {self.seconds:.1f} s ({fps:.1f} fps), {self.cuts} scene cuts"
        return f"colorize-rt: {self.src} -> {self.dst}: {done}"


def default_video_output(src: Path) -> Path:
    """``clip.mov`` -> ``clip_color.mp4`` (next to it)."""
    return src.with_name(f"{src.stem}_color.mp4")


def recombine_frame(gray: np.ndarray, ab_small: np.ndarray) -> tuple[np.ndarray, bool]:
    """Full-resolution colour of one frame: ab (2, h, w) upsampled and merged with the frame's own 8-bit
    gray (H, W) through the table path (L* is the gray's).

    Returns:
        (pixels (H, W, 3) uint8, whether they are in BGR order rather than RGB).
    """
    H, W = gray.shape
    if H * W >= TABLE_MIN_PIXELS:
        bgr = recombine_bgr(DecodedImage(gray3(gray), gray=True), ab_small)
        if bgr is not None:
            return bgr, True
    ab_up = cv2.resize(np.ascontiguousarray(np.moveaxis(ab_small, 0, -1), np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    return gray_table_pixels(gray, ab_up), False


def network_input(gray: np.ndarray, size: int) -> np.ndarray:
    """The network's L* input (h, w) float32 of one frame's 8-bit gray plane, at ``size`` on the longer side."""
    return prepare_fit(DecodedImage(gray3(gray), gray=True), size)


def look_ahead_inputs(src: Path, opts: VideoOptions, container_box: list) -> Iterator[np.ndarray]:
    """The network inputs of ``src`` from a second decode (the two-pass look-ahead); its container is put in
    ``container_box`` for the caller to close. A damaged file simply ends here (the main decode reports it)."""
    container = open_input(src)
    container_box.append(container)
    info = describe(src, container)
    try:
        for kind, item in read_items(container, info, opts.start, opts.duration):
            if kind == "frame":
                yield network_input(frame_gray(item), opts.size)
    except DamagedVideo:
        return


def _queue_depth(width: int, height: int) -> int:
    return int(max(1, min(8, QUEUE_BYTES // max(1, width * height * 3))))


class _Stop(Exception):
    """Another stage failed or the job was interrupted."""


class _Pipe:
    """A bounded queue whose ``put``/``get`` give up when the job is stopping."""

    def __init__(self, depth: int, stop: threading.Event):
        self.q: queue.Queue = queue.Queue(depth)
        self.stop = stop

    def put(self, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self):
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue


@dataclass
class _Timer:
    seconds: dict = field(default_factory=lambda: {"decode": 0.0, "network": 0.0, "stabilize": 0.0, "encode": 0.0})
    # two-pass: "network" is the look-ahead (second decode, network and both stabiliser passes)

    def add(self, key: str, t0: float) -> None:
        self.seconds[key] += time.perf_counter() - t0


def _reader(container, info, opts: VideoOptions, out: _Pipe, timer: _Timer) -> None:
    """Decode in file order; the first frame goes out before any packet (the writer needs its rotation)."""
    held: list | None = []
    try:
        t0 = time.perf_counter()
        for kind, item in read_items(container, info, opts.start, opts.duration):
            if kind == "packet":
                if held is None:
                    out.put(("packet", item))
                else:
                    held.append(item)
                continue
            gray = frame_gray(item)
            L_small = network_input(gray, opts.size)
            timer.add("decode", t0)
            out.put(("frame", (item.pts, int(item.rotation or 0), gray, L_small)))
            if held is not None:
                for packet in held:
                    out.put(("packet", packet))
                held = None
            t0 = time.perf_counter()
        out.put((_END, None))
    except _Stop:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
        try:
            out.put((_END, exc))
        except _Stop:
            pass


def _writer(sink_factory, inp: _Pipe, state: dict, timer: _Timer, on_frame, bar) -> None:
    sink = None
    try:
        while True:
            kind, item = inp.get()
            if kind == _END:
                break
            if kind == "packet":
                if sink is not None:
                    sink.add_packet(item)
                continue
            pts, rotation, gray, ab = item
            t0 = time.perf_counter()
            if sink is None:
                sink = sink_factory(rotation)
                state["sink"] = sink
            pixels, bgr = recombine_frame(gray, ab)
            if on_frame is not None:
                on_frame(state["written"], gray, pixels[..., ::-1] if bgr else pixels)
            sink.add_frame(pixels, pts, bgr=bgr)
            timer.add("encode", t0)
            state["written"] += 1
            if bar is not None:
                bar.update(1)
    except _Stop:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
        state["error"] = exc
        inp.stop.set()


def _progress(total: int, progress: bool, name: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=name[:30], dynamic_ncols=True)


def plan_container(src: Path, dst: Path, container, explicit: bool) -> tuple[Path, str, list[str]]:
    """The output path and muxer, switching a default ``.mp4`` to ``.mkv`` when MP4 cannot hold a copied
    stream (said in the returned notes).

    Raises:
        VideoError: an explicit output whose container cannot hold a copied stream, or an unknown extension.
    """
    fmt = container_format_for(dst)
    if not fmt:
        raise VideoError(f"{dst}: unsupported video output extension; use .mp4, .mkv, .mov, .webm or .avi")
    bad = unholdable_streams(container, fmt)
    if not bad:
        return dst, fmt, []
    if explicit:
        raise VideoError(
            f"{src}: {dst.suffix} cannot hold the {', '.join(bad)} stream; write .mkv instead (-o {dst.with_suffix('.mkv').name})"
        )
    mkv = dst.with_suffix(".mkv")
    still = unholdable_streams(container, "matroska")
    if still:
        raise VideoError(f"{src}: no supported container holds the {', '.join(still)} stream")
    note = f"{src}: MP4 cannot hold the {', '.join(bad)} stream: writing {mkv.name} (streams copied as they are)"
    return mkv, "matroska", [note]


def colorize_video(
    src: str | Path,
    colorizer,
    opts: VideoOptions | None = None,
    dst: str | Path | None = None,
    *,
    report: Callable[[str], None] = print,
    progress: bool = False,
    on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> VideoResult:
    """Colorize one video file.

    Args:
        src: the input video.
        colorizer: an open ``runtime.api.Colorizer``.
        opts: ``VideoOptions`` (default: stabilised, H.264 CRF 18).
        dst: the output (default ``<stem>_color.mp4`` next to the input; switched to ``.mkv`` with a note
            when MP4 cannot hold a copied stream, unless given explicitly).
        report: where notes go (one line each).
        progress: show a progress bar (frames, fps, ETA).
        on_frame: called as ``on_frame(index, gray (H, W), rgb (H, W, 3))`` with each frame before it is
            encoded (tests and evaluation).

    Returns:
        A ``VideoResult``.

    Raises:
        VideoError: a bad input (one line); the output is not left behind (with ``keep_partial`` a damaged
            input's frames before the damage are kept, and ``DamagedVideo`` is still raised).
    """
    opts = (opts or VideoOptions()).check()
    src = Path(src)
    t_start = time.perf_counter()
    explicit = dst is not None
    dst = Path(dst) if dst is not None else default_video_output(src)
    container = open_input(src)
    try:
        info = describe(src, container)
        pixels = info.width * info.height
        if opts.max_pixels and pixels > opts.max_pixels:
            raise VideoError(
                f"{src}: {info.width}x{info.height} frames have {pixels:,} pixels, over the limit of {opts.max_pixels:,} "
                "(--max-pixels 0 lifts it)"
            )
        dst, fmt, notes = plan_container(src, dst, container, explicit)
        result = VideoResult(src, dst, notes=list(notes))
        if info.bit_depth > 8:
            result.notes.append(f"{src}: {info.bit_depth}-bit input is written as 8-bit {VIDEO_CODECS[opts.codec][0]}")
        if info.width % 2 or info.height % 2:
            result.notes.append(f"{src}: odd frame size {info.width}x{info.height}: written as yuv444p (4:2:0 needs even sides)")
        for note in result.notes:
            report(note)
        total = info.frames if opts.start <= 0 and opts.duration is None else 0
        if not total and info.rate:
            span = (info.duration - opts.start) if opts.duration is None else min(opts.duration, info.duration - opts.start)
            total = max(0, round(span * float(info.rate)))
        damage = _run(colorizer, container, info, src, dst, fmt, opts, result, progress, total, on_frame)
    finally:
        container.close()
    result.seconds = time.perf_counter() - t_start
    if damage is not None:
        raise damage
    return result


def _run(colorizer, container, info, src, dst, fmt, opts, result, progress, total, on_frame) -> DamagedVideo | None:
    """The three stages into an atomic temp file; returns the damage kept with ``keep_partial``."""
    stab = TemporalStabilizer(opts.stabilizer) if opts.stabilize and not opts.two_pass else None
    ahead_box: list = []
    two = None
    if opts.two_pass:
        predict = lambda L: colorizer.infer_fit(L, opts.temperature)  # noqa: E731
        two = TwoPassColour(look_ahead_inputs(src, opts, ahead_box), predict, opts.stabilizer)
    try:
        return _run_stages(colorizer, container, info, src, dst, fmt, opts, result, progress, total, on_frame, stab, two)
    finally:
        if two is not None:
            two.close()
        for c in ahead_box:
            c.close()


def _run_stages(colorizer, container, info, src, dst, fmt, opts, result, progress, total, on_frame, stab, two):
    """Read, colour (network + one-pass stabiliser ``stab``, or the two-pass look-ahead ``two``), write."""
    stop = threading.Event()
    depth = _queue_depth(info.width, info.height)
    decoded, encoded = _Pipe(depth, stop), _Pipe(depth, stop)
    timer = _Timer()
    state = {"written": 0, "error": None, "sink": None}
    kept = None
    index = 0
    with atomic_path(dst) as tmp:

        def sink_factory(rotation: int) -> VideoSink:
            return VideoSink(tmp, fmt, replace(info, rotation=rotation), container, opts.codec, opts.crf, opts.preset)

        bar = _progress(total, progress, src.name)
        reader = threading.Thread(target=_reader, args=(container, info, opts, decoded, timer), name="video-read", daemon=True)
        writer = threading.Thread(
            target=_writer, args=(sink_factory, encoded, state, timer, on_frame, bar), name="video-write", daemon=True
        )
        reader.start()
        writer.start()
        failure: BaseException | None = None
        try:
            while True:
                kind, item = decoded.get()
                if kind == _END:
                    failure = item
                    break
                if kind == "frame":
                    pts, rotation, gray, L_small = item
                    t0 = time.perf_counter()
                    ab = colorizer.infer_fit(L_small, opts.temperature) if two is None else _two_pass_ab(two, index, src)
                    index += 1
                    timer.add("network", t0)
                    if stab is not None:
                        t0 = time.perf_counter()
                        ab, _ = stab.step(L_small, ab)
                        timer.add("stabilize", t0)
                    item = (pts, rotation, gray, ab)
                encoded.put((kind, item))
            encoded.put((_END, None))
            writer.join()
        except _Stop:
            pass
        except BaseException:
            stop.set()
            raise
        finally:
            if stop.is_set() or failure is not None and not isinstance(failure, DamagedVideo):
                stop.set()
            reader.join(timeout=10)
            writer.join(timeout=30)
            if bar is not None:
                bar.close()
        if state["error"] is not None:
            _close_sink(state["sink"], flush=False)
            raise _as_video_error(src, state["error"])
        if failure is not None and not (isinstance(failure, DamagedVideo) and opts.keep_partial and state["written"]):
            _close_sink(state["sink"], flush=False)
            raise _as_video_error(src, failure)
        kept = failure
        if state["sink"] is None:
            raise VideoError(f"{src}: no frames to write")
        state["sink"].close()
        result.frames = state["written"]
        result.cuts = stab.cuts if stab is not None else two.cuts if two is not None else 0
        result.stage_seconds = dict(timer.seconds)
    return kept


def _two_pass_ab(two: TwoPassColour, index: int, src: Path) -> np.ndarray:
    try:
        return two.ab(index)
    except IndexError:
        raise VideoError(f"{src}: the second decode gave fewer frames than the first (two-pass)") from None


def _close_sink(sink, flush: bool) -> None:
    if sink is None:
        return
    try:
        sink.close(flush=flush)
    except Exception:  # noqa: BLE001 - already failing; the temp file is removed anyway
        pass


def _as_video_error(src: Path, exc: BaseException) -> BaseException:
    if isinstance(exc, (VideoError, KeyboardInterrupt)):
        return exc
    return VideoError(f"{src}: {' '.join(str(exc).split()) or type(exc).__name__}")
