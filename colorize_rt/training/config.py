"""Training configuration: one flat dataclass with commented defaults, loaded from YAML plus
``key=value`` overrides; unknown keys, wrong types, numbers outside ``BOUNDS`` and strings outside
``CHOICES`` are rejected with one line naming the key."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    # model
    model: str = "mobile"  # a name from colorize_rt.models.list_models()
    model_args: dict = field(default_factory=dict)  # overrides of the variant's args, e.g. {width: 0.25}
    init_from: str = ""  # a checkpoint whose weights (its EMA if it has one) start this run at step 0; same variant
    # data
    train_dir: str = "../shared/data/colorize-train/train"
    val_dir: str = "../shared/data/colorize-train/val"
    crop: int = 176  # random square crop (multiple of 8)
    scale_jitter: float = 0.0  # > 0: rescale each photo so its shorter side is uniform in [crop, crop × (1 + this)]
    batch_size: int = 40
    workers: int = 2
    limit_images: int = 0  # 0 = all; small values for smoke runs
    prior: str = ""  # .npy prior over the 313 bins; empty = compute on train_dir and cache in the run
    # optimisation (paper: Adam β=(0.9, 0.99), wd 1e-3, lr 3e-5 stepped down)
    lr: float = 3e-5
    betas: tuple = (0.9, 0.99)
    weight_decay: float = 1e-3
    lr_steps: list = field(default_factory=lambda: [200_000, 375_000])  # lr × lr_gamma at each
    lr_gamma: float = 0.316
    max_steps: int = 450_000
    max_minutes: float = 0.0  # wall-clock budget for this invocation (0 = none); a checkpoint is written
    max_cpu_minutes: float = 0.0  # CPU-time budget (this process + loader workers) for this invocation (0 = none)
    # pretrained encoders: frozen (BN statistics fixed) for the first steps, then fine-tuned at lr × encoder_lr_mult
    freeze_encoder_steps: int = 0
    encoder_lr_mult: float = 0.1
    unfreeze_layers: int = 0  # after the frozen phase fine-tune only the top N encoder layers (0 = all)
    encoder_lr_decay: float = 1.0  # layer-wise lr decay: encoder layer k from the top gets lr × mult × decay^k
    aux_l1: float = 0.0  # weight of an extra Huber loss on the annealed-mean ab (classification heads)
    ema_decay: float = 0.0  # > 0 keeps an exponential moving average of the weights (exported if present)
    # precision / memory
    amp: str = "auto"  # auto: fp16 + GradScaler on CUDA, bf16 on CPUs with native bf16, else fp32; bf16 | fp16 | off
    grad_checkpointing: str = "auto"  # auto: on for papernet on GPUs with < 12 GB
    threads: int = 0  # torch CPU threads (0 = torch default)
    # bookkeeping
    seed: int = 0
    log_every: int = 20
    image_every: int = 500
    eval_every: int = 500
    eval_images: int = 64
    ckpt_every: int = 200
    device: str = "auto"

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
        values: dict[str, Any] = {}
        if path:
            from ..core.lazy import require

            yaml = require("yaml")
            if not Path(path).is_file():
                raise ValueError(f"--config {path}: {'a folder, not a YAML file' if Path(path).is_dir() else 'no such file'}")
            try:
                values = yaml.safe_load(Path(path).read_text()) or {}
            except yaml.YAMLError as exc:  # its own message spans several lines
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                raise ValueError(
                    f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or type(exc).__name__}"
                ) from None
            if not isinstance(values, dict):
                raise ValueError(f"{path}: expected a mapping of settings")
        for item in overrides or []:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value")
            key, raw = item.split("=", 1)
            values[key] = json.loads(raw) if raw[:1] in '[{0123456789-.tfn"' and _is_json(raw) else raw
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        cfg = cls()
        for key, value in values.items():
            default = getattr(cfg, key)
            if isinstance(default, bool) or not isinstance(default, (int, float)):
                ok = isinstance(value, type(default)) or (isinstance(default, tuple) and isinstance(value, list))
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = type(default)(value) if ok and not (isinstance(default, int) and value != int(value)) else value
                ok = ok and isinstance(value, type(default))
            if not ok:
                raise ValueError(f"config key {key!r} expects {type(default).__name__}; got {value!r}")
            setattr(cfg, key, tuple(value) if isinstance(default, tuple) else value)
        return check_config(cfg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# Inclusive bounds of every number (for a list, of each entry). Wide enough for any real run, narrow enough
# that a typo fails at load instead of as a ZeroDivisionError (``log_every=0``), an unbounded thread pool
# or an allocation hours into the run.
BOUNDS: dict[str, tuple[float, float]] = {
    "crop": (16, 1024),
    "scale_jitter": (0.0, 4.0),
    "batch_size": (1, 4096),
    "workers": (0, 64),
    "limit_images": (0, 10**7),
    "lr": (0.0, 1.0),
    "betas": (0.0, 0.999999),
    "weight_decay": (0.0, 1.0),
    "lr_steps": (0, 10**8),
    "lr_gamma": (0.0, 10.0),
    "max_steps": (1, 10**8),
    "max_minutes": (0.0, 10**6),
    "max_cpu_minutes": (0.0, 10**6),
    "freeze_encoder_steps": (0, 10**8),
    "encoder_lr_mult": (0.0, 10.0),
    "unfreeze_layers": (0, 1000),
    "encoder_lr_decay": (0.0, 10.0),
    "aux_l1": (0.0, 100.0),
    "ema_decay": (0.0, 0.999999),
    "threads": (0, 256),
    "seed": (0, 2**32 - 1),
    "log_every": (1, 10**8),
    "image_every": (1, 10**8),
    "eval_every": (1, 10**8),
    "eval_images": (0, 10**5),
    "ckpt_every": (1, 10**8),
}
CHOICES: dict[str, tuple[str, ...]] = {"amp": ("auto", "bf16", "fp16", "off"), "grad_checkpointing": ("auto", "true", "false")}
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Every number inside ``BOUNDS``, every choice inside ``CHOICES``, a device torch knows, ``model_args``
    that ``model`` takes and within their bounds (``models.factory.check_model_args``).

    Args:
        cfg: the configuration.

    Returns:
        ``cfg``.

    Raises:
        ValueError: one line naming the first key out of bounds, or the model arg that ``model`` does not take.
    """
    for key, (lo, hi) in BOUNDS.items():
        value = getattr(cfg, key)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"config key {key!r} must be from {_shown(lo)} to {_shown(hi)}; got {v!r}")
    if len(cfg.betas) != 2:
        raise ValueError(f"config key 'betas' needs two values; got {list(cfg.betas)}")
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"config key {key!r} must be one of {', '.join(allowed)}; got {getattr(cfg, key)!r}")
    if not _DEVICE.fullmatch(cfg.device):
        raise ValueError(f"config key 'device' must be auto, cpu, cuda, cuda:N or mps; got {cfg.device!r}")
    from ..models.factory import check_model_args

    check_model_args(cfg.model, cfg.model_args)  # also: an unknown model name
    return cfg


def _shown(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True
