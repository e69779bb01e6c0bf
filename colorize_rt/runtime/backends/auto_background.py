"""``auto``'s measurement in a detached low-priority process, so that no job waits for it.

With no saved table for a key, ``backends.registry`` runs the job on a provisional runner and calls
``start_background``: a child process (``python -c _BOOTSTRAP``, which lowers its priority by ``NICE`` before any
heavy import, then runs ``main``) in its own session, with stdin closed and stdout/stderr appended to ``<key>.log`` under
``<cache root>/auto-choice/``. It waits for its turn (``wait_for_turn``: the parent has exited, or the machine's
CPU has been idle for ``IDLE_FOR_S``, or ``WAIT_MAX_S`` has passed), measures with the usual budget
(``registry.measure_cpu_choice``) and saves the table atomically; the next start opens the winner.

* **One per key.** The parent takes an exclusive ``flock`` on ``<key>.lock`` and hands the locked descriptor to
  the child, so the lock is held from the spawn to the child's exit (a crashed child releases it too); a second
  start that finds it held starts nothing.
* **Failures** are counted in ``<key>.state.json`` (each start counts, so a child that dies without a word does
  too); after ``MAX_ATTEMPTS`` nothing more is started, the provisional runner stays, and ``--info`` shows
  ``measurement failed: <one line>``.
* ``COLORIZE_RT_AUTO_MEASURE=sync`` measures in the calling process instead, before the job (tests, benchmarks);
  where ``fcntl`` is missing (not POSIX) the measurement is synchronous too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...core.atomic import atomic_write_text
from ...core.paths import cache_dir
from .auto_choice import CHOICE_KIND
from .cpu_load import machine_jiffies, read_proc_stat

AUTO_MEASURE_ENV = "COLORIZE_RT_AUTO_MEASURE"
MEASURE_MODES = ("background", "sync")
MAX_ATTEMPTS = 3  # measuring processes started for one key before giving up (provisional for good)
NICE = 10  # the child's niceness increment
WAIT_MAX_S = 600.0  # the longest the child waits for its turn before measuring anyway
IDLE_FOR_S = 1.0  # the machine must have been this long under IDLE_SHARE busy
IDLE_SHARE = 0.25  # busy share of the machine's whole CPU (every process, the parent included) counted as idle
POLL_S = 0.25


def measure_mode() -> str:
    """Returns: ``background`` (default) or ``sync`` (``COLORIZE_RT_AUTO_MEASURE``; sync where there is no fcntl).

    Raises:
        ValueError: another value (one line naming the allowed ones).
    """
    value = os.environ.get(AUTO_MEASURE_ENV, "background").strip().lower() or "background"
    if value not in MEASURE_MODES:
        raise ValueError(f"{AUTO_MEASURE_ENV}={value!r}: use one of {', '.join(MEASURE_MODES)}")
    try:
        import fcntl  # noqa: F401 - POSIX only
    except ImportError:
        return "sync"
    return value


def _folder() -> Path:
    return cache_dir(CHOICE_KIND)


def lock_path(key: str) -> Path:
    return _folder() / f"{key}.lock"


def log_path(key: str) -> Path:
    return _folder() / f"{key}.log"


def state_path(key: str) -> Path:
    return _folder() / f"{key}.state.json"


@dataclass
class MeasureState:
    """What is known of a key's background measurements (``<key>.state.json``)."""

    attempts: int = 0  # measuring processes started since the last success
    started: float = 0.0  # unix time the last one was started
    last_error: str = ""  # one line from the last one that failed ("" after a success)

    @classmethod
    def load(cls, key: str) -> MeasureState:
        """Returns: the saved state of ``key`` (an empty one where none is readable)."""
        try:
            d = json.loads(state_path(key).read_text())
            return cls(int(d.get("attempts", 0)), float(d.get("started", 0.0)), str(d.get("last_error", "")))
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()

    def save(self, key: str) -> None:
        """Write atomically (an unwritable cache is ignored: it only costs a retry)."""
        try:
            atomic_write_text(state_path(key), json.dumps(self.__dict__))
        except OSError:
            pass


def _held(locks: list[Path]) -> list[str]:
    """Returns: the keys of ``locks`` held now by a measuring process."""
    import fcntl

    out = []
    for lock in locks:
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.append(lock.stem)
        finally:
            os.close(fd)  # also releases a lock taken just now
    return out


def pending(folder: Path | None = None) -> list[str]:
    """Returns: the keys whose background measurement runs now.

    Args:
        folder: an ``auto-choice`` folder (default: this process's, under its cache root).
    """
    return _held(sorted((folder or _folder()).glob("*.lock")))


