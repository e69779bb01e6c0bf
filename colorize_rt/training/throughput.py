"""Is the data pipeline keeping up? Training img/s with the real DataLoader vs the pure
forward+backward rate on tensors already in memory, same model, batch, crop and precision.

    python -m colorize_rt.training.throughput --config configs/quicktrain.yaml [--steps 30] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader

from ..core.prior import rebalance_weights
from ..models import create_model
from ..models.decode import bins_tensor
from .config import TrainConfig
from .data import ColorizationDataset
from .train import EpochBatches, choose_amp, set_encoder_trainable, train_step


def measure(cfg: TrainConfig, steps: int = 30, warmup: int = 5) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = create_model(cfg.model, **cfg.model_args).train()
    set_encoder_trainable(net, 0 if cfg.freeze_encoder_steps > 0 else None)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    amp, _ = choose_amp(cfg, torch.device("cpu"))
    w = torch.from_numpy(rebalance_weights(torch.ones(313).numpy()))
    bins = bins_tensor()
    ds = ColorizationDataset(cfg.train_dir, cfg.crop, seed=cfg.seed)
    loader = DataLoader(
        ds,
        batch_sampler=EpochBatches(len(ds), cfg.batch_size, cfg.seed, 0),
        num_workers=cfg.workers,
        prefetch_factor=4 if cfg.workers else None,
    )

    def step(batch):
        opt.zero_grad(set_to_none=True)
        train_step(net, batch, w, bins, amp, None, {"micro": 1})
        opt.step()

    it = iter(loader)
    fixed = next(it)
    for _ in range(warmup):
        step(fixed)
    t = time.perf_counter()
    for _ in range(steps):
        step(fixed)
    pure = steps * cfg.batch_size / (time.perf_counter() - t)
    for _ in range(warmup):
        step(next(it))
    t = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    piped = steps * cfg.batch_size / (time.perf_counter() - t)
    return {
        "model": cfg.model,
        "batch": cfg.batch_size,
        "crop": cfg.crop,
        "workers": cfg.workers,
        "threads": torch.get_num_threads(),
        "pure_fwd_bwd_img_s": round(pure, 2),
        "with_data_pipeline_img_s": round(piped, 2),
        "ratio": round(piped / pure, 3),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    print(json.dumps(measure(TrainConfig.load(args.config, args.overrides), args.steps), indent=2))


if __name__ == "__main__":
    main()
