"""PyAV reading and writing for the video job: probe a file, decode its frames to 8-bit gray planes, copy its
other streams packet for packet, and encode the colour frames with the source's timestamps and metadata.

Kept from the source: every frame's pts (variable frame rate included) and time base, the frame count,
rotation (display matrix), sample aspect ratio, colour range / matrix / primaries / transfer tags, and
audio / subtitle packets bit for bit. Output is H.264 ``yuv420p`` (``yuv444p`` for odd sizes, which 4:2:0
cannot hold) unless another codec is asked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ...core.color import l_to_gray_rgb
from ...core.lazy import require
from ..pipeline.compose import l_star

VIDEO_EXTS = frozenset(".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .m2ts .wmv .flv .3gp .ogv .y4m .mxf .dv .vob".split())
# --codec -> (FFmpeg encoder, pixel format for even sizes, quality option)
VIDEO_CODECS = {
    "h264": ("libx264", "yuv420p", "crf"),
    "hevc": ("libx265", "yuv420p", "crf"),
    "mpeg4": ("mpeg4", "yuv420p", None),
    "ffv1": ("ffv1", "yuv420p", None),
}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
# FFmpeg's transfer characteristics of HDR video: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67).
HDR_TRANSFERS = {16: "PQ (SMPTE ST 2084)", 18: "HLG (ARIB STD-B67)"}
# Demuxers of single pictures (a PNG or JPEG renamed .mp4 opens as a one-frame "video").
_STILL_DEMUXERS = ("image2", "_pipe")
_STILL_CODECS = {"png", "mjpeg", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls", "qoi", "pam", "ppm", "pgm"}


class VideoError(ValueError):
    """A video that cannot be read or written; the message is one line naming the file."""


def av_module():
    """PyAV, imported on first use (``colorize-rt photo.jpg`` never loads it)."""
    return require("av")


@dataclass
class VideoInfo:
    """What the job needs to know about a video file (read from its header; ``frames`` may be 0 when the
    container does not say)."""

    path: Path
    width: int
    height: int
    frames: int
    rate: Fraction | None
    time_base: Fraction
    duration: float
    codec: str
    pix_fmt: str
    bit_depth: int
    rotation: int = 0
    sar: Fraction | None = None
    color_range: int = 0
    colorspace: int = 2
    color_primaries: int = 2
    color_trc: int = 2
    others: list[tuple[str, str]] = field(default_factory=list)  # (type, codec) of the streams copied

    def line(self) -> str:
        rate = f"{float(self.rate):.3g} fps" if self.rate else "? fps"
        return f"{self.path.name}: {self.width}x{self.height} {self.codec} {self.pix_fmt}, {self.frames or '?'} frames, {rate}"


def _err(path: Path, what: str) -> VideoError:
    return VideoError(f"{path}: {what}")


def open_input(path: str | Path):
    """Open ``path`` with PyAV; a file FFmpeg cannot open is one ``VideoError`` line."""
    av = av_module()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _err(path, exc.strerror or "cannot be read") from None
    if size == 0:
        raise _err(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        reason = " ".join(str(getattr(exc, "strerror", "") or exc).split()) or "unreadable"
        raise _err(path, f"not a video FFmpeg can read ({reason})") from None


def is_still_image(container, stream) -> bool:
    """A single picture that FFmpeg opens as a video stream (a PNG/JPEG, maybe renamed ``.mp4``)."""
    fmt = container.format.name
    return any(part in fmt for part in _STILL_DEMUXERS) or (
        stream.codec_context.name in _STILL_CODECS and (stream.frames or 0) <= 1
    )


def _bit_depth(pix_fmt: str) -> int:
    av = av_module()
    try:
        comps = av.VideoFormat(pix_fmt).components
        return max(c.bits for c in comps) if comps else 8
    except (ValueError, TypeError):
        return 8


def describe(path: Path, container) -> VideoInfo:
    """The ``VideoInfo`` of an open container.

    Raises:
        VideoError: no video stream, a still image, or HDR video (one line, with the reason).
    """
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        raise _err(path, f"no video stream ({', '.join(kinds)} streams only)")
    vs = container.streams.video[0]
    cc = vs.codec_context
    if is_still_image(container, vs):
        hint = "give it an image extension (e.g. .png) to colorize it as a photo"
        raise _err(path, f"a still image ({cc.name}), not a video: {hint}")
    if not cc.width or not cc.height:
        raise _err(path, "the video stream has no frame size (damaged header)")
    trc = int(cc.color_trc or 2)
    if trc in HDR_TRANSFERS:
        raise _err(
            path,
            f"HDR video ({HDR_TRANSFERS[trc]} transfer) is not supported: the model was trained on SDR images; "
            "tone-map it to SDR first (e.g. ffmpeg -vf zscale=t=linear,tonemap=hable,zscale=t=bt709)",
        )
    tb = vs.time_base or Fraction(1, 90000)
    duration = float(vs.duration * tb) if vs.duration else float(container.duration or 0) / 1e6
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    pix_fmt = cc.format.name if cc.format is not None else (cc.pix_fmt or "?")
    sar = vs.sample_aspect_ratio or cc.sample_aspect_ratio
    return VideoInfo(
        path=path,
        width=int(cc.width),
        height=int(cc.height),
        frames=int(vs.frames or 0),
        rate=Fraction(rate) if rate else None,
        time_base=Fraction(tb),
        duration=duration,
        codec=cc.name,
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(pix_fmt) if pix_fmt != "?" else 8,
        sar=Fraction(sar) if sar and sar.numerator else None,
        color_range=int(cc.color_range or 0),
        colorspace=int(cc.colorspace or 2),
        color_primaries=int(cc.color_primaries or 2),
        color_trc=trc,
        others=[(s.type, s.codec_context.name) for s in copied_streams(container)],
    )


def copied_streams(container) -> list:
    """The streams copied packet for packet: audio and subtitles (data streams such as timecodes are not)."""
    return [s for s in container.streams if s.type in ("audio", "subtitle")]


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path``, describe it and close it.

    Raises:
        VideoError: empty, unreadable, no video stream, a still image, HDR.
    """
    path = Path(path)
    with open_input(path) as container:
        return describe(path, container)