def measuring(key: str) -> bool:
    """Returns: whether a background measurement of ``key`` runs now (holds its lock)."""
    return bool(_held([lock_path(key)]))


def start_background(key: str, request: dict) -> str:
    """Start the detached measuring process for ``key`` unless one runs or ``MAX_ATTEMPTS`` have been made.

    Args:
        key: ``auto_choice.choice_key(...)``.
        request: JSON-able arguments of ``registry.measure_cpu_choice`` (model, variants, threads, max_side, purpose).

    Returns:
        ``started``, ``running`` (another holds the lock), ``failed`` (attempts used up) or ``unwritable``.
    """
    import fcntl

    state = MeasureState.load(key)
    if state.attempts >= MAX_ATTEMPTS:
        return "failed"
    try:
        _folder().mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(key), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return "unwritable"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "running"
        MeasureState(state.attempts + 1, time.time(), state.last_error).save(key)
        args = [sys.executable, "-c", _BOOTSTRAP, "--lock-fd", str(fd), "--parent", str(os.getpid()), json.dumps(request)]
        with open(log_path(key), "a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}\n")
            log.flush()
            subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),  # the lock goes with it: held until the child exits
                start_new_session=True,
                env={**os.environ, AUTO_MEASURE_ENV: "sync"},
            )
        return "started"
    except OSError:
        return "unwritable"
    finally:
        os.close(fd)  # the child's copy keeps the lock


# The child lowers its priority before importing anything heavy (numpy, the runtimes): while the command it was
# started by still runs, it must not take that command's CPU.
_BOOTSTRAP = (
    "import os, sys\n"
    f"try:\n    os.nice({NICE})\nexcept OSError:\n    pass\n"
    "from colorize_rt.runtime.backends.auto_background import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def wait_for_turn(
    parent: int,
    max_wait_s: float = WAIT_MAX_S,
    read_stat: Callable[[], str] = read_proc_stat,
    parent_alive: Callable[[int], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait until the parent has exited, or the machine has been idle for ``IDLE_FOR_S``, or ``max_wait_s``.

    Args:
        parent: the pid of the process that started this one.
        max_wait_s: the longest wait.
        read_stat: ``/proc/stat``'s text (a seam for tests).
        parent_alive: whether the parent still runs (default: it is still this process's parent).
        sleep: sleeps (a seam for tests).
        clock: monotonic seconds (a seam for tests).

    Returns:
        Why the wait ended: ``parent exited``, ``idle`` or ``waited N s``.
    """
    alive = parent_alive or (lambda pid: os.getppid() == pid)
    t0 = clock()
    idle_since = None
    last = None
    while True:
        if not alive(parent):
            return "parent exited"
        now = clock()
        try:
            jiffies = machine_jiffies(read_stat())
        except (OSError, ValueError):
            jiffies = None
        if jiffies is not None and last is not None and jiffies[1] > last[1]:
            busy = (jiffies[0] - last[0]) / (jiffies[1] - last[1])
            idle_since = (idle_since if idle_since is not None else now) if busy < IDLE_SHARE else None
            if idle_since is not None and now - idle_since >= IDLE_FOR_S:
                return "idle"
        last = jiffies
        if now - t0 >= max_wait_s:
            return f"waited {max_wait_s:g} s"
        sleep(POLL_S)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def _failed(key: str, line: str) -> int:
    state = MeasureState.load(key)
    state.last_error = line
    state.save(key)
    print(f"failed: {line}", flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    """The measuring process: wait for its turn, measure, save. Returns: the exit status."""
    ap = argparse.ArgumentParser(prog="python -m colorize_rt.runtime.backends.auto_background")
    ap.add_argument("--lock-fd", type=int, required=True)
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("request")
    a = ap.parse_args(argv)
    req = json.loads(a.request)
    key = req["key"]
    missing = [m for m in [req["model"], *req["variants"]] if not Path(m).is_file()]
    if missing:  # before waiting: nothing to measure
        return _failed(key, f"FileNotFoundError: {missing[0]} is gone")
    why = wait_for_turn(a.parent)  # already niced by _BOOTSTRAP
    print(f"measuring ({why})", flush=True)
    try:
        from . import registry, selfcheck

        choice = registry.measure_cpu_choice(
            Path(req["model"]),
            [Path(v) for v in req["variants"]],
            int(req["threads"]),
            int(req["max_side"]),
            req["purpose"],
        )
        selfcheck.wait_for_cache()
    except Exception as exc:  # noqa: BLE001 - recorded for --info and the next start; the job already ran
        return _failed(key, _one_line(exc))
    MeasureState().save(key)  # success: attempts start again from 0
    print("\n".join(choice.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
