"""Predictors for ``scoring.evaluate``: L* (H, W) -> ab (2, H, W) from an exported ONNX model (ONNX
Runtime, torch-free) or from a torch network / training checkpoint (needs the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.constants import DEFAULT_T
from ..core.netinput import pad_to_multiple
from .scoring import Predictor


def onnx_predictor(model_path: str | Path, temperature: float | None = None, threads: int = 0) -> Predictor:
    """A predictor running an exported ONNX model with ONNX Runtime on the CPU.

    Args:
        model_path: the ``.onnx`` file.
        temperature: annealed-mean temperature (``None``: ``DEFAULT_T``).
        threads: intra-op threads (0: ONNX Runtime's default).

    Returns:
        A function L* (H, W) -> ab (2, H, W); ``ValueError`` when the model's inputs are not ``L``/``temperature``.
    """
    from ..runtime.backends.runners import OrtRunner, check_model_inputs, predict_ab

    runner = OrtRunner(model_path, threads=threads).activate()
    try:
        check_model_inputs([i.name for i in runner.session.get_inputs()], model_path)
    except ValueError:
        runner.deactivate()
        raise
    t = DEFAULT_T if temperature is None else temperature
    return lambda L: predict_ab(runner, L, t)


def torch_predictor(net, temperature: float = DEFAULT_T, device=None) -> Predictor:
    """A predictor running a torch network (through the same fused decode as the export) on one L map.

    Args:
        net: a colorization network from ``models.create_model``.
        temperature: annealed-mean temperature.
        device: torch device (default CPU).

    Returns:
        A function L* (H, W) -> ab (2, H, W).
    """
    import torch

    from ..models.decode import ColorizationGraph

    graph = ColorizationGraph(net).eval().to(device or "cpu")

    def predict(L: np.ndarray) -> np.ndarray:
        h, w = L.shape
        x = torch.from_numpy(pad_to_multiple(L))[None, None].to(device or "cpu")
        with torch.no_grad():
            ab = graph(x, temperature)
        return ab[0, :, :h, :w].float().cpu().numpy()

    return predict


def predictor_for(path: Path, temperature: float) -> Predictor:
    """Checkpoint (.pt/.pth) or exported model (.onnx) -> predictor.

    Args:
        path: the checkpoint or ONNX file.
        temperature: annealed-mean temperature.

    Returns:
        A function L* (H, W) -> ab (2, H, W).
    """
    if path.suffix == ".onnx":
        return onnx_predictor(path, temperature)
    from ..models.checkpoint import model_from_checkpoint

    net, _ = model_from_checkpoint(path)
    return torch_predictor(net, temperature)
