"""Benchmark-only runners and the catalogue of backends (each a lazy loader of a Runner).

Every backend sits behind ``colorize_rt.runtime.backends.runners.Runner`` (activate / infer / deactivate) and
takes the same feed ``{"L": (N, 1, H, W) float32, "temperature": () float32}`` -> ``{"ab": (N, 2, H, W)}``.
torch and OpenCV are imported only when their runner is activated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.constants import DEFAULT_T
from ..core.lazy import GPU_INSTALL, require
from ..runtime.backends.opencv_runner import OpenCVRunner
from ..runtime.backends.runners import OrtRunner, Runner


class TorchRunner(Runner):
    """PyTorch eager (what a training-side user runs): ``ColorizationGraph(net)`` under ``inference_mode``;
    ``bf16`` uses CPU autocast (convolutions in bfloat16, decode in fp32)."""

    def __init__(self, make_net: Callable[[], object], precision: str = "fp32", threads: int = 0):
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unsupported torch precision {precision!r}")
        self.name = f"torch-{precision}"
        self.make_net = make_net
        self.precision = precision
        self.threads = threads
        self.graph = None

    def activate_impl(self) -> None:
        torch = require("torch")
        from ..models.decode import ColorizationGraph

        if self.threads:
            torch.set_num_threads(self.threads)
        self.graph = ColorizationGraph(self.make_net()).eval()

    def deactivate_impl(self) -> None:
        self.graph = None

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = require("torch")
        L = torch.from_numpy(np.ascontiguousarray(feed["L"], dtype=np.float32))
        t = float(feed.get("temperature", DEFAULT_T))
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            ab = self.graph(L, t)
        return {"ab": ab.float().numpy()}


@dataclass
class Backend:
    """One row of the comparison: how to build its runner, and what it should be compared with."""

    name: str
    make: Callable[[], Runner] | None  # None when unavailable here
    precision: str  # fp32 | bf16 | fp16 | int8 (selects the GEMM peak the fraction refers to)
    device: str = "cpu"
    comparable: bool = True  # same weights as the ONNX fp32 reference (or quantised from it): outputs comparable
    unavailable: str = ""  # why make is None
    notes: list[str] = field(default_factory=list)


REFERENCE = "ort-fp32"
DEFAULT_BACKENDS = (
    "torch-fp32",
    "torch-bf16",
    "ort-fp32",
    "ort-int8",
    "opencv-dnn",
    "ov-fp32",
    "ov-int8",
    "ov-bf16",
    "auto",
    "ort-cuda-fp32",
    "ort-trt-fp16",
    "ort-trt-int8",
    "trt-fp16",
    "trt-int8",
)


def build_backends(
    fp32: Path,
    int8: Path | None,
    make_net: Callable[[], object] | None,
    *,
    torch_comparable: bool,
    names: tuple[str, ...] = DEFAULT_BACKENDS,
    threads: int = 0,
    max_side: int = 1024,
) -> list[Backend]:
    """The backends to compare for one model; unavailable ones carry the reason instead of a loader."""
    from ..runtime.backends.registry import available_backends, make_runner, provider_list

    avail = available_backends()
    out: list[Backend] = []
    for name in names:
        if name in ("torch-fp32", "torch-bf16"):
            prec = name.split("-")[1]
            why = "" if make_net is not None else "no PyTorch model for this ONNX"
            try:
                require("torch")
            except ImportError as exc:
                why = str(exc)
            make = None if why else (lambda p=prec: TorchRunner(make_net, p, threads))
            out.append(Backend(name, make, prec, comparable=torch_comparable, unavailable=why))
        elif name in ("ort-fp32", "ort-int8"):
            path = fp32 if name == "ort-fp32" else int8
            make = None if path is None else (lambda path=path, name=name: _named(OrtRunner(path, threads=threads), name))
            out.append(Backend(name, make, name[4:], unavailable="" if path else "no INT8 model"))
        elif name == "opencv-dnn":
            out.append(Backend(name, lambda: OpenCVRunner(fp32, threads), "fp32"))
        elif name in ("ov-fp32", "ov-int8", "ov-bf16"):
            out.append(_openvino_backend(name, fp32, int8, threads))
        elif name == "auto":
            out.append(Backend(name, lambda: _auto_runner(fp32, int8, threads), "fp32"))
        elif name == "ort-cuda-fp32":
            make = (lambda name=name: _named(make_runner("cuda", fp32), name)) if avail["cuda"] else None
            out.append(Backend(name, make, "fp32", "gpu", unavailable="" if make else "no CUDAExecutionProvider"))
        elif name in ("ort-trt-fp16", "ort-trt-int8"):
            prec = name.rsplit("-", 1)[1]
            path = fp32 if prec == "fp16" else int8
            why = "no TensorrtExecutionProvider" if not avail["ort-trt"] else ("no INT8 model" if path is None else "")
            make = None
            if not why:
                providers = provider_list("ort-trt", max_side)
                providers[0] = (providers[0][0], {**providers[0][1], f"trt_{prec}_enable": True})

                def make(path=path, providers=providers, name=name):
                    return _named(OrtRunner(path, providers, strict=True), name)

            out.append(Backend(name, make, prec, "gpu", unavailable=why))
        elif name in ("trt-fp16", "trt-int8"):
            out.append(_native_trt_backend(name, fp32, int8, avail["tensorrt"]))
        else:
            raise ValueError(f"unknown backend {name!r}; choose from {', '.join(DEFAULT_BACKENDS)}")
    return out


def _openvino_backend(name: str, fp32: Path, int8: Path | None, threads: int) -> Backend:
    """OpenVINO on the fp32 model, on its INT8 copy, or on the fp32 model computed in bf16 (``ov-bf16``: one of
    ``auto``'s candidates where the CPU has bf16 arithmetic)."""
    from ..core.cpu import native_bf16
    from ..runtime.backends.registry import make_runner

    path, precision = {"ov-fp32": (fp32, "fp32"), "ov-int8": (int8, "int8"), "ov-bf16": (fp32, "bf16")}[name]
    why = "" if path else "no INT8 model"
    if name == "ov-bf16" and not native_bf16():
        why = "no bf16 arithmetic on this CPU (AVX512-BF16 / AMX)"
    try:
        require("openvino")
    except ImportError as exc:
        why = why or str(exc)
    ov_precision = "bf16" if precision == "bf16" else "f32"
    make = None if why else (lambda: _named(make_runner("openvino", path, threads, precision=ov_precision), name))
    return Backend(name, make, precision, unavailable=why)


def _auto_runner(fp32: Path, int8: Path | None, threads: int) -> Runner:
    """What ``colorize-rt`` runs with ``--backend auto`` for this model (its INT8 copy a measured candidate),
    already activated (``activate`` is then a no-op)."""
    from ..runtime.backends.registry import open_runner

    runner, _ = open_runner(fp32, "auto", threads, warn=lambda msg: None, variants=[int8] if int8 else [])
    return _named(runner, "auto")


def _named(runner: Runner, name: str) -> Runner:
    runner.name = name
    return runner


def _native_trt_backend(name: str, fp32: Path, int8: Path | None, available: bool) -> Backend:
    """Native TensorRT: an engine built from the ONNX with the export package's builder."""
    prec = name.split("-")[1]
    if not available:
        return Backend(name, None, prec, "gpu", unavailable=f"TensorRT not installed ({GPU_INSTALL})")
    source = fp32 if prec == "fp16" else int8
    if source is None:
        return Backend(name, None, prec, "gpu", unavailable="no INT8 model")

    def make() -> Runner:
        from ..runtime.backends.tensorrt_runner import TrtRunner
        from .engines import cached_engine

        return _named(TrtRunner(cached_engine(source, prec)), name)

    return Backend(name, make, prec, "gpu")
