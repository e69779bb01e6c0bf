"""``auto`` on the CPU: the fastest runner, chosen by measurement on this machine, never by a table.

The first time a (model, CPU flags, library versions, threads, purpose) is opened with ``auto`` on a machine
without a usable GPU, ``backends.registry`` opens every CPU candidate that passes its known-answer self-check
(OpenVINO, ONNX Runtime and OpenCV dnn, each on the model and on its INT8 variant where one ships) and
``time_candidates`` times them, interleaved, on one 256² image. The table is saved (``save_choice``, an atomic
JSON file under ``<cache root>/auto-choice/``) and every later start opens only the winner. A new version of
colorize-rt, ONNX Runtime, OpenVINO or OpenCV, another CPU, or a changed model file is another key: measured
again. ``colorize-rt --info`` prints the table.

Budget: ``MEASURE_BUDGET_S`` (2 s) bounds the whole measurement: opening the candidates (compiling, the
self-check), warming them up and timing them (``time_candidates``). The registry hands the candidates over
cheapest to open first (ONNX Runtime, then OpenVINO's compiles, then OpenCV dnn's child-process crash check);
one is opened only while the budget left covers the longest opening so far (else its row says
``not timed: budget``), and successive halving stops timing a candidate once its median is over
``DROP_RATIO`` x the best. The choice is the fastest timed
median, whatever the CPU. ``CpuChoice.open_s`` and ``timing_s`` split the time spent; ``--info`` shows both.

**No job waits for the measurement.** With no saved table, the job runs on a provisional runner (the first
candidate, in the registry's fixed order, that passes its self-check: ONNX Runtime fp32 of the model asked for)
and the measurement runs in a detached low-priority process after it (``auto_background``); the next start opens
the winner. ``ProvisionalChoice`` is what ``--info`` shows meanwhile.

**A measurement taken under load is measured again.** ``cpu_load.LoadMeter`` compares the machine's busy CPU
(``/proc/stat``) with this process's own CPU time over the measurement; where other processes took more than
``cpu_load.LOADED_SHARE`` of the CPU the table is ``loaded``, and a later start measures again (in the
background), ``MAX_TRIES`` measurements in all, keeping the least loaded; a table still loaded after them gets
one more try a day (``RETRY_LOADED_AFTER_S``) after its last.

``COLORIZE_RT_AUTO_CACHE``: ``0`` measures at every start, in the calling process (nothing is saved for a
background process to hand over); ``read`` uses a saved table but writes none and starts no measurement (also
when ``COLORIZE_RT_SELFCHECK_CACHE=read``, which ``--info`` sets).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ... import __version__
from ...core.atomic import atomic_write_text
from ...core.cpu import cpu_flags, cpu_model
from ...core.paths import cache_dir
from .cpu_load import LoadMeter
from .runners import Runner

AUTO_CACHE_ENV = "COLORIZE_RT_AUTO_CACHE"
CHOICE_KIND = "auto-choice"
MEASURE_BUDGET_S = 2.0
MEASURE_ROUNDS = 5  # timings per candidate that end the measurement early
DROP_RATIO = 1.3  # a candidate whose median is over this times the best median is no longer timed
DROP_FIRST_RATIO = 2.0  # the same after a single timed run (one run is noisy on a shared CPU)
MIN_FINAL_RUNS = 2  # timings the final two get even when the budget is spent
NOT_TIMED_BUDGET = "not timed: budget"
MEASURE_SIDE = 256  # fit mode's default network size
CHOICE_FORMAT = 4  # 2: one budget, successive halving; 3: load recorded, background; 4: start-up per row
MAX_TRIES = 3  # measurements of one key while each is loaded; then the least loaded is kept
RETRY_LOADED_AFTER_S = 24 * 3600  # ... until a day after the last try: then one more, and so on (a table
# measured on a busy day does not pick the runner for good: on the 2-core Xeon three tries under a test run
# chose ONNX Runtime INT8, 67 ms, where OpenVINO bf16 takes 15 ms on the quiet machine)
new_load_meter = LoadMeter  # a seam: tests give it a fake /proc/stat reader


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
    start_ms: float | None = None  # what a new process pays once before its first photo (warm caches): see winner_for


@dataclass
class CpuChoice:
    """The table ``auto`` chose from, and the winner."""

    key: str
    rows: list[CandidateRow]
    chosen: str  # the winning row's label
    cpu: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    open_s: float = 0.0  # opening and checking the candidates
    timing_s: float = 0.0  # warm-up and timed runs (the budget covers open_s + timing_s)
    budget_s: float = field(default_factory=lambda: MEASURE_BUDGET_S)  # read when made (tests change it)
    cached: bool = False
    others_share: float | None = None  # share of the machine's CPU other processes took meanwhile (None: unknown)
    loaded: bool = False  # others_share over cpu_load.LOADED_SHARE: measured again on a later start
    tries: int = 1  # measurements of this key so far (MAX_TRIES at most while loaded)
    measured_at: float = 0.0  # unix time of this table's measurement
    tried_at: float = 0.0  # unix time of the latest try (a later, more loaded one may have lost to this table)
    where: str = "this process"  # "background" where a detached process measured it
    purpose: str = ""  # latency | throughput

    def winner(self) -> CandidateRow:
        """Returns: the chosen row."""
        return next(r for r in self.rows if r.label == self.chosen)

    def winner_for(self, runs: int | None) -> CandidateRow:
        """The row that finishes a job of ``runs`` network runs first: least ``start_ms + runs x ms``.

        A short job (six photos in one command) pays each runtime's per-process start-up (OpenVINO: its import,
        its compile from the cache, its first run at a new input size) once, which can outweigh a faster network;
        a long-lived or unknown job (``runs`` None: a server, the Python API) takes the fastest network.

        Args:
            runs: the network runs the job will make, or None.

        Returns:
            The row (the chosen one where ``runs`` is None or no row has a start-up measured).
        """
        best = self.winner()
        if runs is None or best.start_ms is None:
            return best
        timed = [r for r in self.rows if r.ms is not None and r.start_ms is not None]
        return min(timed, key=lambda r: (r.start_ms + runs * r.ms, r.label != self.chosen))

    @property
    def setup_s(self) -> float:
        """Returns: the one-time set-up the measurement cost: opening (compiles, optimised graphs, self-checks) and timing."""
        return self.open_s + self.timing_s

    def needs_retry(self, now: float | None = None) -> bool:
        """Returns: whether a later start measures again: loaded, and fewer than ``MAX_TRIES`` measurements or
        the last one over ``RETRY_LOADED_AFTER_S`` ago (``now``: unix time, default the clock)."""
        if not self.loaded:
            return False
        last = max(self.measured_at, self.tried_at)
        return self.tries < MAX_TRIES or (time.time() if now is None else now) - last > RETRY_LOADED_AFTER_S

    def load_text(self) -> str:
        """Returns: the load during the measurement, in words."""
        if self.others_share is None:
            return "load unknown"
        text = f"other processes took {self.others_share:.0%} of the CPU"
        if self.loaded:
            text += (
                f"; loaded: measured again on a later start (try {self.tries} of {MAX_TRIES})"
                if self.tries < MAX_TRIES
                else f"; loaded, the least loaded of {self.tries} tries (one more try a day after the last)"
            )
        return text

    def lines(self) -> list[str]:
        """Returns: the table as text lines for ``--info``, fastest first."""
        timed = sorted((r for r in self.rows if r.ms is not None), key=lambda r: r.ms)
        best = timed[0].ms if timed else None
        spent = f"{self.setup_s:.2f} s of a {self.budget_s:g} s budget"
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.measured_at)) if self.measured_at else "?"
        head = f"measured table ({when}, in {self.where}, {self.load_text()}), one-time set-up {spent}"
        head += ", recalled from the cache" if self.cached else ""
        head += f" ({self.open_s:.2f} s opening and checking, {self.timing_s:.2f} s running)"
        out = [f"auto on this CPU ({self.cpu}): {MEASURE_SIDE}x{MEASURE_SIDE} batch 1, median of each candidate; {head}"]
        for r in timed + [r for r in self.rows if r.ms is None]:
            mark = "*" if r.label == self.chosen else " "
            speed = f"{r.ms:8.1f} ms  {best / r.ms:5.2f}x" if r.ms is not None else f"{'-':>8}     {'':5} "
            start = f"start {r.start_ms:5.0f} ms" if r.start_ms is not None else " " * 14
            out.append(f" {mark} {r.label:36s} {speed}  {start}  {r.status}{': ' + r.note if r.note else ''}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProvisionalChoice:
    """What ``auto`` runs on before a table exists: the first candidate that passed its self-check."""

    key: str
    runner: str  # the provisional runner's label
    state: str  # measuring | failed | not started
    since: float = 0.0  # unix time the background measurement started
    error: str = ""  # the last failed measurement's one line
    log: str = ""  # the measuring process's log file
    cpu: str = ""
    provisional: bool = True

    def lines(self) -> list[str]:
        """Returns: one line for ``--info``."""
        head = f"auto on this CPU ({self.cpu}): provisional: {self.runner}; "
        if self.state == "measuring":
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
            tail = f"measuring in the background since {when}"
            tail += f" (an earlier try failed: {self.error})" if self.error else ""
        elif self.state == "failed":
            tail = f"measurement failed: {self.error or 'the measuring process ended without a table'}"
        else:
            tail = "not measured yet: the next colorize-rt run measures in the background"
        return [head + tail + (f" (log: {self.log})" if self.log and self.state != "not started" else "")]

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


def choice_path(key: str) -> Path:
    """Returns: where the table of ``key`` is saved (``<cache root>/auto-choice/<key>.json``)."""
    return cache_dir(CHOICE_KIND) / f"{key}.json"


def load_choice(key: str) -> CpuChoice | None:
    """Returns: the saved measurement for ``key`` (``cached=True``), or None (none, unreadable, or the cache is off).

    Args:
        key: ``choice_key(...)``.
    """
    if auto_cache_mode() == "off":
        return None
    try:
        d = json.loads(choice_path(key).read_text())
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
        path = choice_path(choice.key)
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


class CandidateRefused(Exception):
    """An opener's refusal of its candidate, shown as a row of the table.

    Args:
        status: the row's status (``unavailable``, ``self-check failed``).
        note: one line saying why.
    """

    def __init__(self, status: str, note: str):
        super().__init__(note)
        self.status, self.note = status, note


@dataclass
class CandidateTiming:
    """What ``time_candidates`` learnt of one candidate."""

    status: str = NOT_TIMED_BUDGET  # timed | failed to run | an opener's refusal | not timed: budget
    note: str = ""
    times: list[float] = field(default_factory=list)  # seconds of each timed run
    runner: Runner | None = None  # the activated runner: kept for the fastest only

    def median_ms(self) -> float | None:
        """Returns: the median timed run in ms, or None before the first."""
        return float(np.median(self.times)) * 1e3 if self.times else None


def _run_once(racing: dict[str, CandidateTiming], label: str, feed: dict[str, np.ndarray], timed: bool = True) -> None:
    """One run of ``label``'s runner; a runner that raises leaves the race as ``failed to run``."""
    timing = racing[label]
    try:
        t = time.perf_counter()
        timing.runner.infer(feed)
        elapsed = time.perf_counter() - t
    except Exception:  # noqa: BLE001 - a runtime that cannot run this size is not a candidate
        side = feed["L"].shape[-1]
        timing.status, timing.note = "failed to run", f"raised on a {side}x{side} input"
        del racing[label]
        return
    if timed:
        timing.times.append(elapsed)


