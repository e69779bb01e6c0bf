"""Fine-tune the hint-conditioned variant (``models.hint_lite``) from an exported model, on the CPU or a GPU.

``python -m colorize_rt.training.hint_finetune --config configs/hints-lite0.yaml --out RUN [key=value ...]``

The start is an ONNX export (``init_onnx``; the shipped default has no torch checkpoint), read into a BN-folded
``LiteColorizer`` (``models.from_onnx``) and wrapped with zero-initialised hint branches, so step 0 computes the
default exactly. Every photo gets simulated hints (``training.hint_sim``); the loss is the default's own: the
class-rebalanced cross-entropy plus ``aux_l1`` x a Huber loss on the annealed-mean ab. ``trainable`` picks what
moves: ``hints`` (the new branches only: the no-hint output stays the default's exactly), ``decoder`` (also the
decoder) or ``all``. Budgets: ``max_steps``, ``max_cpu_minutes`` (this process and its loader workers). ``RUN/last.pt``
is written atomically every ``ckpt_minutes`` and at the end; ``RUN/log.tsv`` has the step, loss and CPU seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path, atomic_write_text
from ..core.constants import AB_NORM, DEFAULT_T, L_CENT, L_NORM
from ..core.prior import rebalance_weights
from ..models.decode import annealed_mean_torch, bins_tensor
from ..models.from_onnx import lite_from_onnx
from ..models.hint_lite import HintLiteColorizer, hint_tensor
from .data import ColorizationDataset
from .hint_sim import HintSimulation, simulate_hints
from .loss import l2_loss, rebalanced_ce, soft_encode_torch
from .train import cpu_seconds

log = logging.getLogger(__name__)

TRAINABLE = ("hints", "decoder", "all")


@dataclass
class HintFinetuneConfig:
    # start
    init_onnx: str = "colorize_rt/assets/default.onnx"  # an export of mobile-lite0 (the shipped default)
    hint_width: int = 32  # hidden channels of the 1/4-resolution hint branch
    trainable: str = "decoder"  # hints | decoder | all (see the module docstring)
    # data and hints (siggraph17: p = 1/8, patches 1..9 px, colour = the patch's mean ab)
    train_dir: str = "../shared/data/colorize-train/train"
    prior: str = "../shared/reference/prior_probs_trainset.npy"  # the 313-bin prior of the training photos
    crop: int = 176
    scale_jitter: float = 0.3
    batch_size: int = 16
    workers: int = 1
    limit_images: int = 0  # 0 = all
    hint_p: float = 0.125
    hint_patch_min: int = 1
    hint_patch_max: int = 9
    # optimisation: Adam; the hint branches at lr, the base's trainable weights at lr x base_lr_mult
    lr: float = 1e-3
    base_lr_mult: float = 0.1
    weight_decay: float = 0.0
    aux_l1: float = 0.25  # the shipped default's final λ
    bf16: bool = True  # bf16 autocast (use on CPUs with AVX512-BF16/AMX only)
    # budgets and bookkeeping
    max_steps: int = 1000
    max_cpu_minutes: float = 0.0  # 0 = none
    max_minutes: float = 0.0  # wall-clock budget of this invocation (0 = none)
    ckpt_minutes: float = 3.0
    log_every: int = 10
    threads: int = 2
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` (one line naming the key) for a value out of bounds."""
        bounds = {
            "hint_width": (1, 256), "crop": (32, 1024), "scale_jitter": (0, 2), "batch_size": (1, 1024),
            "workers": (0, 64), "limit_images": (0, 10**8), "lr": (0, 1), "base_lr_mult": (0, 10),
            "weight_decay": (0, 1), "aux_l1": (0, 100), "max_steps": (1, 10**7), "max_cpu_minutes": (0, 10**6),
            "max_minutes": (0, 10**6),
            "ckpt_minutes": (0.05, 10**4), "log_every": (1, 10**6), "threads": (0, 1024), "seed": (0, 2**31),
        }  # fmt: skip
        for key, (lo, hi) in bounds.items():
            value = getattr(self, key)
            if not lo <= value <= hi:
                raise ValueError(f"{key} must be in {lo}..{hi}; got {value}")
        if self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8; got {self.crop}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}; got {self.trainable!r}")
        self.simulation()

    def simulation(self) -> HintSimulation:
        return HintSimulation(self.hint_p, self.hint_patch_min, self.hint_patch_max)

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> HintFinetuneConfig:
        """Defaults, then the YAML file, then ``key=value`` overrides (YAML-typed); unknown keys are refused."""
        from ..core.lazy import require

        yaml = require("yaml")
        values: dict = {}
        if path:
            if not Path(path).is_file():
                raise ValueError(f"--config {path}: no such file")
            values = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(values, dict):
                raise ValueError(f"{path}: expected a mapping of settings")
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r}: expected key=value")
            values[key] = yaml.safe_load(raw)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in fields:
                raise ValueError(f"unknown setting {key!r}; the settings are {', '.join(fields)}")
            default = fields[key].default
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)
            elif type(values[key]) is not type(default):
                raise ValueError(f"setting {key!r} expects {type(default).__name__}; got {value!r}")
        cfg = cls(**values)
        cfg.check()
        return cfg


