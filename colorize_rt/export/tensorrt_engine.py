"""TensorRT engines from colorize-rt ONNX models (TensorRT 10 and 11; the one module that imports it).

Precision comes from the ONNX (fp32 export, fp16 conversion, INT8 Q/DQ): the network is created
strongly typed and no precision builder flags are set (TensorRT 11 removed them, and its networks are
always strongly typed). What this module decides:

* optimisation profiles sized for a card (``size_plan``, pure): ``single`` (N = 1, whole images up to
  the largest side that fits) and ``tiles`` (N up to what fits at the runtime's tile size), so the
  engine's activation memory plus weights, workspace and the CUDA context fit with headroom;
* a workspace limit per card profile, a persisted timing cache, ``build_serialized_network``;
* the engine written atomically with a JSON sidecar ``<engine>.json`` (TensorRT version, GPU name and
  compute capability, profile, precision, ONNX sha256, input shape ranges) that ``verify_engine``
  checks before use: a mismatched engine is refused with a message that says how to rebuild, or is
  rebuilt from the ONNX when the caller asks (``ensure_engine(..., rebuild=True)``).

``temperature`` stays a real engine input (scalar fp32): TensorRT's ONNX parser would otherwise bake
the graph's default in as a constant. ``bake_temperature=True`` does exactly that (Triton, which batches
requests and cannot batch a scalar).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.hashing import file_sha256
from ..core.lazy import MissingDependency
from .graph import drop_initializer, get_metadata

TRT_MISSING = "TensorRT is not installed: install tensorrt on a machine with an NVIDIA GPU (pip install 'colorize-rt[gpu]')"
GiB = 1 << 30
MIN_SIDE = 64
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


class EngineMismatch(RuntimeError):
    """The engine does not match this machine / TensorRT / ONNX; the message says how to rebuild."""


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
    """A named card profile, or ``custom`` with ``memory_gib`` (workspace defaults to 1/6 of memory)."""
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

    ``single``: N = 1, H and W from 64 to the largest multiple of 64 that fits (capped at 4096),
    opt 256 (the runtime's ``fit`` size). ``tiles``: H and W up to ``tile``, N up to what fits
    (capped), opt N = min(4, max). Raises ValueError if not even one 64×64 image fits.
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
    plan.profiles.append(ShapeRange("single", (1, 1, MIN_SIDE, MIN_SIDE), (1, 1, opt_side, opt_side), (1, 1, side, side)))
    t = min(tile, side)
    n_max = int(max(1, min(max_batch, max_pixels // (t * t))))
    plan.profiles.append(ShapeRange("tiles", (1, 1, MIN_SIDE, MIN_SIDE), (min(4, n_max), 1, t, t), (n_max, 1, t, t)))
    return plan


def activation_stats(model_proto, side: int = REF_SIDE) -> tuple[float, int]:
    """(peak activation bytes per input pixel, weight bytes) of an ONNX model, from shape inference at
    1×1×side×side: the largest (inputs + outputs) footprint of any node, over side². Q/DQ INT8 graphs
    are typed float, so their estimate is conservative."""
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
    import onnx

    bpp, weights = activation_stats(onnx.load(str(onnx_path)))
    return size_plan(card, bpp, weights, tile=tile)


# --- sidecar -----------------------------------------------------------------------------------

SIDECAR_FORMAT = 1


def sidecar_path(engine_path: str | Path) -> Path:
    return Path(str(engine_path) + ".json")


def make_sidecar(
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    plan: EnginePlan,
    precision: str,
    onnx_sha256: str,
    onnx_path: str = "",
    default_temperature: float = 0.38,
    temperature_input: bool = True,
    version_compatible: bool = False,
    hardware_compatibility: str = "none",
    device_memory_bytes: int | None = None,
    metadata: dict | None = None,
) -> dict:
    return {
        "format": SIDECAR_FORMAT,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "profile": plan.card.name,
        "card": asdict(plan.card),
        "precision": precision,
        "onnx_sha256": onnx_sha256,
        "onnx_path": onnx_path,
        "version_compatible": version_compatible,
        "hardware_compatibility": hardware_compatibility,
        "workspace_bytes": plan.workspace_bytes,
        "device_memory_bytes": device_memory_bytes,
        "estimated_bytes": {r.name: plan.estimate_bytes(r) for r in plan.profiles},
        "inputs": {
            "L": {
                "dtype": "float32",
                "profiles": [{"name": r.name, "min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for r in plan.profiles],
            },
            **({"temperature": {"dtype": "float32", "shape": [], "default": default_temperature}} if temperature_input else {}),
        },
        "outputs": {"ab": {"dtype": "float32", "shape": ["N", 2, "H", "W"]}},
        "default_temperature": default_temperature,
        "metadata": metadata or {},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(v))[:3])


def _cc_tuple(cc: str) -> tuple[int, int]:
    major, _, minor = str(cc).partition(".")
    return int(major), int(minor or 0)


def check_sidecar(
    sidecar: dict,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_sha256: str | None = None,
) -> list[str]:
    """Pure: why an engine with this sidecar cannot run here (empty list = it can)."""
    problems = []
    if sidecar.get("format") != SIDECAR_FORMAT:
        problems.append(f"sidecar format {sidecar.get('format')!r} is not {SIDECAR_FORMAT}")
    built = str(sidecar.get("tensorrt_version", ""))
    if sidecar.get("version_compatible"):
        if _version(tensorrt_version) < _version(built):  # version-compatible plans run on later TensorRT
            problems.append(f"built with TensorRT {built} (version-compatible), running {tensorrt_version}")
    elif built != tensorrt_version:
        problems.append(f"built with TensorRT {built}, running {tensorrt_version}")
    level = sidecar.get("hardware_compatibility", "none")
    built_cc = str(sidecar.get("compute_capability", ""))
    if level == "ampere_plus":
        if _cc_tuple(compute_capability) < (8, 0):
            problems.append(f"hardware-compatible engine needs an Ampere or newer GPU; this one is sm {compute_capability}")
    elif level == "same_compute_capability":
        if built_cc != compute_capability:
            problems.append(f"built for compute capability {built_cc}, this GPU is {compute_capability}")
    else:
        if built_cc != compute_capability:
            problems.append(f"built for compute capability {built_cc}, this GPU is {compute_capability}")
        if sidecar.get("gpu_name") != gpu_name:
            problems.append(f"built on {sidecar.get('gpu_name')}, this GPU is {gpu_name}")
    if onnx_sha256 and sidecar.get("onnx_sha256") != onnx_sha256:
        problems.append("the ONNX model changed since the engine was built")
    return problems


def rebuild_hint(engine_path: str | Path, sidecar: dict | None) -> str:
    onnx_path = (sidecar or {}).get("onnx_path") or "MODEL.onnx"
    profile = (sidecar or {}).get("profile") or "rtx3060-6gb"
    return f"rebuild it: colorize-engine {onnx_path} --profile {profile} -o {engine_path}"


# --- TensorRT / device --------------------------------------------------------------------------


def require_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTMissing(TRT_MISSING) from exc
    return trt


def current_device() -> dict:
    """{gpu_name, compute_capability} of GPU 0 via nvidia-smi (no CUDA bindings needed)."""
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


def read_sidecar(engine_path: str | Path) -> dict:
    p = sidecar_path(engine_path)
    if not p.is_file():
        raise EngineMismatch(f"{engine_path} has no sidecar {p.name}; {rebuild_hint(engine_path, None)}")
    return json.loads(p.read_text())


def verify_engine(
    engine_path: str | Path,
    onnx_path: str | Path | None = None,
    *,
    tensorrt_version: str | None = None,
    device: dict | None = None,
) -> dict:
    """The engine's sidecar if it matches this TensorRT / GPU (/ ONNX); EngineMismatch otherwise."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise FileNotFoundError(f"engine not found: {engine_path}")
    sidecar = read_sidecar(engine_path)
    if tensorrt_version is None:
        tensorrt_version = require_tensorrt().__version__
    device = device or current_device()
    problems = check_sidecar(
        sidecar,
        tensorrt_version=tensorrt_version,
        onnx_sha256=file_sha256(onnx_path) if onnx_path else None,
        **device,
    )
    if problems:
        raise EngineMismatch(f"{engine_path.name} does not match: {'; '.join(problems)}; {rebuild_hint(engine_path, sidecar)}")
    return sidecar


