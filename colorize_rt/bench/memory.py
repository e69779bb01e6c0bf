"""Peak resident memory of this process over a window of code, and GPU memory where there is a GPU.

On Linux the kernel's high-water mark (VmHWM) is reset by writing ``5`` to ``/proc/self/clear_refs``,
so ``with PeakRss() as m: ...`` gives the exact peak inside the block. Elsewhere it falls back to
``ru_maxrss`` (the peak over the process lifetime; ``exact`` is then False).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        import psutil  # dev extra; only reached off Linux

        return psutil.Process().memory_info().rss / 2**20
    return kb / 1024


def _reset_peak() -> bool:
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def _lifetime_peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class PeakRss:
    """Context manager: ``start_mb`` (RSS on entry), ``peak_mb`` (highest RSS inside), ``exact``."""

    def __enter__(self) -> PeakRss:
        self.start_mb = current_rss_mb()
        self.exact = _reset_peak()
        self.peak_mb = self.start_mb
        return self

    def __exit__(self, *exc) -> None:
        kb = _status_kb("VmHWM") if self.exact else None
        self.peak_mb = kb / 1024 if kb is not None else _lifetime_peak_mb()

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


def gpu_memory_used_mb() -> float | None:
    """Device memory in use on GPU 0 (all processes) via nvidia-smi; None without a GPU."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
