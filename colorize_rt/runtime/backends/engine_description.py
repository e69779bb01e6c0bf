"""What a colorize-rt TensorRT engine is and where it may run: the one home of the engine description.

Torch-free and TensorRT-free: the builder (``colorize_rt.export.tensorrt_engine``) writes this
description, the runner (``colorize_rt.runtime.backends.tensorrt_runner``) and the tools read it.

* The **sidecar** ``<engine>.json`` (``make_sidecar``, ``sidecar_path``, ``load_sidecar``): TensorRT
  version, GPU name and compute capability, card profile, precision, ONNX sha256, the input shape ranges
  per optimisation profile, the ``temperature`` input and its default (``DEFAULT_T`` = 0.38 unless the
  model says otherwise), version/hardware compatibility.
* **One compatibility check** (``compatibility_problems`` / ``check_compatible``). TensorRT's documented
  rules (Engine Compatibility, TensorRT 11 docs; Support Matrix "Engine Portability"):

  - a plain engine runs only on the TensorRT version and the GPU model it was built with;
  - a version-compatible engine (``BuilderFlag.VERSION_COMPATIBLE``, TensorRT >= 8.6) also runs on later
    runtimes of the same major version, and across majors only on the two documented pairs: TensorRT 8
    engines on a TensorRT 10 runtime, TensorRT 10 engines on a TensorRT 11 runtime. Never on an older
    runtime, never 8 -> 11 or 10 -> 12;
  - hardware compatibility ``ampere_plus`` runs on any GPU of compute capability 8.0 or later;
    ``same_compute_capability`` on any GPU of the same compute capability; ``none`` on the same GPU model.
* ``rebuild_hint``: the ``colorize-engine`` command that rebuilds an engine, and ``EngineMismatch``, the
  one-line error that carries it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from ...core.constants import DEFAULT_T

SIDECAR_FORMAT = 1
# (build major, runtime major) pairs TensorRT documents for version-compatible engines across majors.
CROSS_MAJOR_PAIRS = frozenset({(8, 10), (10, 11)})
MIN_VERSION_COMPATIBLE = (8, 6)
HARDWARE_LEVELS = ("none", "ampere_plus", "same_compute_capability")
DEFAULT_CARD = "rtx3060-6gb"


class EngineMismatch(RuntimeError):
    """The engine does not fit this machine, TensorRT version, ONNX or input; the message (one line) says
    how to rebuild it."""


def sidecar_path(engine_path: str | Path) -> Path:
    """``<engine>.json`` next to the engine.

    Args:
        engine_path: the serialized engine.

    Returns:
        The sidecar's path (the engine's name with ``.json`` appended).
    """
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def make_sidecar(
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    card: dict,
    profiles: list[dict],
    precision: str,
    onnx_sha256: str,
    onnx_path: str = "",
    workspace_bytes: int = 0,
    estimated_bytes: dict | None = None,
    default_temperature: float = DEFAULT_T,
    temperature_shape: list | None = None,
    version_compatible: bool = False,
    hardware_compatibility: str = "none",
    device_memory_bytes: int | None = None,
    metadata: dict | None = None,
) -> dict:
    """The sidecar dict (JSON-ready) for an engine.

    Args:
        tensorrt_version: ``tensorrt.__version__`` of the builder.
        gpu_name: the GPU's name as CUDA reports it.
        compute_capability: ``"major.minor"``.
        card: the card profile the engine was sized for (``name`` key required).
        profiles: one dict per optimisation profile: ``name``, ``min``, ``opt``, ``max`` shapes of ``L``.
        precision: the ONNX's precision (fp32, fp16, int8).
        onnx_sha256: sha256 of the source ONNX.
        onnx_path: where the source ONNX was (for the rebuild hint).
        workspace_bytes: builder workspace limit.
        estimated_bytes: estimated device memory per profile name.
        default_temperature: the value runners feed when the caller gives none.
        temperature_shape: shape of the ``temperature`` input (``[]`` scalar, ``[1]``, ``["N", 1]`` per
            sample); None when the engine has no temperature input (baked in).
        version_compatible: built with ``BuilderFlag.VERSION_COMPATIBLE``.
        hardware_compatibility: one of ``HARDWARE_LEVELS``.
        device_memory_bytes: the engine's device memory size, when known.
        metadata: the ONNX's metadata props.

    Returns:
        The sidecar.
    """
    if hardware_compatibility not in HARDWARE_LEVELS:
        raise ValueError(f"hardware_compatibility must be one of {HARDWARE_LEVELS}; got {hardware_compatibility!r}")
    inputs: dict = {"L": {"dtype": "float32", "profiles": [dict(p) for p in profiles]}}
    if temperature_shape is not None:
        inputs["temperature"] = {"dtype": "float32", "shape": list(temperature_shape), "default": float(default_temperature)}
    return {
        "format": SIDECAR_FORMAT,
        "tensorrt_version": str(tensorrt_version),
        "gpu_name": gpu_name,
        "compute_capability": str(compute_capability),
        "profile": card.get("name", ""),
        "card": dict(card),
        "precision": precision,
        "onnx_sha256": onnx_sha256,
        "onnx_path": onnx_path,
        "version_compatible": bool(version_compatible),
        "hardware_compatibility": hardware_compatibility,
        "workspace_bytes": int(workspace_bytes),
        "device_memory_bytes": device_memory_bytes,
        "estimated_bytes": dict(estimated_bytes or {}),
        "inputs": inputs,
        "outputs": {"ab": {"dtype": "float32", "shape": ["N", 2, "H", "W"]}},
        "default_temperature": float(default_temperature),
        "metadata": dict(metadata or {}),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def load_sidecar(engine_path: str | Path) -> dict | None:
    """The engine's sidecar, or None when there is none.

    Args:
        engine_path: the serialized engine.

    Returns:
        The sidecar dict, or None if ``<engine>.json`` does not exist.

    Raises:
        EngineMismatch: the sidecar is not a JSON object.
    """
    path = sidecar_path(engine_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EngineMismatch(f"{path.name} is not valid JSON ({exc}); {rebuild_hint(engine_path, None)}") from None
    if not isinstance(data, dict):
        raise EngineMismatch(f"{path.name} is not a JSON object; {rebuild_hint(engine_path, None)}")
    return data


def parse_version(v: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0)`` (major, minor, patch; build numbers ignored)."""
    return tuple(int(x) for x in re.findall(r"\d+", str(v))[:3])


