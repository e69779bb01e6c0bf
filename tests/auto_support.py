"""Fakes for ``auto``'s load check (runtime/backends/cpu_load.py): ``/proc/stat`` texts in the kernel's format,
advanced by what a fake machine did, so tests do not depend on what else this machine runs."""

from __future__ import annotations

from colorize_rt.runtime.backends.cpu_load import LoadMeter

HZ = 100.0
# The layout of a real /proc/stat (2 CPUs); only the first line's numbers move in these fakes.
_REST = """cpu0 515738 73731 68199 326394 2121 0 3063 760 0 0
cpu1 515739 73731 68200 326394 2121 0 3064 761 0 0
intr 123456789 0 9 0 0 0 0 0 0 0 0
ctxt 987654321
btime 1765087200
processes 54321
procs_running 3
procs_blocked 0
softirq 2345678 0 345678 1 45678 0 0 5678 456789 0 34567
"""


def proc_stat(user: int, system: int, idle: int, iowait: int = 0) -> str:
    """Returns: a /proc/stat text whose ``cpu`` line has these jiffies (nice, irq, softirq, steal fixed)."""
    return f"cpu  {user} 147462 {system} {idle} {iowait} 0 6127 1521 0 0\n" + _REST


class FakeMachine:
    """A 2-CPU machine on which other processes take ``others_share`` of the CPU while we use ``own_cpu_s``.

    ``meter()`` is a ``LoadMeter`` that reads it: each ``stop`` sees ``wall_s`` seconds pass.
    """

    def __init__(self, others_share: float, own_cpu_s: float = 1.0, wall_s: float = 2.0, cpus: int = 2):
        self.others_share, self.own_cpu_s, self.wall_s, self.cpus = others_share, own_cpu_s, wall_s, cpus
        self.user, self.system, self.idle = 1031477, 136399, 652788
        self.clock_s = 1000.0
        self.cpu_s = 5.0

    def advance(self) -> None:
        capacity = self.wall_s * self.cpus * HZ
        busy = round((self.others_share * self.wall_s * self.cpus + self.own_cpu_s) * HZ)
        busy = min(busy, round(capacity))
        self.user += busy * 3 // 4
        self.system += busy - busy * 3 // 4
        self.idle += round(capacity) - busy
        self.clock_s += self.wall_s
        self.cpu_s += self.own_cpu_s

    def meter(self) -> LoadMeter:
        def read() -> str:
            return proc_stat(self.user, self.system, self.idle)

        meter = LoadMeter(read_stat=read, own_cpu=lambda: self.cpu_s, clock=lambda: self.clock_s, hz=HZ)
        stop = meter.stop

        def stop_after_interval():
            self.advance()  # the measured interval passes on the fake machine
            return stop()

        meter.stop = stop_after_interval
        return meter
