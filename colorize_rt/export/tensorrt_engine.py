"""TensorRT engines from colorize-rt ONNX models (TensorRT 10 and 11; the one module that builds them).

Precision comes from the ONNX (fp32 export, fp16 conversion, INT8 Q/DQ): the network is created
strongly typed and no precision builder flags are set (TensorRT 11 removed them, and its networks are
always strongly typed). What this module decides:

* optimisation profiles sized for a card (``size_plan``, pure): ``single`` (N = 1, whole images up to
  the largest side that fits) and ``tiles`` (N up to what fits at the runtime's tile size), so the
  engine's activation memory plus weights, workspace and the CUDA context fit with headroom;
* a workspace limit per card profile and a persisted timing cache (a cache TensorRT rejects, e.g. one
  from another GPU or TensorRT version, is replaced by a fresh one, with a warning);
* ``build_engine``: named steps (parse, configure, build, save), the engine written atomically with its
  JSON sidecar (schema, compatibility rules and rebuild hint: ``colorize_rt.runtime.backends.engine_description``).

``temperature`` is a real engine input (scalar fp32; one per sample, ``[N, 1]``, for Triton plans):
TensorRT's ONNX parser imports a graph input that also has an initializer as a constant weight, so any
initializer left by an older export is removed first (``graph.temperature_as_input``).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.constants import DEFAULT_T, NET_MULTIPLE
from ..core.hashing import file_sha256
from ..core.lazy import GPU_INSTALL, MissingDependency
from ..runtime.backends.engine_description import make_sidecar, sidecar_path
from .graph import TEMPERATURE_INPUT, get_metadata, load_onnx, per_sample_temperature, temperature_as_input
from .probe import ensure_probe

TRT_MISSING = f"TensorRT is not installed: install tensorrt on a machine with an NVIDIA GPU ({GPU_INSTALL})"
GiB = 1 << 30
MIN_SIDE = 64  # the smallest whole image a card must fit
PROFILE_MIN_SIDE = NET_MULTIPLE  # profiles start at the network's stride, so small images run unpadded
SIDE_STEP = 64
MAX_SIDE_CAP = 4096
DEFAULT_TILE = 512
MAX_BATCH_CAP = 32
# TensorRT keeps more than the two tensors of the widest layer alive (fusions, tactic scratch,
# alignment); the estimate is multiplied by this before it is compared with the budget.
ACTIVATION_SAFETY = 2.0
REF_SIDE = 256  # shape inference size for the per-pixel activation estimate


class TensorRTMissing(MissingDependency):
    pass


@dataclass(frozen=True)
class CardProfile:
    name: str
    memory_gib: float
    workspace_gib: float
    reserved_gib: float = 0.6  # CUDA context, TensorRT runtime, display
    headroom: float = 0.2  # fraction of the card left to other processes and fragmentation

    @property
    def budget_bytes(self) -> int:
        return int((self.memory_gib * (1 - self.headroom) - self.reserved_gib - self.workspace_gib) * GiB)


CARD_PROFILES = {
    "rtx3060-6gb": CardProfile("rtx3060-6gb", memory_gib=6.0, workspace_gib=1.0),
    "rtx3060-12gb": CardProfile("rtx3060-12gb", memory_gib=12.0, workspace_gib=2.0),
}


def card_profile(name: str, memory_gib: float | None = None, workspace_gib: float | None = None) -> CardProfile:
    """A named card profile, or ``custom`` with ``memory_gib`` (workspace defaults to 1/6 of memory).

    Args:
        name: a key of ``CARD_PROFILES`` or ``custom``.
        memory_gib: the card's memory (``custom`` only).
        workspace_gib: builder workspace limit (default per profile).

    Returns:
        The ``CardProfile``; ValueError for an unknown name or a custom card without memory.
    """
    if name == "custom":
        if not memory_gib or memory_gib <= 0:
            raise ValueError("--profile custom needs --memory-gib (the card's memory in GiB)")
        ws = workspace_gib if workspace_gib is not None else round(memory_gib / 6, 2)
        return CardProfile("custom", memory_gib=float(memory_gib), workspace_gib=ws)
    if name not in CARD_PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join([*CARD_PROFILES, 'custom'])}")
    base = CARD_PROFILES[name]
    if workspace_gib is not None:
        return CardProfile(base.name, base.memory_gib, workspace_gib, base.reserved_gib, base.headroom)
    return base


@dataclass(frozen=True)
class ShapeRange:
    name: str
    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def pixels(self) -> int:
        n, _, h, w = self.max
        return n * h * w


@dataclass
class EnginePlan:
    card: CardProfile
    bytes_per_pixel: float
    weight_bytes: int
    profiles: list[ShapeRange] = field(default_factory=list)

    @property
    def workspace_bytes(self) -> int:
        return int(self.card.workspace_gib * GiB)

    def estimate_bytes(self, r: ShapeRange) -> int:
        """Estimated engine device memory (activations × safety + weights) at the profile's max shape."""
        return int(r.pixels() * self.bytes_per_pixel * ACTIVATION_SAFETY) + self.weight_bytes

    def describe(self) -> str:
        lines = [
            f"card {self.card.name}: {self.card.memory_gib:g} GiB, "
            f"workspace {self.card.workspace_gib:g} GiB, "
            f"budget for the engine {self.card.budget_bytes / GiB:.2f} GiB "
            f"({self.bytes_per_pixel:.0f} B/pixel activations, weights {self.weight_bytes / 2**20:.1f} MiB)"
        ]
        for r in self.profiles:
            lines.append(
                f"  profile {r.name}: L min {list(r.min)} opt {list(r.opt)} max {list(r.max)} "
                f"(~{self.estimate_bytes(r) / GiB:.2f} GiB)"
            )
        return "\n".join(lines)


