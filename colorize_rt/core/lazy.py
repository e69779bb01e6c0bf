"""Lazy imports of heavy optional dependencies with an actionable message when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

# The GPU extras, one per CUDA major (docs/gpu.md says which driver each needs).
GPU_INSTALL = "pip install 'colorize-rt[gpu-cu12]' (CUDA 12 driver) or 'colorize-rt[gpu-cu13]' (CUDA 13 driver)"

# module -> what to pip install
_HINTS = {
    "torch": "pip install 'colorize-rt[train]' torch==2.13.0",
    "onnx": "pip install 'colorize-rt[train]'",
    "onnxconverter_common": "pip install 'colorize-rt[train]'",
    "tensorrt": f"{GPU_INSTALL}; TensorRT needs a machine with an NVIDIA GPU",
    "cuda": f"{GPU_INSTALL} for cuda-python",
    "yaml": "pip install pyyaml",
    "matplotlib": "pip install matplotlib",
    "psutil": "pip install psutil",
    "redis": "pip install 'colorize-rt[serve]'",
    "gradio": "pip install 'colorize-rt[serve]'",
    "streamlit": "pip install 'colorize-rt[serve]'",
    "ray": "pip install 'colorize-rt[cluster]'",
    "fsspec": "pip install 'colorize-rt[cluster]'",
    "s3fs": "pip install 'colorize-rt[cluster]'",
    "gcsfs": "pip install 'colorize-rt[cluster]'",
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message says what to install."""


def require(module: str) -> ModuleType:
    """Import ``module`` now or raise MissingDependency naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        hint = _HINTS.get(top, f"pip install {top}")
        raise MissingDependency(f"{module} is not installed: {hint}") from exc


def available(module: str) -> bool:
    try:
        require(module)
    except MissingDependency:
        return False
    return True
