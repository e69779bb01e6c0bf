"""Train a colorization model the paper's way. Reads top to bottom: setup, data, model, optimiser,
helpers, then one loop (evaluate/checkpoint, forward/backward, log, stop). SIGTERM or Ctrl-C stop it after
the current step with ``last.pt`` saved (``training/stop.py``); exit status 128 + the signal.

    colorize-train --config configs/quicktrain.yaml --out ~/colorize-runs/quick [--resume] [key=value ...]
    torchrun --nproc_per_node 2 -m colorize_rt.training.train --config ... --out ...   (DDP)
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..core.bins import bins_hash
from ..core.constants import AB_NORM, DEFAULT_T, L_CENT, L_NORM
from ..core.cpu import cpu_model, native_bf16
from ..core.files import list_images
from ..core.metrics import check_prior
from ..core.prior import prior_from_ab_maps, prior_warning, rebalance_weights
from ..eval.predictors import torch_predictor
from ..eval.scoring import evaluate, iter_lab_images
from ..models import create_model, model_info
from ..models.checkpoint import load_checkpoint, save_checkpoint, weights_key
from ..models.decode import annealed_mean_torch, bins_tensor
from .config import TrainConfig
from .data import ColorizationDataset
from .loss import l2_loss, rebalanced_ce, soft_encode_torch
from .stop import StopRequest, ignore_stop_signals

log = logging.getLogger("colorize_rt.train")


# ----------------------------------------------------------------------------- helpers
def compute_prior(files: list[Path], short_side: int = 64) -> np.ndarray:
    """Empirical prior of images at shorter side 64 (area): every pixel to its nearest bin.

    Unreadable files are left out (a warning says how many); a one-line ``ValueError`` when none can be read."""
    read = 0

    def ab_maps():
        nonlocal read
        for _, lab in iter_lab_images(files, short_side):
            read += 1
            yield lab[..., 1:]

    try:
        prior = prior_from_ab_maps(tqdm(ab_maps(), total=len(files), desc="prior", leave=False))
    except ValueError:
        if read:
            raise
        raise ValueError(f"no prior: all {len(files)} image files are unreadable") from None
    if read < len(files):
        log.warning("warning: %d of %d image files are unreadable; the prior leaves them out", len(files) - read, len(files))
    return prior


def _prior_key(cfg: TrainConfig, files: list[Path]) -> dict:
    return {"train_dir": str(Path(cfg.train_dir).resolve()), "limit_images": cfg.limit_images, "files": len(files)}


def load_or_compute_prior(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> np.ndarray:
    """``cfg.prior``, else the run's cached ``prior.npy`` when ``prior.json`` says it was computed from the same
    images (``train_dir``, ``limit_images``, number of files), else computed on ``train_dir`` and cached.
    A ``prior.npy`` without ``prior.json`` (runs from before it) is kept on ``--resume``."""
    if cfg.prior:
        return _load_prior_file(cfg.prior)
    from ..core.atomic import atomic_path, atomic_write_text

    cache, sidecar = run_dir / "prior.npy", run_dir / "prior.json"
    files = list_images(cfg.train_dir, cfg.limit_images or None)
    key = _prior_key(cfg, files)
    if cache.exists():
        try:
            stored = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            stored = None
        if stored == key or (stored is None and resume and not sidecar.exists()):
            return np.load(cache)
        log.info("%s was computed from other images (%s); recomputing it for %s", cache, stored or "no prior.json", key)
    prior = compute_prior(files)
    if _is_main():
        sidecar.unlink(missing_ok=True)  # a prior.npy written below never pairs with an older key
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.save(fh, prior)
        atomic_write_text(sidecar, json.dumps(key, indent=1) + "\n")
    return prior


def _load_prior_file(path: str) -> np.ndarray:
    if not Path(path).is_file():
        raise ValueError(f"prior={path}: {'a folder' if Path(path).is_dir() else 'no such file'}; pass a .npy file")
    try:
        prior = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"prior={path}: not a .npy file ({type(exc).__name__})") from None
    try:
        check_prior(prior)  # the file's own values are used, as before; this only refuses a bad one
    except ValueError as exc:
        raise ValueError(f"prior={path}: {exc} (colorize-prior writes one)") from None
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


def choose_amp(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for ``cfg.amp`` on ``device`` and why (logged at start).

    ``auto``: fp16 + GradScaler on CUDA; bf16 on a CPU that does bf16 in hardware (AVX512-BF16 or AMX);
    fp32 on other CPUs, where PyTorch emulates bf16 several times slower than fp32.
    """
    if cfg.amp == "off":
        return None, "amp=off"
    if cfg.amp in ("bf16", "fp16"):
        return (torch.bfloat16 if cfg.amp == "bf16" else torch.float16), f"amp={cfg.amp} (asked for)"
    if device.type == "cuda":
        return torch.float16, "amp=auto on CUDA: fp16 autocast with a GradScaler"
    if device.type == "cpu" and native_bf16():
        return torch.bfloat16, f"amp=auto: bf16 autocast, this CPU ({cpu_model()}) has native bf16 (AVX512-BF16/AMX)"
    return None, f"amp=auto: fp32, this CPU ({cpu_model()}) has no native bf16 and would emulate it (slower)"


