"""``colorize-export`` / ``colorize-engine``: user mistakes give one line and exit 2, write nothing, never overwrite inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.export.cli import engine_main, export_main
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import save_checkpoint
from tests.conftest import VAL_DIR, needs
from tests.runtime_support import one_line_error


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = create_model("mobile", width=0.125)
    p = tmp_path_factory.mktemp("ckpt") / "smoke.pt"
    save_checkpoint(p, {"model": net.state_dict(), "variant": "mobile", "variant_args": {"width": 0.125}})
    return p


@pytest.fixture(scope="module")
def gray_dir(tmp_path_factory) -> Path:
    """Real photos saved as grayscale: readable, but nothing to score."""
    d = tmp_path_factory.mktemp("gray")
    for p in sorted(VAL_DIR.glob("*.jpg"))[:3]:
        cv2.imwrite(str(d / p.name), cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
    return d


@pytest.mark.parametrize("spelling", ["same", "dot"])
def test_output_equal_to_checkpoint_is_refused(checkpoint, tmp_path, spelling):
    ck = tmp_path / "model.pt"
    shutil.copy(checkpoint, ck)
    before = ck.read_bytes()
    out = str(ck) if spelling == "same" else str(tmp_path / "." / "model.pt")
    line = one_line_error(CliRunner().invoke(export_main, [str(ck), "-o", out]))
    assert "refusing to overwrite the checkpoint" in line
    assert ck.read_bytes() == before


def _bad_checkpoint(checkpoint: Path, path: Path, how: str) -> Path:
    state = torch.load(checkpoint, weights_only=True)
    if how == "variant":
        state["variant_args"] = {"width": 0.25}
    else:
        state["model"].pop(next(iter(state["model"])))
    save_checkpoint(path, state)
    return path


@pytest.mark.parametrize("how,detail", [("variant", "size mismatch"), ("missing", "Missing key")])
def test_weights_that_do_not_fit_the_variant_are_one_line(checkpoint, tmp_path, how, detail):
    ck = _bad_checkpoint(checkpoint, tmp_path / "bad.pt", how)
    out = tmp_path / "m.onnx"
    line = one_line_error(CliRunner().invoke(export_main, [str(ck), "-o", str(out)]))
    assert "weights do not fit its variant 'mobile'" in line and detail in line
    assert not out.exists()


def test_engine_dry_run_on_a_file_that_is_not_onnx(checkpoint, tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("hello\n")
    for path in (text, checkpoint):
        line = one_line_error(CliRunner().invoke(engine_main, [str(path), "--dry-run"]))
        assert line == f"error: {path} is not an ONNX model (DecodeError)"


def test_engine_output_equal_to_model_is_refused(tiny_onnx):
    before = tiny_onnx.read_bytes()
    line = one_line_error(CliRunner().invoke(engine_main, [str(tiny_onnx), "-o", str(tiny_onnx)]))
    assert "refusing to overwrite the model" in line
    assert tiny_onnx.read_bytes() == before


@needs(VAL_DIR)
def test_fp16_val_without_colour_images(checkpoint, gray_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "m.fp16.onnx"
    for folder, counts in ((gray_dir, "(3 nearly colourless, 0 unreadable)"), (empty, "(0 nearly colourless, 0 unreadable)")):
        res = CliRunner().invoke(export_main, [str(checkpoint), "-o", str(out), "--precision", "fp16", "--val", str(folder)])
        line = one_line_error(res)
        assert line == f"error: --val {folder} has no colour images to score {counts}"
        assert "nan" not in res.output
    assert not out.exists()


@pytest.mark.parametrize("name", ["../../escape", "a/b", "", "..", "/abs"])
def test_triton_name_is_checked_before_any_work(checkpoint, tmp_path, name):
    work = tmp_path / "work"
    out, repo = work / "m.onnx", work / "repo" / "inner"
    res = CliRunner().invoke(export_main, [str(checkpoint), "-o", str(out), "--triton", str(repo), "--triton-name", name])
    line = one_line_error(res)
    assert line.startswith("error: --triton-name: invalid Triton model name")
    assert not work.exists() and not (tmp_path / "escape").exists()  # neither the ONNX nor any folder was written


def test_triton_name_is_checked_by_the_library(tiny_onnx, tmp_path):
    from colorize_rt.export.triton import write_repository

    with pytest.raises(ValueError, match="invalid Triton model name"):
        write_repository(tiny_onnx, tmp_path / "repo", name="../escape")
    assert not (tmp_path / "escape").exists()


def test_val_with_fp32_is_noted(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    res = CliRunner().invoke(export_main, [str(checkpoint), "-o", str(out), "--val", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.stderr.strip() == "note: --val checks fp16 exports only; ignored with --precision fp32"
    assert out.is_file()


def test_memory_gib_with_a_named_profile_is_noted(tiny_onnx):
    res = CliRunner().invoke(engine_main, [str(tiny_onnx), "--profile", "rtx3060-6gb", "--memory-gib", "24", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "note: --memory-gib is for --profile custom; rtx3060-6gb sets its own memory" in res.output
