"""Backend selection: ``auto | cpu | cuda | tensorrt | ort-trt`` -> an activated runner.

``auto`` tries the fastest backend this machine offers (a native TensorRT engine for ``.engine`` models;
for ``.onnx`` models the ONNX Runtime TensorRT EP, then the CUDA EP) and, when GPU initialisation fails,
falls back to the CPU with a single warning line. An explicitly requested backend never falls back: it
fails with one actionable line (``BackendError``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ...core.lazy import GPU_INSTALL, MissingDependency, available
from ...core.paths import cache_dir
from .runners import OrtRunner, Runner
from .selfcheck import Verdict, cache_enabled, check_runner
from .shipped_models import is_engine, model_metadata

BACKENDS = ("auto", "cpu", "cuda", "tensorrt", "ort-trt")
_PROVIDER = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


class BackendError(RuntimeError):
    """The requested backend cannot run here; the message is one actionable line."""


class SelfCheckError(BackendError):
    """The model's known-answer probe disagrees with its fp32 reference on this backend; ``verdict`` says by
    how much (the message is one line naming the cause)."""

    def __init__(self, verdict: Verdict):
        super().__init__(f"{verdict.model} on {verdict.backend}: {verdict.cause()}")
        self.verdict = verdict


def ort_providers() -> list[str]:
    """Execution providers compiled into the installed onnxruntime (a seam for tests)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def native_tensorrt_available() -> bool:
    return available("tensorrt") and (available("cuda.bindings") or available("cuda.cudart"))


def available_backends() -> dict[str, bool]:
    providers = ort_providers()
    return {
        "cpu": True,
        "cuda": _PROVIDER["cuda"] in providers,
        "ort-trt": _PROVIDER["ort-trt"] in providers,
        "tensorrt": native_tensorrt_available(),
    }


def provider_list(backend: str, max_side: int = 1024, max_batch: int = 8) -> list:
    """The ONNX Runtime provider list for an ORT backend (``cpu``, ``cuda``, ``ort-trt``)."""
    if backend == "cpu":
        return ["CPUExecutionProvider"]
    if backend == "cuda":
        return [("CUDAExecutionProvider", {}), "CPUExecutionProvider"]
    if backend == "ort-trt":
        side = -(-max_side // 8) * 8
        trt_opts = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir("ort-trt")),
            # One dynamic profile covering every fit-mode and tile shape, so no per-shape rebuilds.
            "trt_profile_min_shapes": "L:1x1x8x8",
            "trt_profile_opt_shapes": "L:1x1x256x256",
            "trt_profile_max_shapes": f"L:{max_batch}x1x{side}x{side}",
        }
        return [
            ("TensorrtExecutionProvider", trt_opts),
            ("CUDAExecutionProvider", {}),
            "CPUExecutionProvider",
        ]
    raise ValueError(f"not an ONNX Runtime backend: {backend}")


def make_runner(backend: str, model_path: Path, threads: int = 0, max_side: int = 1024) -> Runner:
    """A (not yet activated) runner for ``backend``."""
    if backend == "tensorrt":
        from .tensorrt_runner import TrtRunner

        return TrtRunner(model_path)
    runner = OrtRunner(
        model_path, provider_list(backend, max_side), threads=threads, strict=backend != "cpu", spin=backend != "cpu"
    )
    runner.name = f"onnxruntime-{backend}"
    return runner


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_explicit(backend: str, model_path: Path) -> None:
    engine = is_engine(model_path)
    if backend == "tensorrt" and not engine:
        raise BackendError(
            "--backend tensorrt runs a TensorRT engine: build one with colorize-engine and pass "
            "--model PATH.engine "
            "(or use --backend ort-trt to run this .onnx through ONNX Runtime's TensorRT EP)"
        )
    if backend != "tensorrt" and engine:
        raise BackendError(f"{model_path.name} is a TensorRT engine: use --backend tensorrt (or auto)")
    if backend in ("cuda", "ort-trt") and _PROVIDER[backend] not in ort_providers():
        raise BackendError(
            f"--backend {backend}: this onnxruntime has no {_PROVIDER[backend]}; "
            f"{GPU_INSTALL} (onnxruntime-gpu), or use --backend cpu"
        )


