"""What machine and software produced the numbers: CPU model and flags, cores, memory, versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from ..core.cpu import cpu_flags, cpu_model

INTERESTING_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "neon",
    "asimd",
    "asimddp",
    "sve",
)
PACKAGES = (
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "opencv-python-headless",
    "opencv-python",
    "tensorrt",
    "matplotlib",
    "psutil",
    "colorize-rt",
)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def gpus() -> list[str]:
    """NVIDIA GPU names (empty without nvidia-smi or a GPU)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:
        pass
    return out


def machine_tag(model: str | None = None, cores: int | None = None, gpu_names: list[str] | None = None) -> str:
    """A short folder name for this machine, e.g. ``amd-epyc-2cpu`` or ``intel-xeon-8cpu-nvidia-h100``."""
    model = cpu_model() if model is None else model
    cores = cpu_count() if cores is None else cores
    gpu_names = gpus() if gpu_names is None else gpu_names
    words = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$|\d+-core", " ", model.lower())
    words = [w for w in re.split(r"[^a-z0-9]+", words) if w][:3]
    tag = "-".join([*words, f"{cores}cpu"]) if words else f"{platform.machine().lower()}-{cores}cpu"
    if gpu_names:
        gpu = re.split(r"[^a-z0-9]+", gpu_names[0].split(",")[0].lower())
        tag += "-" + "-".join(w for w in gpu if w)[:40]
    return tag


def machine_info() -> dict:
    flags = cpu_flags()
    gpu_names = gpus()
    return {
        "tag": machine_tag(gpu_names=gpu_names),
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": cpu_count(),
        "memory_gb": memory_gb(),
        "os": platform.platform(),
        "gpus": gpu_names,
        "cpu_flags": [f for f in INTERESTING_FLAGS if f in flags],
        "cpu_flags_all": sorted(flags),
        "versions": versions(),
    }
