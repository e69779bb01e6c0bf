"""``colorize-eval``: --json never overwrites an input and is checked before scoring; a folder with nothing to score
is an error (exit 2), unreadable files are reported; a foreign ONNX model is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from colorize_rt.eval.cli import main as eval_main
from tests.conftest import VAL_DIR, needs
from tests.runtime_support import identity_onnx

pytestmark = needs(VAL_DIR)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """colour: 2 real photos; gray: them as grayscale; unreadable: 2 junk .jpg; mixed: colour + 1 junk file."""
    root = tmp_path_factory.mktemp("eval")
    d = {k: root / k for k in ("colour", "gray", "unreadable", "mixed")}
    for p in d.values():
        p.mkdir()
    for p in sorted(VAL_DIR.glob("*.jpg"))[:2]:
        bgr = cv2.resize(cv2.imread(str(p)), (128, 96), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d["colour"] / p.name), bgr)
        cv2.imwrite(str(d["mixed"] / p.name), bgr)
        cv2.imwrite(str(d["gray"] / p.name), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    for i in range(2):
        (d["unreadable"] / f"junk{i}.jpg").write_bytes(b"not an image")
    (d["mixed"] / "junk.jpg").write_bytes(b"not an image")
    return d


def _one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "method" not in out  # no table: nothing was reported as a result
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.lstrip().startswith("eval:") and "it/s]" not in ln]
    assert len(lines) == 1, err
    return lines[0]


def test_json_equal_to_the_model_is_refused(tiny_onnx, folders, tmp_path, capsys):
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx, model)
    before = model.read_bytes()
    assert eval_main(["--model", str(model), "--data", str(folders["colour"]), "--json", str(model)]) == 2
    assert "would overwrite the input" in _one_line_error(capsys)
    assert model.read_bytes() == before


def test_json_location_is_checked_before_scoring(tiny_onnx, folders, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    code = eval_main(["--model", str(tiny_onnx), "--data", str(folders["colour"]), "--json", str(afile / "x.json")])
    assert code == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"Error: --json {afile / 'x.json'}: cannot write to folder {afile}")
    assert afile.read_text() == "keep"


def test_a_missing_json_folder_is_created(folders, tmp_path, capsys):
    out = tmp_path / "new" / "r.json"
    assert eval_main(["--data", str(folders["colour"]), "--json", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    "which,counts", [("gray", "(2 nearly colourless, 0 unreadable)"), ("unreadable", "(0 nearly colourless, 2 unreadable)")]
)
def test_no_colour_images_to_score(tiny_onnx, folders, tmp_path, capsys, which, counts):
    out = tmp_path / "r.json"
    assert eval_main(["--model", str(tiny_onnx), "--data", str(folders[which]), "--json", str(out)]) == 2
    assert _one_line_error(capsys) == f"Error: no colour images to score in {folders[which]} {counts}"
    assert not out.exists()


def test_some_unreadable_files_give_one_warning(folders, capsys):
    assert eval_main(["--data", str(folders["mixed"])]) == 0
    out, err = capsys.readouterr()
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: 1 of 3 image files in {folders['mixed']} are unreadable and were skipped"]
    assert "gray" in out and "nan" not in out


def test_onnx_that_is_not_a_colorize_rt_export(folders, tmp_path, capsys):
    ident = identity_onnx(tmp_path / "ident.onnx")
    assert eval_main(["--model", str(ident), "--data", str(folders["colour"])]) != 0
    line = _one_line_error(capsys)
    assert str(ident) in line and "its inputs are x, not L/temperature" in line