def onnx_bytes_for_trt(onnx_path: str | Path, bake_temperature: bool = False) -> tuple[bytes, dict, float]:
    """The ONNX as TensorRT should parse it: without the temperature default (a real input) unless
    ``bake_temperature``. Returns (bytes, metadata, default temperature)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path))
    meta = get_metadata(m)
    default_t = float(meta.get("default_temperature", 0.38))
    for init in m.graph.initializer:
        if init.name == "temperature":
            default_t = float(numpy_helper.to_array(init))
    if not bake_temperature:
        drop_initializer(m, "temperature")
    return m.SerializeToString(), meta, default_t


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    card: CardProfile,
    *,
    timing_cache: str | Path | None = None,
    version_compatible: bool = False,
    hardware_compatible: bool = False,
    bake_temperature: bool = False,
    profiles: list[str] | None = None,
    tile: int = DEFAULT_TILE,
    log=print,
) -> dict:
    """Build and write ``engine_path`` (+ sidecar) from a colorize-rt ONNX; returns the sidecar."""
    trt = require_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    device = current_device()
    plan = plan_for_onnx(onnx_path, card, tile)
    if profiles:
        plan.profiles = [r for r in plan.profiles if r.name in profiles]
    log(plan.describe())
    model_bytes, meta, default_t = onnx_bytes_for_trt(onnx_path, bake_temperature)

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # always on (and deprecated) in TRT 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for r in plan.profiles:
        prof = builder.create_optimization_profile()
        prof.set_shape("L", r.min, r.opt, r.max)
        config.add_optimization_profile(prof)
    cache_file = Path(timing_cache) if timing_cache else engine_path.parent / "timing.cache"
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    level = "none"
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        level = "ampere_plus"
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the messages above)")
    log(f"built in {time.perf_counter() - t0:.1f} s")
    atomic_write_bytes(cache_file, bytes(config.get_timing_cache().serialize()))
    runtime = trt.Runtime(logger)
    if version_compatible:
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(serialized)
    device_memory = getattr(engine, "device_memory_size_v2", None) or getattr(engine, "device_memory_size", None)
    sidecar = make_sidecar(
        tensorrt_version=trt.__version__,
        plan=plan,
        precision=meta.get("precision", "fp32"),
        onnx_sha256=file_sha256(onnx_path),
        onnx_path=str(onnx_path),
        default_temperature=default_t,
        temperature_input=not bake_temperature,
        version_compatible=version_compatible,
        hardware_compatibility=level,
        device_memory_bytes=int(device_memory) if device_memory is not None else None,
        metadata=meta,
        **device,
    )
    if device_memory and device_memory + plan.weight_bytes > card.budget_bytes:
        log(f"warning: engine needs {device_memory / GiB:.2f} GiB of device memory, over the {card.name} budget")
    atomic_write_bytes(engine_path, bytes(serialized))
    atomic_write_text(sidecar_path(engine_path), json.dumps(sidecar, indent=2, sort_keys=True))
    return sidecar


def ensure_engine(
    engine_path: str | Path,
    onnx_path: str | Path | None = None,
    *,
    rebuild: bool = False,
    card: CardProfile | None = None,
    log=print,
) -> dict:
    """For runtimes: the engine's sidecar when it matches; when it does not (or is missing) and
    ``rebuild`` is set, rebuild it from ``onnx_path`` (or the ONNX the sidecar names) first."""
    engine_path = Path(engine_path)
    try:
        return verify_engine(engine_path, onnx_path)
    except (EngineMismatch, FileNotFoundError) as exc:
        if not rebuild:
            raise
        old = {}
        if sidecar_path(engine_path).is_file():
            old = json.loads(sidecar_path(engine_path).read_text())
        src = onnx_path or old.get("onnx_path")
        if not src or not Path(src).is_file():
            raise EngineMismatch(f"{exc}; cannot rebuild automatically: the source ONNX is not available") from exc
        card = card or (CardProfile(**old["card"]) if "card" in old else CARD_PROFILES["rtx3060-6gb"])
        log(f"{exc}\nrebuilding {engine_path} from {src} for {card.name} ...")
        return build_engine(
            src,
            engine_path,
            card,
            version_compatible=bool(old.get("version_compatible")),
            hardware_compatible=old.get("hardware_compatibility") == "ampere_plus",
            log=log,
        )
