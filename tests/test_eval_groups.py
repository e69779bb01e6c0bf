"""``evaluate(group_of=...)`` and ``colorize-eval --group-by``: each group of real validation photos scored on its own."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from colorize_rt.core.files import list_images
from colorize_rt.eval.cli import main as eval_main
from colorize_rt.eval.groups import MAX_GROUPS, NO_PREFIX, GroupBy, check_groups, group_function
from colorize_rt.eval.scoring import evaluate, iter_lab_images
from tests.conftest import IMAGENET_PRIOR, VAL_DIR

VAL, PRIOR = VAL_DIR, IMAGENET_PRIOR
pytestmark = pytest.mark.skipif(not (VAL.is_dir() and PRIOR.is_file()), reason="needs ../shared (val photos, prior)")


@pytest.fixture(scope="module")
def mixed_files():
    """Val photos from three sources, interleaved as ``list_images`` sorts them."""
    by_source: dict[str, list[Path]] = {}
    for f in list_images(VAL):
        by_source.setdefault(f.name.split("_", 1)[0], []).append(f)
    picked = [f for source in ("bsds", "cal101", "inet1k") for f in by_source[source][:4]]
    return sorted(picked)


@pytest.fixture(scope="module")
def prior():
    return np.load(PRIOR)


def _wrong_colours():
    """A predictor whose error depends on the photo: the true ab, swapped and scaled (keyed by L)."""
    cache = {}

    def predict(L):
        key = L.tobytes()
        if key not in cache:
            raise KeyError("unknown photo")
        return cache[key]

    def learn(files):
        for _, lab in iter_lab_images(files):
            cache[lab[..., 0].tobytes()] = 0.4 * np.moveaxis(lab[..., 1:], -1, 0)[::-1].copy()
        return predict

    return learn


def test_each_group_scores_what_it_scores_alone_and_the_whole_is_unchanged(mixed_files, prior):
    predict = _wrong_colours()(mixed_files)
    group_of = group_function(GroupBy.PREFIX, VAL)
    grouped = evaluate(mixed_files, {"m": predict}, progress=False, prior=prior, resamples=200, group_of=group_of)
    plain = evaluate(mixed_files, {"m": predict}, progress=False, prior=prior, resamples=200)
    assert grouped["methods"] == plain["methods"] and grouped["intervals"] == plain["intervals"]
    assert list(grouped["groups"]) == ["bsds", "cal101", "inet1k"]
    for source, part in grouped["groups"].items():
        alone = evaluate(
            [f for f in mixed_files if f.name.startswith(source + "_")],
            {"m": predict},
            progress=False,
            prior=prior,
            resamples=200,
        )
        for method, scores in alone["methods"].items():
            assert part["methods"][method] == pytest.approx(scores, abs=1e-9), (source, method)
        assert part["intervals"] == alone["intervals"]  # the same per-image counts, the same seeded draws
        assert part["methods"]["m"]["n_images"] == 4
    # the groups differ from one another and from the whole: a grouping that copied the whole would fail
    rebal = {g: p["methods"]["m"]["auc_rebal_prior"] for g, p in grouped["groups"].items()}
    assert len(set(np.round(list(rebal.values()), 6))) == 3
    assert grouped["methods"]["m"]["auc_rebal_prior"] not in rebal.values()


def test_folder_groups_count_their_own_colourless_photos(mixed_files, tmp_path):
    data = tmp_path / "photos"
    for i, f in enumerate(mixed_files[:4]):
        folder = data / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f.name).write_bytes(f.read_bytes())
    (data / mixed_files[4].name).write_bytes(mixed_files[4].read_bytes())
    gray = cv2.cvtColor(cv2.imread(str(mixed_files[5])), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(data / "b" / "gray.png"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    files = list_images(data)
    result = evaluate(files, {}, progress=False, group_of=group_function("folder", data))
    parts = result["groups"]
    assert set(parts) == {"a", "b", "."}
    assert [parts[g]["methods"]["gray"]["n_images"] for g in ("a", "b", ".")] == [2, 2, 1]
    assert [parts[g]["n_excluded"] for g in ("a", "b", ".")] == [0, 1, 0]
    assert result["n_excluded"] == 1 and result["methods"]["gray"]["n_images"] == 5


def test_group_names_and_the_bound(tmp_path):
    prefix = group_function(GroupBy.PREFIX, tmp_path)
    assert prefix(tmp_path / "x" / "cal101_0042.jpg") == "cal101"
    assert prefix(tmp_path / "photo.jpg") == NO_PREFIX
    folder = group_function(GroupBy.FOLDER, tmp_path)
    assert folder(tmp_path / "kodak" / "sub" / "k01.png") == "kodak" and folder(tmp_path / "k01.png") == "."
    many = [tmp_path / f"s{i}_1.png" for i in range(MAX_GROUPS + 1)]
    assert len(check_groups(many[:MAX_GROUPS], prefix)) == MAX_GROUPS
    with pytest.raises(ValueError, match=f"{MAX_GROUPS + 1} groups; at most {MAX_GROUPS}"):
        check_groups(many, prefix)


def test_colorize_eval_group_by(mixed_files, tmp_path, capsys):
    data = tmp_path / "photos"
    data.mkdir()
    for f in mixed_files[::2]:
        (data / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "eval.json"
    args = ["--data", str(data), "--prior", str(PRIOR), "--json", str(out)]
    assert eval_main([*args, "--group-by", "prefix", "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert list(res["groups"]) == ["bsds", "cal101", "inet1k"]
    for group, part in res["groups"].items():
        assert f"== group {group!r}" in printed
        assert part["methods"]["gray"]["n_images"] == 2 and "intervals" in part
    assert eval_main(args) == 0 and "groups" not in json.loads(out.read_text())  # off by default
    assert eval_main([*args, "--group-by", "source"]) == 2
    assert "Invalid value for '--group-by'" in capsys.readouterr().err
    cv2.imwrite(str(data / "a.png"), np.zeros((8, 8, 3), np.uint8))
    for i in range(MAX_GROUPS):
        cv2.imwrite(str(data / f"g{i}_x.png"), np.zeros((8, 8, 3), np.uint8))
    assert eval_main([*args, "--group-by", "prefix"]) == 2  # refused before any image is scored
    err = capsys.readouterr().err
    assert f"at most {MAX_GROUPS} can be scored apart" in err and "Traceback" not in err