class HintDataset(ColorizationDataset):
    """Random crops as (L (1, H, W), ab at 1/4 (2, H/4, W/4), hint input (3, H, W)), seeded per (seed, epoch, index)."""

    def __init__(self, root, sim: HintSimulation, **kwargs):
        super().__init__(root, **kwargs)
        self.sim = sim

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lab, rng = self.sample_lab(index)
        L, ab_small = self.targets(lab)
        mask, hab = simulate_hints(lab[..., 1:], rng, self.sim)
        hints = hint_tensor(torch.from_numpy(mask)[None, None], torch.from_numpy(hab.transpose(2, 0, 1).copy())[None])[0]
        return L, ab_small, hints


def build_model(cfg: HintFinetuneConfig) -> HintLiteColorizer:
    """The variant at step 0: ``cfg.init_onnx``'s weights plus zero-initialised hint branches."""
    return HintLiteColorizer(lite_from_onnx(cfg.init_onnx), hint_width=cfg.hint_width)


def hint_param_groups(net: HintLiteColorizer, cfg: HintFinetuneConfig) -> list[dict]:
    """Adam groups for ``cfg.trainable``; everything else gets ``requires_grad = False``."""
    hint = net.hint_parameters()
    if cfg.trainable == "hints":
        base = []
    elif cfg.trainable == "decoder":
        base = net.base.decoder_parameters()
    else:
        base = list(net.base.parameters())
    chosen = {id(p) for p in hint + base}
    for p in net.parameters():
        p.requires_grad_(id(p) in chosen)
    groups = [{"params": hint, "lr": cfg.lr}]
    if base:
        groups.append({"params": base, "lr": cfg.lr * cfg.base_lr_mult})
    return groups


