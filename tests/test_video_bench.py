"""The video phase of ``make bench`` (bench/video.py) on a small clip: every figure is measured and reported."""

from __future__ import annotations

import pytest

pytest.importorskip("av")


def test_video_phase_small_clip():
    from colorize_rt.bench.video import video_markdown, video_throughput

    lines = []
    r = video_throughput(frames=6, width=160, height=96, rounds=1, preset="ultrafast", log=lines.append)
    assert r["status"] == "ok" and r["clip"]["frames"] == 6 and len(lines) == 1
    assert set(r["fps"]) == {"codec", "network", "per_frame", "stabilized"} and min(r["fps"].values()) > 0
    assert 0 < r["stabilizer_share"] < 1 and r["cpu"]
    md = "\n".join(video_markdown(r))
    assert "decode + encode alone" in md and "network alone" in md and r["cpu"] in md


def test_video_phase_in_the_report():
    from colorize_rt.bench.report import _video_md

    assert _video_md(None) == []
    assert "skipped: time budget" in "\n".join(_video_md({"status": "skipped", "reason": "time budget"}))
