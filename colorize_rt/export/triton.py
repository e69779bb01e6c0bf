"""A ready NVIDIA Triton Inference Server model repository for an exported model (ONNX or TensorRT plan).

Layout: ``DIR/<name>/config.pbtxt`` and ``DIR/<name>/1/model.onnx`` (or ``model.plan``). Dynamic
batching is on, so requests are batched along N: every request is one ``L`` [1, H, W] (batch dim
implicit) plus its own ``temperature`` [1] (send 0.38, ``DEFAULT_T``, the paper's value, unless you want
another), and returns ``ab`` [2, H, W]; requests batched together must share H and W. A classification model also
lists its optional ``logits`` output [313, H/4, W/4] (the 313-bin logits before the temperature), which a client
asks for by name to apply a palette itself (``runtime.guidance.palette.palette_ab``); Triton computes and returns
only the outputs a request names. The repository's
model takes one temperature per sample (``graph.per_sample_temperature``: ``[N, 1]``, reshaped to
``[N, 1, 1, 1]`` inside), so batched requests keep their own temperatures. TensorRT plans for Triton are
built the same way (``colorize-engine --triton``), version-compatible, with a profile for ``temperature``
that follows L's batch range.

The config is validated by parsing it with Triton's own ``ModelConfig`` protobuf
(``tritonclient.grpc.model_config_pb2``, which needs ``grpcio``: ``pip install 'tritonclient[grpc]'``,
part of the dev extra) and with a structural check when that is not installed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..core.atomic import atomic_path, atomic_write_text
from ..runtime.backends.runners import MODEL_INPUTS

PLATFORMS = {
    ".onnx": ("onnxruntime_onnx", "model.onnx"),
    ".plan": ("tensorrt_plan", "model.plan"),
    ".engine": ("tensorrt_plan", "model.plan"),
}
INPUTS = MODEL_INPUTS
OUTPUTS = ("ab",)
OPTIONAL_OUTPUTS = ("logits",)  # classification models only: the 313-bin logits a palette re-weights


_MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_model_name(name: str) -> str:
    """A Triton model name is one folder of the repository: letters, digits, ``-``, ``_`` and ``.``, not empty,
    not ``.``/``..`` (no path separators, so the model cannot be written outside the repository).

    Raises:
        ValueError: one line naming the bad name.
    """
    if not _MODEL_NAME.fullmatch(name or "") or set(name) == {"."}:
        raise ValueError(f"invalid Triton model name {name!r}: use letters, digits, '-', '_' and '.' (no path separators)")
    return name


def triton_config(
    name: str,
    platform: str,
    *,
    max_batch_size: int = 8,
    preferred_batch_sizes: tuple[int, ...] = (4, 8),
    max_queue_delay_us: int = 2000,
    instance_kind: str = "KIND_GPU",
    instances: int = 1,
    logits: bool = False,
) -> str:
    """config.pbtxt text for a colorize-rt model.

    Args:
        name: the model's name in the repository.
        platform: ``onnxruntime_onnx`` or ``tensorrt_plan``.
        max_batch_size: the dynamic batcher's largest batch (>= 1).
        preferred_batch_sizes: batch sizes the batcher aims for (clipped to ``max_batch_size``).
        max_queue_delay_us: how long a request may wait for a batch to fill.
        instance_kind: ``KIND_GPU``, ``KIND_CPU`` or ``KIND_AUTO``.
        instances: model instances.
        logits: also list the optional ``logits`` output [313, -1, -1] (the model must have it).

    Returns:
        The config text.
    """
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
        '  {\n    name: "L"\n    data_type: TYPE_FP32\n    dims: [ 1, -1, -1 ]\n  },\n'
        '  {\n    name: "temperature"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n  }\n'
        "]\n"
        "output [\n"
        '  {\n    name: "ab"\n    data_type: TYPE_FP32\n    dims: [ 2, -1, -1 ]\n  }'
        + (',\n  {\n    name: "logits"\n    data_type: TYPE_FP32\n    dims: [ 313, -1, -1 ]\n  }' if logits else "")
        + "\n]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {instance_kind}\n  }}\n]\n"
    )


def _model_config_pb2():
    """Triton's ModelConfig protobuf module, or None when tritonclient (with grpcio) is not installed.

    ``tritonclient.grpc`` raises RuntimeError, not ImportError, when grpcio is missing.
    """
    try:
        from google.protobuf import text_format  # noqa: F401
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError):
        return None
    return model_config_pb2


def validate_config(text: str):
    """Check a config.pbtxt.

    Args:
        text: the config text.

    Returns:
        The parsed ``ModelConfig`` message when tritonclient[grpc] is installed, else the structural
        check's fields (a dict).

    Raises:
        ValueError: the config is invalid.
    """
    pb2 = _model_config_pb2()
    if pb2 is None:
        return _structural_check(text)
    from google.protobuf import text_format

    cfg = pb2.ModelConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as exc:
        raise ValueError(f"invalid Triton config: {exc}") from exc
    if not cfg.name or not cfg.platform:
        raise ValueError("Triton config needs a name and a platform")
    if tuple(i.name for i in cfg.input) != INPUTS or tuple(o.name for o in cfg.output) not in (
        OUTPUTS,
        OUTPUTS + OPTIONAL_OUTPUTS,
    ):
        raise ValueError("Triton config must have inputs L, temperature and outputs ab (and optionally logits)")
    for o in cfg.output:
        if o.name == "logits" and list(o.dims) != [313, -1, -1]:
            raise ValueError(f"Triton config: logits must have dims [313, -1, -1]; got {list(o.dims)}")
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
    needed = ("dynamic_batching", 'name: "L"', 'name: "temperature"', 'name: "ab"')
    if not all(n in text for n in needed):
        raise ValueError("invalid Triton config: needs inputs L and temperature, output ab and dynamic_batching")
    return fields


def model_has_logits(onnx_file: str | Path) -> bool:
    """Whether a colorize-rt ONNX has the optional ``logits`` output (classification exports do; L2 ones do not)."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    return "logits" in [o.name for o in model.graph.output]


