"""Backend selection: ``auto | cpu | cuda | tensorrt | ort-trt | openvino | opencv`` -> an activated runner.

``auto`` tries the GPU backends this machine offers (a native TensorRT engine for ``.engine`` models; for
``.onnx`` models the ONNX Runtime TensorRT EP, then the CUDA EP) and, when none initialises, falls back to the
CPU with a single warning line. On the CPU it runs the fastest of OpenVINO, ONNX Runtime (``cpu``) and OpenCV
dnn, on the model or on the INT8 variant the caller offers, as measured on this machine (``auto_choice``);
OpenVINO missing is one line and the others are measured. An explicitly requested backend never falls back:
it fails with one actionable line (``BackendError``). ``--backend openvino`` on a CPU with bf16 arithmetic
(AVX512-BF16 / AMX) computes an fp32 model in bf16 only where its self-check passes, else in f32.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ...core.cpu import cpu_model, native_bf16
from ...core.lazy import GPU_INSTALL, MissingDependency, available
from ...core.paths import cache_dir
from . import auto_background, auto_choice
from .auto_choice import (
    MEASURE_SIDE,
    CandidateRefused,
    CandidateRow,
    CpuChoice,
    ProvisionalChoice,
    auto_cache_mode,
    choice_key,
    library_versions,
    load_choice,
    save_choice,
    time_candidates,
)
from .opencv_runner import OpenCVRunner
from .openvino_runner import OpenVinoRunner
from .runners import OrtRunner, Runner
from .selfcheck import Verdict, cache_enabled, check_runner, model_sha256
from .shipped_models import is_engine, model_metadata

BACKENDS = ("auto", "cpu", "cuda", "tensorrt", "ort-trt", "openvino", "opencv")
CPU_BACKENDS = ("cpu", "openvino", "opencv")  # what auto times on the CPU (ONNX Runtime first: its errors name the file)
OPENVINO_MISSING = "OpenVINO is not installed (pip install openvino)"
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


def openvino_version() -> str | None:
    """Returns: the installed OpenVINO's version, or None where it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return None


def openvino_installed() -> bool:
    """Returns: whether OpenVINO is installed, found without importing it (its import costs 0.1-0.4 s of every
    start that then runs ONNX Runtime; a seam for tests)."""
    import importlib.util

    return "openvino" in sys.modules or importlib.util.find_spec("openvino") is not None


def native_tensorrt_available() -> bool:
    return available("tensorrt") and (available("cuda.bindings") or available("cuda.cudart"))


