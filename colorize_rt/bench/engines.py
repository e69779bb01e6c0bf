"""TensorRT engines for the native-TensorRT rows, built once per (ONNX, precision) with the export
package's builder (``colorize_rt.export.tensorrt_engine``) and cached next to the other bench artefacts.

The network is strongly typed, so the ONNX fixes the precision: ``fp16`` builds from an fp16 copy
(``colorize_rt.export.fp16.convert_fp16``), ``int8`` from the Q/DQ model. The card profile is
``custom`` with this GPU's memory; shapes outside the engine's profiles fail and are recorded as that
case's error.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..core.paths import cache_dir


def gpu_memory_gib() -> float:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    return float(out.strip().splitlines()[0]) / 1024


def cached_engine(onnx_path: Path, precision: str) -> Path:
    """The engine for (ONNX, precision, TensorRT version), built once with the export package's builder.

    Args:
        onnx_path: the fp32 ONNX (``fp16``) or the INT8 Q/DQ ONNX (``int8``).
        precision: ``fp16`` or ``int8``.

    Returns:
        The engine path (its sidecar next to it).
    """
    from ..core.hashing import file_sha256
    from ..export.tensorrt_engine import build_engine as trt_build
    from ..export.tensorrt_engine import card_profile, require_tensorrt

    folder = cache_dir("bench", "COLORIZE_BENCH_CACHE") / "engines"
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{file_sha256(onnx_path)[:16]}-{precision}-trt{require_tensorrt().__version__}"
    engine = folder / f"{key}.engine"
    if engine.is_file():
        return engine
    src = Path(onnx_path)
    if precision == "fp16":
        from ..export.fp16 import convert_fp16

        src = convert_fp16(onnx_path, folder / f"{key}.onnx")
    trt_build(src, engine, card_profile("custom", memory_gib=gpu_memory_gib()), log=lambda msg: None)
    return engine
