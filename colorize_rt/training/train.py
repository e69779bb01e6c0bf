"""Train a colorization model the paper's way. Reads top to bottom: setup, data, model, optimiser,
helpers, then one loop (evaluate/checkpoint, forward/backward, log, stop).

    colorize-train --config configs/quicktrain.yaml --out ~/colorize-runs/quick [--resume] [key=value ...]
    torchrun --nproc_per_node 2 -m colorize_rt.training.train --config ... --out ...   (DDP)
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..core.bins import bins_hash
from ..core.constants import L_CENT, L_NORM
from ..core.prior import prior_from_ab_maps, rebalance_weights
from ..evaluation import evaluate, iter_lab_images, list_images
from ..models import create_model
from ..models.decode import bins_tensor
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import ColorizationDataset
from .evaluate import torch_predictor
from .loss import l2_loss, rebalanced_ce, soft_encode

log = logging.getLogger("colorize_rt.train")


# ----------------------------------------------------------------------------- helpers
def compute_prior(files: list[Path], short_side: int = 64) -> np.ndarray:
    """Empirical prior of images at shorter side 64 (area): every pixel to its nearest bin."""
    maps = (lab[..., 1:] for _, lab in iter_lab_images(files, short_side))
    return prior_from_ab_maps(tqdm(maps, total=len(files), desc="prior", leave=False))


def load_or_compute_prior(cfg: TrainConfig, run_dir: Path) -> np.ndarray:
    if cfg.prior:
        return np.load(cfg.prior)
    cache = run_dir / "prior.npy"
    if cache.exists():
        return np.load(cache)
    prior = compute_prior(list_images(cfg.train_dir, cfg.limit_images or None))
    if _is_main():
        from ..core.atomic import atomic_path

        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.save(fh, prior)
    return prior


class EpochBatches:
    """Deterministic batches: epoch e is a permutation seeded by (seed, e); iteration can start at any
    batch (resume) and each DDP rank takes its slice of every global batch."""

    def __init__(self, n: int, batch: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed, self.epoch, self.start = n, batch, seed, epoch, start
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.n // self.batch - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per_rank = self.batch // self.world
        for b in range(self.start, self.n // self.batch):
            idx = perm[b * self.batch : (b + 1) * self.batch]
            yield idx[self.rank * per_rank : (self.rank + 1) * per_rank]


def lr_at(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * cfg.lr_gamma ** sum(step >= s for s in cfg.lr_steps)


def set_encoder_frozen(net: torch.nn.Module, frozen: bool) -> None:
    """Freeze a pretrained encoder: no gradients and BN statistics fixed (eval mode)."""
    enc = getattr(net, "encoder", None)
    if enc is None:
        return
    for p in enc.parameters():
        p.requires_grad_(not frozen)
    enc.train(not frozen)


def forward_loss(net, L, ab_small, class_weights, bins, amp_dtype):
    device_type = L.device.type
    with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = net((L - L_CENT) / L_NORM)
    if getattr(_unwrap(net), "head", "classification") == "classification":
        return rebalanced_ce(out, soft_encode(ab_small, bins), class_weights)
    return l2_loss(out, ab_small)


def train_step(net, batch, class_weights, bins, amp_dtype, scaler, state: dict) -> float:
    """Forward/backward of one global batch, in ``state['micro']`` chunks (gradients accumulated).

    On a CUDA out-of-memory error the chunk size is halved and the step retried (logged)."""
    L, ab_small = batch
    while True:
        try:
            chunks = max(1, min(state["micro"], L.shape[0]))
            total = 0.0
            for Lc, abc in zip(L.chunk(chunks), ab_small.chunk(chunks), strict=True):
                loss = forward_loss(net, Lc, abc, class_weights, bins, amp_dtype) * (Lc.shape[0] / L.shape[0])
                (scaler.scale(loss) if scaler else loss).backward()
                total += loss.detach().item()
            return total
        except torch.cuda.OutOfMemoryError:
            for p in net.parameters():
                p.grad = None
            if state["micro"] >= L.shape[0]:
                raise
            state["micro"] *= 2
            log.warning(
                "CUDA out of memory: retrying the step in %d chunks of %d images",
                state["micro"],
                math.ceil(L.shape[0] / state["micro"]),
            )
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _unwrap(net):
    return net.module if hasattr(net, "module") else net


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _rng_state() -> dict:
    # tensors only, so the checkpoint loads with weights_only=True
    return {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "python": torch.tensor(list(random.getstate()[1]), dtype=torch.int64),
    }


def _image_grid(net, val_files, device) -> np.ndarray:
    """gray | predicted | ground truth for a few validation images, stacked vertically, HWC uint8."""
    from ..core.color import l_to_gray_rgb, lab_to_rgb, merge_l_ab

    predict = torch_predictor(net, device=device)
    rows = []
    for _, lab in iter_lab_images(val_files[:4], 128):
        lab = lab[:128, :128]
        L = lab[..., 0]
        gray = np.repeat(l_to_gray_rgb(L)[..., None], 3, -1)
        pred = lab_to_rgb(merge_l_ab(L, predict(L)))
        rows.append(np.concatenate([gray, pred, lab_to_rgb(lab)], 1))
    return (np.concatenate(rows, 0) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- main
def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(
        "cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)
    )
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda", torch.cuda.current_device())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {world} processes")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)

    # data
    train_set = ColorizationDataset(cfg.train_dir, cfg.crop, train=True, seed=cfg.seed, limit=cfg.limit_images or None)
    val_files = list_images(cfg.val_dir, cfg.eval_images) if cfg.val_dir and Path(cfg.val_dir).is_dir() else []
    prior = load_or_compute_prior(cfg, run_dir)
    class_weights = torch.from_numpy(rebalance_weights(prior)).to(device)
    bins = bins_tensor().to(device)

    # model
    net = create_model(cfg.model, **cfg.model_args).to(device)
    gc = cfg.grad_checkpointing
    if gc == "auto":
        small_gpu = device.type == "cuda" and torch.cuda.get_device_properties(device).total_memory < 12 * 2**30
        gc = "true" if cfg.model.startswith("papernet") and small_gpu else "false"
    net.grad_checkpointing = gc == "true"
    amp_dtype = None
    if cfg.amp == "auto":
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    enc_params = list(net.encoder_parameters()) if hasattr(net, "encoder_parameters") else []
    enc_ids = {id(p) for p in enc_params}
    groups = [{"params": [p for p in net.parameters() if id(p) not in enc_ids], "lr_mult": 1.0}]
    if enc_params:
        groups.append({"params": enc_params, "lr_mult": cfg.encoder_lr_mult})
    opt = torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(net).eval() if cfg.ema_decay > 0 else None
    step, best, micro = 0, -1.0, 1

    ckpt_path = run_dir / "last.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, best, micro = state["step"], state.get("best_score", -1.0), state.get("micro", 1)
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resumed from %s at step %d", ckpt_path, step)
    model = net
    if world > 1:
        if device.type == "cuda":  # SyncBatchNorm needs CUDA; on CPU each rank normalises its own shard
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint(path: Path, score: float | None = None) -> None:
        if not _is_main():
            return
        save_checkpoint(
            path,
            {
                "model": net.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict() if scaler else None,
                "variant": cfg.model,
                "variant_args": net.variant_args,
                "config": cfg.to_dict(),
                "config_hash": cfg.hash(),
                "bins_hash": bins_hash(),
                "step": step,
                "best_score": best,
                "score": score,
                "micro": micro,
                "rng": _rng_state(),
                "prior": torch.from_numpy(prior),
            },
        )

    writer = None
    if _is_main():
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"))
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")

    bpe = len(train_set) // cfg.batch_size
    if bpe == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the dataset ({len(train_set)} images)")
    t_start = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (progress and _is_main()), desc="train", dynamic_ncols=True)
    state = {"micro": micro}
    seen, t_log, stop_reason = 0, time.time(), "max_steps"
    while step < cfg.max_steps:
        epoch, start = divmod(step, bpe)
        train_set.set_epoch(epoch)
        sampler = EpochBatches(len(train_set), cfg.batch_size, cfg.seed, epoch, start, rank, world)
        loader = DataLoader(
            train_set,
            batch_sampler=sampler,
            num_workers=cfg.workers,
            persistent_workers=False,
            prefetch_factor=4 if cfg.workers else None,
        )
        for L, ab_small in loader:
            frozen = step < cfg.freeze_encoder_steps
            set_encoder_frozen(net, frozen)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step) * g["lr_mult"]
            opt.zero_grad(set_to_none=True)
            loss = train_step(model, (L.to(device), ab_small.to(device)), class_weights, bins, amp_dtype, scaler, state)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            micro = state["micro"]
            if ema is not None:
                with torch.no_grad():
                    for pe, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
                        if pe.dtype.is_floating_point:
                            pe.lerp_(p, 1.0 - cfg.ema_decay)
                        else:
                            pe.copy_(p)
            step += 1
            seen += L.shape[0] * world
            bar.update(1)
            if step % cfg.log_every == 0 and _is_main():
                ips = seen / (time.time() - t_log)
                seen, t_log = 0, time.time()
                bar.set_postfix(loss=f"{loss:.3f}", ips=f"{ips:.1f}")
                if writer:
                    writer.add_scalar("train/loss", loss, step)
                    writer.add_scalar("train/lr", lr_at(cfg, step), step)
                    writer.add_scalar("train/images_per_s", ips, step)
            eval_net = ema if ema is not None else net
            if writer and val_files and step % cfg.image_every == 0:
                writer.add_image("val/gray_pred_truth", _image_grid(eval_net, val_files, device), step, dataformats="HWC")
            if val_files and step % cfg.eval_every == 0 and _is_main():
                r = evaluate(val_files, {"model": torch_predictor(eval_net, device=device)}, progress=False)["methods"]["model"]
                score = (r["auc_raw"] + r["auc_rebal"]) / 2  # raw rewards caution, rebalanced rewards colour
                if writer:
                    writer.add_scalar("val/auc_raw", r["auc_raw"], step)
                    writer.add_scalar("val/auc_rebal", r["auc_rebal"], step)
                    writer.add_scalar("val/psnr", r["psnr"], step)
                if score > best:
                    best = score
                    checkpoint(run_dir / "best.pt", score)
                net.train()
                set_encoder_frozen(net, step < cfg.freeze_encoder_steps)
            out_of_time = cfg.max_minutes and (time.time() - t_start) / 60 >= cfg.max_minutes
            if step % cfg.ckpt_every == 0 or step >= cfg.max_steps or out_of_time:
                checkpoint(ckpt_path)
            if step >= cfg.max_steps:
                break
            if out_of_time:
                stop_reason = "max_minutes"
                break
        if stop_reason == "max_minutes":
            break
    bar.close()
    if step % cfg.ckpt_every and stop_reason == "max_steps":
        checkpoint(ckpt_path)
    if writer:
        writer.close()
    if world > 1:
        dist.barrier()
    return {"step": step, "best_score": best, "stop": stop_reason, "minutes": (time.time() - t_start) / 60}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colorize-train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="YAML config (see configs/)")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, prior, TensorBoard logs)")
    ap.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    ap.add_argument("overrides", nargs="*", help="key=value settings that override the config")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = TrainConfig.load(args.config, args.overrides)
        result = train(cfg, Path(args.out).expanduser(), resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"colorize-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("colorize-train: interrupted; resume with --resume", file=sys.stderr)
        return 130
    if _is_main():
        print(
            f"done: step {result['step']} ({result['stop']}, {result['minutes']:.1f} min); "
            f"best val score {result['best_score']:.2f}; checkpoints in {args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
