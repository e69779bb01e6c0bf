"""What this CPU can do natively: its model name and feature flags, and the two facts the project acts on.

* ``native_bf16()``: bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16). Without it PyTorch emulates bf16
  autocast on the CPU, several times slower than fp32, so training picks fp32 there.
* ``int8_dot_path()``: how ONNX Runtime's x86 u8s8 integer kernels compute a dot product. With VNNI (AVX512-VNNI
  or AVX-VNNI) or AMX they accumulate in int32 exactly; with only AVX2 they use VPMADDUBSW, whose int16 pair
  sums saturate, so INT8 results differ from the exact integer product.

The flags come from the CPU itself (CPUID, as NumPy's runtime dispatch reads it) and from /proc/cpuinfo for the
ones NumPy does not track (AVX-VNNI, AMX). Under an emulator such as ``qemu-x86_64 -cpu Haswell`` /proc/cpuinfo
describes the host, not the emulated CPU: where the two sources disagree, only CPUID's answer is used. Without
either source both facts answer conservatively (no bf16, not VNNI).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    """Returns: the CPU's model name (or the platform's best guess)."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


# NumPy's CPUID feature names -> the kernel's /proc/cpuinfo names.
_CPUID_NAMES = {
    "SSE42": "sse4_2", "AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "F16C": "f16c", "AVX512F": "avx512f",
    "AVX512BW": "avx512bw", "AVX512VL": "avx512vl", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16",
}  # fmt: skip


def _numpy_cpuid() -> dict[str, bool] | None:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return None
    return dict(__cpu_features__)


def merge_flags(proc: frozenset[str], cpuid: dict[str, bool] | None) -> frozenset[str]:
    """Combine /proc/cpuinfo flags with CPUID's: CPUID decides every flag it knows; the others (AVX-VNNI, AMX)
    are kept only when /proc/cpuinfo agrees with CPUID on all the flags both know (it is not an emulated CPU).

    Args:
        proc: flags from /proc/cpuinfo.
        cpuid: NumPy's ``__cpu_features__`` (None where unavailable).
    Returns:
        the flags, in /proc/cpuinfo's names.
    """
    if cpuid is None:
        return proc
    known = frozenset(_CPUID_NAMES.values())
    from_cpuid = frozenset(name for key, name in _CPUID_NAMES.items() if cpuid.get(key))
    agree = (proc & known) == from_cpuid
    return from_cpuid | (proc - known if agree else frozenset())


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Returns: the CPU's feature flags in /proc/cpuinfo's names (empty where unknown)."""
    info = _cpuinfo()
    proc = frozenset((info.get("flags") or info.get("Features") or "").split())
    return merge_flags(proc, _numpy_cpuid())


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Returns: whether the CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16).

    Args:
        flags: feature flags to judge (default: this CPU's).
    """
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def int8_dot_path(flags: frozenset[str] | None = None) -> str:
    """Returns: ``"vnni"`` (exact int32 accumulation: VNNI or AMX), ``"avx2"`` (VPMADDUBSW: int16 pair sums
    saturate), or ``"other"`` (not x86, or no AVX2).

    Args:
        flags: feature flags to judge (default: this CPU's).
    """
    flags = cpu_flags() if flags is None else flags
    if any(f in flags for f in VNNI_FLAGS):
        return "vnni"
    if "avx2" in flags:
        return "avx2"
    return "other"


def usable_cores() -> int:
    """Returns: the CPU cores this process may run on (its affinity mask where the OS has one, else all)."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