def size_plan(
    card: CardProfile,
    bytes_per_pixel: float,
    weight_bytes: int,
    *,
    tile: int = DEFAULT_TILE,
    max_batch: int = MAX_BATCH_CAP,
) -> EnginePlan:
    """Pure: the optimisation profiles that fit ``card``.

    ``single``: N = 1, H and W from 8 (the network's stride) to the largest multiple of 64 that fits (capped at 4096),
    opt 256 (the runtime's ``fit`` size). ``tiles``: H and W up to ``tile``, N up to what fits
    (capped), opt N = min(4, max).

    Args:
        card: the card profile.
        bytes_per_pixel: peak activation bytes per input pixel (``activation_stats``).
        weight_bytes: the model's weights.
        tile: the runtime's tile size.
        max_batch: cap on the ``tiles`` profile's N.

    Returns:
        The ``EnginePlan``; ValueError if not even one 64×64 image fits.
    """
    if bytes_per_pixel <= 0:
        raise ValueError("bytes_per_pixel must be positive")
    plan = EnginePlan(card, float(bytes_per_pixel), int(weight_bytes))
    free = card.budget_bytes - weight_bytes
    max_pixels = free / (bytes_per_pixel * ACTIVATION_SAFETY) if free > 0 else 0
    if max_pixels < MIN_SIDE * MIN_SIDE:
        raise ValueError(
            f"the model does not fit {card.name} ({card.memory_gib:g} GiB): budget "
            f"{card.budget_bytes / GiB:.2f} GiB after headroom, context and workspace, weights "
            f"{weight_bytes / GiB:.2f} GiB; use a smaller model or lower --workspace-gib"
        )
    side = min(MAX_SIDE_CAP, int(math.sqrt(max_pixels)) // SIDE_STEP * SIDE_STEP)
    side = max(side, MIN_SIDE)
    opt_side = min(REF_SIDE, side)
    lo = (1, 1, PROFILE_MIN_SIDE, PROFILE_MIN_SIDE)
    plan.profiles.append(ShapeRange("single", lo, (1, 1, opt_side, opt_side), (1, 1, side, side)))
    t = min(tile, side)
    n_max = int(max(1, min(max_batch, max_pixels // (t * t))))
    plan.profiles.append(ShapeRange("tiles", lo, (min(4, n_max), 1, t, t), (n_max, 1, t, t)))
    return plan


def activation_stats(model_proto, side: int = REF_SIDE) -> tuple[float, int]:
    """(peak activation bytes per input pixel, weight bytes) of an ONNX model, from shape inference at
    1×1×side×side: the largest (inputs + outputs) footprint of any node, over side². Q/DQ INT8 graphs
    are typed float, so their estimate is conservative.

    Args:
        model_proto: a colorize-rt ``onnx.ModelProto`` (not modified).
        side: the square input side for shape inference.

    Returns:
        (bytes per input pixel, weight bytes).
    """
    import onnx
    from onnx import TensorProto, helper

    m = onnx.ModelProto()
    m.CopyFrom(model_proto)
    for inp in m.graph.input:
        if inp.name == "L":
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, (1, 1, side, side), strict=True):
                d.Clear()
                d.dim_value = v
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    inits = {i.name for i in m.graph.initializer}
    sizes: dict[str, int] = {}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
        if not dims or 0 in dims or vi.name in inits:
            continue
        itemsize = helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize if tt.elem_type else 4
        if tt.elem_type == TensorProto.BOOL:
            itemsize = 1
        sizes[vi.name] = math.prod(dims) * itemsize
    peak = 0
    for node in m.graph.node:
        peak = max(peak, sum(sizes.get(x, 0) for x in [*node.input, *node.output]))
    weights = sum(math.prod(i.dims) * helper.tensor_dtype_to_np_dtype(i.data_type).itemsize for i in m.graph.initializer)
    return peak / (side * side), int(weights)


def plan_for_onnx(onnx_path: str | Path, card: CardProfile, tile: int = DEFAULT_TILE) -> EnginePlan:
    """``size_plan`` for an ONNX file (its activation estimate and weights).

    Args:
        onnx_path: the ONNX model.
        card: the card profile.
        tile: the runtime's tile size.

    Returns:
        The ``EnginePlan``.
    """
    bpp, weights = activation_stats(load_onnx(onnx_path))
    return size_plan(card, bpp, weights, tile=tile)


# --- TensorRT / device --------------------------------------------------------------------------


def require_tensorrt():
    """The ``tensorrt`` module, or ``TensorRTMissing`` with the pip command."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTMissing(TRT_MISSING) from exc
    return trt


def current_device() -> dict:
    """GPU 0 as nvidia-smi reports it (no CUDA bindings needed).

    Returns:
        {"gpu_name", "compute_capability"}; RuntimeError when there is no NVIDIA GPU.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise RuntimeError("no NVIDIA GPU found (nvidia-smi is not on PATH)")
    out = (
        subprocess.run(
            [exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()
    )
    if not out:
        raise RuntimeError("nvidia-smi lists no GPU")
    name, _, cc = out[0].rpartition(",")
    return {"gpu_name": name.strip(), "compute_capability": cc.strip()}


@dataclass
class TrtSource:
    """The ONNX as TensorRT parses it: bytes, metadata, default temperature, temperature input shape."""

    data: bytes
    metadata: dict
    default_temperature: float
    temperature_shape: list | None  # [] scalar, ["N", 1] per sample, None: the model has no temperature


def onnx_for_trt(onnx_path: str | Path, per_sample: bool = False) -> TrtSource:
    """Load ``onnx_path`` with ``temperature`` as a real input (never an initializer).

    Args:
        onnx_path: a colorize-rt ONNX.
        per_sample: make temperature ``[N, 1]`` (Triton: batched requests each carry their own).

    Returns:
        The ``TrtSource``.
    """
    m = load_onnx(onnx_path)
    names = {i.name for i in m.graph.input} | {i.name for i in m.graph.initializer}
    shape = None
    default_t = float(get_metadata(m).get("default_temperature", DEFAULT_T))
    if TEMPERATURE_INPUT in names:
        default_t = temperature_as_input(m)
        shape = []
        if per_sample:
            per_sample_temperature(m)
            shape = ["N", 1]
    return TrtSource(m.SerializeToString(), get_metadata(m), default_t, shape)


def _parse(trt, builder, logger, source: TrtSource, onnx_path: Path):
    """Strongly typed network from the ONNX bytes (``STRONGLY_TYPED`` exists in TensorRT 10.0 to 11.x)."""
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(source.data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    return network, parser


def _add_profiles(builder, config, plan: EnginePlan, source: TrtSource) -> None:
    """One optimisation profile per ``ShapeRange``; a per-sample temperature follows L's batch range."""
    for r in plan.profiles:
        prof = builder.create_optimization_profile()
        prof.set_shape("L", r.min, r.opt, r.max)
        if source.temperature_shape == ["N", 1]:
            prof.set_shape(TEMPERATURE_INPUT, (r.min[0], 1), (r.opt[0], 1), (r.max[0], 1))
        if config.add_optimization_profile(prof) < 0:
            raise RuntimeError(f"TensorRT rejected optimisation profile {r.name} ({r.min} .. {r.max})")


def _use_timing_cache(config, cache_file: Path, log) -> None:
    """Load the persisted timing cache; one TensorRT rejects (another GPU or version) is replaced by an empty one."""
    data = cache_file.read_bytes() if cache_file.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    if data:
        log(f"warning: TensorRT rejected the timing cache {cache_file} (another GPU or TensorRT version); starting a new one")
    fresh = config.create_timing_cache(b"")
    if fresh is None or not config.set_timing_cache(fresh, ignore_mismatch=False):
        log("warning: TensorRT would not take a timing cache; building without one")


def _save_timing_cache(config, cache_file: Path, log) -> bool:
    """Write the builder's timing cache back (atomically); False when there is none to write."""
    cache = config.get_timing_cache()
    if cache is None:
        log(f"warning: no timing cache to save to {cache_file}")
        return False
    atomic_write_bytes(cache_file, bytes(cache.serialize()))
    return True


def _configure(trt, builder, plan: EnginePlan, source: TrtSource, *, version_compatible: bool, hardware_compatible: bool):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    _add_profiles(builder, config, plan, source)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    return config


def _sidecar(plan: EnginePlan, source: TrtSource, onnx_path: Path, device: dict, trt_version: str, **flags) -> dict:
    return make_sidecar(
        tensorrt_version=trt_version,
        card=asdict(plan.card),
        profiles=[{"name": r.name, "min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for r in plan.profiles],
        workspace_bytes=plan.workspace_bytes,
        estimated_bytes={r.name: plan.estimate_bytes(r) for r in plan.profiles},
        precision=source.metadata.get("precision", "fp32"),
        onnx_sha256=file_sha256(onnx_path),
        onnx_path=str(onnx_path),
        default_temperature=source.default_temperature,
        temperature_shape=source.temperature_shape,
        version_compatible=flags["version_compatible"],
        hardware_compatibility="ampere_plus" if flags["hardware_compatible"] else "none",
        metadata=ensure_probe(source.metadata, onnx_path),  # the known-answer probe travels in the sidecar
        **device,
    )


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    card: CardProfile,
    *,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    per_sample_temperature: bool = False,
    profiles: list[str] | None = None,
    tile: int = DEFAULT_TILE,
    device: dict | None = None,
    log=print,
) -> dict:
    """Build and write ``engine_path`` and its sidecar from a colorize-rt ONNX.

    Args:
        onnx_path: the source ONNX (fp32, fp16 or INT8 Q/DQ).
        engine_path: where the serialized engine goes (written atomically; the sidecar next to it).
        card: the card profile to size the optimisation profiles for.
        timing_cache: timing cache file (default ``timing.cache`` next to the engine); reused and updated.
        version_compatible: build with ``BuilderFlag.VERSION_COMPATIBLE`` (runs on later TensorRT, see
            ``engine_description``).
        hardware_compatible: any Ampere or newer GPU (``HardwareCompatibilityLevel.AMPERE_PLUS``).
        per_sample_temperature: temperature input ``[N, 1]`` (Triton plans) instead of a scalar.
        profiles: keep only these profile names (``single``, ``tiles``).
        tile: the runtime's tile size (the ``tiles`` profile's H and W).
        device: {gpu_name, compute_capability}; default: GPU 0 from nvidia-smi.
        log: where progress lines go.

    Returns:
        The sidecar written next to the engine.
    """
    trt = require_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    device = device or current_device()
    plan = plan_for_onnx(onnx_path, card, tile)
    if profiles:
        plan.profiles = [r for r in plan.profiles if r.name in profiles]
    log(plan.describe())
    source = onnx_for_trt(onnx_path, per_sample_temperature)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, source, onnx_path)
    config = _configure(
        trt, builder, plan, source, version_compatible=version_compatible, hardware_compatible=hardware_compatible
    )
    cache_file = Path(timing_cache) if timing_cache else engine_path.parent / "timing.cache"
    _use_timing_cache(config, cache_file, log)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the messages above)")
    log(f"built in {time.perf_counter() - t0:.1f} s")
    _save_timing_cache(config, cache_file, log)
    sidecar = _sidecar(
        plan,
        source,
        onnx_path,
        device,
        trt.__version__,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
    )
    atomic_write_bytes(engine_path, bytes(serialized))
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2, sort_keys=True))
    return sidecar