def encoder_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """A pretrained encoder's layers bottom to top (stem first), or [] for models without one."""
    enc = getattr(net, "encoder", None)
    if enc is None:
        return []
    blocks = list(getattr(enc, "_blocks", []))
    stem = [m for name, m in enc.named_children() if name != "_blocks"]
    return [torch.nn.ModuleList(stem), *blocks] if blocks else [enc]


def set_encoder_trainable(net: torch.nn.Module, top_layers: int | None) -> None:
    """Fine-tune the top ``top_layers`` encoder layers (None: all; 0: none). Frozen layers get no gradients
    and keep their BN statistics fixed (eval mode)."""
    layers = encoder_layers(net)
    n_train = len(layers) if top_layers is None else min(top_layers, len(layers))
    for i, layer in enumerate(layers):
        trainable = i >= len(layers) - n_train
        for p in layer.parameters():
            p.requires_grad_(trainable)
        layer.train(trainable and net.training)


def trainable_layers(cfg: TrainConfig, step: int) -> int | None:
    """How many encoder layers train at ``step``: none while frozen, then ``unfreeze_layers`` (0 = all)."""
    if step < cfg.freeze_encoder_steps:
        return 0
    return cfg.unfreeze_layers or None


def param_groups(net: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """Decoder at lr × 1; encoder layer k from the top at lr × encoder_lr_mult × encoder_lr_decay^k."""
    layers = encoder_layers(net)
    enc_ids = {id(p) for layer in layers for p in layer.parameters()}
    groups = [{"params": [p for p in net.parameters() if id(p) not in enc_ids], "lr_mult": 1.0}]
    for k, layer in enumerate(reversed(layers)):
        groups.append({"params": list(layer.parameters()), "lr_mult": cfg.encoder_lr_mult * cfg.encoder_lr_decay**k})
    return groups


def forward_loss(net, L, ab_small, class_weights, bins, amp_dtype, aux_weight: float = 0.0):
    """The paper's rebalanced cross-entropy (or the L2 baseline's Huber loss), plus ``aux_weight`` × a Huber
    loss on the annealed-mean ab (T = DEFAULT_T) when asked: it pulls the decoded colour, which is what
    users see and raw AuC scores, towards the truth."""
    device_type = L.device.type
    with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = net((L - L_CENT) / L_NORM)
    if getattr(_unwrap(net), "head", "classification") != "classification":
        return l2_loss(out, ab_small)
    loss = rebalanced_ce(out, soft_encode_torch(ab_small, bins), class_weights)
    if aux_weight:
        loss = loss + aux_weight * l2_loss(annealed_mean_torch(out.float(), DEFAULT_T, bins) / AB_NORM, ab_small)
    return loss


def train_step(net, batch, class_weights, bins, amp_dtype, scaler, state: dict, aux_weight: float = 0.0) -> float:
    """Forward/backward of one global batch, in ``state['micro']`` chunks (gradients accumulated).

    On a CUDA out-of-memory error the chunk size is halved and the step retried (logged)."""
    L, ab_small = batch
    while True:
        try:
            chunks = max(1, min(state["micro"], L.shape[0]))
            total = 0.0
            for Lc, abc in zip(L.chunk(chunks), ab_small.chunk(chunks), strict=True):
                loss = forward_loss(net, Lc, abc, class_weights, bins, amp_dtype, aux_weight) * (Lc.shape[0] / L.shape[0])
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


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with a warm-up, min(decay, (1 + step) / (10 + step)): early averages follow the weights
    instead of keeping most of the random initialisation (0.999^500 = 0.61 of it after 500 steps)."""
    return min(decay, (1 + step) / (10 + step))


def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
            if pe.dtype.is_floating_point:
                pe.lerp_(p, 1.0 - decay)
            else:
                pe.copy_(p)


def cpu_seconds() -> float:
    """CPU time of this process and its data-loader workers (live and finished)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            with_times = child.cpu_times()
            total += with_times.user + with_times.system
    except Exception:  # psutil missing, or a worker exited while being read
        pass
    return total


def _unwrap(net):
    return net.module if hasattr(net, "module") else net


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _rng_state() -> dict:
    # tensors only, so the checkpoint loads with weights_only=True
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": torch.tensor(np_state[2], dtype=torch.int64),
        "python": torch.tensor(list(py_state[1]), dtype=torch.int64),
    }


