"""The folder pipeline's lanes (issue 26): same outputs as photo by photo, network calls side by side where the
engine allows it, and the ONNX Runtime session options actually applied. Shipped default model, real files."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from colorize_rt.core.cpu import usable_cores
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.backends.session import ort_session
from colorize_rt.runtime.pipeline.folder import MAX_LANES, Job, Options, lane_count, run_batch
from colorize_rt.runtime.pipeline.images import read_image, write_image
from colorize_rt.runtime.pipeline.modes import TABLE_MIN_PIXELS

pytestmark = pytest.mark.timeout(300)  # pytest-timeout (dev extra): a lane that hangs fails the test


@pytest.fixture(scope="module")
def engines():
    """The shipped default on ONNX Runtime's CPU provider, opened for latency and for throughput."""
    with (
        Colorizer("default", "cpu", warn=lambda m: None) as latency,
        Colorizer("default", "cpu", warn=lambda m: None, purpose="throughput") as throughput,
    ):
        yield latency, throughput


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample_rgb):
    """Real photos of every kind the lanes treat differently: small gray PNGs (float recombine), a gray JPEG
    of over a megapixel (the 8-bit table path), a colour JPEG, a 16-bit gray PNG and an RGBA PNG."""
    folder = tmp_path_factory.mktemp("lanes-in")
    files = []
    for i, (name, rgb) in enumerate(sorted(sample_rgb.items())):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for side in (256, 200 + 24 * i):
            p = folder / f"{name}_{side}.png"
            cv2.imwrite(str(p), cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA))
            files.append(p)
    astronaut = sample_rgb["astronaut"]
    big = cv2.resize(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), (1280, 960), interpolation=cv2.INTER_CUBIC)
    assert big.size >= TABLE_MIN_PIXELS
    cv2.imwrite(str(folder / "big_gray.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(folder / "colour.jpg"), cv2.cvtColor(sample_rgb["coffee"], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "gray16.png"), (cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)[:300, :260])
    rgba = cv2.cvtColor(sample_rgb["chelsea"], cv2.COLOR_RGB2BGRA)
    rgba[..., 3] = np.linspace(0, 255, rgba.shape[1], dtype=np.uint8)[None, :]
    cv2.imwrite(str(folder / "alpha.png"), rgba)
    return files + [folder / n for n in ("big_gray.jpg", "colour.jpg", "gray16.png", "alpha.png")]


def test_folder_output_equals_photo_by_photo_byte_for_byte(engines, photos, tmp_path):
    """Lanes (network calls side by side on a throughput engine) write exactly the files that colorizing the
    photos one at a time with ``Colorizer.colorize`` and ``write_image`` writes."""
    latency, throughput = engines
    jobs = [Job(p, tmp_path / "lanes" / f"{p.stem}.png") for p in photos]
    (tmp_path / "lanes").mkdir()
    summary = run_batch(jobs, throughput, Options(), report=print, progress=False)
    assert (summary.done, summary.failed) == (len(photos), 0)
    for job in jobs:
        one = write_image(latency.colorize(read_image(job.src)), tmp_path / f"one_{job.src.stem}.png")
        assert job.dst.read_bytes() == one.read_bytes(), job.src.name


def test_one_lane_and_many_lanes_write_the_same_files(engines, photos, tmp_path):
    _, throughput = engines
    outs = {}
    for lanes in (1, 4):
        folder = tmp_path / f"lanes{lanes}"
        folder.mkdir()
        jobs = [Job(p, folder / f"{p.stem}.jpg") for p in photos]
        assert run_batch(jobs, throughput, Options(), report=print, progress=False, lanes=lanes).done == len(photos)
        outs[lanes] = [j.dst.read_bytes() for j in jobs]
    assert outs[1] == outs[4]


def test_a_bad_photo_fails_alone(engines, photos, tmp_path):
    _, throughput = engines
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    jobs = [Job(p, tmp_path / "out" / f"{p.stem}.png") for p in [photos[0], bad, *photos[1:4]]]
    (tmp_path / "out").mkdir()
    said: list[str] = []
    summary = run_batch(jobs, throughput, Options(), report=said.append, progress=False)
    assert (summary.done, summary.failed) == (4, 1)
    assert len(said) == 1 and "bad.png" in said[0] and "\n" not in said[0]
    assert not (tmp_path / "out" / "bad.png").exists() and len(list((tmp_path / "out").iterdir())) == 4


def test_throughput_engine_runs_network_calls_side_by_side(engines):
    """On a throughput engine two network calls are inside the runner at the same time (a two-party barrier
    inside ``infer`` is passed); on a latency engine they are not (the barrier times out)."""
    L = np.full((1, 1, 64, 64), 50.0, np.float32)

    def both_inside(engine) -> bool:
        barrier = threading.Barrier(2, timeout=2)
        original = engine.runner.infer
        met = []

        def infer(feed):
            try:
                barrier.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
            return original(feed)

        engine.runner.infer = infer
        try:
            threads = [threading.Thread(target=engine.predict, args=(L,)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        finally:
            del engine.runner.infer  # back to the class's method
        return all(met) and len(met) == 2

    latency, throughput = engines
    assert latency.streams == 1
    assert throughput.streams == max(1, usable_cores())
    if throughput.streams < 2:
        pytest.skip("one usable core: a throughput engine runs one network call at a time")
    assert both_inside(throughput)
    assert not both_inside(latency)


def test_lane_count():
    class Engine:
        streams = 1

    wide = Engine()
    wide.streams = 6
    assert lane_count(Engine(), fit=True, cores=2) == 3  # a lane per core and per network stream
    assert lane_count(Engine(), fit=True, cores=1) == 2  # still decode / encode next to the network
    assert lane_count(wide, fit=True, cores=1) == 7
    assert lane_count(wide, fit=True, cores=4) == MAX_LANES
    assert lane_count(Engine(), fit=True, cores=64) == MAX_LANES
    assert lane_count(wide, fit=False, cores=16) == 2  # tiled: a full-resolution image per lane
    assert lane_count(object(), fit=True, cores=3) == 4  # an engine without streams: one call at a time


def test_session_options_are_applied_and_read_back(engines, tiny_onnx):
    """What the sessions are asked for is what ONNX Runtime runs with: idle intra-op threads do not spin on the
    CPU provider (the cores go to decoding and encoding), the thread count, and config entries of ``ort_session``."""
    latency, throughput = engines
    for engine in (latency, throughput):
        opts = engine.runner.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    one = Colorizer("default", "cpu", threads=1, warn=lambda m: None)
    assert one.runner.session.get_session_options().intra_op_num_threads == 1
    one.close()
    s = ort_session(tiny_onnx, threads=2, config={"session.intra_op.allow_spinning": "0"})
    opts = s.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_openvino_folder_matches_photo_by_photo_within_one_level(photos, tmp_path):
    """OpenVINO compiles a throughput model (several streams) for a folder and a latency model for one photo;
    their fp32 arithmetic may differ in the last bits, so outputs agree within one 8-bit level, not bit for bit."""
    pytest.importorskip("openvino", reason="the openvino backend needs the openvino package")
    small = [p for p in photos if p.suffix == ".png"][:4]
    with (
        Colorizer("default", "openvino", warn=lambda m: None) as latency,
        Colorizer("default", "openvino", warn=lambda m: None, purpose="throughput") as throughput,
    ):
        assert throughput.streams >= 1 and latency.streams == 1
        (tmp_path / "f").mkdir()
        jobs = [Job(p, tmp_path / "f" / f"{p.stem}.png") for p in small]
        assert run_batch(jobs, throughput, Options(), report=print, progress=False).done == len(jobs)
        for job in jobs:
            one = latency.colorize(read_image(job.src)).rgb.astype(np.int16)
            assert np.abs(read_image(job.dst).rgb.astype(np.int16) - one).max() <= 1, job.src.name
