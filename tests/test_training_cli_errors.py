"""colorize-train's user mistakes: one line on stderr, exit 2, no traceback, nothing overwritten; and a run
folder is never silently restarted, resumed into nothing or trained with another folder's prior."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch

from colorize_rt.core.constants import NUM_BINS
from colorize_rt.models.checkpoint import load_checkpoint
from colorize_rt.training import train as train_mod

from .conftest import ROOT, TRAIN_DIR, needs

SMOKE = ROOT / "configs" / "smoke.yaml"
DATA = [f"train_dir={TRAIN_DIR}", "val_dir=", "threads=1"]


def _main(out, *extra, config=SMOKE):
    return train_mod.main(["--config", str(config), "--out", str(out), *DATA, *extra])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("colorize-train: error: "), err
    return err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A finished smoke run (6 steps): the run folder the tests below must leave untouched."""
    if not TRAIN_DIR.exists():
        pytest.skip(f"{TRAIN_DIR} not present")
    out = tmp_path_factory.mktemp("run")  # exists and is empty: a new run may use it
    assert _main(out) == 0
    return out


@needs(TRAIN_DIR)
def test_a_new_run_refuses_a_folder_that_holds_a_run(smoke_run, capsys):
    before = (smoke_run / "last.pt").read_bytes()
    assert _main(smoke_run, "max_steps=3") == 2
    err = _one_error_line(capsys)
    assert f"{smoke_run} already holds a run (last.pt at step 6): pass --resume to continue it, or choose another --out" in err
    assert (smoke_run / "last.pt").read_bytes() == before


@needs(TRAIN_DIR)
def test_resume_without_a_run_is_refused(tmp_path, capsys):
    for out in (tmp_path / "missing", tmp_path):
        assert _main(out, "--resume") == 2
        assert "holds no run to continue (no last.pt): drop --resume" in _one_error_line(capsys)
        assert not (out / "last.pt").exists() and not (out / "prior.npy").exists()


@needs(TRAIN_DIR)
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('model_args={"width": 0.25}', "was trained with model_args width=0.125 (config: 0.25)"),
        ("model=l2", "was trained with model mobile (config: l2)"),
    ],
)
def test_resume_with_another_model_says_what_differs(smoke_run, capsys, override, message):
    before = (smoke_run / "last.pt").read_bytes()
    assert _main(smoke_run, "--resume", override, "max_steps=8") == 2
    err = _one_error_line(capsys)
    assert message in err and "size mismatch" not in err
    assert (smoke_run / "last.pt").read_bytes() == before


def _mistakes(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "broken.yaml").write_text("model: [\n")
    return [
        ([], {"out": tmp_path / "a_file"}, "--out"),
        ([], {"config": ROOT / "configs"}, "a folder, not a YAML file"),
        ([], {"config": tmp_path / "broken.yaml"}, "not valid YAML at line 2"),
        ([f"prior={tmp_path}"], {}, "a folder; pass a .npy file"),
        (['model_args={"widht": 1}'], {}, "model 'mobile' has no arg 'widht'; its args are head, width"),
        (['model_args={"width": 1000}'], {}, "'width' must be a number above 0 and at most 4; got 1000"),
        (['model_args={"width": -1}'], {}, "'width' must be a number above 0 and at most 4; got -1"),
    ]


@needs(TRAIN_DIR)
def test_user_mistakes_are_one_line_and_exit_2_before_any_work(tmp_path, capsys):
    for extra, where, message in _mistakes(tmp_path):
        out = where.get("out", tmp_path / "run")
        assert _main(out, *extra, config=where.get("config", SMOKE)) == 2, message
        assert message in _one_error_line(capsys)
        assert not (tmp_path / "run").exists(), message  # refused before the run folder is made
    assert (tmp_path / "a_file").read_text() == "not a folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_without_cuda_is_one_line(tmp_path, capsys):
    assert _main(tmp_path / "run", "device=cuda") == 2
    err = _one_error_line(capsys)
    assert err.startswith("colorize-train: error: device=cuda: ") and err.endswith("use device=auto or device=cpu")
    assert not (tmp_path / "run").exists()


@needs(TRAIN_DIR)
def test_a_mistake_from_the_shell_prints_no_traceback(tmp_path):
    """The installed entry point, settings after --out too (argparse's intermixed parsing)."""
    cmd = [sys.executable, "-m", "colorize_rt.training.train", "--config", str(SMOKE), "--out", str(tmp_path / "r"), *DATA]
    proc = subprocess.run([*cmd, 'model_args={"widht": 1}'], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "colorize-train: error: model 'mobile' has no arg 'widht'; its args are head, width"
    ]


@needs(TRAIN_DIR)
def test_the_cached_prior_is_keyed_by_the_images_it_came_from(tmp_path, caplog):
    out = tmp_path / "run"
    assert _main(out, "limit_images=8", "max_steps=1") == 0
    small = np.load(out / "prior.npy")
    key = json.loads((out / "prior.json").read_text())
    assert key == {"train_dir": str(TRAIN_DIR.resolve()), "limit_images": 8, "files": 8}

    with caplog.at_level(logging.INFO, logger="colorize_rt.train"):
        assert _main(out, "--resume", "limit_images=16", "max_steps=2") == 0
    assert "computed from other images" in caplog.text
    assert json.loads((out / "prior.json").read_text())["limit_images"] == 16
    assert not np.array_equal(np.load(out / "prior.npy"), small)
    np.testing.assert_array_equal(load_checkpoint(out / "last.pt")["prior"].numpy(), np.load(out / "prior.npy"))

    # a run from before prior.json: its prior.npy is kept on --resume
    (out / "prior.json").unlink()
    marker = np.full(NUM_BINS, 1.0 / NUM_BINS)
    np.save(out / "prior.npy", marker)
    assert _main(out, "--resume", "limit_images=16", "max_steps=3") == 0
    np.testing.assert_array_equal(load_checkpoint(out / "last.pt")["prior"].numpy(), marker)


@needs(TRAIN_DIR)
def test_ctrl_c_before_the_first_checkpoint_does_not_promise_a_resume(tmp_path, capsys, monkeypatch):
    def interrupted(files, short_side=64):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "compute_prior", interrupted)
    assert _main(tmp_path / "run") == 130
    err = capsys.readouterr().err.strip()
    assert err == "colorize-train: interrupted before the first checkpoint; nothing to resume: run the command again"
    assert not (tmp_path / "run" / "last.pt").exists()


@needs(TRAIN_DIR)
def test_a_missing_val_dir_is_warned_about(tmp_path, caplog):
    """Before: a mistyped val_dir trained without validation and wrote no best.pt, without a word."""
    with caplog.at_level(logging.WARNING, logger="colorize_rt.train"):
        assert _main(tmp_path / "run", "val_dir=/no/such/val", "limit_images=8", "max_steps=1") == 0
    assert "val_dir /no/such/val not found: no validation, so no best.pt" in caplog.text