def _verify(runner: Runner, model_path: Path, backend: str, verdicts: list | None) -> Verdict:
    """Run (or recall) the known-answer check; a failing runner is deactivated."""
    verdict = check_runner(runner, model_path, backend, use_cache=cache_enabled())
    if verdicts is not None:
        verdicts.append(verdict)
    if verdict.status == "fail":
        runner.deactivate()
    return verdict


def _note_unchecked(verdict: Verdict, warn: Callable[[str], None]) -> None:
    if verdict.status == "unchecked":
        warn(f"colorize-rt: note: {verdict.cause()}; its output is not verified")


def _open_explicit(backend: str, model_path: Path, threads: int, max_side: int, verdicts: list | None) -> tuple[Runner, Verdict]:
    _check_explicit(backend, model_path)
    runner = make_runner(backend, model_path, threads, max_side)
    try:
        runner.activate()
    except MissingDependency as exc:
        raise BackendError(f"--backend {backend}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - GPU init fails in many ways; report it in one line
        raise BackendError(f"--backend {backend} failed to initialise: {_one_line(exc)}") from None
    verdict = _verify(runner, model_path, backend, verdicts)
    if verdict.status == "fail":
        raise SelfCheckError(verdict)
    return runner, verdict


def cpu_only_int8(model_path: Path) -> bool:
    """Whether ``model_path`` is an INT8 model quantized for ONNX Runtime's CPU kernels (uint8 activations,
    ``int8_target=cpu``), which TensorRT does not accept; ``auto`` then skips the TensorRT EP for it."""
    try:
        return model_metadata(model_path).get("int8_target") == "cpu"
    except Exception:  # noqa: BLE001 - an unreadable model fails later with its own message
        return False


def open_runner(
    model_path: str | Path,
    backend: str = "auto",
    threads: int = 0,
    max_side: int = 1024,
    warn: Callable[[str], None] | None = None,
    verdicts: list | None = None,
) -> tuple[Runner, str]:
    """Activate a runner for ``model_path`` on ``backend`` and run its known-answer check.

    An explicit backend whose check fails raises ``SelfCheckError``; ``auto`` moves on to the next candidate
    (GPU backends, then the CPU) and raises ``SelfCheckError`` only when the CPU fails too. A model without a
    probe runs, with one note line.

    Args:
        model_path: ``.onnx`` model or TensorRT engine.
        backend: one of ``BACKENDS``.
        threads: CPU threads for ONNX Runtime (0: all).
        max_side: largest input side (sizes the TensorRT EP profile).
        warn: where warning lines go (default: stderr).
        verdicts: a list that collects every check's ``Verdict`` (for ``--info``).

    Returns:
        (activated runner, backend actually used).
    """
    model_path = Path(model_path)
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        runner, verdict = _open_explicit(backend, model_path, threads, max_side, verdicts)
        _note_unchecked(verdict, warn)
        return runner, backend

    avail = available_backends()
    if is_engine(model_path):
        candidates, cpu_model = ["tensorrt"], model_path.with_suffix(".onnx")
    else:
        candidates, cpu_model = [b for b in ("ort-trt", "cuda") if avail[b]], model_path
        if "ort-trt" in candidates and cpu_only_int8(model_path):
            candidates.remove("ort-trt")
    failures = []
    for cand in candidates:
        runner = make_runner(cand, model_path, threads, max_side)
        try:
            runner.activate()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{cand}: {_one_line(exc)}")
            continue
        verdict = _verify(runner, model_path, cand, verdicts)
        if verdict.status != "fail":
            _note_unchecked(verdict, warn)
            return runner, cand
        failures.append(f"{cand}: {verdict.cause()}")
    if is_engine(model_path) and not cpu_model.is_file():
        raise BackendError(
            f"cannot run TensorRT engine {model_path.name} ({'; '.join(failures)}) and there is no "
            f"{cpu_model.name} next to it for the CPU fallback"
        )
    runner = make_runner("cpu", cpu_model, threads, max_side)
    try:
        runner.activate()
    except MissingDependency:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises many types for a bad file; one line
        raise BackendError(f"cannot open {cpu_model} on the CPU: {_one_line(exc)}") from None
    verdict = _verify(runner, cpu_model, "cpu", verdicts)
    if verdict.status == "fail":
        raise SelfCheckError(verdict)
    if failures:
        warn(f"colorize-rt: warning: GPU backend unavailable ({'; '.join(failures)}); falling back to CPU")
    _note_unchecked(verdict, warn)
    return runner, "cpu"
