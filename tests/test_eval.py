"""colorize_rt.eval: the paper's scoring, the predictors and ``colorize-eval``, on real photos and models."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from colorize_rt.core.constants import NUM_BINS
from colorize_rt.core.files import list_images
from colorize_rt.eval.cli import main as eval_main
from colorize_rt.eval.predictors import onnx_predictor, predictor_for
from colorize_rt.eval.scoring import evaluate, iter_lab_images
from tests.runtime_support import photo


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Three colour photos and one gray one (excluded as nearly colourless), 96x128 PNG/JPEG files."""
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = cv2.resize(photo(name), (128, 96), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "camera.jpg"), cv2.resize(photo("camera"), (128, 96)))
    return d


def test_evaluate_oracle_gray_and_exclusion(photo_dir):
    files = list_images(photo_dir)
    labs = [lab for _, lab in iter_lab_images(files)]
    truth = iter([np.moveaxis(lab[..., 1:], -1, 0) for lab in labs if np.abs(lab[..., 1:]).sum(-1).mean() >= 3])
    result = evaluate(files, {"oracle": lambda L: next(truth)}, progress=False)
    assert result["n_excluded"] == 1  # the gray camera photo
    oracle, gray = result["methods"]["oracle"], result["methods"]["gray"]
    assert oracle["n_images"] == gray["n_images"] == 3
    assert oracle["auc_raw"] == pytest.approx(100.0) and oracle["auc_rebal"] == pytest.approx(100.0)
    assert oracle["psnr"] == 100.0  # identical images
    assert 50 < gray["auc_raw"] < 100 and gray["auc_rebal"] < gray["auc_raw"]  # rare colours weigh more
    assert 10 < gray["psnr"] < 40


def test_images_are_scored_at_short_side_256(photo_dir):
    (_, lab), *_ = iter_lab_images(list_images(photo_dir))
    assert lab.shape == (256, 341, 3) and lab.dtype == np.float32


def test_colorize_eval_cli_checkpoint_and_onnx_agree(photo_dir, tmp_path):
    """The same weights as a checkpoint (torch) and as ONNX (ONNX Runtime) score the same."""
    torch = pytest.importorskip("torch")
    from colorize_rt.export.onnx_export import export_onnx
    from colorize_rt.models import create_model
    from colorize_rt.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = create_model("mobile", width=0.125).eval()
    ck = save_checkpoint(tmp_path / "net.pt", {"model": net.state_dict(), "variant": "mobile", "variant_args": net.variant_args})
    onnx = export_onnx(net, tmp_path / "net.onnx")
    out = tmp_path / "eval.json"
    rc = eval_main(["--model", str(ck), "--model", str(onnx), "--data", str(photo_dir), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"gray", "net", str(onnx)}  # the second 'net' is named by its path
    pt, ox = res["methods"]["net"], res["methods"][str(onnx)]
    assert pt["n_images"] == ox["n_images"] == 3 and res["n_excluded"] == 1
    assert abs(pt["auc_rebal"] - ox["auc_rebal"]) < 0.1 and abs(pt["psnr"] - ox["psnr"]) < 0.05
    direct = evaluate(list_images(photo_dir), {"x": onnx_predictor(onnx)}, progress=False)["methods"]["x"]
    assert direct["auc_rebal"] == pytest.approx(ox["auc_rebal"])


def test_colorize_eval_paper_metrics_with_a_prior(photo_dir, tmp_path, capsys):
    """--prior adds the paper's rebalanced AuC (weights 1/p); the per-image raw AuC is always there."""
    prior_file = tmp_path / "prior.npy"
    np.save(prior_file, np.full(NUM_BINS, 1.0 / NUM_BINS))  # a flat prior: every pixel weighs the same
    out = tmp_path / "eval.json"
    assert eval_main(["--data", str(photo_dir), "--prior", str(prior_file), "--json", str(out)]) == 0
    assert "rebal/prior" in capsys.readouterr().out
    gray = json.loads(out.read_text())["methods"]["gray"]
    assert gray["auc_rebal_prior"] == pytest.approx(gray["auc_raw"])  # flat prior = no rebalancing
    alone = [evaluate([f], {}, progress=False)["methods"]["gray"] for f in list_images(photo_dir)]
    per_image = [m["auc_raw"] for m in alone if m["n_images"]]  # one image: pooled = its own AuC
    assert len(per_image) == 3 and max(per_image) - min(per_image) > 1
    assert gray["auc_raw_img"] == pytest.approx(np.mean(per_image))


def test_predictor_for_uses_the_temperature(tiny_onnx, photo_dir):
    (_, lab), *_ = iter_lab_images(list_images(photo_dir)[:1])
    cold, hot = predictor_for(tiny_onnx, 0.2)(lab[..., 0]), predictor_for(tiny_onnx, 1.0)(lab[..., 0])
    assert cold.shape == hot.shape == (2, *lab.shape[:2])
    assert np.abs(cold).mean() > np.abs(hot).mean()  # T -> 1 averages the bins: less saturated


def test_colorize_eval_errors_are_one_line(tmp_path, capsys, photo_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert eval_main(["--data", str(empty)]) == 2
    assert "no images under" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert eval_main(["--model", str(bad), "--data", str(photo_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: cannot load") and len(err.splitlines()) == 1
    short = tmp_path / "short.npy"
    np.save(short, np.ones(10))
    for bad_args in (["--limit", "-1"], ["--temperature", "0"], ["--temperature", "nan"], ["--prior", str(short)]):
        assert eval_main(["--data", str(photo_dir), *bad_args]) == 2
        assert "Invalid value for" in capsys.readouterr().err
    text = tmp_path / "prior.npy"
    text.write_text("0.1 0.2\n")
    assert eval_main(["--data", str(photo_dir), "--prior", str(text)]) == 2
    err = capsys.readouterr().err
    assert "not a .npy array (colorize-prior writes one)" in err and "allow_pickle" not in err
