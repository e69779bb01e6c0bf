import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from colorize_rt.core.bins import soft_encode as np_soft_encode
from colorize_rt.core.constants import NUM_BINS
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import load_checkpoint, model_from_checkpoint
from colorize_rt.models.decode import bins_tensor
from colorize_rt.training import train as train_mod
from colorize_rt.training.config import TrainConfig
from colorize_rt.training.loss import rebalanced_ce, soft_encode_torch

from .conftest import ROOT, TRAIN_DIR, VAL_DIR, needs

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
    np.testing.assert_allclose(soft_encode_torch(ab, bins_tensor()).numpy(), np_soft_encode(ab.numpy()), atol=1e-5)


def test_rebalanced_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, NUM_BINS, 2, 2, generator=g)
    target = soft_encode_torch(torch.randn(1, 2, 2, 2, generator=g) * 30, bins_tensor())
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
    # hints-*.yaml are the hint variant's fine-tune configs (HintFinetuneConfig; tests/test_hint_variant.py)
    shipped = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("hints-"))
    assert len(shipped) >= 6
    for path in shipped:
        TrainConfig.load(path)


def test_every_number_in_the_config_is_bounded_and_every_choice_checked(tmp_path, capsys):
    import dataclasses

    from colorize_rt.training.config import BOUNDS, CHOICES

    cfg = TrainConfig()
    numeric = {f.name for f in dataclasses.fields(cfg) if isinstance(getattr(cfg, f.name), (int, float, list, tuple))}
    numeric -= {f for f in numeric if isinstance(getattr(cfg, f), bool)}
    assert numeric == set(BOUNDS)  # a new number without a bound fails here
    for key, (lo, hi) in BOUNDS.items():
        value = getattr(cfg, key)
        assert all(lo <= v <= hi for v in (value if isinstance(value, (list, tuple)) else [value])), key
        outside = hi * 2 + 1 if hi < 1 else hi + 1
        wrapped = (lambda v: [v, v]) if isinstance(value, (list, tuple)) else (lambda v: v)
        for bad in (lo - 1, outside):
            with pytest.raises(ValueError, match=f"config key '{key}' must be from"):
                TrainConfig.from_dict({key: wrapped(type(lo)(bad))})
    for key, allowed in CHOICES.items():
        for ok in allowed:
            assert getattr(TrainConfig.from_dict({key: ok}), key) == ok
        with pytest.raises(ValueError, match=f"config key '{key}' must be one of"):
            TrainConfig.from_dict({key: "banana"})
    for bad, match in (({"betas": [0.9]}, "two values"), ({"device": "gpu"}, "device"), ({"lr": float("inf")}, "'lr'")):
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_dict(bad)
    assert TrainConfig.from_dict({"device": "cuda:1"}).device == "cuda:1"
    # the command line: one line, exit 2, before any run folder is made
    out = tmp_path / "run"
    assert train_mod.main(["--config", str(SMOKE), "--out", str(out), "log_every=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "colorize-train: error: config key 'log_every' must be from 1 to 100000000; got 0"
    assert not out.exists()


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


def _run_cli(out: Path, *extra: str, **popen) -> subprocess.Popen:
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
    return subprocess.Popen(cmd, **{"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "cwd": ROOT, **popen})


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


def _own_session_with_default_sigint() -> None:  # like a terminal's foreground job, whatever ran pytest
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@needs(TRAIN_DIR)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_saves_the_step_in_flight_and_exits_128_plus_the_signal(tmp_path, sig):
    """Ctrl-C or ``kill`` to the whole process group (the loader worker gets it too): the step in flight
    finishes, ``last.pt`` holds it although no periodic checkpoint was due, one line, no traceback."""
    run, log_path = tmp_path / "run", tmp_path / "train.log"
    with open(log_path, "wb") as log_file:
        proc = _run_cli(run, "max_steps=1000000", "ckpt_every=1000000", "log_every=1", "workers=1",
                        stdout=log_file, preexec_fn=_own_session_with_default_sigint)  # fmt: skip
        deadline = time.time() + 300
        while "ips=" not in log_path.read_text(errors="replace") and time.time() < deadline:
            time.sleep(0.05)  # a step has run: the loop (and its worker) are up
        os.killpg(proc.pid, sig)
        rc = proc.wait(timeout=120)
    text = log_path.read_text(errors="replace")
    assert rc == 128 + sig, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    line = next(x for x in text.splitlines() if "stopped by" in x)
    step = load_checkpoint(run / "last.pt")["step"]
    assert f"colorize-train: stopped by {sig.name} at step {step};" in line and "--resume" in line
    assert step >= 1
    assert not list(run.glob(".*"))  # no temp file left


@needs(TRAIN_DIR)
@needs(VAL_DIR)
def test_a_stop_request_abandons_the_validation_at_the_next_image(tmp_path, caplog):
    """A signal during the in-loop validation must not wait for all its images (a scheduler's grace period
    is often shorter than a CPU validation): the rest is skipped, no best.pt is written from a partial score."""

    class StopAfter:  # a StopRequest whose signal arrives after ``n`` images have been scored
        def __init__(self, n):
            self.n, self.asked = n, 0

        @property
        def received(self):
            self.asked += 1
            return signal.SIGTERM if self.asked > self.n else None

    run = train_mod.setup(_cfg(val_dir=str(VAL_DIR), eval_images=4), tmp_path / "run")
    request = StopAfter(2)
    with caplog.at_level("WARNING"):
        train_mod.validate(run, request)
    assert request.asked <= 4  # asked before each image: two scored, the third refused (and the log's name)
    assert "step 0: validation abandoned: SIGTERM" in caplog.text
    assert not (tmp_path / "run" / "best.pt").exists() and run.best == -1.0 and run.net.training
    train_mod.validate(run, StopAfter(10))  # no signal before the end: scored and kept as usual
    assert (tmp_path / "run" / "best.pt").exists() and run.best > 0


def test_stop_request_flags_a_signal_interrupts_on_a_second_ctrl_c_and_restores_the_handlers():
    """In a fresh interpreter: signals sent to the pytest process itself would reach the native worker threads
    earlier tests left there (OpenVINO's), which crashed the whole run with SIGSEGV."""
    code = textwrap.dedent(
        """
        import os, signal
        from colorize_rt.training.stop import StopRequest

        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own Ctrl-C handler first
        with StopRequest() as request:
            os.kill(os.getpid(), signal.SIGTERM)
            assert request.received == signal.SIGTERM
            try:
                os.kill(os.getpid(), signal.SIGINT)
                raise AssertionError("a second Ctrl-C did not interrupt")
            except KeyboardInterrupt:
                pass
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with StopRequest() as request:  # an ignored signal stays ignored (e.g. SIGINT in a script's & job)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            assert request.received is None
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


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


# ----------------------------------------------------------------------------- round-2 recipe knobs
@pytest.mark.parametrize(
    ("flags", "device", "expected"),
    [
        (frozenset({"avx2", "fma"}), "cpu", None),  # AVX2-only EPYC: bf16 would be emulated
        (frozenset({"avx2", "avx512f", "avx512_vnni"}), "cpu", None),  # VNNI is not bf16
        (frozenset({"avx2", "avx512f", "avx512_bf16"}), "cpu", torch.bfloat16),
        (frozenset({"avx2", "amx_bf16", "amx_tile"}), "cpu", torch.bfloat16),
    ],
)
def test_amp_auto_uses_bf16_only_where_the_cpu_has_it(monkeypatch, flags, device, expected):
    from colorize_rt.core import cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
    dtype, why = train_mod.choose_amp(_cfg(amp="auto"), torch.device(device))
    assert dtype == expected
    assert ("bf16 autocast" in why) == (expected is not None) and "amp=auto" in why
    assert train_mod.choose_amp(_cfg(amp="off"), torch.device(device))[0] is None
    assert train_mod.choose_amp(_cfg(amp="bf16"), torch.device(device))[0] == torch.bfloat16


def test_partial_unfreeze_trains_only_the_top_encoder_layers():
    cfg = _cfg(freeze_encoder_steps=10, unfreeze_layers=3, encoder_lr_mult=0.1, encoder_lr_decay=0.5)
    net = create_model("mobile-lite0", pretrained=False, decoder_width=0.25).train()
    layers = train_mod.encoder_layers(net)
    assert len(layers) == 17  # stem + 16 MBConv blocks

    train_mod.set_encoder_trainable(net, train_mod.trainable_layers(cfg, 0))
    assert not any(p.requires_grad for p in net.encoder.parameters())
    bns = [m for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not any(m.training for m in bns)  # BN statistics fixed while frozen
    assert all(p.requires_grad for p in net.decoder_parameters())

    train_mod.set_encoder_trainable(net, train_mod.trainable_layers(cfg, 10))
    trainable = [all(p.requires_grad for p in layer.parameters()) for layer in layers]
    assert trainable == [False] * 14 + [True] * 3
    bn_training = [all(m.training for m in layer.modules() if isinstance(m, torch.nn.BatchNorm2d)) for layer in layers]
    assert bn_training == trainable

    cfg.unfreeze_layers = 0  # 0 = the whole encoder
    train_mod.set_encoder_trainable(net, train_mod.trainable_layers(cfg, 10))
    assert all(p.requires_grad for p in net.encoder.parameters())

    groups = train_mod.param_groups(net, cfg)
    assert [g["lr_mult"] for g in groups[:4]] == [1.0, 0.1, 0.05, 0.025]  # decoder, then the encoder from the top
    assert groups[1]["params"][0] is next(iter(layers[-1].parameters()))
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_aux_loss_on_the_annealed_mean_adds_a_gradient_towards_the_truth():
    g = torch.Generator().manual_seed(0)
    net = create_model("mobile", width=0.125).train()
    L = torch.rand(2, 1, 32, 32, generator=g) * 100
    ab = torch.randn(2, 2, 8, 8, generator=g) * 30
    w = torch.ones(NUM_BINS)
    base = train_mod.forward_loss(net, L, ab, w, bins_tensor(), None)
    with_aux = train_mod.forward_loss(net, L, ab, w, bins_tensor(), None, aux_weight=0.5)
    assert with_aux > base
    # the extra term is exactly λ × the Huber loss of the decoded colour
    from colorize_rt.core.constants import AB_NORM, DEFAULT_T
    from colorize_rt.models.decode import annealed_mean_torch
    from colorize_rt.training.loss import l2_loss

    out = net((L - 50) / 100)
    extra = l2_loss(annealed_mean_torch(out.float(), DEFAULT_T, bins_tensor()) / AB_NORM, ab)
    assert torch.isclose(with_aux - base, 0.5 * extra, rtol=1e-4)


@needs(TRAIN_DIR)
def test_scale_jitter_changes_the_crop_scale_deterministically():
    from colorize_rt.training.data import ColorizationDataset

    plain = ColorizationDataset(TRAIN_DIR, 64, seed=0, limit=4)
    jitter = ColorizationDataset(TRAIN_DIR, 64, seed=0, limit=4, scale_jitter=1.0)
    a, b = jitter[0], jitter[0]
    assert torch.equal(a[0], b[0])  # same (seed, epoch, index) -> same sample
    assert a[0].shape == plain[0][0].shape == (1, 64, 64)
    assert not torch.equal(a[0], plain[0][0])


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    import random

    np.random.seed(3)
    random.seed(3)
    torch.manual_seed(3)
    saved = train_mod._rng_state()
    expected = (np.random.rand(3), random.random(), torch.rand(3))
    np.random.seed(99)
    random.seed(99)
    torch.manual_seed(99)
    torch.save(saved, tmp_path / "rng.pt")
    train_mod._restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (np.random.rand(3), random.random(), torch.rand(3))
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    assert torch.equal(got[2], expected[2])


def test_cpu_budget_stops_the_run(tmp_path):
    result = train_mod.train(_cfg(max_steps=10_000, max_cpu_minutes=0.02), tmp_path, progress=False)
    assert result["stop"] == "max_cpu_minutes"
    assert 0 < result["step"] < 10_000
    assert load_checkpoint(tmp_path / "last.pt")["step"] == result["step"]


def test_ema_warms_up_then_keeps_its_decay():
    assert train_mod.ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert train_mod.ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert train_mod.ema_decay_at(0.999, 100_000) == 0.999
    decays = [train_mod.ema_decay_at(0.999, s) for s in range(0, 20_000, 50)]
    assert decays == sorted(decays)


@needs(TRAIN_DIR)
def test_init_from_starts_a_fresh_run_from_a_checkpoints_ema_weights(tmp_path):
    first = train_mod.train(_cfg(ema_decay=0.9), tmp_path / "first", progress=False)
    state = load_checkpoint(tmp_path / "first" / "last.pt")
    assert first["step"] == 6 and state["ema"] is not None
    half = dict(state, ema={k: v.half() if v.is_floating_point() else v for k, v in state["ema"].items()})
    torch.save(half, tmp_path / "half.pt")  # fp16-stored weights, as shipped, load too

    run = train_mod.setup(_cfg(init_from=str(tmp_path / "half.pt")), tmp_path / "second")
    assert run.step == 0
    for key, value in run.net.state_dict().items():
        assert value.dtype == state["ema"][key].dtype
        torch.testing.assert_close(value, state["ema"][key].to(value.dtype), atol=2e-3, rtol=2e-3)
    moved = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.allclose(v, state["ema"][k], atol=1e-2)]
    assert moved, "after 6 steps the EMA should differ from the raw weights, or this test cannot tell them apart"
    assert not torch.allclose(run.net.state_dict()[moved[0]], state["model"][moved[0]], atol=1e-2)

    with pytest.raises(ValueError, match="holds a mobile model"):
        train_mod.setup(_cfg(init_from=str(tmp_path / "half.pt"), model="l2"), tmp_path / "third")
    with pytest.raises(ValueError, match="do not fit"):
        train_mod.setup(_cfg(init_from=str(tmp_path / "half.pt"), model_args={"width": 0.25}), tmp_path / "fourth")
