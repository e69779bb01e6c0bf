"""Training configuration: one flat dataclass with commented defaults, loaded from YAML plus
``key=value`` overrides; unknown keys and wrong types are rejected."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
            text = Path(path).read_text()
            values = yaml.safe_load(text) or {}
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
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(d["betas"])
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True
