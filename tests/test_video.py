"""``colorize-rt clip.mp4`` (runtime.video): what is kept (frame count, timestamps incl. VFR, audio packets,
rotation, SAR, colour range, odd sizes, luma), atomic output, scene-cut restart, and every bad input of issue
29 as one line, a non-zero exit and nothing left behind. Real clips (synthesised from the shared val photos
with PyAV), the shipped model on ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import VAL_DIR, needs
from tests.video_support import (
    audio_packets,
    pan_frames,
    photo,
    read_timestamps,
    to_gray,
    write_clip,
    zoom_frames,
)

av = pytest.importorskip("av")
pytestmark = [needs(VAL_DIR), pytest.mark.timeout(300)]  # pytest-timeout (dev extra): a hung decode fails, not blocks

W, H = 160, 120


@pytest.fixture(scope="module")
def photos():
    files = sorted(VAL_DIR.glob("*.jpg"))[:4]
    return [photo(f, 2 * W, 2 * H) for f in files]


@pytest.fixture(scope="module")
def colorizer():
    from colorize_rt.runtime.api import Colorizer

    with Colorizer(backend="cpu") as c:
        yield c


@pytest.fixture(scope="module")
def clips(tmp_path_factory, photos):
    d = tmp_path_factory.mktemp("clips")
    pan = to_gray(pan_frames(photos[0], 24, W, H))
    out = {"pan_aac": write_clip(d / "pan.mp4", pan, audio="aac")}
    vfr_pts = [0, 40, 80, 100, 180, 200, 260, 300, 340, 420, 430, 500]  # ms: variable frame rate
    out["vfr_opus"] = write_clip(
        d / "vfr.mkv", pan[: len(vfr_pts)], pts=vfr_pts, time_base=Fraction(1, 1000), audio="libopus", container="matroska"
    )
    cut = to_gray(pan_frames(photos[1], 8, W, H) + zoom_frames(photos[2], 8, W, H))
    out["cut"] = write_clip(d / "cut.mp4", cut)
    out["pcm_u8"] = write_clip(d / "pcm.mkv", pan[:8], audio="pcm_u8", container="matroska")
    return out


def _run(colorizer, src, dst=None, **kw):
    from colorize_rt.runtime.video.job import VideoOptions, colorize_video

    frames = []
    res = colorize_video(
        src,
        colorizer,
        VideoOptions(preset="ultrafast", **kw),
        dst,
        report=lambda m: None,
        on_frame=lambda i, g, p: frames.append((g, p.copy())),
    )
    return res, frames


def test_frames_timestamps_and_audio_packets_kept(colorizer, clips, tmp_path):
    src = clips["pan_aac"]
    res, _ = _run(colorizer, src, tmp_path / "out.mp4")
    assert res.frames == 24
    assert read_timestamps(res.dst) == read_timestamps(src)
    a, b = audio_packets(src), audio_packets(res.dst)
    assert len(a) > 10 and a == b  # payload bytes and timestamps, packet for packet


def test_variable_frame_rate_and_opus_kept(colorizer, clips, tmp_path):
    src = clips["vfr_opus"]
    res, _ = _run(colorizer, src, tmp_path / "vfr_color.mkv")
    ts = read_timestamps(res.dst)
    assert ts == read_timestamps(src) and len(ts) == 12
    assert len(set(np.diff([float(t) for t in ts]).round(4))) > 2  # really variable
    assert audio_packets(res.dst) == audio_packets(src)


def test_rotation_sar_range_and_odd_size_kept(colorizer, photos, tmp_path):
    frames = to_gray(pan_frames(photos[3], 6, 161, 121))
    src = write_clip(
        tmp_path / "odd.mkv",
        frames,
        container="matroska",
        pix_fmt="yuv444p",
        rotation=90,
        sar=Fraction(4, 3),
        color_range="JPEG",
    )
    res, _ = _run(colorizer, src, tmp_path / "odd_color.mkv")
    with av.open(str(res.dst)) as c:
        vs = c.streams.video[0]
        first = next(c.decode(video=0))
        assert (first.width, first.height) == (161, 121)
        assert first.rotation == 90
        assert vs.codec_context.sample_aspect_ratio == Fraction(4, 3)
        assert first.color_range == 2  # full (JPEG) range kept
    assert len(read_timestamps(res.dst)) == 6


def test_luma_kept_within_half_a_unit(colorizer, clips):
    from colorize_rt.runtime.pipeline.compose import l_star

    _, frames = _run(colorizer, clips["pan_aac"], Path(clips["pan_aac"]).with_name("luma.mp4"))
    worst = max(float(np.abs(l_star(p) - l_star(np.repeat(g[..., None], 3, 2), True)).max()) for g, p in frames)
    assert worst <= 0.5
    chroma = max(float(np.abs(p.astype(int) - p.mean(-1, keepdims=True)).mean()) for _, p in frames)
    assert chroma > 1.0  # and there is colour


def test_cut_restarts_first_frame_equals_per_frame(colorizer, clips, tmp_path):
    res_s, stab = _run(colorizer, clips["cut"], tmp_path / "s.mp4")
    _, plain = _run(colorizer, clips["cut"], tmp_path / "p.mp4", stabilize=False)
    assert res_s.cuts == 1
    assert np.array_equal(stab[8][1], plain[8][1])  # the first frame after the cut
    assert not np.array_equal(stab[7][1], plain[7][1])  # (the frame before was stabilised)


def test_unholdable_audio_default_switches_to_mkv_explicit_mp4_refused(colorizer, clips, tmp_path):
    from colorize_rt.runtime.video.io import VideoError
    from colorize_rt.runtime.video.job import VideoOptions, colorize_video

    notes = []
    src = tmp_path / clips["pcm_u8"].name
    src.write_bytes(clips["pcm_u8"].read_bytes())
    res = colorize_video(src, colorizer, VideoOptions(preset="ultrafast"), report=notes.append)
    assert res.dst.suffix == ".mkv" and res.dst.exists() and len(notes) == 1 and "pcm_u8" in notes[0]
    assert audio_packets(res.dst) == audio_packets(src)
    with pytest.raises(VideoError, match="cannot hold the audio pcm_u8"):
        colorize_video(src, colorizer, VideoOptions(), tmp_path / "x.mp4", report=notes.append)
    assert not (tmp_path / "x.mp4").exists()


def test_interrupt_leaves_nothing(colorizer, clips, tmp_path):
    from colorize_rt.runtime.video.job import VideoOptions, colorize_video

    def boom(i, g, p):
        if i == 5:
            raise KeyboardInterrupt

    with pytest.raises((KeyboardInterrupt, Exception)):
        colorize_video(clips["pan_aac"], colorizer, VideoOptions(), tmp_path / "o.mp4", report=lambda m: None, on_frame=boom)
    assert list(tmp_path.iterdir()) == []


# -- the command line: bad inputs are one line, exit non-zero, leave nothing ---------------------------------
def _cli(args, capsys):
    from colorize_rt.runtime.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*args, "--backend", "cpu", "--preset", "ultrafast"])
    err = capsys.readouterr().err.strip().splitlines()
    return exc.value.code, err


def _bad(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _one_error(code, err, *words):
    assert code != 0
    assert len(err) == 1 and "Traceback" not in err[0], err
    for w in words:
        assert w in err[0], err
    return err[0]


def test_cli_writes_clip_color_mp4(clips, tmp_path, capsys):
    src = tmp_path / "clip.mp4"
    src.write_bytes(clips["pan_aac"].read_bytes())
    code, err = _cli([str(src)], capsys)
    assert code == 0 and (tmp_path / "clip_color.mp4").exists(), err
    assert len(read_timestamps(tmp_path / "clip_color.mp4")) == 24


def test_cli_folder_mixing_photos_and_videos(clips, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(clips["cut"].read_bytes())
    (tmp_path / "in" / "b.jpg").write_bytes(sorted(VAL_DIR.glob("*.jpg"))[0].read_bytes())
    code, err = _cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--duration", "0.2"], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "a_color.mp4").exists() and (tmp_path / "out" / "b.jpg").exists()
    assert len(read_timestamps(tmp_path / "out" / "a_color.mp4")) == 5  # --duration 0.2 s at 25 fps
    assert not [line for line in err if "other file" in line]  # the video is not reported as a skipped file


def test_bad_no_video_stream(tmp_path, capsys):
    src = tmp_path / "tone.mka"
    with av.open(str(src), "w", format="matroska") as out:
        s = out.add_stream("libopus", rate=48000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
        f.sample_rate = 48000
        for p in [*s.encode(f), *s.encode(None)]:
            out.mux(p)
    src = src.rename(tmp_path / "tone.mkv")
    _one_error(*_cli([str(src)], capsys), "no video stream")
    assert [p.name for p in tmp_path.iterdir()] == ["tone.mkv"]


def test_bad_zero_length(tmp_path, capsys):
    src = _bad(tmp_path, "empty.mp4", b"")
    _one_error(*_cli([str(src)], capsys), "empty file")
    assert [p.name for p in tmp_path.iterdir()] == ["empty.mp4"]


def test_bad_still_image_with_video_extension(tmp_path, capsys):
    src = _bad(tmp_path, "photo.mp4", sorted(VAL_DIR.glob("*.jpg"))[0].read_bytes())
    _one_error(*_cli([str(src)], capsys), "still image")
    assert [p.name for p in tmp_path.iterdir()] == ["photo.mp4"]


@pytest.mark.parametrize("keep", [False, True])
def test_bad_truncated_colours_up_to_damage(clips, tmp_path, capsys, keep):
    data = clips["vfr_opus"].read_bytes()
    src = _bad(tmp_path, "cut.mkv", data[: len(data) // 2])
    line = _one_error(*_cli([str(src)] + (["--keep-partial"] if keep else []), capsys), "truncated")
    out = tmp_path / "cut_color.mp4"
    assert out.exists() == keep, line
    if keep:
        assert 0 < len(read_timestamps(out)) < 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_truncated_mp4_without_index(clips, tmp_path, capsys):
    data = clips["pan_aac"].read_bytes()
    src = _bad(tmp_path, "half.mp4", data[: len(data) // 2])
    _one_error(*_cli([str(src)], capsys), "half.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["half.mp4"]


def test_bad_hdr_refused_with_reason(photos, tmp_path, capsys):
    src = write_clip(tmp_path / "hdr.mkv", to_gray(pan_frames(photos[0], 3, 64, 48)), container="matroska")
    # re-tag as PQ (SMPTE ST 2084): what an HDR10 file declares
    tagged = tmp_path / "hdr10.mkv"
    with av.open(str(src)) as inp, av.open(str(tagged), "w", format="matroska") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p10le"
        vs.codec_context.color_trc = 16
        vs.codec_context.color_primaries = 9
        vs.codec_context.colorspace = 9
        for f in inp.decode(video=0):
            f = f.reformat(format="yuv420p10le")
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    _one_error(*_cli([str(tagged)], capsys), "HDR", "PQ")
    assert not (tmp_path / "hdr10_color.mp4").exists()


def test_ten_bit_sdr_handled(photos, tmp_path, colorizer):
    src = write_clip(tmp_path / "ten.mkv", to_gray(pan_frames(photos[0], 4, 64, 48)), container="matroska", pix_fmt="yuv420p10le")
    notes = []
    from colorize_rt.runtime.video.job import VideoOptions, colorize_video

    res = colorize_video(src, colorizer, VideoOptions(preset="ultrafast"), report=notes.append)
    assert res.frames == 4 and any("10-bit" in n for n in notes)


def test_bad_unholdable_audio_with_explicit_mp4(clips, tmp_path, capsys):
    _one_error(*_cli([str(clips["pcm_u8"]), "-o", str(tmp_path / "o.mp4")], capsys), "pcm_u8", ".mkv")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("args", [["--crf", "52"], ["--start", "-1"], ["--duration", "nan"], ["--codec", "vp9"]])
def test_bounds(clips, capsys, args):
    code, err = _cli([str(clips["pan_aac"]), *args], capsys)
    assert code == 2 and len(err) == 1


def test_photo_run_does_not_import_av(tmp_path):
    img = tmp_path / "p.jpg"
    img.write_bytes(sorted(VAL_DIR.glob("*.jpg"))[0].read_bytes())
    code = (
        "import sys; from colorize_rt.runtime.cli import main\n"
        "try: main([sys.argv[1], '-q', '--backend', 'cpu'])\n"
        "except SystemExit as e: assert e.code == 0, e.code\n"
        "assert 'av' not in sys.modules, 'PyAV imported for a photo'\n"
    )
    subprocess.run([sys.executable, "-c", code, str(img)], check=True, timeout=120)


def test_8k_frames_memory_bounded(tmp_path):
    """Two 7680x4320 frames: the child's peak RSS stays under 1.5 GB (--max-pixels 0 lifts the pixel limit).

    The child's own peak is VmHWM (exec replaces the address space); ru_maxrss would carry over the forking
    pytest process's peak, which is over 3 GB late in a full run."""
    big = np.repeat(np.linspace(0, 255, 7680, dtype=np.uint8)[None, :, None], 4320, 0).repeat(3, 2)
    src = write_clip(tmp_path / "8k.mp4", [big, big[:, ::-1].copy()])
    code = (
        "import sys; from colorize_rt.runtime.cli import main\n"
        "try: main([sys.argv[1], '-q', '--backend', 'cpu', '--max-pixels', '0', '--preset', 'ultrafast'])\n"
        "except SystemExit as e: assert e.code == 0, e.code\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(src)], check=True, timeout=280, capture_output=True, text=True)
    assert int(out.stdout.split()[-1]) < 1_500_000  # KiB


def test_start_and_duration_preview_begins_at_zero(colorizer, clips, tmp_path):
    src = clips["pan_aac"]
    res, _ = _run(colorizer, src, tmp_path / "preview.mp4", start=0.4, duration=0.4)
    ts = read_timestamps(res.dst)
    assert res.frames == 10 and ts == [t - Fraction(2, 5) for t in read_timestamps(src)[10:20]]
    audio = audio_packets(res.dst)
    assert audio and min(t for _, t in audio) >= 0 and max(t for _, t in audio) < Fraction(2, 5)
    assert {p for p, _ in audio} <= {p for p, _ in audio_packets(src)}  # the same packets, copied


def test_bad_corrupt_middle_colours_up_to_damage(clips, tmp_path, capsys):
    data = bytearray(clips["vfr_opus"].read_bytes())
    n = len(data)
    data[n // 3 : n // 3 + n // 4] = bytes(n // 4)  # a quarter of the file zeroed in the middle
    src = _bad(tmp_path, "hole.mkv", bytes(data))
    _one_error(*_cli([str(src), "--keep-partial"], capsys), "hole.mkv", "damaged")
    kept = read_timestamps(tmp_path / "hole_color.mp4")
    assert 0 < len(kept) < 12 and kept == read_timestamps(clips["vfr_opus"])[: len(kept)]