def available_backends() -> dict[str, bool]:
    providers = ort_providers()
    return {
        "cpu": True,
        "cuda": _PROVIDER["cuda"] in providers,
        "ort-trt": _PROVIDER["ort-trt"] in providers,
        "tensorrt": native_tensorrt_available(),
        "openvino": openvino_installed(),
        "opencv": available("cv2"),
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


def make_runner(
    backend: str, model_path: Path, threads: int = 0, max_side: int = 1024, purpose: str = "latency", precision: str = "f32"
) -> Runner:
    """A (not yet activated) runner for ``backend``.

    Args:
        backend: a ``BACKENDS`` name other than ``auto``.
        model_path: the model file.
        threads: CPU threads (0: all).
        max_side: largest input side (sizes the TensorRT EP profile).
        purpose: ``latency`` or ``throughput`` (OpenVINO's performance hint).
        precision: OpenVINO's inference precision, ``f32`` or ``bf16``.

    Returns:
        The runner.
    """
    if backend == "tensorrt":
        from .tensorrt_runner import TrtRunner

        return TrtRunner(model_path)
    if backend == "openvino":
        return OpenVinoRunner(model_path, threads, purpose, precision)
    if backend == "opencv":
        return OpenCVRunner(model_path, threads)
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


def _verify(runner: Runner, model_path: Path, backend: str, verdicts: list | None, judge_as: str | None = None) -> Verdict:
    """Run (or recall) the known-answer check (``judge_as``: see ``check_runner``); a failing runner is deactivated."""
    verdict = check_runner(runner, model_path, backend, use_cache=cache_enabled(), judge_as=judge_as)
    if verdicts is not None:
        verdicts.append(verdict)
    if verdict.status == "fail":
        runner.deactivate()
    return verdict


def _note_unchecked(verdict: Verdict, warn: Callable[[str], None]) -> None:
    if verdict.status == "unchecked":
        warn(f"colorize-rt: note: {verdict.cause()}; its output is not verified")


def openvino_precisions(model_path: Path) -> list[str]:
    """Returns: the OpenVINO precisions to try for ``model_path``, preferred first: ``bf16`` then ``f32`` for an
    fp32 model on a CPU with bf16 arithmetic (AVX512-BF16 / AMX), else ``f32`` only (a seam for tests)."""
    try:
        fp32 = model_metadata(model_path).get("precision", "fp32") == "fp32"
    except Exception:  # noqa: BLE001 - an unreadable model fails on activation with its own message
        fp32 = False
    return ["bf16", "f32"] if fp32 and native_bf16() else ["f32"]


def _open_explicit(
    backend: str, model_path: Path, threads: int, max_side: int, verdicts: list | None, purpose: str = "latency"
) -> tuple[Runner, Verdict]:
    _check_explicit(backend, model_path)
    precisions = openvino_precisions(model_path) if backend == "openvino" else ["f32"]
    for i, precision in enumerate(precisions):
        runner = make_runner(backend, model_path, threads, max_side, purpose, precision)
        try:
            runner.activate()
        except MissingDependency as exc:
            raise BackendError(f"--backend {backend}: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - GPU init fails in many ways; report it in one line
            raise BackendError(f"--backend {backend} failed to initialise: {_one_line(exc)}") from None
        verdict = _verify(runner, model_path, _verdict_backend(runner, backend), verdicts)
        if verdict.status != "fail":
            return runner, verdict
        if i == len(precisions) - 1:
            raise SelfCheckError(verdict)
    raise AssertionError("unreachable")


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
    *,
    purpose: str = "latency",
    variants: list[Path] | None = None,
    runs: int | None = None,
) -> tuple[Runner, str]:
    """Activate a runner for ``model_path`` on ``backend`` and run its known-answer check.

    An explicit backend whose check fails raises ``SelfCheckError``; ``auto`` moves on to the next candidate
    (GPU backends, then the CPU, where the fastest passing CPU runner is measured: ``open_cpu_auto``) and raises
    ``SelfCheckError`` only when every CPU candidate fails too. A model without a probe runs, with one note line.
    The runner ``auto`` chose on the CPU carries the table it chose from as ``runner.auto_choice``.

    Args:
        model_path: ``.onnx`` model or TensorRT engine.
        backend: one of ``BACKENDS``.
        threads: CPU threads for ONNX Runtime (0: all).
        max_side: largest input side (sizes the TensorRT EP profile).
        warn: where warning lines go (default: stderr).
        verdicts: a list that collects every check's ``Verdict`` (for ``--info``).
        purpose: ``latency`` (single photos) or ``throughput`` (folders, batches): OpenVINO's hint.
        variants: other files of the same model ``auto`` may run instead on the CPU, when measured faster
            (the INT8 variant of ``default``); an explicit backend ignores them.
        runs: network runs the job will make, where known (a command's photos): ``auto`` then weighs each CPU
            runtime's per-process start-up against its speed (``CpuChoice.winner_for``); None: the fastest.

    Returns:
        (activated runner, backend actually used).
    """
    model_path = Path(model_path)
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        runner, verdict = _open_explicit(backend, model_path, threads, max_side, verdicts, purpose)
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
    runner, used, verdict = open_cpu_auto(cpu_model, variants or [], threads, max_side, purpose, warn, verdicts, runs)
    if failures:
        warn(f"colorize-rt: warning: GPU backend unavailable ({'; '.join(failures)}); falling back to CPU")
    _note_unchecked(verdict, warn)
    return runner, used


def _cpu_candidates(models: list[Path], warn: Callable[[str], None]) -> list[tuple[str, Path, str]]:
    """(backend, model, OpenVINO precision) for every CPU runner auto may time, the asked-for model first."""
    names = list(CPU_BACKENDS)
    if not openvino_installed():
        warn(f"colorize-rt: note: {OPENVINO_MISSING}; auto uses ONNX Runtime and OpenCV dnn")
        names.remove("openvino")
    if not available("cv2"):
        names.remove("opencv")
    out = []
    for model in models:
        for name in names:
            for precision in openvino_precisions(model) if name == "openvino" else ["f32"]:
                out.append((name, model, precision))
    return out


def _label(backend: str, model: Path, precision: str) -> str:
    runtime = {"cpu": "onnxruntime", "openvino": f"openvino-{precision}", "opencv": "opencv-dnn"}.get(backend, backend)
    return f"{runtime} {model.name}"


def _activate_cpu(backend: str, model: Path, threads: int, max_side: int, purpose: str, precision: str) -> Runner:
    runner = make_runner(backend, model, threads, max_side, purpose, precision)
    try:
        runner.activate()
    except MissingDependency:
        raise
    except Exception as exc:  # noqa: BLE001 - the runtimes raise many types for a bad file; one line
        raise BackendError(f"cannot open {model} on the CPU ({backend}): {_one_line(exc)}") from None
    return runner


def open_cpu_auto(
    model_path: Path,
    variants: list[Path],
    threads: int = 0,
    max_side: int = 1024,
    purpose: str = "latency",
    warn: Callable[[str], None] | None = None,
    verdicts: list | None = None,
    runs: int | None = None,
) -> tuple[Runner, str, Verdict]:
    """The fastest CPU runner that passes its self-check, measured once per (models, CPU, versions) and recalled.

    With a saved table its winner opens (and a ``loaded`` table is measured again, ``auto_choice.MAX_TRIES`` in
    all). Without one, the job never waits for the measurement: a provisional runner opens
    (``_open_provisional``) and the measurement starts in a detached low-priority process
    (``auto_background``), except where it must run here: ``COLORIZE_RT_AUTO_MEASURE=sync``, or
    ``COLORIZE_RT_AUTO_CACHE=0`` (nothing to hand over). ``--info`` (cache ``read``) starts nothing.

    Args:
        model_path: the model asked for.
        variants: other files of the same model that may run instead (its INT8 variant).
        threads: CPU threads (0: all).
        max_side: largest input side.
        purpose: ``latency`` or ``throughput``.
        warn: where note lines go.
        verdicts: collects every check's ``Verdict``.
        runs: network runs the job will make, where known (``CpuChoice.winner_for``); None: the fastest.

    Returns:
        (activated runner, its backend name, its verdict); ``runner.auto_choice`` is the ``CpuChoice`` (or the
        ``ProvisionalChoice`` while none is measured).

    Raises:
        SelfCheckError: no candidate passes (the asked-for model's first failure).
        BackendError: the asked-for model cannot be opened by any CPU runtime, or a bad ``COLORIZE_RT_AUTO_MEASURE``.
    """
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    models = _auto_models(model_path, variants)
    key = _key(models, threads, purpose)
    try:
        mode = auto_background.measure_mode()
    except ValueError as exc:
        raise BackendError(str(exc)) from None
    cache = auto_cache_mode()
    here = mode == "sync" or cache == "off"
    request = {"key": key, "model": str(model_path), "variants": [str(m) for m in models[1:]]}
    request |= {"threads": threads, "max_side": max_side, "purpose": purpose}
    choice = load_choice(key)
    if choice is not None:
        if here and cache == "on" and choice.needs_retry():
            opened = _measure_cpu(key, _cpu_candidates(models, warn), threads, max_side, purpose, verdicts, previous=choice)
            return _for_job(opened, models, threads, max_side, purpose, verdicts, runs)
        opened = _open_winner(choice, models, threads, max_side, purpose, verdicts, runs)
        if opened is not None:
            if cache == "on" and choice.needs_retry():
                auto_background.start_background(key, request)
            return opened
    if here:
        candidates = _cpu_candidates(models, warn)  # reads the models' metadata: only where no saved winner opened
        opened = _measure_cpu(key, candidates, threads, max_side, purpose, verdicts)
        return _for_job(opened, models, threads, max_side, purpose, verdicts, runs)
    return _open_provisional(key, models, warn, threads, max_side, purpose, verdicts, request, start=cache == "on")


def measure_cpu_choice(
    model_path: Path, variants: list[Path], threads: int = 0, max_side: int = 1024, purpose: str = "latency"
) -> CpuChoice:
    """Measure the CPU candidates now and save the table (what the background process runs).

    A table already saved for the key counts as the previous try: the least loaded of the two is kept.

    Args:
        model_path: the model asked for.
        variants: other files of the same model.
        threads: CPU threads (0: all).
        max_side: largest input side.
        purpose: ``latency`` or ``throughput``.

    Returns:
        The table saved (``where="background"`` when run in the background process).
    """
    models = _auto_models(model_path, variants)
    candidates = _cpu_candidates(models, lambda msg: None)
    key = _key(models, threads, purpose)
    runner, _, _ = _measure_cpu(key, candidates, threads, max_side, purpose, None, previous=load_choice(key), where="background")
    runner.deactivate()
    return runner.auto_choice


def _auto_models(model_path: Path, variants: list[Path]) -> list[Path]:
    return [model_path] + [v for v in variants if v.is_file() and v.resolve() != model_path.resolve()]


def _key(models: list[Path], threads: int, purpose: str) -> str:
    try:
        return choice_key([model_sha256(m) for m in models], threads, purpose)
    except OSError as exc:
        raise BackendError(f"cannot read {models[0]}: {_one_line(exc)}") from None


_RUNTIME_MODULE = {"cpu": "onnxruntime", "openvino": "openvino", "opencv": "cv2"}


def _runtime_installed(backend: str) -> bool:
    """Whether a CPU backend's runtime is installed, found without importing it (OpenVINO: ``openvino_installed``)."""
    import importlib.util

    if backend == "openvino":
        return openvino_installed()
    module = _RUNTIME_MODULE[backend]
    return module in sys.modules or importlib.util.find_spec(module) is not None


def _for_job(
    opened: tuple[Runner, str, Verdict], models: list[Path], threads: int, max_side: int, purpose: str, verdicts, runs
) -> tuple[Runner, str, Verdict]:
    """A measurement's fastest runner, or the one ``winner_for(runs)`` prefers for this job (where it opens)."""
    runner = opened[0]
    choice = runner.auto_choice
    if runs is None or choice.winner_for(runs).label == choice.chosen:
        return opened
    other = _open_winner(choice, models, threads, max_side, purpose, verdicts, runs)
    if other is None:
        return opened
    runner.deactivate()
    return other


def _open_winner(
    choice: CpuChoice,
    models: list[Path],
    threads: int,
    max_side: int,
    purpose: str,
    verdicts: list | None,
    runs: int | None = None,
) -> tuple[Runner, str, Verdict] | None:
    """Open a saved table's winner for a job of ``runs`` (``CpuChoice.winner_for``); None where it is not a
    candidate any more (its model or runtime gone), fails to open or fails its check. Found from the row itself:
    listing every candidate reads each model's metadata (70 ms of CPU at every start on the 2-core Xeon)."""
    row = choice.winner_for(runs)
    model = next((m for m in models if m.name == row.model), None)
    backend, precision = row.backend, row.precision or "f32"
    if model is None or backend not in _RUNTIME_MODULE or _label(backend, model, precision) != row.label:
        return None
    if not _runtime_installed(backend):
        return None
    try:
        runner = _activate_cpu(backend, model, threads, max_side, purpose, precision)
    except BackendError:
        return None
    verdict = _verify_candidate(runner, model, backend, verdicts)
    if verdict.status == "fail":
        return None
    runner.auto_choice = choice
    return runner, backend, verdict


def _open_provisional(
    key: str,
    models: list[Path],
    warn: Callable[[str], None],
    threads: int,
    max_side: int,
    purpose: str,
    verdicts: list | None,
    request: dict,
    start: bool,
) -> tuple[Runner, str, Verdict]:
    """The first candidate, in the fixed order of ``_open_cost`` (ONNX Runtime fp32 of the model asked for first),
    that opens and passes its self-check; never one that failed it. Starts the background measurement when
    ``start``; ``runner.auto_choice`` is a ``ProvisionalChoice``. The whole list (which reads each model's
    metadata) is made only where ONNX Runtime fp32 of the asked-for model does not pass."""
    asked = models[0]
    failures: list = []

    def in_order():
        yield "cpu", asked, "f32"
        yield from (c for c in sorted(_cpu_candidates(models, warn), key=_open_cost) if c != ("cpu", asked, "f32"))

    for backend, model, precision in in_order():
        try:
            runner = _activate_cpu(backend, model, threads, max_side, purpose, precision)
        except (BackendError, MissingDependency) as exc:
            if backend == "cpu" and model == asked and isinstance(exc, BackendError):
                raise  # ONNX Runtime cannot read the asked-for model: not a model
            failures.append(exc if isinstance(exc, BackendError) else None)
            continue
        verdict = _verify_candidate(runner, model, backend, verdicts)
        if verdict.status == "fail":
            failures.append(verdict)
            continue
        label = _label(backend, model, precision)
        runner.auto_choice = _provisional_status(key, label, request if start else None)
        return runner, backend, verdict
    first_failure = next((f for f in failures if isinstance(f, Verdict)), None)
    if first_failure is not None:
        raise SelfCheckError(first_failure)
    raise next((f for f in failures if isinstance(f, BackendError)), None) or BackendError("no CPU runtime could open the model")


def _provisional_status(key: str, label: str, request: dict | None) -> ProvisionalChoice:
    """Start the background measurement (``request`` given) and say where it stands."""
    started = auto_background.start_background(key, request) if request is not None else ""
    state = auto_background.MeasureState.load(key)
    if started in ("started", "running") or (request is None and auto_background.measuring(key)):
        status = "measuring"
    elif state.attempts >= auto_background.MAX_ATTEMPTS:
        status = "failed"
    else:
        status = "not started"
    log = auto_background.log_path(key)
    return ProvisionalChoice(key, label, status, state.started, state.last_error, str(log) if log.is_file() else "", cpu_model())


def _verdict_backend(runner: Runner, backend: str) -> str:
    """The name a verdict is kept under: OpenVINO's runner name carries its precision (``openvino-bf16``)."""
    return runner.name if backend == "openvino" else backend


def _verify_candidate(runner: Runner, model: Path, backend: str, verdicts: list | None) -> Verdict:
    """``_verify`` for one of ``auto``'s CPU candidates. An fp32 model that OpenVINO computes in bf16 is judged
    with the bf16 tolerance: a precision ``auto`` chose, as it chooses its INT8 variant (``--backend openvino``
    judges the same run as fp32)."""
    bf16 = backend == "openvino" and getattr(runner, "precision", "") == "bf16"
    return _verify(runner, model, _verdict_backend(runner, backend), verdicts, "bf16" if bf16 else None)


def _measure_cpu(
    key: str,
    candidates: list,
    threads: int,
    max_side: int,
    purpose: str,
    verdicts: list | None,
    previous: CpuChoice | None = None,
    where: str = "this process",
) -> tuple[Runner, str, Verdict]:
    rows: list[CandidateRow] = []
    live: dict[str, tuple[str, Verdict]] = {}
    refused: list = []  # each refusal's failing Verdict or open error, in order
    asked = candidates[0][1]

    def opener(backend: str, model: Path, precision: str, label: str) -> Callable[[], Runner]:
        def open_one() -> Runner:
            try:
                runner = _activate_cpu(backend, model, threads, max_side, purpose, precision)
            except (BackendError, MissingDependency) as exc:
                if backend == "cpu" and model == asked and isinstance(exc, BackendError):
                    raise  # ONNX Runtime cannot read the asked-for model: not a model, whatever the others say
                refused.append(exc if isinstance(exc, BackendError) else None)
                raise CandidateRefused("unavailable", _one_line(exc)) from None
            verdict = _verify_candidate(runner, model, backend, verdicts)
            if verdict.status == "fail":
                refused.append(verdict)
                raise CandidateRefused("self-check failed", verdict.cause())
            live[label] = (backend, verdict)
            return runner

        return open_one

    openers = {}
    for backend, model, precision in sorted(candidates, key=_open_cost):
        label = _label(backend, model, precision)
        rows.append(CandidateRow(label, backend, model.name, precision if backend == "openvino" else ""))
        openers[label] = opener(backend, model, precision, label)
    meter = auto_choice.new_load_meter().start()
    import_s = _import_seconds(candidates)
    timings, open_s, run_s = time_candidates(openers)
    load = meter.stop()
    open_s += _fill_rows(rows, timings, sorted(candidates, key=_open_cost), import_s, (threads, max_side, purpose))
    chosen = next((label for label, t in timings.items() if t.runner is not None), None)
    if chosen is None:
        first_failure = next((r for r in refused if isinstance(r, Verdict)), None)
        if first_failure is not None:
            raise SelfCheckError(first_failure)
        if live:
            raise BackendError(f"no CPU runtime could run {asked.name} on a {MEASURE_SIDE}x{MEASURE_SIDE} input")
        open_error = next((r for r in refused if isinstance(r, BackendError)), None)
        raise open_error or BackendError("no CPU runtime could open the model")
    choice = CpuChoice(key, rows, chosen, cpu_model(), library_versions(), open_s, run_s)
    choice.others_share, choice.loaded, choice.where = load.others_share, load.loaded, where
    choice.measured_at = choice.tried_at = time.time()
    choice.purpose = purpose
    choice.tries = previous.tries + 1 if previous is not None and previous.loaded else 1
    runner = timings[chosen].runner
    backend, verdict = live[chosen]
    kept = _least_loaded(choice, previous)
    if kept is not choice:  # an earlier try was less loaded: its winner runs, where it still opens
        opened = _open_winner(kept, [c[1] for c in candidates], threads, max_side, purpose, verdicts)
        if opened is not None:
            runner.deactivate()
            save_choice(kept)
            return opened
    choice.tries = kept.tries
    save_choice(choice)
    runner.auto_choice = choice
    return runner, backend, verdict


def _fill_rows(rows: list[CandidateRow], timings: dict, ordered: list, import_s: dict[str, float], opts: tuple) -> float:
    """Copy each candidate's timing into its row and measure the timed ones' start-up (``_start_ms``).

    Returns: the seconds spent (imports included), counted as opening."""
    t = time.perf_counter()
    for (backend, model, precision), row in zip(ordered, rows, strict=True):
        timing = timings[row.label]
        row.status, row.note = timing.status, timing.note
        if timing.status == "timed":
            row.ms, row.runs = timing.median_ms(), len(timing.times)
            row.start_ms = _start_ms(backend, model, precision, row.ms, *opts, import_s.get(backend, 0.0))
    return time.perf_counter() - t + sum(import_s.values())


START_SHAPE = (1, 1, 192, 256)  # fit mode's network input for a 4:3 photo: a size no runner has seen yet


def _import_seconds(candidates: list) -> dict[str, float]:
    """Import each candidate runtime not yet imported, timed (OpenVINO: 0.1-0.4 s; ONNX Runtime and OpenCV are
    imported by every start anyway). Returns: backend -> seconds."""
    out = {}
    if any(c[0] == "openvino" for c in candidates) and "openvino" not in sys.modules:
        from .openvino_runner import import_openvino

        t = time.perf_counter()
        try:
            import_openvino()
        except MissingDependency:
            return out
        out["openvino"] = time.perf_counter() - t
    return out


def _start_ms(
    backend: str, model: Path, precision: str, ms: float, threads: int, max_side: int, purpose: str, import_s: float
) -> float | None:
    """What a new process pays once before its first photo on this candidate, caches warm: its import, opening
    (compiled model / optimised graph from the cache, the self-check recalled) and its first run at a new input
    size beyond a normal run. Returns: milliseconds, or None where it no longer opens."""
    import numpy as np

    from ...core.constants import DEFAULT_T

    t = time.perf_counter()
    try:
        runner = _activate_cpu(backend, model, threads, max_side, purpose, precision)
    except (BackendError, MissingDependency):
        return None
    try:
        if _verify_candidate(runner, model, backend, None).status == "fail":
            return None
        feed = {"L": np.full(START_SHAPE, 50.0, np.float32), "temperature": np.array(DEFAULT_T, np.float32)}
        runner.infer(feed)
        first_s = time.perf_counter() - t
    except Exception:  # noqa: BLE001 - a runner that cannot run this size is judged by its timing alone
        return None
    finally:
        runner.deactivate()
    scale = START_SHAPE[2] * START_SHAPE[3] / MEASURE_SIDE**2
    return max(0.0, (import_s + first_s) * 1e3 - ms * scale)


def _least_loaded(choice: CpuChoice, previous: CpuChoice | None) -> CpuChoice:
    """The table to keep: ``choice``, unless both it and an earlier loaded try are loaded and the earlier one
    less so (then that one, with this try counted)."""
    if previous is None or not previous.loaded or not choice.loaded:
        return choice
    if (previous.others_share or 0.0) <= (choice.others_share or 0.0):
        return replace(previous, cached=False, tries=choice.tries, tried_at=choice.tried_at)
    return choice


_OPEN_RANK = {"cpu": 0, "openvino": 1, "opencv": 2}  # ONNX Runtime opens in ms; OpenVINO compiles; OpenCV's crash check forks


def _open_cost(candidate: tuple[str, Path, str]) -> tuple[int, bool]:
    """Sort key: the cheapest candidates to open first (bf16 after OpenVINO's f32 compiles)."""
    backend, _, precision = candidate
    return _OPEN_RANK.get(backend, len(_OPEN_RANK)), precision == "bf16"
