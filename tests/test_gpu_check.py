"""benchmarks/gpu_check (``make gpu-check``): what can be shown without a GPU. The script's GPU steps reuse
the code paths tested here: the buffer-path step runs the real runner around the pure-CUDA stand-in
(here with the fake cuda runtime), the training step runs the real trainer (here on the CPU)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from tests import fake_cudart
from tests.gpu_support import install_fakes
from tests.runtime_support import ROOT

HAS_GPU = shutil.which("nvidia-smi") is not None


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU")
def test_without_a_gpu_it_says_so_in_one_line():
    for cmd in (["bash", "benchmarks/gpu_check.sh"], [sys.executable, "-m", "benchmarks.gpu_check"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert proc.returncode == 3 and len(lines) == 1 and "run" in lines[0] and "GPU" in lines[0], lines


def test_buffer_step_with_the_stand_in_engine(monkeypatch):
    install_fakes(monkeypatch, kernel="copy")
    result = gpu_check.step_buffers(cudart=fake_cudart)
    assert result["passed"], result
    shapes = [c["shape"] for c in result["cases"]]
    assert [4, 1, 512, 512] in shapes and [1, 1, 16, 24] in shapes
    assert {c["shape"][0]: c["profile"] for c in result["cases"]}[4] == 1  # the tiles profile


def test_step_limits_fit_eight_minutes():
    assert sum(gpu_check.LIMITS.values()) <= 450
    assert set(gpu_check.LIMITS) == set(gpu_check.STEPS)
    assert "timeout 475" in (ROOT / "benchmarks/gpu_check.sh").read_text()
    assert "gpu-check:" in (ROOT / "Makefile").read_text()


def test_skips_say_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorrt" else real(name, *a))
    assert "gpu-cu12" in gpu_check.run_step("tensorrt", 5)["skipped"]


def test_markdown_report():
    report = {
        "gpu": {"gpu_name": "NVIDIA H100 80GB HBM3", "driver": "580.1"},
        "steps": {
            "train": {"passed": True},
            "buffers": {"skipped": "cuda-python is not installed"},
            "torch": {"passed": True, "rows": [{"model": "papernet", "shape": [1, 1, 256, 256], "precision": "fp16", "ms": 1.5}]},
        },
    }
    md = gpu_check._markdown(report)
    assert (
        "**train**: passed" in md
        and "**buffers**: skipped: cuda-python" in md
        and "| papernet | 1x1x256x256 | fp16 | 1.500 |" in md
    )
    assert gpu_check._tag(report["gpu"]) == "nvidia-h100-80gb-hbm3"


@pytest.mark.slow
def test_training_step_on_the_cpu():
    """The training smoke (checkpoint, resume to a later step) with the real trainer, on the CPU here."""
    result = gpu_check.step_train(device="cpu")
    assert result["passed"], result


def test_orchestration_records_a_failing_step_and_writes_the_report(monkeypatch, tmp_path):
    """main() with a pretend GPU: the buffer step runs in its own process with the real cuda-python when
    installed (no driver here, so it fails) or is skipped with what to install; the report is written either way."""
    import torch

    monkeypatch.setattr(gpu_check, "_gpu", lambda: {"gpu_name": "Pretend GPU", "compute_capability": "8.6", "driver": "0"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    rc = gpu_check.main(["--only", "buffers", "--out", str(tmp_path)])
    report = (tmp_path / "pretend-gpu" / "gpu_check.json").read_text()
    md = (tmp_path / "pretend-gpu" / "gpu_check.md").read_text()
    if "skipped" in report:
        assert rc == 0 and "cuda-python is not installed" in md
    else:
        assert rc == 1 and "**buffers**: FAILED" in md and "cudaError" in report
