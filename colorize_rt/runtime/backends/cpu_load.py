"""How much of the machine's CPU other processes took while ``auto`` measured (``/proc/stat`` against our own CPU time).

``LoadMeter`` reads the machine's CPU counters (the ``cpu`` line of ``/proc/stat``: jiffies spent busy and in all)
and this process's CPU time (its threads and its waited-for children) at ``start`` and ``stop``. What the machine
spent busy beyond our own CPU time, as a share of its whole capacity over the interval, is the others' share:
``auto_choice`` marks a measurement ``loaded`` above ``LOADED_SHARE`` and measures again on a later start.
The readers are seams: tests give ``/proc/stat`` texts in the kernel's format and a fake clock.

Where ``/proc/stat`` cannot be read (not Linux) the share is unknown (None) and no measurement counts as loaded.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

PROC_STAT = "/proc/stat"
LOADED_SHARE = 0.25  # others took over a quarter of the machine's CPU: the timings are not to be trusted
_IDLE_FIELDS = (3, 4)  # idle, iowait in "cpu  user nice system idle iowait irq softirq steal guest guest_nice"


def read_proc_stat() -> str:
    """Returns: the text of ``/proc/stat`` (raises OSError where there is none)."""
    with open(PROC_STAT) as f:
        return f.read()


def machine_jiffies(text: str) -> tuple[int, int]:
    """The machine's (busy, total) jiffies since boot, all CPUs together.

    Args:
        text: ``/proc/stat``'s text; its first ``cpu`` line is used (guest time is already in user time).

    Returns:
        (busy, total): total is the sum of user..steal; busy is total less idle and iowait.

    Raises:
        ValueError: no ``cpu`` line in ``text``.
    """
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
            total = sum(values)
            return total - sum(values[i] for i in _IDLE_FIELDS), total
    raise ValueError("no 'cpu' line in /proc/stat")


def own_cpu_seconds() -> float:
    """Returns: this process's CPU seconds (every thread) plus those of its children that were waited for."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


@dataclass
class LoadSample:
    """One interval's CPU accounting."""

    wall_s: float
    own_cpu_s: float  # this process's CPU seconds
    machine_busy_s: float | None  # the whole machine's busy CPU seconds (None: /proc/stat unreadable)
    machine_capacity_s: float | None  # CPU seconds the machine had (cores x wall, from /proc/stat's total)

    @property
    def others_share(self) -> float | None:
        """Returns: the share (0..1) of the machine's CPU that other processes took, or None where unknown."""
        if self.machine_busy_s is None or not self.machine_capacity_s:
            return None
        return min(1.0, max(0.0, (self.machine_busy_s - self.own_cpu_s) / self.machine_capacity_s))

    @property
    def loaded(self) -> bool:
        """Returns: whether others took more than ``LOADED_SHARE`` (False where unknown)."""
        share = self.others_share
        return share is not None and share > LOADED_SHARE


class LoadMeter:
    """Measures ``LoadSample`` over an interval: ``start()``, then ``stop()``.

    Args:
        read_stat: returns ``/proc/stat``'s text (a seam for tests).
        own_cpu: returns this process's CPU seconds (a seam for tests).
        clock: wall-clock seconds (a seam for tests).
        hz: jiffies per second (``SC_CLK_TCK``).
    """

    def __init__(
        self,
        read_stat: Callable[[], str] = read_proc_stat,
        own_cpu: Callable[[], float] = own_cpu_seconds,
        clock: Callable[[], float] = time.perf_counter,
        hz: float | None = None,
    ):
        self.read_stat, self.own_cpu, self.clock = read_stat, own_cpu, clock
        self.hz = hz or float(os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self._start: tuple[float, float, tuple[int, int] | None] | None = None

    def _jiffies(self) -> tuple[int, int] | None:
        try:
            return machine_jiffies(self.read_stat())
        except (OSError, ValueError):
            return None

    def start(self) -> LoadMeter:
        """Record the counters now. Returns: self."""
        self._start = (self.clock(), self.own_cpu(), self._jiffies())
        return self

    def stop(self) -> LoadSample:
        """Returns: the interval since ``start``."""
        if self._start is None:
            raise RuntimeError("LoadMeter.stop() before start()")
        t0, cpu0, j0 = self._start
        wall, cpu, j1 = self.clock() - t0, self.own_cpu() - cpu0, self._jiffies()
        if j0 is None or j1 is None:
            return LoadSample(wall, cpu, None, None)
        return LoadSample(wall, cpu, (j1[0] - j0[0]) / self.hz, (j1[1] - j0[1]) / self.hz)
