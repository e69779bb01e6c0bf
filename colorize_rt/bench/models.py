"""The models under test: the shipped ``default`` (+ its INT8 twin) and randomly initialised ``mobile`` /
``papernet`` exported to ONNX (speed does not depend on the weights' values), with INT8 Q/DQ copies.

Exports are cached under ``~/.cache/colorize-rt/bench`` (``$COLORIZE_BENCH_CACHE``), keyed by the
variant, the seed and a hash of the model/export/calibration sources, so a code change rebuilds them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.lazy import require
from ..core.paths import cache_dir

MODELS = ("default", "mobile", "papernet")
PKG = Path(__file__).resolve().parents[1]
SEED = 0
CALIB_IMAGES = 8


@dataclass
class BenchModel:
    name: str
    fp32: Path
    int8: Path | None
    variant: str
    variant_args: dict
    macs_256: int  # multiply-accumulates of the network's convolutions per 256x256 image
    make_net: Callable[[], object] | None  # fresh torch module (eval mode)
    torch_same_weights: bool  # does make_net carry the very weights inside ``fp32``?
    notes: list[str] = field(default_factory=list)
    int8_gate: dict = field(default_factory=dict)  # the calibration accuracy gate, from the INT8 metadata

    def macs(self, size: int, batch: int = 1) -> int:
        """Convolution MACs scale with pixels exactly for this fully convolutional net (sizes % 8 == 0)."""
        return int(round(self.macs_256 * (size / 256) ** 2 * batch))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "fp32": str(self.fp32),
            "int8": str(self.int8) if self.int8 else None,
            "variant": self.variant,
            "variant_args": self.variant_args,
            "gmac_256": self.macs_256 / 1e9,
            "torch_same_weights": self.torch_same_weights,
            "notes": self.notes,
            "int8_gate": self.int8_gate,
        }


def _source_hash() -> str:
    h = hashlib.sha256()
    for sub in ("models", "export", "calibration", "core"):
        for p in sorted((PKG / sub).glob("*.py")):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _seeded_net(variant: str, args: dict, seed: int):
    torch = require("torch")
    from ..models import create_model

    torch.manual_seed(seed)
    overrides = dict(args)
    if "pretrained" in overrides:
        overrides["pretrained"] = False  # speed does not depend on the weights; never download
    return create_model(variant, **overrides).eval()


def _count_macs(net) -> int:
    from ..models.profile import count_macs

    return int(count_macs(net, 256, 256))


def bench_int8_model(fp32: Path, out: Path, photo_dir: str | None = None) -> str:
    """INT8 Q/DQ copy of ``fp32`` with the project's recipe (``colorize_rt.calibration``), calibrated on a
    few photos; returns how it was made (shown in the report). No accuracy gate: the weights are random."""
    import tempfile

    import cv2

    from ..calibration.quantize import quantize_int8
    from ..core.atomic import atomic_path
    from ..core.files import list_images
    from .inputs import sample_rgbs

    with tempfile.TemporaryDirectory(prefix="colorize-bench-calib.") as tmp:
        files = list_images(photo_dir, limit=CALIB_IMAGES) if photo_dir else []
        if not files:  # no photo folder: the sample images, written as files for the calibration reader
            rgbs, _ = sample_rgbs(None, CALIB_IMAGES)
            for i, rgb in enumerate(rgbs):
                cv2.imwrite(str(Path(tmp) / f"calib_{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            files = list_images(tmp)
        with atomic_path(out) as tmp_out:
            quantize_int8(fp32, tmp_out, files, method="minmax", cache_dir=out.parent / "calibration-cache")
    return (
        f"colorize_rt.calibration.quantize_int8 (symmetric Q/DQ, per-channel weights), MinMax over "
        f"{len(files)} "
        "photos, no accuracy gate (random weights)"
    )


def build_random_model(name: str, photo_dir: str | None = None, seed: int = SEED, cache: Path | None = None) -> BenchModel:
    """``mobile`` / ``papernet`` with seeded random weights, exported (fp32 + INT8) into the cache."""
    from ..export.onnx_export import export_onnx
    from ..models import model_info

    args = model_info(name)
    key = f"{name}-s{seed}-{_source_hash()}"
    folder = (cache or cache_dir("bench", "COLORIZE_BENCH_CACHE")) / key
    fp32, int8, info = folder / f"{name}.onnx", folder / f"{name}-int8.onnx", folder / "info.json"
    net = _seeded_net(name, args, seed)
    if info.is_file() and fp32.is_file() and int8.is_file():
        meta = json.loads(info.read_text())
    else:
        export_onnx(net, fp32, {"bench": "random weights (speed only)"})
        how = bench_int8_model(fp32, int8, photo_dir)
        meta = {"macs_256": _count_macs(net), "int8_method": how}
        atomic_write_text(info, json.dumps(meta))
    return BenchModel(
        name=name,
        fp32=fp32,
        int8=int8,
        variant=name,
        variant_args=net.variant_args,
        macs_256=meta["macs_256"],
        make_net=lambda: _seeded_net(name, args, seed),
        torch_same_weights=True,
        notes=[f"random weights (seed {seed}); INT8: {meta['int8_method']}"],
    )


def load_default_model() -> BenchModel:
    """The shipped model; raises ModelError ("no model yet ...") when it is not in this install."""
    from ..runtime.backends.shipped_models import model_metadata, resolve_model

    fp32 = resolve_model("default")
    try:
        int8 = resolve_model("default-int8")
    except ValueError:
        int8 = None
    meta = model_metadata(fp32)
    variant = meta.get("variant", "mobile")
    args = json.loads(meta.get("variant_args", "{}") or "{}")
    notes = ["shipped model; PyTorch eager runs the same architecture with random weights (timing only)"]
    make_net = None
    macs = 0
    try:
        net = _seeded_net(variant, args, SEED)
        macs = _count_macs(net)
        make_net = lambda: _seeded_net(variant, args, SEED)  # noqa: E731
    except Exception as exc:  # noqa: BLE001 - an unknown variant still benchmarks through ONNX
        notes.append(f"no PyTorch model: {exc}")
    gate = {}
    if int8 is None:
        notes.append("default-int8.onnx not shipped")
    else:
        m8 = model_metadata(int8)
        gate = {k: m8[k] for k in ("auc_rebal_fp32", "auc_rebal_int8", "gate_images") if k in m8}
    return BenchModel(
        name="default",
        fp32=fp32,
        int8=int8,
        variant=variant,
        variant_args=args,
        macs_256=macs,
        make_net=make_net,
        torch_same_weights=False,
        notes=notes,
        int8_gate=gate,
    )


def prepare_models(names, photo_dir: str | None = None, cache: Path | None = None) -> tuple[list[BenchModel], dict]:
    """Models ready to benchmark, and {name: reason} for those that are not (e.g. "no model yet")."""
    ready, missing = [], {}
    for name in names:
        try:
            ready.append(load_default_model() if name == "default" else build_random_model(name, photo_dir, cache=cache))
        except Exception as exc:  # noqa: BLE001 - recorded in the report instead of aborting the run
            missing[name] = f"{type(exc).__name__}: {exc}"
    return ready, missing


def output_agreement(ref: np.ndarray, out: np.ndarray) -> dict:
    """Mean / max absolute ab difference (in ab units) of a backend's output against the reference's."""
    if ref.shape != out.shape:
        return {"error": f"shape {tuple(out.shape)} != reference {tuple(ref.shape)}"}
    d = np.abs(out.astype(np.float32) - ref.astype(np.float32))
    return {"mean_abs_ab": float(d.mean()), "max_abs_ab": float(d.max())}
