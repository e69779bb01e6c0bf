"""The learned hint route of issue 30: the shipped default read back from ONNX into torch, the hint-conditioned
variant (equal to the default until fine-tuned), the simulated hints and the fine-tune entry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the hint variant trains in torch (the [train] extra)")

from colorize_rt.core.color import rgb_to_lab  # noqa: E402
from colorize_rt.core.constants import DEFAULT_T, L_CENT, L_NORM  # noqa: E402
from colorize_rt.core.decode import annealed_mean  # noqa: E402
from colorize_rt.models.efficientnet_lite import LiteColorizer  # noqa: E402
from colorize_rt.models.from_onnx import fold_batchnorm, lite_from_onnx  # noqa: E402
from colorize_rt.models.hint_lite import HintLiteColorizer, hint_tensor  # noqa: E402
from colorize_rt.training.hint_finetune import HintFinetuneConfig, finetune, load_finetuned, main  # noqa: E402
from colorize_rt.training.hint_sim import HintSimulation, simulate_hints  # noqa: E402

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ONNX = ROOT / "colorize_rt" / "assets" / "default.onnx"


def _l_norm(rgb: np.ndarray, side: int = 64) -> torch.Tensor:
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    L = rgb_to_lab(small.astype(np.float32) / 255.0)[..., 0]
    return torch.from_numpy((L - L_CENT) / L_NORM).float()[None, None]


def _random_hints(shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < 0.05).astype(np.float32)
    hab = rng.uniform(-60, 60, (2, *shape)).astype(np.float32)
    return hint_tensor(torch.from_numpy(mask)[None, None], torch.from_numpy(hab)[None])


@torch.no_grad()
def test_fold_batchnorm_keeps_the_output(sample_rgb):
    net = LiteColorizer(pretrained=False).eval()
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():  # BN statistics far from identity, so a wrong fold shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    x = _l_norm(sample_rgb["astronaut"])
    before = net(x)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(folded(x), before, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_the_default_read_from_onnx_computes_what_the_onnx_file_computes(sample_rgb):
    from colorize_rt.eval.hint_sweep import model_logits_fn

    net = lite_from_onnx(DEFAULT_ONNX)
    logits_fn = model_logits_fn(DEFAULT_ONNX, threads=1)
    for name in ("astronaut", "coffee"):
        x = _l_norm(sample_rgb[name], 96)
        ours = net(x).numpy()
        ref = logits_fn(x[0, 0].numpy() * L_NORM + L_CENT)
        assert np.abs(ours - ref).max() < 1e-3
        dab = np.linalg.norm(annealed_mean(ours, DEFAULT_T) - annealed_mean(ref, DEFAULT_T), axis=1)
        assert dab.mean() < 0.01  # ab units; the fp32 self-check allows far more


def test_an_onnx_file_of_another_network_is_refused(tiny_onnx):
    with pytest.raises(ValueError, match="convolutions|shape"):
        lite_from_onnx(tiny_onnx)


@torch.no_grad()
def test_the_hint_variant_starts_equal_to_its_base_with_and_without_hints(sample_rgb):
    base = LiteColorizer(pretrained=False).eval()
    net = HintLiteColorizer(base).eval()
    x = _l_norm(sample_rgb["chelsea"])
    ref = base(x)
    assert torch.equal(net(x), ref)
    assert torch.equal(net(x, _random_hints(x.shape[-2:])), ref)  # zero-initialised: hints do nothing yet
    for p in net.hint_parameters():  # once trained, hints act, and no hints still add exactly nothing
        p.copy_(torch.randn_like(p) * 0.1)
    assert not torch.allclose(net(x, _random_hints(x.shape[-2:])), ref)
    assert torch.equal(net(x), ref)


def test_simulated_hints_follow_the_recipe(sample_rgb):
    ab = rgb_to_lab(sample_rgb["coffee"][:256, :256].astype(np.float32) / 255.0)[..., 1:]
    counts = []  # 1-pixel patches: the hinted pixels count the hints (overlaps are rare at 256²)
    for seed in range(400):
        mask, hab = simulate_hints(ab, np.random.default_rng(seed), HintSimulation(patch_min=1, patch_max=1))
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert not hab[mask == 0].any()
        np.testing.assert_allclose(hab[mask > 0], ab[mask > 0], atol=1e-5)  # a 1-pixel patch's mean is the pixel
        counts.append(int(mask.sum()))
    counts = np.array(counts)
    assert 0.08 < (counts == 0).mean() < 0.18  # p = 1/8
    assert 5.5 < counts.mean() < 8.5  # (1 - p) / p = 7
    one = HintSimulation(p=1e-6, max_hints=1)  # exactly one hint, side 1..9
    sides = set()
    for seed in range(200):
        mask, hab = simulate_hints(ab, np.random.default_rng(seed), one)
        ys, xs = np.nonzero(mask)
        side = ys.max() - ys.min() + 1
        assert len(ys) == side * side == (xs.max() - xs.min() + 1) ** 2
        patch = ab[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].reshape(-1, 2).mean(0)
        np.testing.assert_allclose(hab[ys[0], xs[0]], patch, atol=1e-4)
        sides.add(int(side))
    assert sides == set(range(1, 10))
    assert not simulate_hints(ab, np.random.default_rng(0), HintSimulation(p=1.0))[0].any()


@pytest.mark.parametrize("bad", [{"p": 0.0}, {"patch_min": 0}, {"patch_min": 5, "patch_max": 4}, {"max_hints": 5000}])
def test_hint_simulation_bounds(bad):
    with pytest.raises(ValueError):
        HintSimulation(**bad)


@pytest.fixture(scope="module")
def tiny_photos(tmp_path_factory, sample_rgb):
    """Three real photos at 96 px and their 313-bin prior: a training set small enough for a few CPU steps."""
    from colorize_rt.training.train import compute_prior

    folder = tmp_path_factory.mktemp("photos")
    files = []
    for name, rgb in sample_rgb.items():
        files.append(folder / f"{name}.png")
        cv2.imwrite(str(files[-1]), cv2.cvtColor(cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
    prior = folder.parent / "prior.npy"
    np.save(prior, compute_prior(files))
    return folder, prior


def _cfg(tiny_photos, **kw) -> HintFinetuneConfig:
    folder, prior = tiny_photos
    base = {
        "init_onnx": str(DEFAULT_ONNX), "train_dir": str(folder), "prior": str(prior), "crop": 64, "batch_size": 2,
        "workers": 0, "threads": 1, "max_steps": 3, "log_every": 1, "hint_p": 0.3,
    }  # fmt: skip
    return HintFinetuneConfig(**{**base, **kw})


def test_a_few_finetune_steps_train_the_hint_branches_and_resume(tiny_photos, tmp_path, sample_rgb):
    cfg = _cfg(tiny_photos, trainable="hints")
    result = finetune(cfg, tmp_path / "run")
    assert result["step"] == 3 and np.isfinite(result["loss"]) and result["cpu_seconds"] > 0
    net = load_finetuned(tmp_path / "run" / "last.pt")
    assert any(p.abs().sum() > 0 for p in (net.hint_stem.weight, net.hint4[-1].weight))
    x = _l_norm(sample_rgb["astronaut"])
    with torch.no_grad():  # only the hint branches moved: with no hints it is still the default
        assert torch.equal(net(x), lite_from_onnx(DEFAULT_ONNX)(x))
    assert len((tmp_path / "run" / "log.tsv").read_text().splitlines()) == 4
    with pytest.raises(ValueError, match="already holds a run"):
        finetune(cfg, tmp_path / "run")
    cfg.max_steps = 5
    assert finetune(cfg, tmp_path / "run", resume=True)["step"] == 5


def test_training_the_decoder_moves_the_no_hint_output(tiny_photos, tmp_path, sample_rgb):
    finetune(_cfg(tiny_photos, trainable="decoder", max_steps=2), tmp_path / "run")
    net = load_finetuned(tmp_path / "run" / "last.pt")
    x = _l_norm(sample_rgb["astronaut"])
    with torch.no_grad():
        assert not torch.equal(net(x), lite_from_onnx(DEFAULT_ONNX)(x))
        assert torch.equal(
            net.base.encoder._blocks[0]._depthwise_conv[1].weight,
            lite_from_onnx(DEFAULT_ONNX).encoder._blocks[0]._depthwise_conv[1].weight,
        )


def test_the_shipped_config_loads():
    cfg = HintFinetuneConfig.load(ROOT / "configs" / "hints-lite0.yaml", ["max_steps=7"])
    assert cfg.max_steps == 7 and cfg.hint_p == 0.125 and (cfg.hint_patch_min, cfg.hint_patch_max) == (1, 9)


@pytest.mark.parametrize(
    ("override", "message"),
    [("nope=1", "unknown setting 'nope'"), ("crop=100", "multiple of 8"), ("lr=-1", "lr must be"),
     ("trainable=encoder", "trainable must be"), ("hint_p=0", "hint p"), ("max_steps=two", "expects int")],
)  # fmt: skip
def test_bad_settings_are_one_line_errors(override, message, tmp_path, capsys):
    assert main(["--config", str(ROOT / "configs" / "hints-lite0.yaml"), "--out", str(tmp_path / "r"), override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
