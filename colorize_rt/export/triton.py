"""A ready NVIDIA Triton Inference Server model repository for an exported model (ONNX or TensorRT plan).

Layout: ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/1/model.onnx`` (or ``model.plan``). Dynamic
batching is on, so requests are batched along N: every request is one ``L`` [1, H, W] (batch dim
implicit) and returns ``ab`` [2, H, W]; requests batched together must share H and W. The scalar
``temperature`` cannot be batched, so Triton models use the model's default temperature (set at export
with ``colorize-export --temperature``); ONNX Runtime treats the input as an overridable initializer,
TensorRT plans for Triton are built with it baked in.

The config is validated by parsing it with Triton's own ``ModelConfig`` protobuf
(``tritonclient.grpc.model_config_pb2``) when ``tritonclient`` is installed, and with a structural
check otherwise.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..core.atomic import atomic_path, atomic_write_text

PLATFORMS = {
    ".onnx": ("onnxruntime_onnx", "model.onnx"),
    ".plan": ("tensorrt_plan", "model.plan"),
    ".engine": ("tensorrt_plan", "model.plan"),
}


def triton_config(
    name: str,
    platform: str,
    *,
    max_batch_size: int = 8,
    preferred_batch_sizes: tuple[int, ...] = (4, 8),
    max_queue_delay_us: int = 2000,
    instance_kind: str = "KIND_GPU",
    instances: int = 1,
) -> str:
    """config.pbtxt text for a colorize-rt model."""
    if platform not in {p for p, _ in PLATFORMS.values()}:
        raise ValueError(f"unknown Triton platform {platform!r}")
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be >= 1 for dynamic batching")
    preferred = sorted({b for b in preferred_batch_sizes if 1 <= b <= max_batch_size}) or [max_batch_size]
    return (
        f'name: "{name}"\n'
        f'platform: "{platform}"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n"
        '  {\n    name: "L"\n    data_type: TYPE_FP32\n    dims: [ 1, -1, -1 ]\n  }\n'
        "]\n"
        "output [\n"
        '  {\n    name: "ab"\n    data_type: TYPE_FP32\n    dims: [ 2, -1, -1 ]\n  }\n'
        "]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {instance_kind}\n  }}\n]\n"
    )


def validate_config(text: str):
    """Parse with Triton's ModelConfig protobuf (returns the message) or, without tritonclient, check
    the structure (returns a dict). Raises ValueError on an invalid config."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return _structural_check(text)
    cfg = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        raise ValueError(f"invalid Triton config: {exc}") from exc
    if not cfg.name or not cfg.platform:
        raise ValueError("Triton config needs a name and a platform")
    if [i.name for i in cfg.input] != ["L"] or [o.name for o in cfg.output] != ["ab"]:
        raise ValueError("Triton config must have input L and output ab")
    if cfg.max_batch_size > 0 and not cfg.HasField("dynamic_batching"):
        raise ValueError("Triton config has batching but no dynamic_batching")
    return cfg


def _structural_check(text: str) -> dict:
    if text.count("{") != text.count("}") or text.count("[") != text.count("]"):
        raise ValueError("invalid Triton config: unbalanced braces")
    fields = dict(re.findall(r"^(name|platform|max_batch_size):\s*\"?([^\"\n]+)\"?$", text, re.M))
    for key in ("name", "platform", "max_batch_size"):
        if key not in fields:
            raise ValueError(f"invalid Triton config: no {key}")
    if "dynamic_batching" not in text or 'name: "L"' not in text or 'name: "ab"' not in text:
        raise ValueError("invalid Triton config: needs input L, output ab and dynamic_batching")
    return fields


def write_repository(
    model_file: str | Path,
    repo_dir: str | Path,
    *,
    name: str = "colorize",
    version: int = 1,
    max_batch_size: int = 8,
    instance_kind: str | None = None,
) -> Path:
    """Copy ``model_file`` into a Triton repository at ``repo_dir`` with a validated config; returns
    the model folder."""
    model_file = Path(model_file)
    suffix = model_file.suffix.lower()
    if suffix not in PLATFORMS:
        raise ValueError(f"{model_file.name}: Triton export needs a .onnx, .plan or .engine file")
    platform, target = PLATFORMS[suffix]
    kind = instance_kind or ("KIND_GPU" if platform == "tensorrt_plan" else "KIND_AUTO")  # AUTO: GPU if present
    text = triton_config(name, platform, max_batch_size=max_batch_size, instance_kind=kind)
    validate_config(text)
    model_dir = Path(repo_dir) / name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / str(version) / target) as tmp:
        shutil.copyfile(model_file, tmp)
    atomic_write_text(model_dir / "config.pbtxt", text)
    return model_dir
