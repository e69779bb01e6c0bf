"""Palettes (issue 30): the exported graph's optional ``logits`` output, the 313-bin re-weighting on real sessions of
the shipped models, bit-identical output without a palette, and every bad palette as one line."""

from __future__ import annotations

import numpy as np
import pytest

from colorize_rt.core.bins import ab_bins
from colorize_rt.core.color import rgb_to_lab
from colorize_rt.core.decode import palette_log_weights, softmax
from colorize_rt.core.prior import bin_histogram, palette_target
from colorize_rt.runtime.api import Colorizer, ModelError
from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab_batch, predict_logits_batch
from colorize_rt.runtime.backends.shipped_models import resolve_model
from colorize_rt.runtime.guidance.spec import (
    PALETTE_BANDS,
    GuidanceError,
    PaletteTarget,
    band_of,
    palette_from_ab,
    palette_from_colors,
    palette_from_image,
)
from colorize_rt.runtime.pipeline.images import DecodedImage
from tests.runtime_support import write_rgb
from tests.test_hints import one_error_line

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def colorizer():
    with Colorizer("default", backend="cpu", threads=1) as c:
        yield c


def _ab(image: DecodedImage) -> np.ndarray:
    return rgb_to_lab(image.rgb[::2, ::2] / 255.0)[..., 1:]


def _tv(ab: np.ndarray, target: np.ndarray) -> float:
    h = bin_histogram(ab)
    return 0.5 * float(np.abs(h / h.sum() - target).sum())


@pytest.mark.parametrize("name", ["default", "default-int8"])
def test_logits_output_is_optional_and_leaves_ab_bit_identical(name, tmp_path):
    """The shipped model with its ``logits`` output removed (as it was before) gives bit-identical ab; the logits'
    annealed mean, upsampled x4, is the graph's own ab."""
    onnx = pytest.importorskip("onnx")
    import cv2

    model = onnx.load(str(resolve_model(name)))
    assert [o.name for o in model.graph.output] == ["ab", "logits"]
    del model.graph.output[1]
    old = tmp_path / "without-logits.onnx"
    onnx.save(model, str(old))
    L = np.random.default_rng(0).uniform(0, 100, (1, 1, 96, 128)).astype(np.float32)
    with OrtRunner(resolve_model(name)) as new, OrtRunner(old) as before:
        assert not before.has_output("logits") and new.has_output("logits")
        ab = predict_ab_batch(new, L)
        np.testing.assert_array_equal(ab, predict_ab_batch(before, L))
        ab2, logits = predict_logits_batch(new, L)
        with pytest.raises(ValueError, match="no 313-bin 'logits' output"):
            predict_logits_batch(before, L)
    np.testing.assert_array_equal(ab, ab2)
    assert logits.shape == (1, 313, 24, 32)
    from colorize_rt.core.decode import annealed_mean

    mean = annealed_mean(logits, 0.38)[0]
    up = np.stack([cv2.resize(c, (128, 96), interpolation=cv2.INTER_LINEAR) for c in mean])
    np.testing.assert_allclose(up, ab[0], atol=1e-3)


def test_l2_model_has_no_logits():
    with OrtRunner(resolve_model("default-l2")) as r:
        assert not r.has_output("logits")


def test_proportional_fitting_moves_the_average_toward_the_target():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (1, 313, 8, 8)).astype(np.float32)
    target = palette_target(np.eye(313)[100] * 5 + np.eye(313)[200] * 5)
    avg = lambda w: softmax(np.moveaxis(logits, 1, -1).reshape(-1, 313) / 0.38 + w, 1).mean(0)  # noqa: E731
    before = 0.5 * np.abs(avg(0) - target).sum()
    after = 0.5 * np.abs(avg(palette_log_weights(logits, target, 0.38, 8)) - target).sum()
    assert after < 0.3 * before
    assert np.all(palette_log_weights(logits, target, 0.38, 0) == 0)