def hint_loss(net, L, ab_small, hints, class_weights, bins, bf16: bool, aux_l1: float) -> torch.Tensor:
    """The default's training loss on a batch with hints: rebalanced CE + ``aux_l1`` x Huber on the annealed mean."""
    with torch.autocast(L.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net((L - L_CENT) / L_NORM, hints)
    out = out.float()
    loss = rebalanced_ce(out, soft_encode_torch(ab_small, bins), class_weights)
    if aux_l1:
        loss = loss + aux_l1 * l2_loss(annealed_mean_torch(out, DEFAULT_T, bins) / AB_NORM, ab_small)
    return loss


def _save(path: Path, net, opt, step: int, cpu: float, cfg: HintFinetuneConfig) -> None:
    state = {
        "model": net.state_dict(), "optimizer": opt.state_dict(), "step": step, "cpu_seconds": cpu,
        "config": dataclasses.asdict(cfg), "variant": "mobile-lite0+hints", "hint_width": cfg.hint_width,
    }  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_finetuned(path: str | Path) -> HintLiteColorizer:
    """A fine-tuned variant from ``last.pt`` (eval mode)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = HintLiteColorizer(lite_from_onnx(state["config"]["init_onnx"]), hint_width=state["hint_width"])
    net.load_state_dict(state["model"])
    return net.eval()


def finetune(cfg: HintFinetuneConfig, out: Path, resume: bool = False) -> dict:
    """Run the fine-tune into ``out``; returns ``{"step", "cpu_seconds", "loss"}`` (the last logged mean loss)."""
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = build_model(cfg)
    opt = torch.optim.Adam(hint_param_groups(net, cfg), weight_decay=cfg.weight_decay)
    step, cpu_before = 0, 0.0
    last = out / "last.pt"
    if resume:
        state = torch.load(last, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, cpu_before = state["step"], state["cpu_seconds"]
    elif last.exists():
        raise ValueError(f"{out} already holds a run (last.pt); pass --resume or another --out")
    net.train()
    prior = np.load(cfg.prior, allow_pickle=False)
    class_weights = torch.from_numpy(rebalance_weights(prior)).float()
    bins = bins_tensor()
    data = HintDataset(
        cfg.train_dir, cfg.simulation(), crop=cfg.crop, seed=cfg.seed, limit=cfg.limit_images or None,
        scale_jitter=cfg.scale_jitter,
    )  # fmt: skip
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    last_save, losses, mean_loss = time.monotonic(), [], float("nan")
    logf = (out / "log.tsv").open("a")
    if not resume:
        logf.write("step\tloss\tcpu_seconds\twall\n")
    per_epoch = len(data) // cfg.batch_size  # full batches only
    if not per_epoch:
        raise ValueError(f"batch_size {cfg.batch_size} is more than the {len(data)} photos in {cfg.train_dir}")
    while step < cfg.max_steps:
        epoch = step // per_epoch
        data.set_epoch(epoch)
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).tolist()
        batches = [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(step % per_epoch, per_epoch)]
        loader = torch.utils.data.DataLoader(
            data, batch_sampler=batches, num_workers=cfg.workers, persistent_workers=False
        )  # fmt: skip
        for L, ab_small, hints in loader:
            loss = hint_loss(net, L, ab_small, hints, class_weights, bins, cfg.bf16, cfg.aux_l1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
            cpu = cpu_before + cpu_seconds() - cpu0
            if step % cfg.log_every == 0:
                mean_loss = float(np.mean(losses))
                losses = []
                logf.write(f"{step}\t{mean_loss:.4f}\t{cpu:.0f}\t{time.time():.0f}\n")
                logf.flush()
                log.info("step %d loss %.4f cpu %.0f s", step, mean_loss, cpu)
            budget_spent = (cfg.max_cpu_minutes and cpu >= cfg.max_cpu_minutes * 60) or (
                cfg.max_minutes and time.monotonic() - wall0 >= cfg.max_minutes * 60
            )
            if time.monotonic() - last_save >= cfg.ckpt_minutes * 60 or step >= cfg.max_steps or budget_spent:
                _save(last, net, opt, step, cpu, cfg)
                last_save = time.monotonic()
            if step >= cfg.max_steps or budget_spent:
                logf.close()
                return {"step": step, "cpu_seconds": cpu, "loss": mean_loss}
    logf.close()  # pragma: no cover - the loop returns
    return {"step": step, "cpu_seconds": cpu_before + cpu_seconds() - cpu0, "loss": mean_loss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a YAML file of HintFinetuneConfig settings")
    parser.add_argument("--out", required=True, help="run folder (outside the repo)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("overrides", nargs="*", help="key=value settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        cfg = HintFinetuneConfig.load(args.config, args.overrides)
        if args.resume and not (Path(args.out) / "last.pt").is_file():
            raise ValueError(f"--resume: no last.pt in {args.out}")
        result = finetune(cfg, Path(args.out), resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(Path(args.out) / "result.txt", f"{result}\n")
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
