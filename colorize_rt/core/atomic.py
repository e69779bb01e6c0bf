"""Atomic file writes: write to a temp file in the same folder, fsync, then rename over the target.

Temp files are hidden and carry the writer's process id: ``.<name>.<pid>.<random><suffix>``. A writer
killed with ``kill -9`` cannot remove its temp file, so every write first removes the stale temp files of
its own target (those whose process is gone), and :func:`clean_stale_temps` sweeps a whole folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{6,}[^/]*$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove temp files left in ``folder`` by atomic writers that died (their process is gone).

    Args:
        folder: the folder to sweep (not recursive); a missing folder is fine.
        name: only the temp files of the target with this file name (default: all).

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or (name is not None and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success it is renamed to ``target``, on error removed.

    ``suffix`` defaults to the target's own, so writers that pick a format by extension still work.
    An unwritable folder raises an ``OSError`` that names the folder (not the temp file).
    """
    target = Path(target)
    suffix = target.suffix if suffix is None else suffix
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(target.parent, target.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write to folder {target.parent}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_writable(folder: str | Path) -> None:
    """Create ``folder`` if needed and prove a file can be created in it (before any compute).

    Raises:
        OSError: with a one-line message naming the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".write-test.{os.getpid()}.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write to folder {folder}: {exc.strerror}") from None


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))
