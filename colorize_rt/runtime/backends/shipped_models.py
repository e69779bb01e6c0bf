"""Model names -> files, and what a model file says about itself (sha256, precision, metadata).

Names: ``default``, ``default-int8``, ``default-l2`` (shipped in ``colorize_rt/assets/``; the folder can be
overridden with ``COLORIZE_RT_ASSETS``), or a path to a ``.onnx`` model / ``.engine`` TensorRT engine.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from ...core.hashing import file_sha256
from .session import ort_session

SHIPPED = {"default": "default.onnx", "default-int8": "default-int8.onnx", "default-l2": "default-l2.onnx"}
MODEL_EXTS = (".onnx", ".engine", ".plan", ".trt")


class ModelError(ValueError):
    """A model name or file that cannot be used; the message is one actionable line."""


def assets_dir() -> Path:
    env = os.environ.get("COLORIZE_RT_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "assets"


def resolve_model(name: str | Path = "default") -> Path:
    """``default`` / ``default-int8`` / ``default-l2`` / a path -> an existing model file."""
    key = str(name)
    if key in SHIPPED:
        path = assets_dir() / SHIPPED[key]
        if not path.is_file():
            raise ModelError(
                f"no model yet: '{key}' ({path}) is not shipped in this install; "
                f"pass --model PATH.onnx, or use --method transfer --reference IMG"
            )
        return path
    path = Path(key).expanduser()
    if path.suffix.lower() not in MODEL_EXTS:
        raise ModelError(f"unknown model '{key}': use {', '.join(SHIPPED)} or a path to a .onnx model / .engine TensorRT engine")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return path


def is_engine(path: Path) -> bool:
    return path.suffix.lower() in (".engine", ".plan", ".trt")


@lru_cache(maxsize=16)
def _onnx_metadata(path: str, mtime: float) -> dict[str, str]:
    sess = ort_session(path, optimization="disable")  # only the metadata is read
    return dict(sess.get_modelmeta().custom_metadata_map)


def model_metadata(path: str | Path) -> dict[str, str]:
    """metadata_props of an ONNX model, or the JSON sidecar of a TensorRT engine."""
    path = Path(path)
    if is_engine(path):
        sidecar = path.with_name(path.name + ".json")
        if sidecar.is_file():
            try:
                return {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(sidecar.read_text()).items()}
            except ValueError:
                return {}
        return {}
    return _onnx_metadata(str(path), path.stat().st_mtime)


def model_summary(path: str | Path) -> dict:
    """{path, sha256, size_bytes, precision, metadata} for ``--info`` and ``Colorizer.info()``."""
    path = Path(path)
    meta = model_metadata(path)
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "size_bytes": path.stat().st_size,
        "precision": meta.get("precision", "unknown"),
        "metadata": meta,
    }
