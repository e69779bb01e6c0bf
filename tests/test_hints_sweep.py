"""The point-hint and palette sweep of ``colorize-eval --hint-sweep`` (eval/hint_sweep.py, eval/levin.py) on a few
real validation photos with the shipped default model: hints help and are honoured, Levin's baseline runs, the
oracle palette helps and a wrong reference pulls the output toward it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colorize_rt.core.files import list_images
from colorize_rt.eval.cli import main as eval_main
from colorize_rt.eval.hint_sweep import format_sweep, hint_sweep, hints_of, model_logits_fn, sample_patches
from colorize_rt.eval.levin import levin_colorize
from colorize_rt.runtime.guidance.propagate import PropagationSettings
from tests.conftest import VAL_DIR, needs

pytest.importorskip("scipy", reason="Levin's baseline uses scipy (the [dev] extra)")
pytestmark = pytest.mark.timeout(300)


def test_patches_follow_siggraph17s_sampling():
    ab = np.random.default_rng(0).normal(0, 30, (2, 256, 256)).astype(np.float32)
    masks, colours = sample_patches(ab, 200, np.random.default_rng(1))
    assert masks.sum(axis=(1, 2)).tolist() == [36] * 200  # 6x6 patches
    ys = np.array([np.nonzero(m)[0].min() for m in masks])
    assert 100 < ys.mean() < 150 and ys.std() < 80  # Gaussian around the centre, sigma a quarter of the side
    k = 7
    np.testing.assert_allclose(colours[k], ab[:, masks[k]].mean(axis=1), rtol=1e-5)
    mask, hab = hints_of(masks, colours, 3)
    assert mask.sum() <= 3 * 36 and np.all(hab[mask == 0] == 0)


def test_levin_keeps_hints_and_stops_at_edges():
    L = np.full((64, 64), 30.0, np.float32)
    L[:, 32:] = 80.0
    mask = np.zeros((64, 64), np.float32)
    hab = np.zeros((64, 64, 2), np.float32)
    mask[10:14, 5:9], hab[10:14, 5:9] = 1, (50.0, 20.0)
    mask[50:54, 50:54], hab[50:54, 50:54] = 1, (-30.0, -40.0)
    out = levin_colorize(L, mask, hab)
    np.testing.assert_allclose(out[:, 12, 6], [50, 20], atol=1e-3)
    assert np.abs(out[0, :, :30] - 50).max() < 5.0 and np.abs(out[0, :, 34:] + 30).max() < 5.0  # each side keeps its hint
    assert np.all(levin_colorize(L, np.zeros_like(mask), hab) == 0)


@needs(VAL_DIR)
def test_sweep_on_three_photos(tmp_path):
    files = list_images(VAL_DIR, 3)
    res = hint_sweep(files, model_logits_fn(threads=1), points=(0, 5, 20), progress=False)
    ours, levin = res["points"]["ours"], res["points"]["levin"]
    assert res["n_images"] + res["n_excluded"] == 3 and res["n_images"] >= 2
    assert ours[20]["gain_psnr"] > ours[5]["gain_psnr"] > 0 and ours[20]["gain_auc_raw"] > 0
    assert ours[5]["dab_at_hints"] <= 5 and levin[5]["dab_at_hints"] <= 5
    assert levin[20]["psnr"] > levin[0]["psnr"]
    pal = res["palette"]
    assert pal["oracle_gain"]["psnr"] > 0 and pal["oracle_gain"]["auc_rebal"] > 0
    w = pal["wrong_reference"]
    assert w["tv_to_reference_with"] < w["tv_to_reference_without"]
    md = format_sweep(res)
    assert "| 20 |" in md and "siggraph17" in md and "Oracle palette" in md
    # the propagation switched off (only the hint pixels change) gains far less: the sweep measures the propagation
    off = PropagationSettings(solve_iterations=(), reach=1e12, sweeps=(), fuse_iterations=0)
    res_off = hint_sweep(
        files, model_logits_fn(threads=1), points=(0, 20), levin=False, palette=False, settings=off, progress=False
    )
    assert res_off["palette"] is None and res_off["points"]["ours"][20]["gain_psnr"] < ours[20]["gain_psnr"] - 1.0


def test_eval_cli_hint_sweep_json_and_errors(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2
    from skimage import data

    cv2.imwrite(str(photos / "coffee.png"), data.coffee()[..., ::-1])
    out = tmp_path / "sweep.json"
    assert eval_main(["--data", str(photos), "--hint-sweep", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 1 and set(res["points"]["ours"]) == {"0", "1", "2", "5", "10", "20", "50", "100"}
    l2 = __import__("colorize_rt.runtime.backends.shipped_models", fromlist=["resolve_model"]).resolve_model("default-l2")
    capsys.readouterr()
    assert eval_main(["--data", str(photos), "--hint-sweep", "--model", str(l2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 313-bin 'logits' output" in err[0]