def _cc(cc: str | tuple) -> tuple[int, int]:
    if isinstance(cc, tuple | list):
        return int(cc[0]), int(cc[1])
    major, _, minor = str(cc).partition(".")
    return int(major or 0), int(minor or 0)


def version_problem(built: str, running: str, version_compatible: bool) -> str | None:
    """Why an engine built with TensorRT ``built`` cannot run on ``running`` (None when it can).

    Args:
        built: the builder's TensorRT version.
        running: this machine's TensorRT version.
        version_compatible: whether the engine was built version-compatible.

    Returns:
        One phrase, or None.
    """
    if not version_compatible:
        return None if str(built).strip() == str(running).strip() else f"built with TensorRT {built}, running {running}"
    b, r = parse_version(built), parse_version(running)
    if not b or b[:2] < MIN_VERSION_COMPATIBLE:
        return f"version-compatible engines need TensorRT >= 8.6 at build time; this one was built with {built}"
    if r < b:
        return f"built with TensorRT {built} (version-compatible), running the older {running}"
    if b[0] != r[0] and (b[0], r[0]) not in CROSS_MAJOR_PAIRS:
        return (
            f"built with TensorRT {built} (version-compatible), running {running}: TensorRT supports only "
            f"8 -> 10 and 10 -> 11 across major versions"
        )
    return None