def _restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "numpy" in state and "numpy_pos" in state:
        np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(state["numpy_pos"]), 0, 0.0))
    if "python" in state:
        random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))


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


# ----------------------------------------------------------------------------- setup
@dataclass
class Run:
    """Everything one training run holds; built by ``setup``, advanced by the loop in ``train``."""

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    rank: int
    world: int
    train_set: ColorizationDataset
    val_files: list[Path]
    prior: np.ndarray
    class_weights: torch.Tensor
    bins: torch.Tensor
    net: torch.nn.Module
    model: torch.nn.Module  # net, or its DDP wrapper
    opt: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    scaler: object | None
    ema: torch.nn.Module | None
    writer: object | None = None
    step: int = 0
    best: float = -1.0
    state: dict = field(default_factory=lambda: {"micro": 1})


def _device(cfg: TrainConfig, world: int) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if world > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cuda")


def init_weights(net: torch.nn.Module, cfg: TrainConfig) -> None:
    """Load ``cfg.init_from``'s weights (its EMA where it has one) into ``net``: fine-tune from a checkpoint.

    Args:
        net: the freshly built network of ``cfg.model``.
        cfg: the run's config; nothing happens when ``init_from`` is empty.
    """
    if not cfg.init_from:
        return
    state = load_checkpoint(cfg.init_from)
    if state["variant"] != cfg.model:
        raise ValueError(f"init_from {cfg.init_from} holds a {state['variant']} model, but this run trains {cfg.model}")
    which = weights_key(state)
    try:
        net.load_state_dict(state[which])  # copies into the net's own dtype: fp16-stored weights load too
    except RuntimeError as exc:  # missing, unexpected or differently shaped tensors
        fit = f"{cfg.model} with model_args {cfg.model_args}"
        raise ValueError(f"init_from {cfg.init_from}: its weights do not fit {fit}") from exc
    log.info("weights from %s (%s, step %s)", cfg.init_from, which, state.get("step"))


