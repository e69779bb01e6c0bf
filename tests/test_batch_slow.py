"""``colorize-rt batch`` (issue 27), the heavier checks: 50 mixed photos byte-identical on Ray and locally,
the driver killed mid-run and rerun, and a two-node Ray cluster losing a node mid-job.

Each test has a timeout; the cluster test starts its own Ray, so it runs in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from colorize_rt.runtime.batch.job import run_batch_job
from tests.batch_support import ROOT, files_under, run_cli, temp_files
from tests.conftest import VAL_DIR, needs

pytestmark = [pytest.mark.slow, needs(VAL_DIR), pytest.mark.timeout(400)]
pytest.importorskip("ray.data", reason="Ray Data is the [cluster] extra")


@pytest.fixture(scope="module")
def archive50(tmp_path_factory):
    """50 small photos of mixed kinds (8/16-bit, gray, RGBA, CMYK, EXIF-rotated, palette, ...)."""
    from colorize_rt.bench.archive_photos import make_archive

    src = tmp_path_factory.mktemp("archive50") / "src"
    make_archive(src, VAL_DIR, n=50, side=96)
    return src


def _sources(src) -> list[str]:
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())


def test_fifty_mixed_photos_ray_equals_local(archive50, tmp_path):
    local = run_batch_job(str(archive50), str(tmp_path / "local"), engine="local", progress=False)
    ray = run_batch_job(str(archive50), str(tmp_path / "ray"), engine="ray", ray_cpus=2, progress=False)
    assert (local.done, ray.done, local.failed, ray.failed) == (50, 50, 0, 0)
    assert ray.plan.startswith("2 actors")  # the default on 2 CPUs, next to the reads: no hang
    out = files_under(tmp_path / "ray")
    assert sorted(out) == _sources(archive50)
    assert out == files_under(tmp_path / "local")


def _settled(dst, quiet: float = 3.0, limit: float = 60.0) -> dict:
    """The outputs under ``dst`` once nothing has changed for ``quiet`` seconds."""
    last, since, deadline = None, time.time(), time.time() + limit
    while time.time() < deadline:
        now = sorted(p.name for p in dst.rglob("*"))
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            break
        time.sleep(0.2)
    return files_under(dst)


def test_driver_killed_mid_run_then_rerun_completes(archive50, tmp_path):
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-m", "colorize_rt", "batch", str(archive50), str(dst), "--batch-size", "1", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(files_under(dst) if dst.exists() else {}) < 5:
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and whatever it started in its session
    finally:
        proc.wait(30)
    first = _settled(dst)  # Ray's workers outlive their driver briefly (until their raylet notices)
    assert 5 <= len(first) < 50 and not (dst / "_manifest").exists()  # killed mid-run, before its manifest
    res = run_cli([str(archive50), str(dst), "--engine", "ray", "-q"], timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{50 - len(first)} done, {len(first)} skipped, 0 failed" in res.stderr
    assert sorted(files_under(dst)) == _sources(archive50) and temp_files(dst) == []


CLUSTER_SCRIPT = r"""
import sys, threading, time
import ray
from ray.cluster_utils import Cluster
from colorize_rt.runtime.batch.job import run_batch_job

src, dst = sys.argv[1:3]
# the head holds one actor of 0.9 CPU next to the reads, so the second actor must live on the node removed
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
worker = cluster.add_node(num_cpus=2)
ray.init(address=cluster.address, log_to_driver=False)
cluster.wait_for_nodes()
result = {}
def job():
    result["summary"] = run_batch_job(src, dst, engine="ray", actors=2, cpus_per_actor=0.9, batch_size=1,
                                      address=cluster.address, backend="cpu", progress=False)
t = threading.Thread(target=job)
t.start()
import pathlib
out = pathlib.Path(dst)
while t.is_alive() and sum(1 for p in out.rglob("*") if p.is_file()) < 8:
    time.sleep(0.05)
busy = ray.available_resources().get("CPU", 0) < 3 - 1e-6  # the actors hold CPUs
cluster.remove_node(worker)
print("removed node; job still running:", t.is_alive(), busy, flush=True)
t.join(300)
s = result["summary"]
print("summary", s.done, s.skipped, s.failed, flush=True)
ray.shutdown()
cluster.shutdown()
"""


def test_two_node_cluster_losing_a_node_mid_job_completes(archive50, tmp_path):
    dst = tmp_path / "dst"
    res = subprocess.run(
        [sys.executable, "-c", CLUSTER_SCRIPT, str(archive50), str(dst)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "removed node; job still running: True" in res.stdout, res.stdout
    assert "summary 50 0 0" in res.stdout, res.stdout + res.stderr[-3000:]
    assert sorted(files_under(dst)) == _sources(archive50) and temp_files(dst) == []
