"""The full-resolution benchmark (issue 14) end to end at a small size: real files, real ``colorize-rt``
processes, the codec floor measured in the same run, and its report."""

from __future__ import annotations

import json

import cv2
import pytest

from colorize_rt.bench import fullres


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fullres_benchmark_measures_and_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "cache"))
    res = fullres.measure_fullres(n=2, size=(640, 480), repeats=1, grain=3.0, log=lambda m: None)
    assert res["status"] == "ok" and res["images"] == 2 and res["size"] == [640, 480]
    (r,) = res["rounds"]
    assert r["floor_s"] > 0 and r["colorize_s"] > 0 and r["ratio"] == r["colorize_s"] / r["floor_s"]
    assert r["floor_cpu_s"] > 0 and r["colorize_cpu_s"] > 0 and r["small_photo_s"] > 0
    assert res["folder_mp_per_s"] == res["megapixels_total"] / res["median"]["colorize_s"]
    assert set(res["stages_ms_per_image"]["cpu_ms"]) == {"decode", "network_input", "network", "recombine", "encode"}
    # the first call ran on a provisional runner; auto's measurement followed in the background, and was waited for
    assert r["first_call_s"] > 0 and r["background_measure_s"] > 0 and r["table_setup_s"] > 0
    assert r["ref_colorize_s"] > 0 and r["ref_first_call_s"] > 0 and r["auto_vs_ref"] == r["colorize_s"] / r["ref_colorize_s"]
    assert res["auto_table"]["chosen"] and res["auto_table"]["ran"] and res["auto_table"]["tries"] >= 1
    json.dumps(res)  # JSON-able, as make bench stores it
    text = "\n".join(fullres.fullres_markdown(res))
    assert "codec floor" in text and "MP/s" in text and "start-up" in text and "recombine" in text
    assert "in a detached low-priority process" in text and "ONNX Runtime fp32 (`--backend cpu`)" in text


def test_benchmark_photos_look_like_camera_files(tmp_path):
    paths = fullres.make_photos(tmp_path, n=2, size=(800, 600), grain=3.0)
    for p in paths:
        g = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert g.shape == (600, 800) and g.dtype == "uint8" and g.std() > 20
    smooth = fullres.make_photos(tmp_path / "smooth", n=1, size=(800, 600), grain=0)[0]
    assert paths[0].stat().st_size > 1.2 * smooth.stat().st_size  # grain: detail a plain enlargement lacks
