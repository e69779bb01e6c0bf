"""CPU facts the project acts on, judged from feature flags (so both answers are tested on any machine)."""

import pytest

from colorize_rt.core.cpu import cpu_flags, cpu_model, int8_dot_path, merge_flags, native_bf16

AVX2_EPYC = frozenset("sse4_2 avx avx2 fma f16c".split())
VNNI_EPYC = AVX2_EPYC | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}
SAPPHIRE = VNNI_EPYC | {"avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"}


@pytest.mark.parametrize(
    ("flags", "path", "bf16"),
    [
        (AVX2_EPYC, "avx2", False),
        (VNNI_EPYC, "vnni", False),
        (AVX2_EPYC | {"avx_vnni"}, "vnni", False),
        (SAPPHIRE, "vnni", True),
        (AVX2_EPYC | {"avx512_bf16"}, "avx2", True),
        (frozenset({"asimd", "neon"}), "other", False),
        (frozenset(), "other", False),
    ],
)
def test_int8_path_and_bf16_follow_the_flags(flags, path, bf16):
    assert int8_dot_path(flags) == path
    assert native_bf16(flags) is bf16


def test_this_machine_is_described():
    assert cpu_model()
    assert isinstance(cpu_flags(), frozenset)
    assert int8_dot_path() in ("vnni", "avx2", "other")


def test_an_emulated_cpu_is_judged_by_cpuid_not_by_the_hosts_proc_cpuinfo():
    """qemu-x86_64 -cpu Haswell on a Sapphire Rapids host: /proc/cpuinfo lists the host's VNNI/AMX/BF16, CPUID
    (what the emulated code really has) only AVX2. The merged flags must be the Haswell ones."""
    haswell_cpuid = {"SSE42": True, "AVX": True, "AVX2": True, "FMA3": True, "F16C": True, "AVX512F": False}
    flags = merge_flags(SAPPHIRE | {"avx_vnni"}, haswell_cpuid)
    assert int8_dot_path(flags) == "avx2"
    assert not native_bf16(flags)
    assert "amx_int8" not in flags and "avx_vnni" not in flags


def test_a_real_cpu_keeps_the_flags_cpuid_does_not_track():
    cpuid = {"SSE42": True, "AVX": True, "AVX2": True, "FMA3": True, "F16C": True}
    alder_lake = AVX2_EPYC | {"avx_vnni"}  # AVX-VNNI without AVX-512: only /proc/cpuinfo names it
    assert int8_dot_path(merge_flags(alder_lake, cpuid)) == "vnni"
    assert merge_flags(AVX2_EPYC, None) == AVX2_EPYC  # no CPUID source: /proc/cpuinfo as it is
