"""Helpers for the fake-backed GPU-path tests: install the strict fakes of ``tensorrt`` and cuda-python."""

from __future__ import annotations

import sys
import types

from tests import fake_cudart, fake_tensorrt

DEVICE = {"gpu_name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6"}


def install_fakes(monkeypatch, cudart=None, **trt_behaviour):
    """Put the fake ``tensorrt`` and a cuda-python runtime (the fake by default) in ``sys.modules``.

    Returns:
        (fake_tensorrt.STATE, fake_cudart.STATE) after a reset.
    """
    trt_state = fake_tensorrt.reset(**trt_behaviour)
    cuda_state = fake_cudart.reset()
    cudart = cudart or fake_cudart
    trt_state.cudart = cudart
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda.bindings = bindings
    cuda.__path__ = []  # a package, so "from cuda.bindings import runtime" resolves here
    bindings.__path__ = []
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    return trt_state, cuda_state
