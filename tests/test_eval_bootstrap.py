"""colorize_rt.eval.bootstrap: intervals of the paper's metrics from paired resamples of real validation photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colorize_rt.core.color import lab_to_rgb, merge_l_ab
from colorize_rt.core.files import list_images
from colorize_rt.core.metrics import AucAccumulator, inverse_prior_weights, psnr
from colorize_rt.eval.bootstrap import MAX_RESAMPLES, RESAMPLED, ImageCounts, bootstrap_intervals, resampled_scores
from colorize_rt.eval.cli import main as eval_main
from colorize_rt.eval.scoring import MIN_CHROMA, evaluate, iter_lab_images
from tests.conftest import IMAGENET_PRIOR, VAL_DIR

VAL, PRIOR = VAL_DIR, IMAGENET_PRIOR
pytestmark = pytest.mark.skipif(not (VAL.is_dir() and PRIOR.is_file()), reason="needs ../shared (val photos, prior)")


@pytest.fixture(scope="module")
def val_files():
    return list_images(VAL)[:12]


@pytest.fixture(scope="module")
def prior():
    return np.load(PRIOR)


def _truth(files):
    """A predictor that returns each photo's own ab, in evaluation order (the oracle)."""
    labs = iter(lab for _, lab in iter_lab_images(files) if np.abs(lab[..., 1:]).sum(-1).mean() >= MIN_CHROMA)
    return lambda L: np.moveaxis(next(labs)[..., 1:], -1, 0)


def test_intervals_hold_the_estimates_and_pair_the_differences(val_files, prior):
    truth, half_truth = _truth(val_files), _truth(val_files)
    methods = {
        "oracle": truth,
        "zeros": lambda L: np.zeros((2, *L.shape), np.float32),  # the same predictions as gray
        "half": lambda L: 0.5 * half_truth(L),  # halfway between gray and the truth on every photo
    }
    result = evaluate(val_files, methods, progress=False, prior=prior, resamples=400)
    iv = result["intervals"]
    assert iv["images"] == result["methods"]["gray"]["n_images"] == len(val_files) and iv["resamples"] == 400
    assert set(iv["differences"]) == {"oracle - gray", "zeros - gray", "half - gray", "zeros - oracle", "half - oracle"}
    for name, scores in result["methods"].items():
        assert set(iv["methods"][name]) == set(RESAMPLED)
        for metric, (lo, hi) in iv["methods"][name].items():
            if name != "oracle":  # the oracle is perfect on every resample (PSNR capped at 100)
                assert lo < hi, (name, metric)
            assert lo <= scores[metric] <= hi, (name, metric)
    assert all(v == [0.0, 0.0] for v in iv["differences"]["zeros - gray"].values())  # paired: same images each time
    assert all(lo > 0 for lo, _ in iv["differences"]["half - gray"].values())  # better on every photo
    assert all(hi < 0 for _, hi in iv["differences"]["half - oracle"].values())
    again = evaluate(val_files, {"zeros": methods["zeros"]}, progress=False, prior=prior, resamples=400)["intervals"]
    assert again["methods"]["gray"] == iv["methods"]["gray"]  # seeded: the same intervals each run


def test_a_resample_scores_what_evaluate_scores_on_those_photos(val_files, prior):
    """The vectorised resampling reproduces ``evaluate`` on the drawn photos, duplicates included."""
    counts, acc = ImageCounts(inverse_prior_weights(prior)), AucAccumulator()
    files = []
    for path, lab in iter_lab_images(val_files[:6]):
        L, ab_true = lab[..., 0], np.moveaxis(lab[..., 1:], -1, 0)
        ab = 0.3 * ab_true[::-1]  # wrong colours, so no AuC is 0 or 100
        counts.add(acc.add(ab, ab_true), acc.image_aucs[-1], psnr(lab_to_rgb(merge_l_ab(L, ab)), lab_to_rgb(lab)))
        files.append(path)
    draws = np.array([[3, 0, 1, 0, 2, 0], [0, 1, 1, 1, 1, 2]], np.float64)
    got = resampled_scores(counts, draws)
    labs = {p: lab for p, lab in iter_lab_images(files)}
    for r, row in enumerate(draws):
        drawn = [f for f, k in zip(files, row, strict=True) for _ in range(int(k))]
        wrong = iter(0.3 * np.moveaxis(labs[f][..., 1:], -1, 0)[::-1] for f in drawn)
        want = evaluate(drawn, {"m": lambda L, it=wrong: next(it)}, progress=False, prior=prior)["methods"]["m"]
        for metric in RESAMPLED:
            assert got[metric][r] == pytest.approx(want[metric], abs=1e-9), (r, metric)


def test_one_photo_gives_a_point(val_files, prior):
    result = evaluate(val_files[:1], {}, progress=False, prior=prior, resamples=50)
    gray, iv = result["methods"]["gray"], result["intervals"]["methods"]["gray"]
    for metric in RESAMPLED:
        assert iv[metric] == pytest.approx([gray[metric]] * 2)


def test_bad_arguments_are_refused(val_files, prior):
    a, b = ImageCounts(), ImageCounts()
    a.add(np.ones((313, 152)), 50.0, 20.0)
    with pytest.raises(ValueError, match="same images"):
        bootstrap_intervals({"a": a, "b": b})
    for kwargs, match in (({"resamples": 0}, "resamples"), ({"resamples": MAX_RESAMPLES + 1}, "resamples"),
                          ({"level": 1.0}, "level")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            bootstrap_intervals({"a": a}, **kwargs)
    with pytest.raises(ValueError, match="resamples"):
        evaluate(val_files[:1], {}, progress=False, resamples=-1)


def test_colorize_eval_bootstrap(val_files, tmp_path, capsys):
    data = tmp_path / "photos"
    data.mkdir()
    for f in val_files[:4]:
        (data / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "eval.json"
    args = ["--data", str(data), "--prior", str(PRIOR), "--json", str(out)]
    assert eval_main([*args, "--bootstrap", "300"]) == 0
    printed = capsys.readouterr().out
    assert "95% intervals, 300 paired resamples of the 4 images" in printed
    res = json.loads(out.read_text())
    lo, hi = res["intervals"]["methods"]["gray"]["auc_rebal_prior"]
    assert lo < res["methods"]["gray"]["auc_rebal_prior"] < hi
    assert eval_main(args) == 0 and "intervals" not in json.loads(out.read_text())  # off by default
    for bad in ("-1", str(MAX_RESAMPLES + 1), "many"):
        assert eval_main([*args, "--bootstrap", bad]) == 2
        assert "Invalid value for '--bootstrap'" in capsys.readouterr().err
