"""``colorize-rt`` end to end in subprocesses: outputs, batches, bad files, exit codes, atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from colorize_rt.runtime.pipeline.folder import MAX_LANES
from colorize_rt.runtime.pipeline.images import read_image
from tests.runtime_support import ROOT, photo, run_cli, write_rgb


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return str(tiny_onnx)


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    write_rgb(d / "a.png", cv2.resize(photo("astronaut"), (120, 90)))
    write_rgb(d / "b.jpg", cv2.resize(photo("coffee"), (100, 80)))
    write_rgb(d / "sub" / "c.png", cv2.resize(photo("camera"), (64, 64)))
    return d


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr


def test_single_input_default_output_next_to_it(photos, model):
    proc = run_cli(str(photos / "a.png"), "--model", model)
    assert proc.returncode == 0, proc.stderr
    out = read_image(photos / "a_color.png")
    assert out.rgb.shape == (90, 120, 3)
    assert "1 colorized, 0 skipped, 0 failed" in proc.stderr


def test_output_file_folder_glob_and_format(photos, tmp_path, model):
    proc = run_cli(str(photos / "b.jpg"), "-o", str(tmp_path / "one.webp"), "--model", model)
    assert proc.returncode == 0, proc.stderr
    assert read_image(tmp_path / "one.webp").rgb.shape == (80, 100, 3)
    # a folder input keeps names (and sub-folders) under -o DIR
    proc = run_cli(str(photos), "-o", str(tmp_path / "out"), "--model", model, "-q")
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert got == ["a.png", "b.jpg", "sub/c.png"]
    # a quoted glob, many inputs, --format changes the extension
    proc = run_cli(str(photos / "*.*"), "-o", str(tmp_path / "g"), "--format", "png", "--model", model, "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["a.png", "b.png"]


def test_bad_files_are_reported_and_skipped(photos, tmp_path, model):
    (photos / "empty.png").write_bytes(b"")
    (photos / "notes.png").write_text("not an image")
    data = (photos / "a.png").read_bytes()
    (photos / "trunc.png").write_bytes(data[: len(data) // 2])
    proc = run_cli(str(photos), str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--model", model)
    assert proc.returncode == 1
    _no_traceback(proc)
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 4, proc.stderr
    for name in ("empty.png", "notes.png", "trunc.png", "missing.png"):
        assert sum(name in line for line in errors) == 1
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.png", "b.jpg", "c.png"]
    assert "3 colorized, 0 skipped, 4 failed" in proc.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        ([], "no inputs"),
        (["{a}", "--mode", "nope"], "Invalid value for '--mode'"),
        (["{a}", "--model", "fancy"], "unknown model 'fancy'"),
        (["{a}", "--method", "transfer"], "needs --reference"),
        (["{a}", "--backend", "cuda"], "no CUDAExecutionProvider"),
        (["{a}", "--backend", "tensorrt"], "colorize-engine"),
        (["{a}", "--mode", "tiled", "--tile", "64", "--overlap", "64"], "must be smaller than --tile"),
        (["{a}", "-o", "{photos}"], "refusing to overwrite input"),
        (["{a}", "-o", "{photos}/x.png", "--format", "jpg"], "names a .png file but --format is jpg"),
        (["{a}", "-T", "nan"], "temperature must be a number from 0.01 to 10; got 'nan'"),  # FloatRange lets nan in
        (["{a}", "--scale", "inf"], "scale must be a number from 0.01 to 1; got 'inf'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(photos, model, args, needle):
    args = [a.format(a=photos / "a.png", photos=photos) for a in args]
    if "--model" not in args:
        args += ["--model", model]
    before = (photos / "a.png").read_bytes()
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert (photos / "a.png").read_bytes() == before


def test_a_second_run_on_a_folder_leaves_out_the_first_runs_outputs(photos, model):
    first = run_cli(str(photos), "--model", model, "-q")
    assert first.returncode == 0, first.stderr
    outputs = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*_color.*"))
    assert outputs == ["a_color.png", "b_color.jpg", "sub/c_color.png"]
    stamps = {o: (photos / o).stat().st_mtime_ns for o in outputs}
    again = run_cli(str(photos), "--skip-existing", "--model", model)
    assert again.returncode == 0, again.stderr
    assert "left out 3 files that earlier runs wrote" in again.stderr and "0 colorized, 3 skipped" in again.stderr
    assert {o: (photos / o).stat().st_mtime_ns for o in outputs} == stamps
    assert not list(photos.rglob("*_color_color.*"))
    redo = run_cli(str(photos), "--model", model, "-q")  # without --skip-existing: the outputs are redone
    assert redo.returncode == 0, redo.stderr
    assert not list(photos.rglob("*_color_color.*"))
    # an -o folder inside the walked folder: its files are left out on the next run
    for _ in range(2):
        proc = run_cli(str(photos), "-o", str(photos / "out"), "--model", model, "-q")
        assert proc.returncode == 0, proc.stderr
    assert not (photos / "out" / "out").exists()
    # files named one by one are never left out: overwriting one is refused
    proc = run_cli(str(photos / "a.png"), str(photos / "a_color.png"), "--model", model)
    assert proc.returncode == 2 and "refusing to overwrite input" in proc.stderr


def test_an_empty_input_path_is_an_error_not_this_folder(photos, model):
    proc = run_cli("", "--model", model, cwd=photos)
    assert proc.returncode == 1
    _no_traceback(proc)
    assert "an empty input path" in proc.stderr and "0 colorized" in proc.stderr
    assert not list(photos.rglob("*_color.*"))


def test_no_shipped_model_yet_message(photos, tmp_path):
    env = {**os.environ, "COLORIZE_RT_ASSETS": str(tmp_path / "empty")}
    proc = run_cli(str(photos / "a.png"), env=env)
    assert proc.returncode == 2 and "no model yet" in proc.stderr
    _no_traceback(proc)
    # the model-free method still works without any model
    ref = write_rgb(tmp_path / "ref.png", photo("coffee"))
    proc = run_cli(str(photos / "a.png"), "--method", "transfer", "--reference", str(ref), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (photos / "a_color.png").is_file()


def test_skip_existing_and_side_by_side(photos, tmp_path, model):
    out = tmp_path / "o"
    assert run_cli(str(photos / "a.png"), str(photos / "b.jpg"), "-o", str(out), "--model", model).returncode == 0
    mtime = (out / "a.png").stat().st_mtime_ns
    time.sleep(0.01)
    proc = run_cli(str(photos / "a.png"), str(photos / "b.jpg"), "-o", str(out), "--skip-existing", "--model", model)
    assert proc.returncode == 0 and "0 colorized, 2 skipped" in proc.stderr
    assert (out / "a.png").stat().st_mtime_ns == mtime
    proc = run_cli(str(photos / "a.png"), "-o", str(tmp_path / "sbs.png"), "--side-by-side", "--model", model)
    assert proc.returncode == 0
    sbs = read_image(tmp_path / "sbs.png").rgb.astype(int)
    assert sbs.shape == (90, 240, 3)
    left, right = sbs[:, :120], sbs[:, 120:]
    assert (left[..., 0] == left[..., 1]).all() and (left[..., 1] == left[..., 2]).all()  # gray | colour
    assert np.abs(right[..., 0] - right[..., 2]).mean() > 1


def test_16bit_rgba_and_tiled_through_the_cli(tmp_path, model):
    rgb16 = cv2.resize(photo("chelsea"), (150, 100)).astype(np.uint16) * 257
    src = write_rgb(tmp_path / "in16.png", np.dstack([rgb16, np.full((100, 150), 50000, np.uint16)]))
    proc = run_cli(
        str(src),
        "-o",
        str(tmp_path / "out16.png"),
        "--mode",
        "tiled",
        "--tile",
        "64",
        "--overlap",
        "16",
        "--model",
        model,
    )
    assert proc.returncode == 0, proc.stderr
    out = read_image(tmp_path / "out16.png")
    assert out.bit_depth == 16 and out.rgb.shape == (100, 150, 3) and (out.alpha == 50000).all()


def test_max_pixels_guard(tmp_path, model):
    Image.new("L", (2000, 1000), 100).save(tmp_path / "big.png")
    proc = run_cli(str(tmp_path / "big.png"), "--max-pixels", "1000000", "--model", model)
    assert proc.returncode == 1 and "over the 1 MP limit" in proc.stderr and "--max-pixels" in proc.stderr
    _no_traceback(proc)
    proc = run_cli(str(tmp_path / "big.png"), "--max-pixels", "0", "--model", model)
    assert proc.returncode == 0


def test_info(model):
    proc = run_cli("--info", "--model", model)
    assert proc.returncode == 0
    for needle in (
        "backends:",
        "cpu=yes",
        "sha256:",
        "precision: fp32",
        "variant: mobile",
        "backend in use: ",  # auto: the CPU runtime measured fastest here (runtime/backends/auto_choice.py)
    ):
        assert needle in proc.stdout
    proc = run_cli("--info", "--json", "--model", model)
    info = json.loads(proc.stdout)
    assert info["backend"] in ("cpu", "openvino", "opencv") and info["model"]["metadata"]["bins_hash"]
    assert info["backends_available"]["cpu"] is True


def _start_batch(tmp_path, model, n=24):
    src = tmp_path / "in"
    src.mkdir()
    base = cv2.resize(photo("astronaut"), (768, 768))
    for i in range(n):
        write_rgb(src / f"img{i:02d}.png", np.roll(base, i * 17, axis=1))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorize_rt", str(src), "-o", str(out), "--model", model, "-q"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    # wait for a finished output (temp files are hidden: ".name.xxxx.png")
    while time.time() < deadline and not (
        out.is_dir() and any(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir())
    ):
        time.sleep(0.01)
    return proc, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_kill_during_batch_leaves_no_partial_files(tmp_path, model, sig):
    proc, out = _start_batch(tmp_path, model)
    time.sleep(0.15)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    finished = sorted(p for p in out.iterdir() if not p.name.startswith("."))
    assert 0 < len(finished) < 24, "the kill should land mid-batch"
    for p in finished:  # every file under a final name is complete
        img = read_image(p)
        assert img.rgb.shape == (768, 768, 3)
    temps = [p.name for p in out.iterdir() if p.name.startswith(".")]
    if sig == signal.SIGTERM:  # a catchable signal: in-flight temp files are cleaned up, exit 130
        assert proc.returncode == 130 and temps == []
    else:
        # SIGKILL cannot be caught: the hidden temp files of the writes in flight remain, one per lane at most
        # (lanes write at once), and never beside their photo's final name
        assert len(temps) <= MAX_LANES
        assert not {t.split(".")[1] for t in temps} & {p.stem for p in finished}
        # the same command again finishes the folder and sweeps the dead run's temp files
        again = subprocess.run(proc.args, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in out.iterdir()) == [f"img{i:02d}.png" for i in range(24)]


@pytest.mark.parametrize("content", [b"", b"not a model"])
def test_a_corrupt_model_on_the_default_backend_is_one_line(photos, content):
    """Before: --backend auto (the default) printed ONNX Runtime's traceback; --backend cpu gave one line."""
    bad = photos / "bad.onnx"
    bad.write_bytes(content)
    proc = run_cli(str(photos / "a.png"), "--model", str(bad))
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and f"cannot open {bad} on the CPU" in proc.stderr
    assert not (photos / "a_color.png").exists()
