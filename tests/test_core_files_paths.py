"""core.files (the one image-extension set, folder listing), core.paths (cache folders) and
runtime.session (the one ONNX Runtime session helper)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_rt.core.files import IMAGE_EXTS, list_images
from colorize_rt.core.paths import cache_dir
from colorize_rt.runtime.backends.session import QUIET, ort_session


def test_list_images_recursive_sorted_by_extension(tmp_path):
    img = np.full((8, 8, 3), 128, np.uint8)
    for rel in ("b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.tiff", "e.bmp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tmp_path / rel), img)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is skipped
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a.JPG", "b.png", "e.bmp", "sub/c.webp", "sub/deeper/d.tiff"]
    assert len(list_images(tmp_path, 2)) == 2 and len(list_images(tmp_path, 0)) == 5
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(tmp_path / "missing")


def test_image_extensions_are_what_opencv_writes(tmp_path):
    img = np.full((8, 8, 3), 100, np.uint8)
    for ext in sorted(IMAGE_EXTS):
        assert cv2.imwrite(str(tmp_path / f"x{ext}"), img), ext
        assert cv2.imread(str(tmp_path / f"x{ext}")) is not None, ext


def test_cache_dir_resolution(monkeypatch, tmp_path):
    for var in ("COLORIZE_RT_CACHE", "XDG_CACHE_HOME", "COLORIZE_BENCH_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("results") == tmp_path / "home" / ".cache" / "colorize-rt" / "results"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("calibration") == tmp_path / "xdg" / "colorize-rt" / "calibration"
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "root"))
    assert cache_dir("ort-trt") == tmp_path / "root" / "ort-trt"
    assert cache_dir("bench", "COLORIZE_BENCH_CACHE") == tmp_path / "root" / "bench"
    monkeypatch.setenv("COLORIZE_BENCH_CACHE", str(tmp_path / "mine"))
    assert cache_dir("bench", "COLORIZE_BENCH_CACHE") == tmp_path / "mine"
    assert not (tmp_path / "root").exists()  # resolving creates nothing


def test_ort_session_defaults_and_options(tiny_onnx, tmp_path):
    L = np.full((1, 1, 32, 48), 50.0, np.float32)
    sess = ort_session(tiny_onnx)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_session_options().log_severity_level == QUIET
    ab = sess.run(["ab"], {"L": L, "temperature": np.full((1, 1), 0.38, np.float32)})[0]
    assert ab.shape == (1, 2, 32, 48) and np.isfinite(ab).all()
    optimized = tmp_path / "opt.onnx"
    two = ort_session(Path(tiny_onnx).read_bytes(), threads=1, optimization="basic", optimized_path=optimized)
    assert two.get_session_options().intra_op_num_threads == 1 and optimized.stat().st_size > 0
    ab2 = two.run(["ab"], {"L": L, "temperature": np.full((1, 1), 0.38, np.float32)})[0]
    np.testing.assert_allclose(ab2, ab, atol=1e-3)
    with pytest.raises(ValueError, match="unknown optimization level 'fast'"):
        ort_session(tiny_onnx, optimization="fast")