def _halve(racing: dict[str, CandidateTiming], drop_ratio: float) -> None:
    """Stop timing every candidate whose median is over ``drop_ratio`` x the best (``DROP_FIRST_RATIO`` after one run)."""
    best = min((t.median_ms() for t in racing.values() if t.times), default=None)
    for label, timing in list(racing.items()):
        ratio = drop_ratio if len(timing.times) > 1 else DROP_FIRST_RATIO
        if timing.times and len(racing) > 1 and timing.median_ms() > ratio * best:
            timing.note = f"dropped after {len(timing.times)} run(s): over {ratio:g}x the best median"
            del racing[label]


def _keep_final_two(racing: dict[str, CandidateTiming]) -> bool:
    """The budget is spent: keep the two best medians. Returns: whether both already have ``MIN_FINAL_RUNS``."""
    for label in sorted(racing, key=lambda k: racing[k].median_ms())[2:]:
        racing[label].note = f"dropped after {len(racing[label].times)} run(s): budget spent"
        del racing[label]
    return min(len(t.times) for t in racing.values()) >= MIN_FINAL_RUNS


def time_candidates(
    openers: dict[str, Callable[[], Runner]],
    budget_s: float | None = None,
    rounds: int = MEASURE_ROUNDS,
    side: int = MEASURE_SIDE,
    drop_ratio: float = DROP_RATIO,
) -> tuple[dict[str, CandidateTiming], float, float]:
    """Open and time CPU candidates within one budget, by successive halving; keep the fastest open.

    ``budget_s`` counts everything: opening (compiling, the self-check), one warm-up run each and the timed
    runs. Candidates are opened in the order given (cheapest to open first) and, once one has been timed, only
    while the budget left covers the longest opening seen so far; one not opened for lack of it stays
    ``not timed: budget``. Each opened candidate runs
    once untimed, then once timed; after every round a candidate whose median exceeds ``drop_ratio`` x the best
    median (``DROP_FIRST_RATIO`` after a single run) is no longer timed (it stays open: the fastest median of
    all wins). Rounds (one run of each remaining candidate, interleaved) go on until one remains, each has
    ``rounds`` timings, or the budget is spent; then the best two are kept and given at least ``MIN_FINAL_RUNS``
    timings each. A runner that raises while run is ``failed to run``. The fastest timed
    candidate is kept open; every other runner is deactivated.

    Args:
        openers: label -> a callable returning an activated (and checked) runner, or raising ``CandidateRefused``;
            any other exception deactivates the runners opened so far and propagates.
        budget_s: wall-clock seconds for opening, warming up and timing all candidates together
            (None: ``MEASURE_BUDGET_S``, read at call time so tests can change it).
        rounds: timings per candidate that end the measurement early.
        side: the square input size.
        drop_ratio: how much slower than the best median a candidate may be and still be timed.

    Returns:
        (label -> ``CandidateTiming`` in the order given, only the fastest keeping its ``runner``; seconds spent
        opening; seconds spent running).
    """
    budget_s = MEASURE_BUDGET_S if budget_s is None else budget_s
    feed = timing_input(side)
    t0 = time.perf_counter()
    out = {label: CandidateTiming() for label in openers}
    racing: dict[str, CandidateTiming] = {}
    open_s = longest_open = 0.0
    try:
        for label, opener in openers.items():
            if any(t.times for t in out.values()) and time.perf_counter() - t0 + longest_open > budget_s:
                break  # the rest stay "not timed: budget"
            t = time.perf_counter()
            try:
                out[label].runner = opener()
            except CandidateRefused as exc:
                out[label].status, out[label].note = exc.status, exc.note
                continue
            finally:
                open_s += time.perf_counter() - t
                longest_open = max(longest_open, time.perf_counter() - t)
            out[label].status = "timed"
            racing[label] = out[label]
            _run_once(racing, label, feed, timed=False)
            if label in racing:
                _run_once(racing, label, feed)
            _halve(racing, drop_ratio)
        while len(racing) > 1 and min(len(t.times) for t in racing.values()) < rounds:
            if time.perf_counter() - t0 >= budget_s and _keep_final_two(racing):
                break
            for label in list(racing):
                _run_once(racing, label, feed)
            _halve(racing, drop_ratio)
    except BaseException:
        _close_all(out.values())
        raise
    # the fastest of every timed candidate, dropped ones included (kept open until now for that)
    fastest = min((t for t in out.values() if t.status == "timed" and t.times), key=CandidateTiming.median_ms, default=None)
    _close_all(t for t in out.values() if t is not fastest)
    return out, open_s, time.perf_counter() - t0 - open_s


def _close_all(timings) -> None:
    for timing in timings:
        if timing.runner is not None:
            timing.runner.deactivate()
            timing.runner = None
