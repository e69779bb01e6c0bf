"""``colorize-rt batch SRC DST`` (issue 27): local and Ray engines on real mixed photos, real files, a real
local Ray (2 CPUs, one per module), a real S3 server (moto) — resumable, nothing lost or done twice.

The heavier checks (50 photos Ray vs local, the driver killed, a node removed) are in test_batch_slow.py.
"""

from __future__ import annotations

import json
import os

import pytest

from colorize_rt.runtime.batch.job import run_batch_job
from colorize_rt.runtime.batch.manifest import read_manifest
from colorize_rt.runtime.batch.paths import BatchPathError, Place
from colorize_rt.runtime.batch.ray_engine import BLOCKS_PER_ACTOR, plan_actors, read_blocks
from colorize_rt.runtime.batch.worker import BatchSettings, ColorizeWorker
from tests.batch_support import CrashOnceWorker, MotoServer, files_under, run_cli, temp_files
from tests.conftest import VAL_DIR, needs

pytestmark = [needs(VAL_DIR), pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """12 small photos of mixed kinds (8/16-bit, gray, RGBA, CMYK, EXIF-rotated, ...) in sub-folders."""
    from colorize_rt.bench.archive_photos import make_archive

    src = tmp_path_factory.mktemp("archive") / "src"
    make_archive(src, VAL_DIR, n=12, side=64)
    return src


@pytest.fixture(scope="module")
def local_out(archive, tmp_path_factory):
    """The local engine's outputs of ``archive`` (and its summary)."""
    dst = tmp_path_factory.mktemp("local") / "dst"
    return dst, run_batch_job(str(archive), str(dst), engine="local", progress=False)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray of 2 CPUs for the module (the CI machine's size)."""
    pytest.importorskip("ray", reason="Ray is the [cluster] extra")
    pytest.importorskip("ray.data")
    import ray
    import ray.cloudpickle

    import tests.batch_support

    ray.cloudpickle.register_pickle_by_value(tests.batch_support)  # the actors can unpickle CrashOnceWorker
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _manifest(dst, summary) -> list[dict]:
    return read_manifest(Place(str(dst)), summary.run_id)


def test_local_mirrors_folders_and_writes_a_manifest(archive, local_out):
    dst, summary = local_out
    srcs = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert sorted(files_under(dst)) == srcs  # same names (formats kept), sub-folders mirrored
    rows = _manifest(dst, summary)
    assert [r["source"] for r in rows] == [f"{archive}/{s}" for s in srcs]
    assert {r["status"] for r in rows} == {"done"} and summary.done == 12
    assert all(len(r["model_sha256"]) == 64 and r["run_id"] == summary.run_id and r["ms"] > 0 for r in rows)
    assert rows[0]["destination"] == f"{dst}/{srcs[0]}"


def test_second_run_writes_nothing_and_skips_all(archive, local_out):
    dst, _ = local_out
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file() and "_manifest" not in p.parts}
    again = run_batch_job(str(archive), str(dst), engine="local", progress=False)
    assert (again.done, again.skipped, again.failed) == (0, 12, 0)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert {r["status"] for r in _manifest(dst, again)} == {"skipped"}
    dry = run_cli([str(archive), str(dst), "--dry-run", "--engine", "local"])
    assert dry.returncode == 0 and "12 images" in dry.stderr and "0 to do" in dry.stderr


def test_dry_run_writes_nothing(archive, tmp_path):
    res = run_cli([str(archive), str(tmp_path / "dst"), "--dry-run"])
    assert res.returncode == 0, res.stderr
    assert "12 to do" in res.stderr and not (tmp_path / "dst").exists()


def test_corrupt_image_is_a_row_and_the_job_succeeds(archive, tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    good = next(archive.rglob("*gray.jpg"))
    (src / "a" / "good.jpg").write_bytes(good.read_bytes())
    (src / "a" / "broken.jpg").write_bytes(good.read_bytes()[:300])
    (src / "notes.txt").write_text("not an image")
    res = run_cli([str(src), str(tmp_path / "dst"), "--engine", "local", "-q"])
    assert res.returncode == 0, res.stderr
    assert "1 done, 0 skipped, 1 failed" in res.stderr
    assert sorted(files_under(tmp_path / "dst")) == ["a/good.jpg"]
    (manifest,) = (tmp_path / "dst" / "_manifest").glob("*.jsonl")
    rows = {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line) for line in manifest.read_text().splitlines()}
    assert rows["broken.jpg"]["status"] == "failed" and "decode" in rows["broken.jpg"]["error"]
    assert rows["good.jpg"]["status"] == "done" and set(rows) == {"broken.jpg", "good.jpg"}


@pytest.mark.parametrize("case", ["missing src", "src is a file", "dst inside src", "dst unwritable", "empty src"])
def test_bad_paths_are_one_line_before_any_work(archive, tmp_path, case):
    src, dst = str(archive), str(tmp_path / "dst")
    if case == "missing src":
        src, want = str(tmp_path / "nope"), "no such folder"
    elif case == "src is a file":
        src, want = str(next(archive.rglob("*.png"))), "is a file"
    elif case == "dst inside src":
        dst, want = str(archive / "box0" / "out"), "is inside SRC"
    elif case == "dst unwritable":
        (tmp_path / "dst").write_text("a file where the folder should be")
        dst, want = str(tmp_path / "dst" / "out"), "cannot write"
    else:
        (tmp_path / "empty").mkdir()
        src, want = str(tmp_path / "empty"), "no images"
    res = run_cli([src, dst, "--engine", "ray"])  # checked before Ray starts
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and want in res.stderr and "Traceback" not in res.stderr
    assert not (archive / "box0" / "out").exists()
    assert case == "dst unwritable" or not (tmp_path / "dst").exists()


def test_ray_missing_is_one_line_naming_the_extra(archive, tmp_path):
    res = run_cli([str(archive), str(tmp_path / "dst")], code="sys.modules['ray'] = None")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "pip install 'colorize-rt[cluster]'" in res.stderr


def test_default_pool_fits_two_cpus_next_to_the_reads():
    plan = plan_actors(2, 50)
    assert plan.actors == 2 and plan.actors * plan.cpus_per_actor < 2  # room is left for the read tasks
    with pytest.raises(ValueError, match="do not fit"):
        plan_actors(2, 50, actors=2, cpus_per_actor=1)  # the silent hang of the issue, refused in one line
    assert plan_actors(64, 10**6).actors == 64


def test_read_blocks_hold_a_batch_each_and_stay_bounded_per_actor():
    one = plan_actors(2, 12, actors=1, cpus_per_actor=1)  # batches of 3
    assert (one.batch_size, read_blocks(12, one)) == (3, 4)  # not 12 one-image read tasks
    assert read_blocks(2, plan_actors(2, 50, actors=1, cpus_per_actor=1)) == 1
    big = plan_actors(64, 10**6)
    assert read_blocks(10**6, big) == BLOCKS_PER_ACTOR * 64  # bounded: reads still stream ahead of every actor


def test_warm_up_leaves_every_output_byte_unchanged(archive, tmp_path):
    sources = sorted(p for p in archive.rglob("*") if p.is_file())
    outputs = []
    for warm in (False, True):
        settings = BatchSettings(src=Place(str(archive)), dst=Place(str(tmp_path / str(warm))), run_id="t", warm_up=warm)
        worker = ColorizeWorker(settings)
        try:
            outputs.append([worker.encode(p.read_bytes(), ".png") for p in sources])
        finally:
            worker.colorizer.close()
    assert len(outputs[1]) == 12 and outputs[0] == outputs[1]


def test_ray_default_on_two_cpus_matches_local_bytes(ray_local, archive, local_out, tmp_path):
    dst = tmp_path / "dst"
    summary = run_batch_job(str(archive), str(dst), engine="ray", progress=False)
    assert summary.plan.startswith("2 actors")
    assert (summary.done, summary.failed) == (12, 0)
    assert files_under(dst) == files_under(local_out[0])  # byte-identical to --engine local
    assert len(_manifest(dst, summary)) == 12


def test_worker_killed_mid_batch_loses_and_doubles_nothing(ray_local, archive, tmp_path):
    dst, marker = tmp_path / "dst", tmp_path / "crashed"
    k = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())[5]
    summary = run_batch_job(
        str(archive),
        str(dst),
        engine="ray",
        actors=1,
        batch_size=4,
        progress=False,
        worker_class=CrashOnceWorker,
        worker_options={"crash_at": k, "crash_marker": str(marker)},
    )
    assert marker.exists()  # the actor did die on image k
    assert (summary.done, summary.failed) == (12, 0)
    srcs = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert sorted(files_under(dst)) == srcs and temp_files(dst) == []
    rows = _manifest(dst, summary)
    assert len(rows) == 12 and len({r["source"] for r in rows}) == 12


