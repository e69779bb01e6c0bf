"""``auto`` on the CPU: the fastest runner, chosen by measurement on this machine, never by a table.

The first time a (model, CPU flags, library versions, threads, purpose) is opened with ``auto`` on a machine
without a usable GPU, ``backends.registry`` opens every CPU candidate that passes its known-answer self-check
(OpenVINO, ONNX Runtime and OpenCV dnn, each on the model and on its INT8 variant where one ships) and
``time_candidates`` times them, interleaved, on one 256² image. The table is saved (``save_choice``, an atomic
JSON file under ``<cache root>/auto-choice/``) and every later start opens only the winner. A new version of
colorize-rt, ONNX Runtime, OpenVINO or OpenCV, another CPU, or a changed model file is another key: measured
again. ``colorize-rt --info`` prints the table.

Timing: ``MEASURE_BUDGET_S`` (2 s) bounds the timed runs of all candidates together; the rounds stop
earlier once each candidate has ``MEASURE_ROUNDS`` timings. Opening the candidates (compiling, the
self-check) is paid once per key too and is reported next to it (``CpuChoice.open_s``).

``COLORIZE_RT_AUTO_CACHE``: ``0`` measures at every start; ``read`` uses a saved table but writes none (also
when ``COLORIZE_RT_SELFCHECK_CACHE=read``, which ``--info`` sets).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ... import __version__
from ...core.atomic import atomic_write_text
from ...core.cpu import cpu_flags, cpu_model
from ...core.paths import cache_dir
from .runners import Runner

AUTO_CACHE_ENV = "COLORIZE_RT_AUTO_CACHE"
CHOICE_KIND = "auto-choice"
MEASURE_BUDGET_S = 2.0
MEASURE_ROUNDS = 5  # timings per candidate that end the measurement early
MEASURE_SIDE = 256  # fit mode's default network size
CHOICE_FORMAT = 1


@dataclass
class CandidateRow:
    """One timed (or refused) CPU candidate."""

    label: str  # e.g. "openvino-f32 default-int8.onnx"
    backend: str  # registry backend name: openvino | cpu | opencv
    model: str  # the model file's name
    precision: str = ""  # the runner's compute precision where it has one (OpenVINO f32 / bf16)
    status: str = "timed"  # timed | self-check failed | unavailable | not timed
    ms: float | None = None  # median of the timed runs
    runs: int = 0
    note: str = ""


@dataclass
class CpuChoice:
    """The table ``auto`` chose from, and the winner."""

    key: str
    rows: list[CandidateRow]
    chosen: str  # the winning row's label
    cpu: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    open_s: float = 0.0  # opening and checking the candidates
    timing_s: float = 0.0  # the timed runs
    cached: bool = False

    def winner(self) -> CandidateRow:
        """Returns: the chosen row."""
        return next(r for r in self.rows if r.label == self.chosen)

    def lines(self) -> list[str]:
        """Returns: the table as text lines for ``--info``, fastest first."""
        timed = sorted((r for r in self.rows if r.ms is not None), key=lambda r: r.ms)
        best = timed[0].ms if timed else None
        head = "recalled from the cache" if self.cached else f"measured in {self.timing_s:.2f} s (+{self.open_s:.2f} s opening)"
        out = [f"auto on this CPU ({self.cpu}): {MEASURE_SIDE}x{MEASURE_SIDE} batch 1, median of each candidate, {head}"]
        for r in timed + [r for r in self.rows if r.ms is None]:
            mark = "*" if r.label == self.chosen else " "
            speed = f"{r.ms:8.1f} ms  {best / r.ms:5.2f}x" if r.ms is not None else f"{'-':>8}     {'':5} "
            out.append(f" {mark} {r.label:36s} {speed}  {r.status}{': ' + r.note if r.note else ''}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def library_versions() -> dict[str, str]:
    """Returns: the versions whose change means measuring again (a seam for tests)."""
    from importlib import metadata

    out = {"colorize_rt": __version__, "format": str(CHOICE_FORMAT)}
    for dist in ("onnxruntime", "onnxruntime-gpu", "openvino", "opencv-python-headless", "opencv-python", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def choice_key(model_shas: list[str], threads: int, purpose: str, versions: dict[str, str] | None = None) -> str:
    """Returns: the cache key of a measurement.

    Args:
        model_shas: sha256 of every candidate model file, in order.
        threads: the thread count asked for (0: all).
        purpose: ``latency`` or ``throughput``.
        versions: ``library_versions()`` (default: now).
    """
    parts = {
        "models": model_shas,
        "threads": threads,
        "purpose": purpose,
        "cpu": cpu_model(),
        "cpu_flags": sorted(cpu_flags()),
        "versions": versions if versions is not None else library_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def auto_cache_mode() -> str:
    """Returns: ``"off"``, ``"read"`` or ``"on"`` (``COLORIZE_RT_AUTO_CACHE``; ``read`` also under
    ``COLORIZE_RT_SELFCHECK_CACHE=read``)."""
    value = os.environ.get(AUTO_CACHE_ENV, "1").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value == "read" or os.environ.get("COLORIZE_RT_SELFCHECK_CACHE", "1") == "read":
        return "read"
    return "on"


def _choice_path(key: str) -> Path:
    return cache_dir(CHOICE_KIND) / f"{key}.json"


def load_choice(key: str) -> CpuChoice | None:
    """Returns: the saved measurement for ``key`` (``cached=True``), or None (none, unreadable, or the cache is off).

    Args:
        key: ``choice_key(...)``.
    """
    if auto_cache_mode() == "off":
        return None
    try:
        d = json.loads(_choice_path(key).read_text())
        rows = [CandidateRow(**r) for r in d.pop("rows")]
        d.pop("cached", None)
        choice = CpuChoice(rows=rows, cached=True, **d)
        choice.winner()
        return choice
    except (OSError, ValueError, TypeError, KeyError, StopIteration):
        return None  # absent, damaged or another format: measure again


def save_choice(choice: CpuChoice) -> None:
    """Record a measurement atomically (nothing when the cache is off or read-only; an unwritable folder is ignored).

    Args:
        choice: the measurement.
    """
    if auto_cache_mode() != "on":
        return
    try:
        path = _choice_path(choice.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(choice.to_dict() | {"cached": False}, indent=1))
    except OSError:
        pass  # a read-only cache only costs the measurement next time


def timing_input(side: int = MEASURE_SIDE) -> dict[str, np.ndarray]:
    """Returns: the feed the candidates are timed on: a smooth L* ramp (1, 1, side, side) and the default temperature."""
    from ...core.constants import DEFAULT_T

    ramp = np.linspace(5.0, 95.0, side, dtype=np.float32)
    L = (ramp[None, :] * 0.6 + ramp[:, None] * 0.4)[None, None]
    return {"L": np.ascontiguousarray(L), "temperature": np.array(DEFAULT_T, dtype=np.float32)}


def time_candidates(
    runners: dict[str, Runner], budget_s: float = MEASURE_BUDGET_S, rounds: int = MEASURE_ROUNDS, side: int = MEASURE_SIDE
) -> tuple[dict[str, tuple[float, int]], float, float]:
    """Time activated runners on the same input, interleaved (one run of each per round).

    Two warm-up calls each first (an OpenVINO runner compiles its static model for a size on its second
    call: set-up, not counted in the budget); a runner that raises there is left out of the timing (and of
    the result). Rounds continue until every runner has ``rounds`` timings or ``budget_s`` is spent, at least one.

    Args:
        runners: label -> activated runner.
        budget_s: wall-clock seconds for the timed runs of all runners together.
        rounds: timings per runner that end the measurement early.
        side: the square input size.

    Returns:
        (label -> (median ms, runs), seconds of timed runs, seconds of warm-up).
    """
    feed = timing_input(side)
    t_warm = time.perf_counter()
    runners = dict(runners)
    for label, runner in list(runners.items()):
        try:
            for _ in range(2):
                runner.infer(feed)
        except Exception:  # noqa: BLE001 - a runtime that cannot run this size is not a candidate
            del runners[label]
    t0 = time.perf_counter()
    times: dict[str, list[float]] = {label: [] for label in runners}
    while True:
        for label, runner in runners.items():
            t = time.perf_counter()
            runner.infer(feed)
            times[label].append(time.perf_counter() - t)
        done = min(len(v) for v in times.values()) >= rounds
        if done or time.perf_counter() - t0 >= budget_s:
            break
    return {k: (float(np.median(v)) * 1e3, len(v)) for k, v in times.items()}, time.perf_counter() - t0, t0 - t_warm
