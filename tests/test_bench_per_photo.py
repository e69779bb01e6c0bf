"""``colorize-bench``'s folder-per-photo comparison (issue 26): a folder of small gray PNGs through the whole
pipeline against the network alone on PyTorch eager, OpenCV dnn, ONNX Runtime and ``auto``, and against the same
photos one by one; real photos, real runners, each in its own process."""

from __future__ import annotations

import cv2
import pytest

from colorize_rt.bench.e2e import FOLDER_ROWS, NETWORKS, folder_vs_network, folder_vs_network_markdown, small_gray_folder
from tests.conftest import VAL_DIR, needs

pytestmark = [needs(VAL_DIR), pytest.mark.timeout(400)]


def test_small_gray_folder_is_gray_squares_of_the_size(tmp_path):
    out = small_gray_folder(VAL_DIR, tmp_path / "small", n=5, size=96)
    files = sorted(out.iterdir())
    assert len(files) == 5
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        assert img.shape == (96, 96) and img.std() > 1  # one gray plane with content


def test_folder_vs_network_measures_every_row_in_one_run():
    res = folder_vs_network(VAL_DIR, n_images=4, size=64, rounds=1, timeout=300)
    assert res["status"] == "ok" and res["rounds"] == 1, res
    for row in (*FOLDER_ROWS, *NETWORKS):
        assert (res["ms"].get(row, 0) > 0) != (row in res["skipped"]), row  # measured, or said why not
    assert res["folder_backend"]
    for name in ("opencv-dnn / folder", "photo-by-photo / folder", "ort-fp32 / folder"):
        assert res["ratios"][name] > 0
    text = "\n".join(folder_vs_network_markdown(res))
    assert all(f"| {row} |" in text for row in res["ms"])