def test_palette_of_colours_and_of_an_image(sample_rgb):
    p = palette_from_colors("#2266cc, #aa3311")
    assert p.target.shape == (313,) and abs(p.target.sum() - 1) < 1e-9
    assert (p.target > 0.1).sum() == 2  # the two colours' bins carry 90 % between them; the rest is the uniform share
    q = palette_from_image(sample_rgb["coffee"])
    assert (q.target > 1 / 313).sum() > 5 and q.key() != p.key()
    for bad, message in [("", "the palette is empty"), (" , ", "the palette is empty"), ("#12345g", "colour must be")]:
        with pytest.raises(GuidanceError, match=message):
            palette_from_colors(bad)
    with pytest.raises(GuidanceError, match="has no colour"):
        palette_from_image(np.full((32, 32, 3), 128, np.uint8))


def test_a_palette_moves_the_output_toward_it(colorizer, sample_rgb):
    """A wrong reference (another photo's colours) pulls the output's 313-bin histogram toward it; a blue palette
    turns the output blue; no palette is the plain output, bit for bit."""
    image = DecodedImage(rgb=sample_rgb["chelsea"])
    ref = palette_from_image(sample_rgb["coffee"], "coffee")
    plain = colorizer.colorize(image)
    moved = colorizer.colorize(image, palette=ref)
    assert _tv(_ab(moved), ref.target) < _tv(_ab(plain), ref.target) - 0.05
    blue = colorizer.colorize(image, palette=palette_from_colors("#2050e0"))
    assert _ab(blue)[..., 1].mean() < _ab(plain)[..., 1].mean() - 10  # b* toward blue
    np.testing.assert_array_equal(colorizer.colorize(image, palette=None).rgb, plain.rgb)


def test_oracle_palette_helps(colorizer, sample_rgb):
    """The photo's own colours as the palette bring the output closer to the photo (ab error)."""
    rgb = sample_rgb["coffee"]
    image = DecodedImage(rgb=rgb)
    true_ab = rgb_to_lab(rgb / 255.0)[..., 1:]
    oracle = palette_from_image(rgb, "oracle")
    err = lambda out: np.linalg.norm(rgb_to_lab(out.rgb / 255.0)[..., 1:] - true_ab, axis=-1).mean()  # noqa: E731
    assert err(colorizer.colorize(image, palette=oracle)) < err(colorizer.colorize(image)) - 1.0


def test_reference_palettes_have_one_target_per_lightness_band(sample_rgb):
    """A reference photo gives the joint distribution of ab given L*: one target per band, each a distribution,
    the band of dark pixels different from the band of light ones; a colour list has no lightness, so no bands."""
    q = palette_from_image(sample_rgb["coffee"])
    assert q.bands.shape == (PALETTE_BANDS, 313)
    np.testing.assert_allclose(q.bands.sum(1), 1.0)
    assert 0.5 * np.abs(q.bands[1] - q.bands[4]).sum() > 0.2
    assert palette_from_colors("#2266cc").bands is None
    same = PaletteTarget(q.target, "same colours, no bands")
    assert same.key() != q.key()
    lab = np.zeros((10, 10, 3), np.float32)
    lab[..., 0], lab[..., 1] = 50.0, 40.0  # every pixel in one band: the other bands fall back to the whole palette
    one = palette_from_ab(lab[..., 1:], "one band", lab[..., 0])
    np.testing.assert_array_equal(one.bands[0], one.target)


def _two_tone_reference() -> np.ndarray:
    """Dark blue above, light orange below: lightness tells the colour."""
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:32] = (30, 50, 140)
    rgb[32:] = (250, 180, 120)
    return rgb