def looks_like_video(path: str | Path, image_exts: frozenset | set) -> bool:
    """Whether the CLI should treat ``path`` as a video: a video extension, or (any other extension that is
    not an image's) a file whose container FFmpeg recognises with a video stream that is not a still."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in VIDEO_EXTS:
        return True
    if suffix in image_exts or not p.is_file():
        return False
    try:
        probe_video(p)
    except VideoError:
        return False
    return True


def container_format_for(path: Path) -> str:
    """FFmpeg muxer name for an output path (by extension)."""
    ext = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(ext, "")


def unholdable_streams(container, fmt: str) -> list[str]:
    """Codecs of the copied streams that muxer ``fmt`` cannot hold (e.g. ``pcm_u8`` in MP4)."""
    av = av_module()
    with av.open(io.BytesIO(), "w", format=fmt) as probe:
        holds = probe.supported_codecs
    return [f"{s.type} {s.codec_context.name}" for s in copied_streams(container) if s.codec_context.name not in holds]


# -- decoding -------------------------------------------------------------------------------------------
def frame_gray(frame) -> np.ndarray:
    """An 8-bit gray plane (H, W) uint8 of a decoded frame whose L* is the frame's: the frame is converted to
    full-range sRGB with its own matrix and range; a neutral frame (R = G = B, e.g. a black-and-white film) is
    read as is, a colour one through L* (``core.color.l_to_gray_rgb``)."""
    rgb = frame.reformat(format="rgb24", src_color_range=frame.color_range or None, dst_color_range="JPEG").to_ndarray()
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(r, g) and np.array_equal(r, b):
        return np.ascontiguousarray(r)
    return (l_to_gray_rgb(l_star(rgb)) * 255.0 + 0.5).astype(np.uint8)


# -- encoding -------------------------------------------------------------------------------------------
class VideoSink:
    """An output container: one encoded video stream plus the copied streams of ``source`` (same order).

    Args:
        path: where to write (the job passes an atomic temp path).
        fmt: FFmpeg muxer name (``mp4``, ``matroska``, ...).
        info: the source's ``VideoInfo`` (size, rate, time base, rotation, SAR, colour tags).
        source: the open input container (its audio/subtitle streams are templates).
        codec: a key of ``VIDEO_CODECS``.
        crf: quality of x264/x265 (0 lossless .. 51).
        preset: x264/x265 speed preset.
    """

    def __init__(self, path: Path, fmt: str, info: VideoInfo, source, codec: str = "h264", crf: int = 18, preset: str = "medium"):
        av = av_module()
        encoder, pix_fmt, quality = VIDEO_CODECS[codec]
        if info.width % 2 or info.height % 2:
            pix_fmt = "yuv444p"  # 4:2:0 needs even sides; 4:4:4 keeps the odd size exactly
        self.pix_fmt = pix_fmt
        self.info = info
        self.out = av.open(str(path), "w", format=fmt)
        rate = info.rate if info.rate and info.rate > 0 else Fraction(25)
        vs = self.out.add_stream(encoder, rate=rate)
        vs.width, vs.height, vs.pix_fmt = info.width, info.height, pix_fmt
        vs.time_base = info.time_base
        cc = vs.codec_context
        cc.time_base = info.time_base
        cc.color_range, cc.colorspace = info.color_range, info.colorspace
        cc.color_primaries, cc.color_trc = info.color_primaries, info.color_trc
        if info.sar:
            cc.sample_aspect_ratio = info.sar
        if quality == "crf":
            vs.options = {"crf": str(crf), "preset": preset}
        if info.rotation:
            vs.set_display_rotation(info.rotation)
        self.video = vs
        self.streams = {}
        for s in copied_streams(source):
            self.streams[s.index] = self.out.add_stream_from_template(s)
        # RGB -> the encoder's YUV with the source's matrix and range (what the player will assume)
        self._space = info.colorspace if info.colorspace in (1, 5, 6, 9) else 5  # unspecified: BT.601 as swscale
        self._range = info.color_range or 1

    def add_packet(self, packet) -> None:
        """Copy one audio/subtitle packet of the source (bit for bit)."""
        out = self.streams.get(packet.stream.index)
        if out is None or packet.dts is None:
            return
        packet.stream = out
        self.out.mux(packet)

    def add_frame(self, pixels: np.ndarray, pts: int | None, bgr: bool = False) -> None:
        """Encode one frame.

        Args:
            pixels: (H, W, 3) uint8 sRGB (or BGR with ``bgr``).
            pts: the source frame's pts in the source's time base.
            bgr: channel order of ``pixels``.
        """
        av = av_module()
        frame = av.VideoFrame.from_ndarray(pixels, format="bgr24" if bgr else "rgb24")
        frame = frame.reformat(
            format=self.pix_fmt,
            src_colorspace=self._space,
            dst_colorspace=self._space,
            src_color_range="JPEG",
            dst_color_range=self._range,
        )
        frame.pts = pts
        frame.time_base = self.info.time_base
        for packet in self.video.encode(frame):
            self.out.mux(packet)

    def close(self, flush: bool = True) -> None:
        """Flush the encoder (``encode(None)``) and close the file."""
        try:
            if flush:
                for packet in self.video.encode(None):
                    self.out.mux(packet)
        finally:
            self.out.close()


def _shifted(item, start: float):
    """A packet or frame with ``start`` seconds taken off its timestamps (a ``--start`` preview begins at 0)."""
    if start > 0 and item.time_base:
        shift = round(start / item.time_base)
        if item.pts is not None:
            item.pts -= shift
        if getattr(item, "dts", None) is not None and hasattr(item, "is_keyframe"):  # packets carry a dts too
            item.dts -= shift
    return item


def stream_seconds(stream) -> float | None:
    """The video stream's duration as its header states it (the stream's own, or Matroska's DURATION tag)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    try:
        h, m, s = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except (ValueError, AttributeError):
        return None


