"""Shared helpers for the runtime tests: small real ONNX models and real image files made on the fly."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def export_tiny_model(path: Path, seed: int = 0) -> Path:
    """The project's real network (mobile, width 0.125, random weights) exported with the fused decode.

    Its random weights still predict clearly non-zero chroma, so "the result is coloured" is testable.
    Tests share one export through the session fixture ``tiny_onnx`` (tests/conftest.py).
    """
    import torch

    from colorize_rt.export.onnx_export import export_onnx
    from colorize_rt.models import create_model

    torch.manual_seed(seed)
    net = create_model("mobile", width=0.125).eval()
    return export_onnx(net, path)


def export_toy_model(path: Path) -> Path:
    """A small conv net with the runtime's ONNX interface (L, temperature -> ab) whose ab varies strongly
    with the image content (a random untrained colorizer predicts nearly constant ab, which would make
    seam/temperature measurements meaningless). Stride 2 inside, bilinear upsampling, receptive field ~25 px.
    """
    import torch
    from torch import nn

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(
                nn.Conv2d(1, 8, 5, stride=2, padding=2),
                nn.Tanh(),
                nn.Conv2d(8, 8, 5, padding=2),
                nn.Tanh(),
                nn.Conv2d(8, 2, 5, padding=2),
            )

        def forward(self, L, temperature):
            z = self.body((L - 50.0) / 25.0) * 4.0
            z = nn.functional.interpolate(z, scale_factor=2.0, mode="bilinear", align_corners=False)
            return 70.0 * torch.tanh(z * (0.38 / temperature))

    L = torch.full((1, 1, 64, 64), 50.0)
    T = torch.tensor(0.38)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy (TorchScript) exporter is intended
        _export(torch, Toy().eval(), L, T, path)
    return path


def _export(torch, net, L, T, path):
    torch.onnx.export(
        net,
        (L, T),
        str(path),
        input_names=["L", "temperature"],
        output_names=["ab"],
        dynamic_axes={"L": {0: "N", 2: "H", 3: "W"}, "ab": {0: "N", 2: "H", 3: "W"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def photo(kind: str = "astronaut") -> np.ndarray:
    from skimage import data

    return getattr(data, kind)()


def write_rgb(path: Path, rgb: np.ndarray, params: list[int] | None = None) -> Path:
    """RGB (or gray) uint8/uint16 -> file via OpenCV."""
    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), arr, params or [])
    return path


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``colorize-rt ARGS`` in a subprocess (``python -m colorize_rt``), as a user would run it (in ``cwd``,
    default the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", "colorize_rt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=env,
    )


def identity_onnx(path: Path) -> Path:
    """A valid ONNX model that is not a colorize-rt export (input ``x``, output ``y``, no ``L``/``temperature``)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "ident",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def one_line_error(res, code: int = 2) -> str:
    """A click ``CliRunner`` result that exited with ``code``, with no traceback and exactly one line on
    stderr; returns that line."""
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]
