"""Backend selection and fallback, model resolution, the TensorRT engine checks, and the torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from colorize_rt.core.lazy import MissingDependency, available
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.backends import registry as backends
from colorize_rt.runtime.backends.engine_description import EngineMismatch, check_compatible
from colorize_rt.runtime.backends.registry import BackendError, open_runner
from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab
from colorize_rt.runtime.backends.shipped_models import ModelError, resolve_model
from colorize_rt.runtime.backends.tensorrt_runner import TrtRunner
from tests.runtime_support import ROOT

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return tiny_onnx


@pytest.fixture
def warnings_seen():
    return []


def _pretend_providers(monkeypatch, *extra):
    monkeypatch.setattr(backends, "ort_providers", lambda: [*extra, "CPUExecutionProvider"])


# -- model names ------------------------------------------------------------------------------------------
def test_resolve_model_names(tmp_path, monkeypatch, model):
    monkeypatch.setenv("COLORIZE_RT_ASSETS", str(tmp_path))
    with pytest.raises(ModelError, match="no model yet.*--model PATH.onnx"):
        resolve_model("default")
    with pytest.raises(ModelError, match="unknown model 'fancy'"):
        resolve_model("fancy")
    with pytest.raises(ModelError, match="model file not found"):
        resolve_model(str(tmp_path / "nope.onnx"))
    (tmp_path / "default-int8.onnx").write_bytes(model.read_bytes())
    assert resolve_model("default-int8") == tmp_path / "default-int8.onnx"
    assert resolve_model(str(model)) == model


def test_l2_method_picks_default_l2(tmp_path, monkeypatch, model):
    monkeypatch.setenv("COLORIZE_RT_ASSETS", str(tmp_path))
    (tmp_path / "default-l2.onnx").write_bytes(model.read_bytes())
    eng = Colorizer(method="l2", backend="cpu")
    assert eng.model_path.name == "default-l2.onnx"


# -- fallback logic ---------------------------------------------------------------------------------------
def test_auto_on_a_cpu_machine_uses_cpu_silently(model, monkeypatch, warnings_seen):
    """auto on a CPU-only machine: the CPU runner measured fastest (backends.auto_choice), without a word."""
    monkeypatch.setattr(backends, "ort_providers", lambda: CPU_ONLY)
    runner, used = open_runner(model, "auto", warn=warnings_seen.append)
    assert used in backends.CPU_BACKENDS and warnings_seen == []
    assert runner.auto_choice.winner().backend == used and runner.active_providers


def test_auto_falls_back_to_cpu_when_cuda_init_fails(model, monkeypatch, warnings_seen):
    """The provider is listed but the session silently lands on the CPU (what ORT does when the CUDA
    libraries are missing): the strict check notices, auto falls back with exactly one warning line."""
    _pretend_providers(monkeypatch, "CUDAExecutionProvider")
    runner, used = open_runner(model, "auto", warn=warnings_seen.append)
    assert used in backends.CPU_BACKENDS
    assert len(warnings_seen) == 1 and "\n" not in warnings_seen[0]
    assert "cuda" in warnings_seen[0] and "falling back to CPU" in warnings_seen[0]
    ab = predict_ab(runner, np.full((16, 24), 50, np.float32))
    assert ab.shape == (2, 16, 24)


def test_auto_tries_trt_ep_then_cuda_then_cpu(model, monkeypatch, warnings_seen):
    tried = []
    real = backends.make_runner

    def spy(backend, path, threads=0, max_side=1024, *rest):
        tried.append(backend)
        runner = real(backend, path, threads, max_side, *rest)
        if backend not in backends.CPU_BACKENDS:

            def boom():
                raise RuntimeError("CUDA driver version is insufficient\nfor CUDA runtime version")

            runner.activate_impl = boom
        return runner

    monkeypatch.setattr(backends, "make_runner", spy)
    _pretend_providers(monkeypatch, "TensorrtExecutionProvider", "CUDAExecutionProvider")
    _, used = open_runner(model, "auto", warn=warnings_seen.append)
    assert tried[:2] == ["ort-trt", "cuda"] and set(tried[2:]) <= set(backends.CPU_BACKENDS) and used in tried[2:]
    assert len(warnings_seen) == 1 and "\n" not in warnings_seen[0]
    assert "ort-trt: CUDA driver version is insufficient for CUDA runtime version" in warnings_seen[0]


def test_auto_uses_gpu_when_it_initialises(model, monkeypatch, warnings_seen):
    """If the GPU backend activates, auto keeps it (simulated: a CUDA runner that really runs on ORT-CPU)."""
    real = backends.make_runner

    def fake(backend, path, threads=0, max_side=1024):
        runner = real("cpu", path, threads, max_side)
        runner.name = f"onnxruntime-{backend}"
        return runner

    monkeypatch.setattr(backends, "make_runner", fake)
    _pretend_providers(monkeypatch, "CUDAExecutionProvider")
    runner, used = open_runner(model, "auto", warn=warnings_seen.append)
    assert used == "cuda" and runner.name == "onnxruntime-cuda" and warnings_seen == []


def test_explicit_backend_never_falls_back(model, monkeypatch):
    monkeypatch.setattr(backends, "ort_providers", lambda: CPU_ONLY)
    hint = r"no CUDAExecutionProvider; pip install 'colorize-rt\[gpu-cu12\]' .* or 'colorize-rt\[gpu-cu13\]'"
    with pytest.raises(BackendError, match=hint):
        open_runner(model, "cuda")
    _pretend_providers(monkeypatch, "CUDAExecutionProvider")  # listed, but it cannot initialise here
    with pytest.raises(BackendError, match="--backend cuda failed to initialise") as info:
        open_runner(model, "cuda")
    assert "\n" not in str(info.value)
    with pytest.raises(BackendError, match="build one with colorize-engine"):
        open_runner(model, "tensorrt")
    with pytest.raises(BackendError, match="unknown backend"):
        open_runner(model, "metal")


@pytest.mark.skipif(available("tensorrt"), reason="tests the message when TensorRT is missing")
def test_engine_model_without_tensorrt(tmp_path, model, warnings_seen):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really an engine")
    with pytest.raises(BackendError, match=r"tensorrt is not installed: pip install 'colorize-rt\[gpu-cu12\]'"):
        open_runner(engine, "tensorrt")
    with pytest.raises(BackendError, match="no m.onnx next to it"):
        open_runner(engine, "auto", warn=warnings_seen.append)
    (tmp_path / "m.onnx").write_bytes(model.read_bytes())  # auto falls back to the ONNX next to the engine
    runner, used = open_runner(engine, "auto", warn=warnings_seen.append)
    assert used in backends.CPU_BACKENDS and runner.model_path == tmp_path / "m.onnx"
    assert len(warnings_seen) == 1 and "tensorrt" in warnings_seen[0]
    with pytest.raises(BackendError, match="is a TensorRT engine: use --backend tensorrt"):
        open_runner(engine, "cpu")


def test_trt_runner_imports_lazily():
    runner = TrtRunner("x.engine")  # constructing it needs neither tensorrt nor cuda-python
    assert not runner.is_active
    if not available("tensorrt"):
        with pytest.raises(MissingDependency, match="tensorrt|cuda"):
            runner.activate()


def test_engine_sidecar_mismatch_is_refused():
    side = {
        "format": 1,
        "tensorrt_version": "10.3.0",
        "gpu_name": "NVIDIA A100-SXM4-80GB",
        "compute_capability": "8.0",
        "profile": "rtx3060-6gb",
        "precision": "fp16",
        "onnx_sha256": "0" * 64,
        "onnx_path": "m.onnx",
    }
    a100 = {"gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": (8, 0)}
    check_compatible(side, "m.engine", tensorrt_version="10.3.0", **a100)  # same machine: fine
    with pytest.raises(EngineMismatch, match=r"built with TensorRT 10.3.0, running 10.8.0.*colorize-engine") as e:
        check_compatible(side, "m.engine", tensorrt_version="10.8.0", **a100)
    assert "\n" not in str(e.value)
    with pytest.raises(EngineMismatch, match=r"compute capability 8.0, this GPU is 9.0.*colorize-engine m.onnx"):
        check_compatible(side, "m.engine", tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0))
    with pytest.raises(EngineMismatch, match="this GPU is NVIDIA A100-PCIE-40GB"):
        check_compatible(side, "m.engine", tensorrt_version="10.3.0", gpu_name="NVIDIA A100-PCIE-40GB", compute_capability=(8, 0))


@pytest.mark.skipif(
    not (available("tensorrt") and available("cuda.bindings")),
    reason="needs TensorRT and cuda-python (an NVIDIA GPU machine)",
)
def test_tensorrt_engine_runs(tmp_path, model):  # pragma: no cover - GPU only
    from colorize_rt.export import tensorrt_engine as builder

    engine_path = tmp_path / "m.engine"
    builder.build_engine(model, engine_path, builder.card_profile("rtx3060-6gb"), log=lambda *a: None)
    runner, used = open_runner(engine_path, "tensorrt")
    ref = OrtRunner(model).activate()
    L = np.random.default_rng(0).uniform(0, 100, (64, 96)).astype(np.float32)
    np.testing.assert_allclose(predict_ab(runner, L), predict_ab(ref, L), atol=1.0)


@pytest.mark.skipif("CUDAExecutionProvider" not in backends.ort_providers(), reason="needs onnxruntime-gpu + GPU")
def test_cuda_ep_runs(model):  # pragma: no cover - GPU only
    runner, used = open_runner(model, "cuda")
    ref = OrtRunner(model).activate()
    L = np.random.default_rng(0).uniform(0, 100, (64, 96)).astype(np.float32)
    np.testing.assert_allclose(predict_ab(runner, L), predict_ab(ref, L), atol=0.5)


# -- info, evaluation compatibility ---------------------------------------------------------------------
def test_engine_info(model):
    eng = Colorizer(str(model), backend="cpu")
    info = eng.info()
    assert info["backend"] == "cpu" and info["providers"] == ["CPUExecutionProvider"]
    assert info["model"]["precision"] == "fp32" and len(info["model"]["sha256"]) == 64
    assert info["model"]["metadata"]["variant"] == "mobile"
    assert eng.default_temperature == pytest.approx(0.38)


def test_evaluation_predictor_still_works(model):
    from colorize_rt.eval.predictors import onnx_predictor

    ab = onnx_predictor(model)(np.full((37, 53), 60, np.float32))
    assert ab.shape == (2, 37, 53) and ab.dtype == np.float32


def test_runtime_and_cli_never_import_torch(tmp_path, model):
    import cv2

    from tests.runtime_support import photo

    img = tmp_path / "p.png"
    cv2.imwrite(str(img), cv2.resize(photo("camera"), (64, 48)))
    code = textwrap.dedent(f"""
        import json, sys
        import colorize_rt.runtime, colorize_rt.runtime.api, colorize_rt.runtime.cli, colorize_rt.cli
        import colorize_rt.runtime.backends.tensorrt_runner, colorize_rt.runtime.pipeline.folder
        from colorize_rt.cli import main
        rcs = []
        for argv in (["--info", "--model", {str(model)!r}], [{str(img)!r}, "--model", {str(model)!r}, "-q"]):
            try:
                main(argv)
            except SystemExit as e:
                rcs.append(e.code)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "torchvision"))
        print(json.dumps({{"rcs": rcs, "heavy": heavy}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rcs"] == [0, 0], proc.stderr
    assert result["heavy"] == []
    assert (tmp_path / "p_color.png").is_file()


def test_auto_skips_the_tensorrt_ep_for_cpu_only_int8(monkeypatch):
    """The shipped default-int8 has uint8 activations (ONNX Runtime's CPU kernels), which TensorRT refuses:
    on a GPU machine `auto` must not offer it to the TensorRT EP, but the CUDA EP and the CPU stay candidates."""
    from colorize_rt.runtime.backends import registry as backends
    from colorize_rt.runtime.backends.shipped_models import resolve_model

    int8, fp32 = resolve_model("default-int8"), resolve_model("default")
    assert backends.cpu_only_int8(int8) and not backends.cpu_only_int8(fp32)
    tried = []

    class Refuses:
        def __init__(self, backend):
            self.backend = backend

        def activate(self):
            tried.append(self.backend)
            raise RuntimeError("no GPU here")

    real_make = backends.make_runner
    monkeypatch.setattr(backends, "available_backends", lambda: {"cpu": True, "cuda": True, "ort-trt": True, "tensorrt": False})
    monkeypatch.setattr(
        backends,
        "make_runner",
        lambda b, m, t, s, *rest: real_make(b, m, t, s, *rest) if b in backends.CPU_BACKENDS else Refuses(b),
    )
    runner, used = backends.open_runner(int8, "auto", warn=lambda msg: None)
    runner.deactivate()
    assert tried == ["cuda"] and used in backends.CPU_BACKENDS
    tried.clear()
    runner, used = backends.open_runner(fp32, "auto", warn=lambda msg: None)
    runner.deactivate()
    assert tried == ["ort-trt", "cuda"] and used in backends.CPU_BACKENDS