def test_band_palette_colours_dark_and_light_pixels_apart(colorizer, sample_rgb):
    """With the reference's colour per lightness, the output's dark pixels go blue and its light pixels orange,
    far more apart than with the same colours as one global palette."""
    image = DecodedImage(rgb=sample_rgb["chelsea"])
    ref = palette_from_image(_two_tone_reference(), "two tones")
    flat = PaletteTarget(ref.target, "two tones, no bands")
    lab = rgb_to_lab(sample_rgb["chelsea"] / 255.0)
    dark, light = band_of(lab[..., 0]) == band_of(rgb_to_lab(np.array([30, 50, 140]) / 255.0)[0]), lab[..., 0] > 60
    assert dark.mean() > 0.02 and light.mean() > 0.02

    def split(out):
        b = rgb_to_lab(out.rgb / 255.0)[..., 2]
        return float(b[light].mean() - b[dark].mean())  # orange b* > 0, blue b* < 0

    assert split(colorizer.colorize(image, palette=ref)) > split(colorizer.colorize(image, palette=flat)) + 6


def test_l2_model_refuses_a_palette(sample_rgb):
    with Colorizer("default", backend="cpu", method="l2", threads=1) as c:
        with pytest.raises(ModelError, match="no 313-bin 'logits' output"):
            c.colorize(DecodedImage(rgb=sample_rgb["chelsea"]), palette=palette_from_colors("#2050e0"))


def test_tensorrt_runner_passes_the_logits_through(monkeypatch, tiny_onnx, tmp_path):
    """The TensorRT runner (strict fakes of tensorrt / cuda-python, ONNX Runtime behind the engine) returns ``ab`` only
    by default and the logits when asked, cropped like ``ab`` when an input is padded up to a profile."""
    from colorize_rt.export import tensorrt_engine as te
    from colorize_rt.runtime.backends.tensorrt_runner import TrtRunner
    from tests.gpu_support import DEVICE, install_fakes

    install_fakes(monkeypatch)
    engine = tmp_path / "m.engine"
    te.build_engine(tiny_onnx, engine, te.card_profile("rtx3060-6gb"), device=DEVICE, log=lambda _: None)
    L = np.random.default_rng(0).uniform(0, 100, (1, 1, 64, 96)).astype(np.float32)
    with TrtRunner(engine) as r, OrtRunner(tiny_onnx) as ref:
        assert r.has_output("logits")
        assert set(r.infer({"L": L})) == {"ab"}
        out = r.infer({"L": L, "temperature": np.array(0.38, np.float32)}, outputs=("ab", "logits"))
        want = ref.infer({"L": L, "temperature": np.array(0.38, np.float32)}, outputs=("ab", "logits"))
    np.testing.assert_array_equal(out["logits"], want["logits"])
    np.testing.assert_array_equal(out["ab"], want["ab"])


