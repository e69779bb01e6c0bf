"""The ``colorize-rt`` command under careless use (issue 17): stale temp files of killed runs, unwritable
output folders, folders holding GIFs / broken links / symlink loops, multi-frame files given by name, and
``--info`` leaving no folders behind. Real CLI subprocesses, real files, the tiny real model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize_rt.core.atomic import atomic_write_bytes, clean_stale_temps
from colorize_rt.runtime.pipeline.folder import expand_inputs, walk_folder
from colorize_rt.runtime.pipeline.images import ImageError, image_header, read_image
from tests.runtime_support import photo, run_cli, write_rgb


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _animated_gif(path: Path, n: int = 3) -> Path:
    frames = [Image.new("RGB", (32, 24), (60 * i, 100, 200 - 50 * i)) for i in range(n)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


def _multipage_tiff(path: Path) -> Path:
    pages = [Image.new("L", (40, 30), 40 * i + 20) for i in range(2)]
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:])
    return path


# -- stale temp files --------------------------------------------------------------------------------
def test_stale_temp_of_a_killed_writer_is_removed_on_the_next_write(tmp_path):
    stale = tmp_path / f".out.png.{dead_pid()}.k3j9x_2a.png"  # the name atomic_path gives its temp files
    stale.write_bytes(b"half a png")
    live = tmp_path / f".out.png.{os.getpid()}.abcdefgh.png"  # a writer still running: left alone
    live.write_bytes(b"in progress")
    other = tmp_path / f".other.png.{dead_pid()}.zzzzzzzz.png"  # another target's: only a sweep removes it
    other.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "out.png", b"new")
    assert (tmp_path / "out.png").read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()
    assert clean_stale_temps(tmp_path) == [other]
    assert live.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.png"])


def test_kill_9_during_a_batch_leaves_nothing_after_the_rerun(tmp_path, tiny_onnx):
    """A real kill -9 of a writer, then a rerun of the CLI into the same folder."""
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import os, signal, sys\n"
        "from colorize_rt.core.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(out / "a.png")])
    assert proc.returncode == -9
    left = [p for p in out.iterdir() if p.name.startswith(".a.png.")]
    assert len(left) == 1 and not (out / "a.png").exists()
    write_rgb(tmp_path / "a.png", photo()[:64, :64])
    proc = run_cli(str(tmp_path / "a.png"), "-o", str(out / "a.png"), "--model", str(tiny_onnx), "--size", "32")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == ["a.png"]


# -- output folder -----------------------------------------------------------------------------------
def test_unusable_output_folder_is_reported_before_any_compute(tmp_path, tiny_onnx):
    write_rgb(tmp_path / "a.png", photo()[:64, :64])
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    target = blocker / "sub"
    proc = run_cli(str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(target), "--model", str(tiny_onnx))
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("colorize-rt: error: cannot write to folder") and str(target) in line, line
    assert ".a.png." not in proc.stderr  # names the folder, never a temp file
    _no_traceback(proc)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only (0555) folders anyway")
def test_read_only_output_folder_is_reported_before_any_compute(tmp_path, tiny_onnx):
    write_rgb(tmp_path / "a.png", photo()[:64, :64])
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = run_cli(str(tmp_path / "a.png"), "-o", str(ro / "a.png"), "--model", str(tiny_onnx))
    finally:
        ro.chmod(0o755)
    assert proc.returncode == 2
    assert f"cannot write to folder {ro}: Permission denied" in proc.stderr
    _no_traceback(proc)


# -- folders -----------------------------------------------------------------------------------------
@pytest.fixture
def messy_folder(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    write_rgb(d / "a.png", photo()[:48, :48])
    write_rgb(d / "sub" / "b.jpg", photo()[:40, :56])
    _animated_gif(d / "anim.gif")
    (d / "notes.txt").write_text("not an image")
    (d / "gone.png").symlink_to(d / "deleted.png")  # broken link
    (d / "loop1.png").symlink_to(d / "loop2.png")  # symlink loop
    (d / "loop2.png").symlink_to(d / "loop1.png")
    (d / ".hidden.png").write_bytes(b"")  # hidden: ignored silently, as before
    return d


def test_folder_walk_reports_what_it_skips(messy_folder):
    files, skipped = walk_folder(messy_folder)
    assert [f.relative_to(messy_folder).as_posix() for f in files] == ["a.png", "sub/b.jpg"]
    names = {reason: sorted(p.name for p in paths) for reason, paths in skipped.items()}
    assert names == {
        "GIF file": ["anim.gif"],
        "broken link": ["gone.png"],
        "symlink loop": ["loop1.png", "loop2.png"],
        "other file": ["notes.txt"],
    }
    notes: list[str] = []
    found, errors = expand_inputs([str(messy_folder)], notes)
    assert len(found) == 2 and not errors and len(notes) == 1
    assert "1 broken link" in notes[0] and "2 symlink loops" in notes[0] and "1 GIF file" in notes[0]


def test_cli_on_a_messy_folder_says_what_it_skipped(messy_folder, tmp_path, tiny_onnx):
    out = tmp_path / "out"
    proc = run_cli(str(messy_folder), "-o", str(out), "--model", str(tiny_onnx), "--size", "32")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["a.png", "sub/b.jpg"]
    lines = [line for line in proc.stderr.splitlines() if "skipped" in line and "broken link" in line]
    assert len(lines) == 1 and "symlink loop" in lines[0] and "anim.gif" in lines[0]
    _no_traceback(proc)


def test_broken_link_and_loop_by_name_are_named_as_such(messy_folder, tiny_onnx):
    proc = run_cli(str(messy_folder / "gone.png"), str(messy_folder / "loop1.png"), "--model", str(tiny_onnx))
    assert proc.returncode == 1
    assert "gone.png: broken link" in proc.stderr and "loop1.png: symlink loop" in proc.stderr
    _no_traceback(proc)


# -- multi-frame files by name -----------------------------------------------------------------------
def test_animated_gif_is_a_video_and_multipage_tiff_is_refused_by_name(tmp_path, tiny_onnx):
    """An animated GIF is not a still: ``read_image`` refuses it by name, and the command colorizes it as a clip
    (runtime.video); a multi-page TIFF is refused by name and nothing is written for it."""
    gif = _animated_gif(tmp_path / "anim.gif", 4)
    tif = _multipage_tiff(tmp_path / "pages.tif")
    with pytest.raises(ImageError, match=r"is an animated GIF \(4 frames\); only single still images"):
        read_image(gif)
    with pytest.raises(ImageError, match=r"is a multi-page TIFF \(2 pages\)"):
        image_header(tif.read_bytes())
    proc = run_cli(str(gif), str(tif), "-o", str(tmp_path / "out"), "--model", str(tiny_onnx))
    assert proc.returncode == 1
    assert "pages.tif: is a multi-page TIFF (2 pages)" in proc.stderr
    written = sorted(p.name for p in (tmp_path / "out").glob("*"))
    assert written == ["anim_color.mp4"], written
    import av

    with av.open(str(tmp_path / "out" / "anim_color.mp4")) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == 4
    _no_traceback(proc)


def test_still_gif_and_single_page_tiff_still_work(tmp_path):
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "still.gif")
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "one.tif")
    assert read_image(tmp_path / "still.gif").rgb.shape == (20, 30, 3)
    assert read_image(tmp_path / "one.tif").rgb.shape == (20, 30, 3)
    assert np.asarray(read_image(tmp_path / "one.tif").rgb)[0, 0].tolist() == [10, 200, 30]


# -- --info ------------------------------------------------------------------------------------------
def test_info_creates_no_cache_folders(tmp_path, tiny_onnx):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLORIZE_RT_", "XDG_")) and k != "REDIS_URL"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "xdg-cache"))
    proc = run_cli("--info", "--model", str(tiny_onnx), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cache backend: disk" in proc.stdout
    # Every colorize-rt cache (results, ort-optimized, selfcheck verdicts) is only read: nothing is created.
    # (ONNX Runtime itself writes a telemetry device id under Microsoft/DeveloperTools; that is not ours.)
    made = [p.relative_to(home).as_posix() for p in home.rglob("*")]
    assert not [m for m in made if "colorize-rt" in m], made
