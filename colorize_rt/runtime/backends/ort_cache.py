"""ONNX Runtime's optimised graph, saved once and reused: CPU sessions skip graph optimisation at start.

ONNX Runtime rewrites a model at every session start (constant folding, fusions, NCHWc layouts for this
CPU's vector width), which costs more than a small image's whole colorization. ``cpu_session`` saves the
optimised graph the first time under ``<cache root>/ort-optimized/`` and opens that copy, with optimisation
off, afterwards. The file name carries everything the optimised graph depends on: the model's sha256, the
ONNX Runtime version and the CPU's feature flags (NCHWc kernels differ between AVX2 and AVX-512), so a
new model, an upgrade or another machine sharing the folder never reuses a stale graph.

Nothing here is fatal: an unwritable cache folder means an ordinary session (optimised in memory), and
a cached file that does not load is deleted and rebuilt. ``COLORIZE_RT_ORT_CACHE=0`` turns the cache off;
``COLORIZE_RT_ORT_CACHE=read`` uses saved graphs but writes nothing (``colorize-rt --info`` sets it).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from ...core.cpu import cpu_flags
from ...core.hashing import file_sha256
from ...core.paths import cache_dir
from .session import ort_session

CACHE_ENV = "COLORIZE_RT_ORT_CACHE"


@lru_cache(maxsize=8)
def _model_hash(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def optimized_path(model: str | Path) -> Path:
    """Where the optimised graph of ``model`` for this ONNX Runtime and CPU is kept.

    Args:
        model: the ONNX model file.

    Returns:
        ``<cache root>/ort-optimized/<stem>-<model hash>-ort<version>-<cpu-flags hash>.onnx``.
    """
    import onnxruntime as ort

    p = Path(model)
    st = p.stat()
    model_hash = _model_hash(str(p.resolve()), st.st_size, st.st_mtime_ns)[:16]
    cpu = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    return cache_dir("ort-optimized") / f"{p.stem}-{model_hash}-ort{ort.__version__}-cpu{cpu}.onnx"


def ort_cache_mode() -> str:
    """Returns: ``"off"`` (``COLORIZE_RT_ORT_CACHE`` is 0 / off / false / no), ``"read"`` (use saved graphs,
    never write: e.g. ``colorize-rt --info``) or ``"on"``."""
    value = os.environ.get(CACHE_ENV, "1").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    return "read" if value == "read" else "on"


def cpu_session(model: str | Path, threads: int = 0, spin: bool = True):
    """A CPU ``InferenceSession`` of ``model`` that reuses the saved optimised graph (see the module doc).

    Args:
        model: the ONNX model file.
        threads: intra-op threads (0: all cores).
        spin: let idle intra-op threads spin (lowest latency); False frees the cores for other work between
            operators (decoding and encoding running next to the network).

    Returns:
        The ``onnxruntime.InferenceSession`` (CPU provider).
    """
    extra = {} if spin else {"session.intra_op.allow_spinning": "0"}
    mode = ort_cache_mode()
    if mode == "off":
        return ort_session(model, threads=threads, config=extra)
    try:
        cached = optimized_path(model)
    except OSError:
        return ort_session(model, threads=threads, config=extra)
    if cached.is_file():
        try:
            return ort_session(cached, threads=threads, optimization="disable", config=extra)
        except Exception:  # noqa: BLE001 - a damaged or foreign cache entry: drop it and rebuild
            if mode == "read":
                return ort_session(model, threads=threads, config=extra)
            cached.unlink(missing_ok=True)
    if mode == "read":
        return ort_session(model, threads=threads, config=extra)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cached.stem}.", suffix=".onnx.tmp", dir=cached.parent)
        os.close(fd)
    except OSError:  # read-only or unusable cache folder: an ordinary session
        return ort_session(model, threads=threads, config=extra)
    try:
        session = ort_session(model, threads=threads, optimized_path=tmp, config=extra)
        if Path(tmp).stat().st_size > 0:
            os.replace(tmp, cached)  # atomic: concurrent processes never see a partial file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return session