@pytest.fixture(scope="module")
def gray_file(tmp_path_factory, sample_rgb):
    g = (sample_rgb["chelsea"].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return write_rgb(tmp_path_factory.mktemp("palette") / "gray.png", g)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--palette", ""], "--palette: the palette is empty"),
        (["--palette", "#zz0000"], "--palette: colour must be #rrggbb"),
        (["--palette", "NOTES"], "--palette: "),
        (["--palette", "#2050e0", "--method", "l2"], "--palette: default-l2.onnx has no 313-bin distribution"),
        (["--palette", "#2050e0", "--method", "transfer", "--reference", "REF"], "need a network"),
    ],
)
def test_cli_bad_palettes_are_one_line(gray_file, tmp_path, args, message, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    args = [str(notes) if a == "NOTES" else str(gray_file) if a == "REF" else a for a in args]
    line = one_error_line([str(gray_file), "-o", str(tmp_path / "o.png"), "-q", *args], capsys, 2)
    assert message in line
    assert not (tmp_path / "o.png").exists()


def test_bins_stay_the_papers():
    assert ab_bins().shape == (313, 2)  # the palette's histograms and the logits share the 313 bins


def test_palette_sweep_scores_oracle_and_wrong_reference(sample_rgb, tmp_path):
    """``eval.palette_sweep`` on three real photos: the oracle (the photo's own colours) gains PSNR and raw AuC in
    every setting, the wrong reference moves the output toward it, and the halves add up to all the photos."""
    from colorize_rt.eval.hint_sweep import model_logits_fn
    from colorize_rt.eval.palette_sweep import SETTINGS, format_report, palette_report, palette_sweep

    files = [write_rgb(tmp_path / f"{name}.png", sample_rgb[name]) for name in ("chelsea", "coffee", "astronaut")]
    files.append(write_rgb(tmp_path / "gray.png", np.full((64, 64, 3), 128, np.uint8)))
    rep = palette_report(palette_sweep(files, model_logits_fn(threads=1), progress=False))
    assert rep["n_images"] == 3 and rep["n_excluded"] == 1
    for s in SETTINGS:
        r = rep["settings"][s.name]
        assert r["oracle_gain"]["all"]["psnr"] > 0.5 and r["oracle_gain"]["all"]["auc_raw"] > 0
        assert r["oracle_gain"]["even"]["n_images"] + r["oracle_gain"]["odd"]["n_images"] == 3
        assert r["wrong_reference"]["tv_to_reference_with"] < r["wrong_reference"]["tv_to_reference_without"]
    assert format_report(rep).count("\n| ") == len(SETTINGS) + 2  # the header, its rule and one row each


def test_eval_cli_palette_sweep_json_and_errors(sample_rgb, tmp_path, capsys):
    """``colorize-eval --palette-sweep``: the report as a table and JSON; a gray-only folder and an L2 model are one
    line each (exit 2)."""
    import json

    from colorize_rt.eval.cli import main as eval_main
    from colorize_rt.eval.palette_sweep import SETTINGS

    photos, grays = tmp_path / "photos", tmp_path / "grays"
    photos.mkdir()
    grays.mkdir()
    write_rgb(photos / "coffee.png", sample_rgb["coffee"][::2, ::2].copy())
    write_rgb(grays / "gray.png", np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "palette.json"
    assert eval_main(["--data", str(photos), "--palette-sweep", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["n_images"] == 1 and set(rep["settings"]) == {s.name for s in SETTINGS}
    assert rep["settings"][SETTINGS[0].name]["oracle_gain"]["all"]["psnr"] > 0.5
    assert rep["settings"][SETTINGS[0].name]["oracle_gain"]["odd"]["n_images"] == 0
    capsys.readouterr()
    assert eval_main(["--data", str(grays), "--palette-sweep"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("palette sweep:")]  # tqdm
    assert len(err) == 1 and "no colour images to score" in err[0]
    assert eval_main(["--data", str(photos), "--palette-sweep", "--model", str(resolve_model("default-l2"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 313-bin 'logits' output" in err[0]


def test_unthreaded_annealed_mean_is_the_annealed_mean():
    """The decode (an einsum: no BLAS call, so no spinning BLAS threads before the hint propagation) is the annealed
    mean: softmax(logits / T) against the bin centres, on any axis."""
    from colorize_rt.core.bins import ab_bins
    from colorize_rt.core.decode import annealed_mean, softmax

    logits = np.random.default_rng(0).normal(0, 3, (2, 313, 6, 7)).astype(np.float32)
    for t in (0.25, 0.38, 1.0):
        p = softmax(logits.astype(np.float64) / t, 1)
        reference = np.moveaxis(np.tensordot(np.moveaxis(p, 1, -1), ab_bins().astype(np.float64), axes=([-1], [0])), -1, 1)
        np.testing.assert_allclose(annealed_mean(logits, t), reference, atol=1e-4)
        last = annealed_mean(np.moveaxis(logits, 1, -1), t, axis=-1)
        np.testing.assert_allclose(last, np.moveaxis(reference, 1, -1), atol=1e-4)