def _build_net(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    args = dict(cfg.model_args)
    if cfg.init_from and "pretrained" in model_info(cfg.model):
        args["pretrained"] = False  # the checkpoint carries the encoder's weights
    net = create_model(cfg.model, **args)
    init_weights(net, cfg)
    net = net.to(device)
    gc = cfg.grad_checkpointing
    if gc == "auto":
        small_gpu = device.type == "cuda" and torch.cuda.get_device_properties(device).total_memory < 12 * 2**30
        gc = "true" if cfg.model.startswith("papernet") and small_gpu else "false"
    net.grad_checkpointing = gc == "true"
    return net


def _checkpoint_step(path: Path) -> object:
    try:
        return load_checkpoint(path).get("step")
    except ValueError:  # unreadable: still a run the user may want
        return "?"


def check_resume(cfg: TrainConfig, state: dict, path: Path) -> None:
    """Refuse to resume ``path`` with another model or other model args than it was trained with.

    Raises:
        ValueError: one line saying what differs.
    """
    ours = model_info(cfg.model) | {k: v for k, v in cfg.model_args.items() if v is not None}
    theirs = state.get("variant_args", ours)  # older checkpoints: the variant name only
    if state["variant"] != cfg.model:
        diffs = [f"model {state['variant']} (config: {cfg.model})"]
    else:  # pretrained only chooses the initial weights
        keys = sorted((set(ours) | set(theirs)) - {"pretrained"})
        diffs = [f"model_args {k}={theirs.get(k)!r} (config: {ours.get(k)!r})" for k in keys if ours.get(k) != theirs.get(k)]
    if diffs:
        raise ValueError(
            f"--resume: {path} was trained with {'; '.join(diffs)}: resume with the run's settings, or choose another --out"
        )


def check_device(device: str) -> None:
    """Refuse a ``device`` this machine does not have (torch's own error is an AssertionError traceback)."""
    if device.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= n:
            why = "torch was built without CUDA" if torch.version.cuda is None else f"torch sees {n} CUDA GPU(s)"
            raise ValueError(f"device={device}: {why}; use device=auto or device=cpu")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device=mps: this machine has no MPS (Apple GPU); use device=auto or device=cpu")


def check_run(cfg: TrainConfig, run_dir: Path, resume: bool) -> dict | None:
    """Before any work: refuse a run folder that is a file, a new run over an old one (its ``last.pt`` would be
    overwritten), ``--resume`` without a run or with another model, a missing prior file, a missing device.

    Returns:
        With ``resume``, the loaded ``last.pt`` (for ``resume_from``; read once); else None.

    Raises:
        ValueError: one line naming the fix.
    """
    last = run_dir / "last.pt"
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file; the run needs a folder: choose another --out")
    if resume and not last.is_file():
        raise ValueError(f"--resume: {run_dir} holds no run to continue (no last.pt): drop --resume to start one")
    if not resume and last.exists():
        raise ValueError(
            f"{run_dir} already holds a run (last.pt at step {_checkpoint_step(last)}): "
            "pass --resume to continue it, or choose another --out"
        )
    state = load_checkpoint(last) if resume else None
    if state is not None:
        check_resume(cfg, state, last)
    if cfg.prior:
        _load_prior_file(cfg.prior)
    check_device(cfg.device)
    return state


def setup(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> Run:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = _device(cfg, world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {world} processes")
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)

    train_set = ColorizationDataset(
        cfg.train_dir, cfg.crop, train=True, seed=cfg.seed, limit=cfg.limit_images or None, scale_jitter=cfg.scale_jitter
    )
    if len(train_set) < cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the dataset ({len(train_set)} images)")
    val_files = list_images(cfg.val_dir, cfg.eval_images) if cfg.val_dir and Path(cfg.val_dir).is_dir() else []
    if cfg.val_dir and not val_files:  # a typo here would otherwise train without validation and no best.pt
        why = "has no images" if Path(cfg.val_dir).is_dir() else "not found"
        log.warning("warning: val_dir %s %s: no validation, so no best.pt (set val_dir='' to silence this)", cfg.val_dir, why)
    prior = load_or_compute_prior(cfg, run_dir, resume)
    if warning := prior_warning(prior):
        log.warning("warning: %s", warning)

    net = _build_net(cfg, device)
    amp_dtype, why = choose_amp(cfg, device)
    log.info("precision: %s", why)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    opt = torch.optim.Adam(param_groups(net, cfg), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(net).eval() if cfg.ema_decay > 0 else None
    model = net
    if world > 1:
        if device.type == "cuda":  # SyncBatchNorm needs CUDA; on CPU each rank normalises its own shard
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return Run(
        cfg, run_dir, device, rank, world, train_set, val_files, prior,
        torch.from_numpy(rebalance_weights(prior)).to(device), bins_tensor().to(device),
        net, model, opt, amp_dtype, scaler, ema, writer=_tensorboard(run_dir),
    )  # fmt: skip


def _tensorboard(run_dir: Path):
    if not _is_main():
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return None
    return SummaryWriter(str(run_dir / "tb"))


def resume_from(run: Run, path: Path, state: dict | None = None) -> None:
    """Continue exactly where ``path`` (a ``last.pt``) stopped: weights, optimiser, EMA, scaler, step, RNGs.
    ``state``: ``path`` already loaded (``check_run``), so it is not read again."""
    state = load_checkpoint(path) if state is None else state
    run.net.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.step, run.best = state["step"], state.get("best_score", -1.0)
    run.state["micro"] = state.get("micro", 1)
    _restore_rng(state["rng"])
    log.info("resumed from %s at step %d", path, run.step)


def save(run: Run, path: Path, score: float | None = None) -> None:
    if not _is_main():
        return
    cfg, net = run.cfg, run.net
    save_checkpoint(
        path,
        {
            "model": net.state_dict(), "ema": run.ema.state_dict() if run.ema is not None else None,
            "optimizer": run.opt.state_dict(), "scaler": run.scaler.state_dict() if run.scaler else None,
            "variant": cfg.model, "variant_args": net.variant_args, "config": cfg.to_dict(),
            "config_hash": cfg.hash(), "bins_hash": bins_hash(), "step": run.step, "best_score": run.best,
            "score": score, "micro": run.state["micro"], "rng": _rng_state(), "prior": torch.from_numpy(run.prior),
        },
    )  # fmt: skip


# ----------------------------------------------------------------------------- loop steps
def optimise(run: Run, L: torch.Tensor, ab_small: torch.Tensor) -> float:
    """One optimiser step on one global batch; returns its loss."""
    cfg = run.cfg
    set_encoder_trainable(run.net, trainable_layers(cfg, run.step))
    for g in run.opt.param_groups:
        g["lr"] = lr_at(cfg, run.step) * g["lr_mult"]
    run.opt.zero_grad(set_to_none=True)
    batch = (L.to(run.device), ab_small.to(run.device))
    loss = train_step(run.model, batch, run.class_weights, run.bins, run.amp_dtype, run.scaler, run.state, cfg.aux_l1)
    if run.scaler:
        run.scaler.step(run.opt)
        run.scaler.update()
    else:
        run.opt.step()
    if run.ema is not None:
        update_ema(run.ema, run.net, ema_decay_at(cfg.ema_decay, run.step))
    run.step += 1
    return loss


class _StopDuringValidation(Exception):
    """A stop signal arrived while the validation images were being scored."""


def validate(run: Run, request: StopRequest | None = None) -> None:
    """Score on the validation images; keep ``best.pt`` by the mean of raw and rebalanced AuC.

    A stop request (SIGTERM, Ctrl-C) abandons the validation at the next image, so that the run saves and
    exits about a step after the signal, not after the whole validation (a minute on a CPU; schedulers
    and container runtimes send SIGKILL after a grace period, often 30 s).
    """
    eval_net = run.ema if run.ema is not None else run.net
    predict = torch_predictor(eval_net, device=run.device)

    def predict_unless_stopped(L):
        if request is not None and request.received is not None:
            raise _StopDuringValidation
        return predict(L)

    try:
        r = evaluate(run.val_files, {"model": predict_unless_stopped}, progress=False)["methods"]["model"]
    except _StopDuringValidation:
        log.warning("step %d: validation abandoned: %s", run.step, request.received.name)
        run.net.train()
        return
    score = (r["auc_raw"] + r["auc_rebal"]) / 2  # raw rewards caution, rebalanced rewards colour
    log.info("step %d: val AuC raw %.2f rebal %.2f PSNR %.2f", run.step, r["auc_raw"], r["auc_rebal"], r["psnr"])
    if run.writer:
        for key in ("auc_raw", "auc_rebal", "psnr"):
            run.writer.add_scalar(f"val/{key}", r[key], run.step)
    if score > run.best:
        run.best = score
        save(run, run.run_dir / "best.pt", score)
    run.net.train()


def log_progress(run: Run, bar, loss: float, ips: float) -> None:
    bar.set_postfix(loss=f"{loss:.3f}", ips=f"{ips:.1f}")
    if run.writer:
        run.writer.add_scalar("train/loss", loss, run.step)
        run.writer.add_scalar("train/lr", lr_at(run.cfg, run.step), run.step)
        run.writer.add_scalar("train/images_per_s", ips, run.step)


def out_of_budget(cfg: TrainConfig, t_start: float, cpu_start: float) -> str | None:
    if cfg.max_minutes and (time.time() - t_start) / 60 >= cfg.max_minutes:
        return "max_minutes"
    if cfg.max_cpu_minutes and (cpu_seconds() - cpu_start) / 60 >= cfg.max_cpu_minutes:
        return "max_cpu_minutes"
    return None


def stop_signal(run: Run, request: StopRequest) -> str | None:
    """The name of the signal that asked the run to stop, or None; ranks agree, so all stop at one step."""
    got = request.received is not None
    if run.world > 1:
        flag = torch.tensor([float(got)], device=run.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        got = bool(flag.item())
    if not got:
        return None
    return request.received.name if request.received is not None else "SIGTERM"  # another rank's


def epoch_loader(run: Run) -> DataLoader:
    """The rest of the current epoch, from the batch after ``run.step``."""
    cfg = run.cfg
    epoch, start = divmod(run.step, len(run.train_set) // cfg.batch_size)
    run.train_set.set_epoch(epoch)
    sampler = EpochBatches(len(run.train_set), cfg.batch_size, cfg.seed, epoch, start, run.rank, run.world)
    return DataLoader(
        run.train_set, batch_sampler=sampler, num_workers=cfg.workers, persistent_workers=False,
        prefetch_factor=4 if cfg.workers else None, worker_init_fn=ignore_stop_signals if cfg.workers else None,
    )  # fmt: skip


# ----------------------------------------------------------------------------- main
def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    stored = check_run(cfg, run_dir, resume)
    run = setup(cfg, run_dir, resume)
    ckpt_path = run_dir / "last.pt"
    if stored is not None:
        resume_from(run, ckpt_path, stored)
    t_start, cpu_start = time.time(), cpu_seconds()
    bar = tqdm(total=cfg.max_steps, initial=run.step, disable=not (progress and _is_main()), desc="train", dynamic_ncols=True)
    seen, t_log, stop = 0, time.time(), None
    with StopRequest() as request:  # SIGINT / SIGTERM only set a flag while the loop runs
        while run.step < cfg.max_steps and stop is None:
            for L, ab_small in epoch_loader(run):
                loss = optimise(run, L, ab_small)
                seen += L.shape[0] * run.world
                bar.update(1)
                if run.step % cfg.log_every == 0 and _is_main():
                    log_progress(run, bar, loss, seen / (time.time() - t_log))
                    seen, t_log = 0, time.time()
                if run.writer and run.val_files and run.step % cfg.image_every == 0:
                    eval_net = run.ema if run.ema is not None else run.net
                    run.writer.add_image(
                        "val/gray_pred_truth", _image_grid(eval_net, run.val_files, run.device), run.step, dataformats="HWC"
                    )
                if run.val_files and run.step % cfg.eval_every == 0 and _is_main():
                    validate(run, request)
                stop = "max_steps" if run.step >= cfg.max_steps else out_of_budget(cfg, t_start, cpu_start)
                stop = stop or stop_signal(run, request)  # SIGTERM or Ctrl-C: finish this step, save, stop
                if run.step % cfg.ckpt_every == 0 or stop:
                    save(run, ckpt_path)
                if stop:
                    break
    bar.close()
    if run.writer:
        run.writer.close()
    if run.world > 1:
        dist.barrier()
    return {"step": run.step, "best_score": run.best, "stop": stop or "max_steps", "minutes": (time.time() - t_start) / 60,
            "cpu_minutes": (cpu_seconds() - cpu_start) / 60}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="colorize-train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="YAML config (see configs/)")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, prior, TensorBoard logs)")
    ap.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    ap.add_argument("overrides", nargs="*", help="key=value settings that override the config")
    args = ap.parse_intermixed_args(argv)  # key=value settings before and after --out/--resume
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dir = Path(args.out).expanduser()
    try:
        cfg = TrainConfig.load(args.config, args.overrides)
        result = train(cfg, run_dir, resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"colorize-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside the loop (data, prior, model) or a second Ctrl-C: no save on the way out
        if (run_dir / "last.pt").is_file():
            step = _checkpoint_step(run_dir / "last.pt")
            print(f"colorize-train: interrupted; resume from {args.out}/last.pt (step {step}) with --resume", file=sys.stderr)
        else:
            print(
                "colorize-train: interrupted before the first checkpoint; nothing to resume: run the command again",
                file=sys.stderr,
            )
        return 130
    if result["stop"] in ("SIGINT", "SIGTERM"):
        if _is_main():
            print(f"colorize-train: stopped by {result['stop']} at step {result['step']}; {args.out}/last.pt saved; "
                  "resume with --resume", file=sys.stderr)  # fmt: skip
        return 128 + signal.Signals[result["stop"]].value
    if _is_main():
        print(
            f"done: step {result['step']} ({result['stop']}, {result['minutes']:.1f} min, {result['cpu_minutes']:.1f} CPU-min); "
            f"best val score {result['best_score']:.2f}; checkpoints in {args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