@pytest.fixture(scope="module")
def s3(archive):
    pytest.importorskip("s3fs", reason="s3:// needs s3fs (the [cluster] extra)")
    pytest.importorskip("moto.server", reason="the S3 server of the tests is moto[server] (dev extra)")
    import fsspec

    with MotoServer() as server:
        fs = fsspec.filesystem("s3", **server.storage_options)
        fs.mkdir("archive")
        fs.put(str(archive) + "/", "archive/src/", recursive=True)
        yield server, fs


def test_s3_paths_against_a_real_s3_server(s3, ray_local, archive, local_out):
    server, fs = s3
    opts = server.storage_options
    with pytest.raises(BatchPathError, match="SRC s3://archive/nope: no such folder"):
        run_batch_job("s3://archive/nope", "s3://archive/x", engine="local", storage_options=opts, progress=False)
    summary = run_batch_job("s3://archive/src", "s3://archive/out", engine="ray", storage_options=opts, progress=False)
    assert (summary.done, summary.failed) == (12, 0)
    want = files_under(local_out[0])
    got = {k[len("archive/out/") :]: fs.cat_file(k) for k in fs.find("archive/out") if "/_manifest/" not in k}
    assert got == want  # same bytes as the local engine on local files
    rows = read_manifest(Place("s3://archive/out", opts), summary.run_id)
    assert len(rows) == 12 and rows[0]["destination"].startswith("s3://archive/out/")
    again = run_batch_job("s3://archive/src", "s3://archive/out", engine="local", storage_options=opts, progress=False)
    assert (again.done, again.skipped) == (0, 12)


def test_cli_runs_local_engine_end_to_end(archive, local_out, tmp_path):
    res = run_cli([str(archive), str(tmp_path / "dst"), "--engine", "local", "-q", "--format", "png"])
    assert res.returncode == 0, res.stderr
    assert "12 done, 0 skipped, 0 failed" in res.stderr
    names = sorted(files_under(tmp_path / "dst"))
    assert len(names) == 12 and all(n.endswith(".png") for n in names)
    assert os.listdir(tmp_path / "dst" / "_manifest")[0].endswith(".jsonl")
