"""The two-pass (forward + backward) stabiliser (runtime.video.twopass, ``colorize-rt --two-pass``): windows
end at scene cuts, the backward pass smooths what the forward pass left, the spill file round-trips, and the
job keeps frames, timestamps, audio and luma as the one-pass job does. Real clips from the shared val photos;
the window logic runs on a flickering stand-in network (random ab per frame), the job on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import VAL_DIR, needs
from tests.video_support import audio_packets, pan_frames, photo, read_timestamps, to_gray, write_clip, zoom_frames

av = pytest.importorskip("av")
pytestmark = [needs(VAL_DIR), pytest.mark.timeout(300)]

W, H = 160, 120


@pytest.fixture(scope="module")
def photos():
    return [photo(f, 2 * W, 2 * H) for f in sorted(VAL_DIR.glob("*.jpg"))[:3]]


@pytest.fixture(scope="module")
def cut_inputs(photos):
    """Network inputs (L* at 128x96) of 10 pan frames, then a cut, then 10 zoom frames."""
    from colorize_rt.runtime.video.job import network_input

    frames = to_gray(pan_frames(photos[0], 10, W, H) + zoom_frames(photos[1], 10, W, H))
    return [network_input(f[..., 0], 128) for f in frames]


def _flicker(seed: int = 0):
    """A stand-in network whose colour swings from frame to frame (smooth in space, random in time)."""
    rng = np.random.default_rng(seed)

    def predict(L):
        h, w = L.shape
        base = rng.normal(0, 20, (2, 1, 1)).astype(np.float32)
        return np.broadcast_to(base, (2, h, w)).copy() + 10.0

    return predict


def _changes(abs_: list[np.ndarray], skip: int) -> float:
    """Mean squared frame-to-frame ab change, leaving out the pair across the cut (frames skip-1, skip)."""
    return float(np.mean([np.square(abs_[i] - abs_[i - 1]).mean() for i in range(1, len(abs_)) if i != skip]))


def test_windows_end_at_the_cut_and_the_backward_pass_smooths(cut_inputs):
    from colorize_rt.runtime.video.stabilize import TemporalStabilizer
    from colorize_rt.runtime.video.twopass import TwoPassColour

    one = TemporalStabilizer()
    fwd = [one.step(L, ab)[0] for L, ab in zip(cut_inputs, _preds(cut_inputs), strict=True)]
    with TwoPassColour(iter(cut_inputs), _replay(_preds(cut_inputs))) as two:
        both = [two.ab(i) for i in range(len(cut_inputs))]
        assert two.cuts == 1 and two.windows == 2  # one window per shot
        with pytest.raises(IndexError):
            two.ab(3)  # behind the window: frames go forward only
        with pytest.raises(IndexError):
            two.ab(len(cut_inputs))  # past the end
    # the last frame of each shot is the forward pass's (the backward pass starts there) ...
    for i in (9, 19):
        np.testing.assert_allclose(both[i], fwd[i], atol=0.05)
    # ... and the rest is steadier than forward alone, which is steadier than per frame
    preds = _preds(cut_inputs)
    assert _changes(both, 10) < 0.5 * _changes(fwd, 10) < 0.5 * _changes(preds, 10)


def _preds(inputs):
    predict = _flicker(1)
    return [predict(L) for L in inputs]


def _replay(preds):
    it = iter(preds)
    return lambda L: next(it)


def test_window_cap_splits_a_long_shot(cut_inputs):
    from colorize_rt.runtime.video.twopass import TwoPassColour

    pan = cut_inputs[:10]
    with TwoPassColour(iter(pan), _replay(_preds(pan)), window=4) as two:
        out = [two.ab(i) for i in range(10)]
        assert two.windows == 3 and two.cuts == 0  # 4 + 4 + 2 frames
    assert all(a.shape == (2, *pan[0].shape) for a in out)
    with pytest.raises(ValueError, match="window"):
        TwoPassColour(iter(pan), _replay(_preds(pan)), window=0)


def test_one_pass_step_is_bounded_where_the_luma_agrees(cut_inputs):
    """A network that swings by 60 ab units (a and b) every frame moves the stabilised colour by at most
    ``max_step`` (a still shot: the luma agrees everywhere); without the limit each swing leaks more."""
    from colorize_rt.runtime.video.stabilize import StabilizerSettings, TemporalStabilizer

    L = cut_inputs[0]
    swing = [np.full((2, *L.shape), 30.0 if i % 2 else -30.0, np.float32) for i in range(12)]
    largest = {}
    for max_step in (1.0, float("inf")):
        st = TemporalStabilizer(StabilizerSettings(max_step=max_step))
        out = [st.step(L, ab)[0] for ab in swing]
        largest[max_step] = max(float(np.sqrt(np.square(out[i] - out[i - 1]).sum(0)).max()) for i in range(1, 12))
    assert 0.99 <= largest[1.0] <= 1.0 + 1e-4 and largest[float("inf")] > 3.0, largest


def test_spill_file_round_trip():
    from colorize_rt.runtime.video.twopass import SpillFile

    rng = np.random.default_rng(0)
    spill = SpillFile((5, 7))
    recs = [(rng.uniform(0, 100, (5, 7)), rng.uniform(-100, 100, (2, 5, 7))) for _ in range(3)]
    for k in (2, 0, 1):
        spill.write(k, *recs[k])
    for k, (L, ab) in enumerate(recs):
        L2, ab2 = spill.read(k)
        np.testing.assert_allclose(L2, L, atol=0.05)  # float16 records
        np.testing.assert_allclose(ab2, ab, atol=0.05)
    spill.close()


@pytest.fixture(scope="module")
def colorizer():
    from colorize_rt.runtime.api import Colorizer

    with Colorizer(backend="cpu") as c:
        yield c


def test_two_pass_job_keeps_frames_timestamps_audio_and_luma(colorizer, photos, tmp_path):
    from colorize_rt.runtime.pipeline.compose import l_star
    from colorize_rt.runtime.video.job import VideoOptions, colorize_video

    frames = to_gray(pan_frames(photos[2], 10, W, H) + zoom_frames(photos[0], 10, W, H))
    src = write_clip(tmp_path / "cut.mp4", frames, audio="aac")
    got = []
    opts = VideoOptions(preset="ultrafast", two_pass=True)
    res = colorize_video(
        src, colorizer, opts, tmp_path / "o.mp4", report=lambda m: None, on_frame=lambda i, g, p: got.append((g, p.copy()))
    )
    assert res.frames == 20 and res.cuts == 1
    assert read_timestamps(res.dst) == read_timestamps(src)
    assert audio_packets(res.dst) == audio_packets(src)
    worst = max(float(np.abs(l_star(p) - l_star(np.repeat(g[..., None], 3, 2), True)).max()) for g, p in got)
    assert worst <= 0.5


def test_two_pass_needs_the_stabiliser(tmp_path, capsys):
    from colorize_rt.runtime.cli import main

    clip = write_clip(tmp_path / "c.mp4", to_gray(pan_frames(np.full((240, 320, 3), 128, np.uint8), 3, W, H)))
    with pytest.raises(SystemExit) as exc:
        main([str(clip), "--two-pass", "--no-stabilize"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == 2 and len(err) == 1 and "--two-pass" in err[0]
    assert not (tmp_path / "c_color.mp4").exists()