def _write_model(model_file: Path, target: Path) -> None:
    """Copy a plan; rewrite an ONNX with one temperature per sample (atomically)."""
    if model_file.suffix.lower() != ".onnx":
        with atomic_path(target) as tmp:
            shutil.copyfile(model_file, tmp)
        return
    import onnx

    from .graph import per_sample_temperature, temperature_as_input

    m = onnx.load(str(model_file))
    temperature_as_input(m)
    per_sample_temperature(m)
    onnx.checker.check_model(m)
    with atomic_path(target) as tmp:
        onnx.save(m, str(tmp))


def write_repository(
    model_file: str | Path,
    repo_dir: str | Path,
    *,
    name: str = "colorize",
    version: int = 1,
    max_batch_size: int = 8,
    instance_kind: str | None = None,
    logits: bool | None = None,
) -> Path:
    """Write ``model_file`` into a Triton repository at ``repo_dir`` with a validated config.

    Args:
        model_file: a colorize-rt ``.onnx`` (rewritten with a per-sample temperature) or a TensorRT
            ``.plan``/``.engine`` built with ``per_sample_temperature`` (``colorize-engine --triton``).
        repo_dir: the repository folder.
        name: the model's folder and config name.
        version: the model version folder.
        max_batch_size: the dynamic batcher's largest batch.
        instance_kind: Triton instance kind (default: GPU for plans, AUTO for ONNX).
        logits: list the optional ``logits`` output (default: whether an ONNX has it; a plan: no, pass
            ``model_has_logits`` of the ONNX it was built from).

    Returns:
        The model folder.
    """
    model_file = Path(model_file)
    suffix = model_file.suffix.lower()
    if suffix not in PLATFORMS:
        raise ValueError(f"{model_file.name}: Triton export needs a .onnx, .plan or .engine file")
    platform, target = PLATFORMS[suffix]
    check_model_name(name)
    kind = instance_kind or ("KIND_GPU" if platform == "tensorrt_plan" else "KIND_AUTO")  # AUTO: GPU if present
    if logits is None:
        logits = suffix == ".onnx" and model_has_logits(model_file)
    text = triton_config(name, platform, max_batch_size=max_batch_size, instance_kind=kind, logits=logits)
    validate_config(text)
    model_dir = Path(repo_dir) / name
    (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
    _write_model(model_file, model_dir / str(version) / target)
    atomic_write_text(model_dir / "config.pbtxt", text)
    return model_dir
