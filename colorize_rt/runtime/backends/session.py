"""The one place an ONNX Runtime ``InferenceSession`` is made (torch-free).

Every session the project opens goes through ``ort_session`` so they all share the same defaults:
logging off (``log_severity_level=4``: the temperature input doubling as an initializer is expected, and
errors come back as exceptions that callers report in one line, without ONNX Runtime's coloured log line)
and the CPU provider unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from ..limits import THREADS

CPU = ["CPUExecutionProvider"]
QUIET = 4  # ONNX Runtime severity: 0 verbose .. 4 fatal; errors also come back as exceptions, reported in one line


def ort_session(
    model: str | Path | bytes,
    providers: list | None = None,
    *,
    threads: int = 0,
    optimization: str | None = None,
    optimized_path: str | Path | None = None,
    config: dict[str, str] | None = None,
):
    """Open an ONNX Runtime session with the project's defaults.

    Args:
        model: an ONNX file path or serialized model bytes.
        providers: execution providers (default: CPU only).
        threads: intra-op threads (0: ONNX Runtime's default, all cores; at most ``limits.THREADS``' 256).
        optimization: graph optimisation level by name: ``"disable"``, ``"basic"``, ``"extended"`` or
            ``"all"`` (default: ONNX Runtime's, ``"all"``).
        optimized_path: also save the optimised graph here (ONNX Runtime's ``optimized_model_filepath``).
        config: session configuration entries (``SessionOptions.add_session_config_entry``), e.g.
            ``{"session.intra_op.allow_spinning": "0"}``.

    Returns:
        The ``onnxruntime.InferenceSession``.

    Raises:
        ParameterError: ``threads`` outside ``limits.THREADS``.
    """
    import onnxruntime as ort

    threads = THREADS.check(threads)

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    opts = ort.SessionOptions()
    opts.log_severity_level = QUIET
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # the graph runs in sequence (ORT's default mode): no pool of idle inter-op threads
    if optimization is not None:
        if optimization not in levels:
            raise ValueError(f"unknown optimization level '{optimization}': use one of {', '.join(levels)}")
        opts.graph_optimization_level = levels[optimization]
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    for key, value in (config or {}).items():
        opts.add_session_config_entry(key, value)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=providers or CPU)
