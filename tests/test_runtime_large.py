"""Very large images through the CLI in a subprocess, with peak memory (RSS) measured.

* 10000x10000 in fit mode: output has exactly the input's size; the full-res recombination runs in strips.
* 8000x8000 in tiled mode at a small tile size: must stay under 1.5 GB RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.runtime_support import ROOT, export_toy_model, photo

psutil = pytest.importorskip("psutil")

# The child's own peak: VmHWM belongs to the process's address space, which exec replaces. (ru_maxrss does
# not: Linux carries it over from the forking parent, so a child of a 1.5 GB pytest read 1,553 MB while
# psutil saw 660 MB.)
_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from colorize_rt.cli import main
    t0 = time.perf_counter()
    try:
        main(sys.argv[1:])
        rc = 0
    except SystemExit as e:
        rc = e.code
    try:
        hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "maxrss_mb": hwm}))
""")


def _run_measured(args: list[str], timeout: float = 900) -> dict:
    """Run the CLI in a child; peak RSS both from the child's own ru_maxrss and psutil polling."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=timeout)
    result = json.loads(out.strip().splitlines()[-1])
    result["psutil_peak_mb"] = peak / 2**20
    result["stderr"] = err
    return result


def _big_gray(path, side: int) -> None:
    cam = photo("camera")  # 512x512 real photo, tiled up
    reps = -(-side // 512)
    Image.fromarray(np.tile(cam, (reps, reps))[:side, :side]).save(path, quality=90)


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return str(tiny_onnx)


def test_10000x10000_fit_mode(tmp_path, model, record_property, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # this process opens the 100 MP output to check it
    src = tmp_path / "huge.jpg"
    _big_gray(src, 10000)
    res = _run_measured([str(src), "-o", str(tmp_path / "out.jpg"), "--model", model, "-q"])
    assert res["rc"] == 0, res["stderr"]
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == (10000, 10000) and im.mode == "RGB"
    record_property("fit_10000_seconds", res["seconds"])
    record_property("fit_10000_maxrss_mb", res["maxrss_mb"])
    print(
        f"\n10000x10000 fit: {res['seconds']:.1f} s, peak RSS {res['maxrss_mb']:.0f} MB (psutil {res['psutil_peak_mb']:.0f} MB)"
    )
    # 100 MP: uint8 input (300 MB) + output (300 MB) + encoder copy; never a full-res float image (1.2 GB)
    assert res["maxrss_mb"] < 2000


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A light conv net with the same ONNX interface: this test measures the pipeline's memory, and the
    real network would spend ~1300 tile inferences of CPU time on it (about 115 s with the tiny model,
    peak RSS 775 MB, on the 2-core dev box)."""
    return str(export_toy_model(tmp_path_factory.mktemp("m") / "toy.onnx"))


@pytest.mark.slow
def test_8000x8000_tiled_memory_bounded(tmp_path, toy, record_property):
    src = tmp_path / "big.jpg"
    _big_gray(src, 8000)
    res = _run_measured(
        [
            str(src),
            "-o",
            str(tmp_path / "out.png"),
            "--mode",
            "tiled",
            "--tile",
            "256",
            "--overlap",
            "32",
            "--model",
            toy,
            "-q",
        ]
    )
    assert res["rc"] == 0, res["stderr"]
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_REDUCED_COLOR_8)
    assert out.shape == (1000, 1000, 3)
    record_property("tiled_8000_seconds", res["seconds"])
    record_property("tiled_8000_maxrss_mb", res["maxrss_mb"])
    print(
        f"\n8000x8000 tiled (tile 256, overlap 32): {res['seconds']:.1f} s, "
        f"peak RSS {res['maxrss_mb']:.0f} MB "
        f"(psutil {res['psutil_peak_mb']:.0f} MB)"
    )
    assert res["maxrss_mb"] < 1536


_ARENA_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from colorize_rt.bench.memory import current_rss_mb as rss_mb
    from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab
    keep = None if sys.argv[2] == "none" else int(sys.argv[2])
    L = np.random.default_rng(0).uniform(0, 100, (1024, 1024)).astype(np.float32)
    with OrtRunner(sys.argv[1], threads=1, arena_keep_pixels=keep) as runner:
        predict_ab(runner, L[:256, :256])
        warm = rss_mb()
        big = predict_ab(runner, L)
        after_big = rss_mb()
        small = predict_ab(runner, L[:256, :256])
    print(json.dumps({"grown_mb": after_big - warm, "big_sum": float(big.sum()), "small_sum": float(small.sum())}))
""")


def _arena_probe(model: str, keep: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _ARENA_CHILD, model, keep], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_run_does_not_leave_its_peak_in_the_arena():
    """A run over the runner's ``arena_keep_pixels`` (here 512², so that a 1024² image is over it) hands
    ONNX Runtime's CPU arena back: without that, the 1024² run leaves ~370 MB held (measured on the 2-core
    dev box: +366 MB held without, +1 MB with). The control run (never shrink) shows that the probe sees the
    retention; both give the same colours."""
    model = str(ROOT / "colorize_rt" / "assets" / "default.onnx")
    shrunk = _arena_probe(model, str(512 * 512))
    held = _arena_probe(model, "none")
    assert held["grown_mb"] > 150, f"control: the arena was expected to hold the 1024² peak, grew {held}"
    assert shrunk["grown_mb"] < 64, f"the 1024² run left {shrunk['grown_mb']:.0f} MB held"
    assert shrunk["big_sum"] == held["big_sum"] and shrunk["small_sum"] == held["small_sum"]