# -- reading --------------------------------------------------------------------------------------------
class DamagedVideo(VideoError):
    """The file is damaged after ``frames`` good frames (they were delivered before this was raised)."""

    def __init__(self, message: str, frames: int):
        super().__init__(message)
        self.frames = frames


def read_items(container, info: VideoInfo, start: float = 0.0, duration: float | None = None):
    """The source in file order: ``("frame", VideoFrame)`` for each video frame in the window and
    ``("packet", Packet)`` for each audio/subtitle packet in it.

    Args:
        container: the open input.
        info: its ``VideoInfo``.
        start: seconds to skip (seeks to the key frame before, then drops frames before ``start``).
        duration: seconds to keep from ``start`` (None: to the end).

    Raises:
        DamagedVideo: the demuxer or decoder failed, or the file ends before the frames its header
            announces (after yielding the frames before the damage).
    """
    av = av_module()
    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    others = copied_streams(container)
    end = None if duration is None else start + duration
    if start > 0:
        container.seek(int(start / info.time_base), stream=vs, backward=True)
    n = 0
    full = start <= 0 and duration is None
    first_t = last_t = None

    def in_window(t: float | None) -> bool:
        return t is None or (t >= start - 1e-9 and (end is None or t < end - 1e-9))

    try:
        for packet in container.demux(vs, *others):
            if packet.stream.type != "video":
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if full or in_window(t):
                    yield "packet", _shifted(packet, start)
                continue
            for frame in packet.decode():
                t = float(frame.pts * frame.time_base) if frame.pts is not None else None
                if end is not None and t is not None and t >= end - 1e-9:
                    return
                if full or in_window(t):
                    n += 1
                    if t is not None:
                        first_t = t if first_t is None else first_t
                        last_t = t
                    yield "frame", _shifted(frame, start)
    except av.FFmpegError as exc:
        reason = " ".join(str(getattr(exc, "strerror", "") or exc).split()) or type(exc).__name__
        raise DamagedVideo(f"{info.path}: damaged after frame {n} ({reason})", n) from None
    if full and info.frames and n < info.frames:
        raise DamagedVideo(f"{info.path}: ends after {n} of the {info.frames} frames its header announces (truncated file)", n)
    announced = stream_seconds(vs)
    if full and announced and last_t is not None:
        step = 1.0 / float(info.rate) if info.rate else 0.04
        got = last_t - first_t + step
        if got < announced - max(2 * step, 0.1):
            what = f"ends after {got:.2f} s of the {announced:.2f} s its header announces (truncated or damaged)"
            raise DamagedVideo(f"{info.path}: {what}", n)
    if n == 0:
        raise DamagedVideo(f"{info.path}: no video frame could be decoded" + (f" after {start:g} s" if start else ""), 0)


# -- recognising a video from its first bytes ------------------------------------------------------------
_IMAGE_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"jp2 ", b"jpx ")


def video_signature(data: bytes) -> str | None:
    """The container of a video file from its first bytes (``"MP4/MOV"``, ``"Matroska/WebM"``, ``"AVI"``,
    ``"MPEG-TS"``, ``"MPEG-PS"``, ``"FLV"``, ``"ASF/WMV"``), or None (an image, AVIF/HEIF included, or
    anything else). For answering a video sent where an image is expected with a clear message."""
    head = bytes(data[:512])
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return None if head[8:12] in _IMAGE_BRANDS else "MP4/MOV"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "MPEG-TS"
    if head[:4] == b"\x00\x00\x01\xba":
        return "MPEG-PS"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return "ASF/WMV"
    return None
