import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from colorize_rt.core.bins import soft_encode as np_soft_encode
from colorize_rt.core.constants import NUM_BINS
from colorize_rt.models import create_model
from colorize_rt.models.decode import bins_tensor
from colorize_rt.training import train as train_mod
from colorize_rt.training.checkpoint import load_checkpoint, model_from_checkpoint
from colorize_rt.training.config import TrainConfig
from colorize_rt.training.loss import rebalanced_ce, soft_encode

from .conftest import ROOT, TRAIN_DIR, needs

SMOKE = ROOT / "configs" / "smoke.yaml"


def _cfg(**kw):
    cfg = TrainConfig.load(SMOKE)
    cfg.train_dir = str(TRAIN_DIR)
    cfg.val_dir = ""
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_torch_soft_encode_matches_numpy():
    ab = torch.from_numpy(np.random.default_rng(0).uniform(-100, 100, (2, 2, 6, 7)).astype(np.float32))
    np.testing.assert_allclose(soft_encode(ab, bins_tensor()).numpy(), np_soft_encode(ab.numpy()), atol=1e-5)


def test_rebalanced_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, NUM_BINS, 2, 2, generator=g)
    target = soft_encode(torch.randn(1, 2, 2, 2, generator=g) * 30, bins_tensor())
    w = torch.rand(NUM_BINS, generator=g) + 0.5
    expected = 0.0
    logp = torch.log_softmax(logits, 1)
    for i in range(2):
        for j in range(2):
            z = target[0, :, i, j]
            expected -= w[z.argmax()] * (z * logp[0, :, i, j]).sum()
    assert torch.isclose(rebalanced_ce(logits, target, w), expected / 4, atol=1e-5)
    # uniform weights reduce to plain cross-entropy with soft targets
    plain = -(target * logp).sum(1).mean()
    assert torch.isclose(rebalanced_ce(logits, target, torch.ones(NUM_BINS)), plain, atol=1e-5)


def test_config_rejects_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys: bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": "many"})
    cfg = TrainConfig.load(SMOKE, ["lr=0.01", "model=l2", "lr_steps=[5,6]"])
    assert cfg.lr == 0.01 and cfg.model == "l2" and cfg.lr_steps == [5, 6]
    for name in ("quicktrain", "quicktrain-lite0", "quicktrain-lite0-l2", "fulltrain", "smoke"):
        TrainConfig.load(ROOT / "configs" / f"{name}.yaml")


def test_oom_halves_the_batch_and_retries(caplog):
    net = create_model("mobile", width=0.125)
    real_forward = net.forward
    sizes = []

    def flaky_forward(x):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(x)

    net.forward = flaky_forward
    batch = (torch.rand(8, 1, 32, 32) * 100, torch.randn(8, 2, 8, 8) * 20)
    state = {"micro": 1}
    w = torch.ones(NUM_BINS)
    loss = train_mod.train_step(net, batch, w, bins_tensor(), None, None, state)
    assert state["micro"] == 4 and sizes[:3] == [8, 4, 2] and np.isfinite(loss)
    assert "out of memory" in caplog.text
    grads_chunked = [p.grad.clone() for p in net.parameters()]
    # a batch of 1 that still does not fit is re-raised, never looped on
    net.forward = lambda x: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("simulated"))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        train_mod.train_step(net, (batch[0][:1], batch[1][:1]), w, bins_tensor(), None, None, {"micro": 1})
    assert all(torch.isfinite(g).all() for g in grads_chunked)


@needs(TRAIN_DIR)
def test_smoke_training_writes_checkpoint_that_loads(tmp_path):
    result = train_mod.train(_cfg(), tmp_path, progress=False)
    assert result["step"] == 6
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["variant"] == "mobile" and state["step"] == 6
    net, _ = model_from_checkpoint(tmp_path / "last.pt")
    assert net.variant_args["width"] == 0.125
    assert (tmp_path / "prior.npy").exists()
    assert not list(tmp_path.glob(".*.tmp*"))


def _run_cli(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "colorize_rt.training.train",
        "--config",
        str(SMOKE),
        "--out",
        str(out),
        f"train_dir={TRAIN_DIR}",
        "val_dir=",
        "threads=1",
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)


@needs(TRAIN_DIR)
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    steps = ["max_steps=12", "ckpt_every=1", "workers=1"]
    ref = _run_cli(tmp_path / "ref", *steps)
    assert ref.wait(timeout=300) == 0, ref.stdout.read().decode()[-2000:]

    run = tmp_path / "killed"
    proc = _run_cli(run, *steps)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a mid-run checkpoint exists
        if (run / "last.pt").exists() and load_checkpoint(run / "last.pt")["step"] >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(run / "last.pt")["step"]
    assert 4 <= killed_at < 12
    resumed = _run_cli(run, *steps, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read().decode()[-2000:]

    a = load_checkpoint(tmp_path / "ref" / "last.pt")["model"]
    b = load_checkpoint(run / "last.pt")["model"]
    assert load_checkpoint(run / "last.pt")["step"] == 12
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_ddp_gloo_two_processes_match_single_process(tmp_path):
    """DDP averages per-rank gradients; without SyncBatchNorm (CUDA only) each rank normalises its own
    half, which is exactly single-process training of the global batch in 2 micro-batches."""
    from . import ddp_grads

    out = tmp_path / "grads.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tests.ddp_grads",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = torch.load(out, weights_only=True)

    net = ddp_grads.fresh_model()
    train_mod.train_step(net, ddp_grads.global_batch(), torch.linspace(0.5, 2, NUM_BINS), bins_tensor(), None, None, {"micro": 2})
    for name, p in net.named_parameters():
        assert torch.allclose(p.grad, ddp[name], atol=1e-5, rtol=1e-4), name
