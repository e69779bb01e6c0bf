"""``colorize-calibrate``: user mistakes give one line and exit 2 before any calibration, never overwrite the fp32
model; a progress bar over the calibration images; Ctrl-C exits 130."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.calibration import quantize
from colorize_rt.calibration.cli import main as calibrate_main
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import save_checkpoint
from tests.conftest import VAL_DIR, needs
from tests.runtime_support import identity_onnx, one_line_error

pytestmark = needs(VAL_DIR)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """(3 real colour photos at 96 px, the same photos saved as grayscale)."""
    root = tmp_path_factory.mktemp("photos")
    colour, gray = root / "colour", root / "gray"
    colour.mkdir()
    gray.mkdir()
    for p in sorted(VAL_DIR.glob("*.jpg"))[:3]:
        bgr = cv2.imread(str(p))
        s = 96 / min(bgr.shape[:2])
        bgr = cv2.resize(bgr, (round(bgr.shape[1] * s), round(bgr.shape[0] * s)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(colour / p.name), bgr)
        cv2.imwrite(str(gray / p.name), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return colour, gray


def _run(model, out, data, *extra):
    return CliRunner().invoke(calibrate_main, [str(model), "--data", str(data), "-o", str(out), *map(str, extra)])


def test_not_an_onnx_file(photos, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("hello\n")
    ck = tmp_path / "model.pt"
    torch.manual_seed(0)
    save_checkpoint(ck, {"model": create_model("mobile", width=0.125).state_dict(), "variant": "mobile"})
    for path in (text, ck):
        line = one_line_error(_run(path, tmp_path / "o.onnx", photos[0]))
        assert line == f"error: {path} is not an ONNX model (DecodeError)"
    assert not (tmp_path / "o.onnx").exists()


def test_onnx_that_is_not_a_colorize_rt_export(photos, tmp_path):
    ident = identity_onnx(tmp_path / "ident.onnx")
    line = one_line_error(_run(ident, tmp_path / "o.onnx", photos[0]))
    assert line.startswith(f"error: {ident} is not a colorize-rt export: its inputs are x, not L/temperature")


def test_output_equal_to_model_is_refused(tiny_onnx, photos, tmp_path):
    model = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx, model)
    before = model.read_bytes()
    for out in (model, tmp_path / "." / "model.onnx"):
        line = one_line_error(_run(model, out, photos[0], "--eval", photos[0], "--cache-dir", tmp_path / "c"))
        assert "refusing to overwrite the fp32 model" in line
    assert model.read_bytes() == before
    assert not (tmp_path / "c").exists()  # refused before calibrating


def test_eval_folder_without_colour_images(tiny_onnx, photos, tmp_path):
    colour, gray = photos
    res = _run(tiny_onnx, tmp_path / "o.onnx", colour, "--eval", gray, "--cache-dir", tmp_path / "c")
    line = one_line_error(res)
    assert line == f"error: --eval {gray} has no colour images to score (3 nearly colourless, 0 unreadable)"
    assert "percentile" not in res.output and "nan" not in res.output
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "c").exists()  # checked before calibrating


def test_progress_bar_over_the_calibration_images(tiny_onnx, photos, tmp_path):
    colour, _ = photos
    args = ("--eval", colour, "--num-images", 3, "--eval-images", 1)
    res = _run(tiny_onnx, tmp_path / "o.onnx", colour, *args, "--cache-dir", tmp_path / "c1")
    assert res.exit_code == 0, res.output
    assert "calibrate: 100%" in res.stderr and "3/3" in res.stderr
    res = _run(tiny_onnx, tmp_path / "o2.onnx", colour, *args, "--cache-dir", tmp_path / "c2", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "calibrate:" not in res.stderr


def test_ctrl_c_exits_130_with_one_line(tiny_onnx, photos, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "quantize_int8", interrupted)
    out = tmp_path / "o.onnx"
    line = one_line_error(_run(tiny_onnx, out, photos[0], "--eval", photos[0]), code=130)
    assert line == "error: interrupted; nothing written"
    assert not out.exists()
