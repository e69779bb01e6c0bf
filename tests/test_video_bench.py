"""The video phase of ``make bench`` (bench/video.py) on a small clip: every figure is measured and reported."""

from __future__ import annotations

import pytest

pytest.importorskip("av")


def test_video_phase_small_clip():
    from colorize_rt.bench.video import video_markdown, video_throughput

    lines = []
    r = video_throughput(frames=6, width=160, height=96, rounds=1, preset="ultrafast", log=lines.append)
    assert r["status"] == "ok" and r["clip"]["frames"] == 6 and len(lines) == 1
    assert set(r["fps"]) == {"codec", "network", "per_frame", "stabilized", "two_pass"} and min(r["fps"].values()) > 0
    assert 0 < r["stabilizer_share"] < 1 and r["cpu"]
    md = "\n".join(video_markdown(r))
    assert "decode + encode alone" in md and "network alone" in md and "two-pass" in md and r["cpu"] in md


def _result(ab: float, rgb: float, colour: float) -> dict:
    """A ``score_video`` result with the figures the goal table reads."""
    q = {"psnr": 23.0, "auc_raw": 90.0, "auc_rebal": 85.0}
    methods = {
        "per-frame": {"ewarp_rgb_x1000": 2.0, "ewarp_ab": 10.0, "cdc": 0.01, "colourfulness": 50.0, **q},
        "stabilised": {"ewarp_rgb_x1000": rgb, "ewarp_ab": ab, "cdc": 0.005, "colourfulness": colour, **q},
        "source": {"ewarp_rgb_x1000": 1.5, "ewarp_ab": 1.0, "cdc": 0.004, "colourfulness": 40.0},
        "gray input": {"ewarp_rgb_x1000": 1.4, "ewarp_ab": 0.0, "cdc": 0.005, "colourfulness": 0.0, **q},
    }
    from colorize_rt.eval.video_metrics import luma_floor

    return {"width": 64, "height": 48, "frames": 5, "methods": methods, "floor": luma_floor(methods)}


def test_clip_table_marks_misses_and_gives_the_luma_floor():
    from colorize_rt.bench.video import clip_goals, clips_markdown

    ok, bad = _result(ab=1.2, rgb=0.9, colour=48.0), _result(ab=2.0, rgb=1.5, colour=40.0)
    g = clip_goals(ok)
    assert g["ewarp_ab_share"][1] and g["ewarp_ab_vs_source"][1] and g["ewarp_rgb_cut"][1] and g["colourfulness_change"][1]
    assert g["ewarp_rgb_cut"][2] == 1 - 1.4 / 2.0  # the floor: the gray input's 1.4 (under the source's 1.5)
    b = clip_goals(bad)
    assert not b["ewarp_ab_vs_source"][1] and not b["ewarp_rgb_cut"][1] and not b["colourfulness_change"][1]
    md = "\n".join(clips_markdown({"ok": ok, "bad": bad}))
    assert "| ok (64x48, 5 fr.) | per-frame |" in md and "**2.00x**" in md and "1.20x" in md and "(30 %)" in md
    assert "two-pass against" not in md  # no result has it
    assert "| ok | 2.000 | 1.400 | 1.500 | 30 % | 55 % |" in md  # the floor table: the luma floor caps E_warp RGB at 30 %


def test_video_phase_in_the_report():
    from colorize_rt.bench.report import _video_md

    assert _video_md(None) == []
    assert "skipped: time budget" in "\n".join(_video_md({"status": "skipped", "reason": "time budget"}))
