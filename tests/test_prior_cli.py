"""colorize-prior: never writes over an input, one line and exit 2 for a mistake, a warning for a prior that
is not a colour prior."""

import shutil

import numpy as np
import pytest
from PIL import Image

from colorize_rt.core.constants import NUM_BINS
from colorize_rt.training.prior_cli import main

from .conftest import TRAIN_DIR, needs


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip() and not x.startswith("prior:")]  # tqdm's bar
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("colorize-prior: error: "), err
    return lines[0]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in sorted(TRAIN_DIR.glob("*.jpg"))[:3]:
        shutil.copy(src, folder)
    return folder


@needs(TRAIN_DIR)
def test_writes_a_prior(photos, tmp_path, capsys):
    assert main([str(photos), "-o", str(tmp_path / "p.npy")]) == 0
    p = np.load(tmp_path / "p.npy")
    assert p.shape == (NUM_BINS,) and abs(p.sum() - 1) < 1e-9 and (p > 0).sum() >= 10
    assert "warning" not in capsys.readouterr().err


@needs(TRAIN_DIR)
def test_refuses_to_write_over_an_input_image(photos, capsys):
    target = sorted(photos.iterdir())[0]
    before = target.read_bytes()
    assert main([str(photos), "-o", str(target)]) == 2
    assert "is an image file name; the prior is a .npy array" in _one_error_line(capsys)
    assert target.read_bytes() == before


@needs(TRAIN_DIR)
def test_an_output_under_a_file_is_one_line(photos, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main([str(photos), "-o", str(tmp_path / "afile" / "p.npy")]) == 2
    assert "cannot write to folder" in _one_error_line(capsys)
    assert (tmp_path / "afile").read_text() == "x"


def test_a_folder_of_unreadable_images_is_one_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_text("not a jpeg")
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG broken")
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "p.npy")]) == 2
    assert "all 2 image files are unreadable" in _one_error_line(capsys)
    assert not (tmp_path / "p.npy").exists()


@needs(TRAIN_DIR)
def test_unreadable_files_among_readable_ones_are_counted(photos, tmp_path, caplog):
    (photos / "z.jpg").write_text("not a jpeg")
    assert main([str(photos), "-o", str(tmp_path / "p.npy")]) == 0
    assert "warning: 1 of 4 image files are unreadable; the prior leaves them out" in caplog.text


def test_a_prior_of_grayscale_images_is_warned_about(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (80, 80), dtype=np.uint8)).convert("RGB").save(tmp_path / "in" / f"g{i}.png")
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "p.npy")]) == 0
    warnings = [x for x in capsys.readouterr().err.replace("\r", "\n").splitlines() if "warning" in x]
    assert len(warnings) == 1 and warnings[0].startswith("colorize-prior: warning: the prior fills only 1 of the 313")