def hardware_problems(sidecar: dict, gpu_name: str, compute_capability: str | tuple) -> list[str]:
    """Why the engine's GPU requirements do not hold on this GPU (empty when they do)."""
    level = sidecar.get("hardware_compatibility", "none")
    built_cc, here_cc = _cc(sidecar.get("compute_capability", "0.0")), _cc(compute_capability)
    here = f"{here_cc[0]}.{here_cc[1]}"
    if level == "ampere_plus":
        return [] if here_cc >= (8, 0) else [f"hardware-compatible engine needs an Ampere or newer GPU; this one is sm {here}"]
    problems = []
    if built_cc != here_cc:
        problems.append(f"built for compute capability {built_cc[0]}.{built_cc[1]}, this GPU is {here}")
    if level != "same_compute_capability" and str(sidecar.get("gpu_name", "")).strip() != gpu_name.strip():
        problems.append(f"built on {sidecar.get('gpu_name')}, this GPU is {gpu_name}")
    return problems


def compatibility_problems(
    sidecar: dict,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str | tuple,
    onnx_sha256: str | None = None,
) -> list[str]:
    """Pure: why an engine with this sidecar cannot run here (empty list: it can).

    Args:
        sidecar: the engine's sidecar.
        tensorrt_version: this machine's ``tensorrt.__version__``.
        gpu_name: this GPU's name.
        compute_capability: this GPU's ``"major.minor"`` or ``(major, minor)``.
        onnx_sha256: when given, the engine must come from exactly this ONNX.

    Returns:
        The problems, one phrase each.
    """
    problems = []
    if sidecar.get("format") != SIDECAR_FORMAT:
        problems.append(f"sidecar format {sidecar.get('format')!r} is not {SIDECAR_FORMAT}")
    vp = version_problem(str(sidecar.get("tensorrt_version", "")), str(tensorrt_version), bool(sidecar.get("version_compatible")))
    if vp:
        problems.append(vp)
    problems += hardware_problems(sidecar, gpu_name, compute_capability)
    if onnx_sha256 and sidecar.get("onnx_sha256") != onnx_sha256:
        problems.append("the ONNX model changed since the engine was built")
    return problems


def rebuild_hint(engine_path: str | Path, sidecar: dict | None) -> str:
    """The ``colorize-engine`` command that rebuilds ``engine_path`` (same ONNX and card profile)."""
    sidecar = sidecar or {}
    onnx_path = sidecar.get("onnx_path") or "MODEL.onnx"
    profile = sidecar.get("profile") or DEFAULT_CARD
    flags = " --version-compatible" if sidecar.get("version_compatible") else ""
    if sidecar.get("hardware_compatibility") == "ampere_plus":
        flags += " --hardware-compatible"
    return f"rebuild it: colorize-engine {onnx_path} --profile {profile}{flags} -o {engine_path}"


def check_compatible(
    sidecar: dict,
    engine_path: str | Path,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str | tuple,
    onnx_sha256: str | None = None,
) -> None:
    """Raise ``EngineMismatch`` (one line, with the rebuild command) when the engine cannot run here.

    Args:
        sidecar: the engine's sidecar.
        engine_path: the engine (named in the message).
        tensorrt_version: this machine's TensorRT version.
        gpu_name: this GPU's name.
        compute_capability: this GPU's compute capability.
        onnx_sha256: optional: require this source ONNX.
    """
    problems = compatibility_problems(
        sidecar,
        tensorrt_version=tensorrt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        onnx_sha256=onnx_sha256,
    )
    if problems:
        raise EngineMismatch(
            f"{Path(engine_path).name} does not match this machine: {'; '.join(problems)}; {rebuild_hint(engine_path, sidecar)}"
        )


def temperature_default(sidecar: dict | None) -> float:
    """The temperature runners feed when the caller gives none (the model's default, else ``DEFAULT_T``)."""
    sidecar = sidecar or {}
    t = sidecar.get("inputs", {}).get("temperature", {}).get("default", sidecar.get("default_temperature", DEFAULT_T))
    return float(t)


__all__ = [
    "CROSS_MAJOR_PAIRS",
    "EngineMismatch",
    "SIDECAR_FORMAT",
    "check_compatible",
    "compatibility_problems",
    "load_sidecar",
    "make_sidecar",
    "parse_version",
    "rebuild_hint",
    "sidecar_path",
    "temperature_default",
    "version_problem",
]
