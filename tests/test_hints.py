"""Point hints (issue 30): real sessions on the shipped default model, real photos (scikit-image's), the real
command line. Hints are honoured at their pixels, propagate inside an object and not across an edge, and every bad
hint is one line (CLI) and never silently ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colorize_rt.core.color import rgb_to_lab
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.cli import main
from colorize_rt.runtime.guidance.apply import guided_ab
from colorize_rt.runtime.guidance.propagate import (
    PropagationSettings,
    apply_point_hints,
    cascadic_solve,
    conjugate_gradients,
    edge_weights,
    hint_mask,
)
from colorize_rt.runtime.guidance.spec import GuidanceError, PointHint, check_hints, hints_from_json, make_hint, parse_hint
from colorize_rt.runtime.pipeline.images import DecodedImage, gray3
from tests.runtime_support import write_rgb

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def colorizer():
    with Colorizer("default", backend="cpu", threads=1) as c:
        yield c


def _gray_image(rgb: np.ndarray) -> DecodedImage:
    g = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
    return DecodedImage(rgb=gray3(g), gray=True)


def _lab_at(rgb: np.ndarray, points) -> np.ndarray:
    return np.array([rgb_to_lab(rgb[y, x].astype(np.float32) / 255.0) for x, y in points])


def test_hints_are_honoured_at_their_pixels_and_help(colorizer, sample_rgb):
    """Hints with the photo's own colours (gray input): the output has those colours at the hint pixels (|Δab| <= 6
    after sRGB rounding and gamut) and is closer to the true photo than without hints."""
    rgb = sample_rgb["coffee"]
    image = DecodedImage(rgb=rgb)  # colour input: its L* is what the model sees; its own colours are the hints
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(0)
    points = [(int(x), int(y)) for x, y in zip(rng.integers(40, w - 40, 12), rng.integers(40, h - 40, 12), strict=True)]
    true_lab = _lab_at(rgb, points)
    hints = [PointHint(x, y, (float(lab[1]), float(lab[2])), radius=6) for (x, y), lab in zip(points, true_lab, strict=True)]
    plain = colorizer.colorize(image)
    hinted = colorizer.colorize(image, hints=hints)
    got = _lab_at(hinted.rgb, points)
    dab = np.linalg.norm(got[:, 1:] - true_lab[:, 1:], axis=1)
    assert dab.mean() <= 6.0, dab
    err = lambda out: np.abs(rgb_to_lab(out.rgb / 255.0)[..., 1:] - rgb_to_lab(rgb / 255.0)[..., 1:]).mean()  # noqa: E731
    assert err(hinted) < err(plain) - 0.5


def test_no_hints_is_the_plain_output(colorizer, sample_rgb):
    image = DecodedImage(rgb=sample_rgb["chelsea"])
    np.testing.assert_array_equal(colorizer.colorize(image).rgb, colorizer.colorize(image, hints=[], palette=None).rgb)


def test_a_hint_propagates_inside_its_region_and_not_across_an_edge(colorizer):
    """Two regions (dark textured left half, light right half): a red hint in the left one moves the left
    region's colour and leaves the right one as predicted."""
    rng = np.random.default_rng(1)
    g = np.full((192, 256), 60, np.float32)
    g[:, 128:] = 200
    g += rng.normal(0, 3, g.shape)  # a little texture, as a real surface has
    L_img = DecodedImage(rgb=gray3(np.clip(g, 0, 255).astype(np.uint8)), gray=True)
    from colorize_rt.runtime.pipeline.modes import prepare_fit

    L = prepare_fit(L_img, 256)
    plain = guided_ab(L, colorizer._predictor(None), None, (192, 256))
    hint = make_hint(40, 96, "#c03020", radius=3)
    out = guided_ab(L, colorizer._predictor(None), None, (192, 256), hints=[hint])
    change = np.linalg.norm(out - plain, axis=0)
    assert change[:, :120].mean() > 15.0  # the whole left region follows the hint
    assert change[:, 136:].mean() < 2.0  # the right region does not
    assert np.abs(out[:, 96, 40] - np.array(hint.ab)).max() < 1e-3  # set exactly at the hint


def test_hint_mask_scales_input_coordinates_to_the_network():
    hint = PointHint(999, 499, (10.0, -20.0), radius=0)
    mask, ab = hint_mask([hint], (64, 128), (64 / 500, 128 / 1000))
    (ys, xs) = np.nonzero(mask)
    assert len(ys) == 1 and (ys[0], xs[0]) == (63, 127)
    np.testing.assert_array_equal(ab[63, 127], [10.0, -20.0])
    big, _ = hint_mask([PointHint(500, 250, (1.0, 1.0), radius=40)], (64, 128), (64 / 500, 128 / 1000))
    assert 70 <= big.sum() <= 95  # a disk of radius 40 * 0.128 = 5.1 network pixels: about 82 of them


def test_propagation_with_no_hint_returns_the_prediction():
    ab = np.random.default_rng(0).normal(0, 20, (2, 32, 32)).astype(np.float32)
    out = apply_point_hints(np.zeros((32, 32), np.float32), ab, np.zeros((32, 32), np.float32), np.zeros((32, 32, 2), np.float32))
    assert out is ab


def test_coarse_to_fine_variant_keeps_hints_and_regions():
    """The pyramid variant of step 3 (docs/hints.md, not the default): hint pixels exact, the hint's region follows it."""
    L = np.full((96, 128), 30.0, np.float32)
    L[:, 64:] = 80.0
    ab = np.zeros((2, 96, 128), np.float32)
    mask, hab = hint_mask([PointHint(20, 40, (40.0, 30.0), 2)], (96, 128), (1.0, 1.0))
    out = apply_point_hints(L, ab, mask, hab, PropagationSettings(sweeps=(150, 50, 0), anchor=0.01))
    np.testing.assert_allclose(out[:, 40, 20], [40.0, 30.0])
    assert np.abs(out[0, :, :56] - 40).max() < 1.0  # the hint's region follows it


def test_correction_solve_reaches_the_exact_solution():
    """Step 1 (the cascadic conjugate-gradient solve of the screened affinity equations) reaches the exact solution
    of the same system (a sparse direct solve with scipy) on a real photo's lightness, hint pixels exact."""
    sparse = pytest.importorskip("scipy.sparse")
    linalg = pytest.importorskip("scipy.sparse.linalg")
    from skimage import data

    L = rgb_to_lab(data.astronaut()[::8, ::8].astype(np.float32) / 255.0)[..., 0]  # 64 x 64
    h, w = L.shape
    mask, hab = hint_mask([PointHint(10, 50, (40.0, 30.0), 2), PointHint(45, 12, (-20.0, 35.0), 1)], (h, w), (1.0, 1.0))
    held = mask > 0
    values = np.moveaxis(hab, -1, 0) * mask
    settings = PropagationSettings(solve_iterations=(60, 300))
    out = cascadic_solve(L, held, values, settings)
    np.testing.assert_array_equal(out[:, held], values[:, held])
    weights = edge_weights(L)  # the same system, assembled as a sparse matrix
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for k, (dy, dx) in enumerate(((0, 1), (1, 0), (1, 1), (1, -1))):
        ys, xs = np.nonzero(np.ones((h, w), bool))
        ok = (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        p, q = idx[ys[ok], xs[ok]], idx[ys[ok] + dy, xs[ok] + dx]
        rows += [p, q]
        cols += [q, p]
        vals += [weights[k][ys[ok], xs[ok]]] * 2
    A = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(h * w, h * w))
    M = (sparse.diags(np.asarray(A.sum(axis=1)).ravel() + settings.screen) - A).tocsr()
    fixed, free = held.ravel(), ~held.ravel()
    for c in range(2):
        exact = linalg.spsolve(M[free][:, free].tocsc(), -M[free][:, fixed] @ values[c].ravel()[fixed])
        np.testing.assert_allclose(out[c].ravel()[free], exact, atol=0.05)
    assert np.abs(out).max(axis=0)[~held].mean() > 5.0  # the corrections spread


def test_colour_smoothing_step_holds_far_pixels_and_follows_hints_near_them():
    """Step 4 (``conjugate_gradients`` with a per-pixel pull toward a target): a strong pull keeps the target, no pull
    on a flat image spreads the held pixels' colour, and the hint pixels stay exact."""
    L = np.full((24, 24), 50.0, np.float32)
    held = np.zeros((24, 24), bool)
    held[12, 12] = True
    start = np.zeros((2, 24, 24), np.float32)
    start[:, 12, 12] = (30.0, -10.0)
    target = np.full((2, 24, 24), 5.0, np.float32)
    kept = conjugate_gradients(start, L, held, np.full((24, 24), 1e6, np.float32), 5, target=target)
    np.testing.assert_allclose(kept[:, ~held], 5.0, atol=1e-3)
    spread = conjugate_gradients(start, L, held, np.zeros((24, 24), np.float32), 200, target=target)
    np.testing.assert_allclose(spread[0], 30.0, atol=0.05)
    np.testing.assert_array_equal(spread[:, 12, 12], [30.0, -10.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10,10,#ff000", "colour must be #rrggbb"),
        ("10,10,red", "colour must be #rrggbb"),
        ("10,#ff0000", "a hint is X,Y,#RRGGBB"),
        ("10,10,#ff0000,nan", "hint radius must be a number from 0 to 4096"),
        ("10,10,#ff0000,-1", "hint radius must be a number from 0 to 4096"),
        ("nan,10,#ff0000", "hint x must be a finite number"),
        ("x,10,#ff0000", "hint x must be a number"),
    ],
)
def test_bad_hint_strings(text, message):
    with pytest.raises(GuidanceError, match=message):
        parse_hint(text)


def test_hints_json_checks():
    ok = hints_from_json('[{"x": 1, "y": 2, "color": "#102030"}, {"x": 3.5, "y": 4, "color": "a0b0c0", "radius": 2}]')
    assert [h.radius for h in ok] == [0.0, 2.0] and ok[1].x == 3.5
    for bad, message in [
        ("{", "invalid JSON"),
        ('{"x": 1}', "must be a JSON list"),
        ('[{"x": 1, "y": 2}]', "hint 0: needs keys"),
        ('[{"x": 1, "y": 2, "color": "#102030", "colour": 1}]', "hint 0: needs keys"),
        ('[{"x": true, "y": 2, "color": "#102030"}]', "hint 0: hint x must be a number"),
        (json.dumps([{"x": 1, "y": 1, "color": "#000000"}] * 1001), "at most 1,000 hints"),
    ]:
        with pytest.raises(GuidanceError, match=message):
            hints_from_json(bad)
    with pytest.raises(GuidanceError, match=r"hint 1 at \(10, 5\) is outside the 10x20 image"):
        check_hints([make_hint(0, 0, "#000000"), make_hint(10, 5, "#000000")], 10, 20)


def run_main(args: list[str], capsys) -> tuple[int, str]:
    """``colorize-rt ARGS`` in this process (``runtime.cli.main``, which turns usage errors into one line).

    Returns:
        (exit code, stderr).
    """
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def one_error_line(args: list[str], capsys, code: int) -> str:
    """The single stderr line of a run that must fail with ``code`` (no traceback)."""
    got, err = run_main(args, capsys)
    assert got == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def gray_file(tmp_path_factory, sample_rgb):
    path = tmp_path_factory.mktemp("hints") / "gray.png"
    g = (sample_rgb["chelsea"].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return write_rgb(path, g)


def test_cli_hints_write_the_hinted_photo(gray_file, tmp_path, capsys):
    hints = tmp_path / "hints.json"
    hints.write_text(json.dumps([{"x": 100, "y": 100, "color": "#3060d0", "radius": 10}]))
    plain, hinted = tmp_path / "plain.png", tmp_path / "hinted.png"
    assert run_main([str(gray_file), "-o", str(plain), "-q"], capsys)[0] == 0
    code, err = run_main([str(gray_file), "-o", str(hinted), "-q", "--hints", str(hints), "--hint", "300,200,#c04020,5"], capsys)
    assert code == 0, err
    import cv2

    a, b = cv2.imread(str(plain))[..., ::-1], cv2.imread(str(hinted))[..., ::-1]
    lab = _lab_at(b, [(100, 100), (300, 200)])
    want = np.array([rgb_to_lab(np.array(c, np.float32) / 255.0) for c in ((0x30, 0x60, 0xD0), (0xC0, 0x40, 0x20))])
    assert np.linalg.norm(lab[:, 1:] - want[:, 1:], axis=1).max() < 25  # the hint's hue, at the photo's own lightness
    assert np.abs(a.astype(int) - b).mean() > 1.0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--hint", "10,10,#ff000"], 2, "--hint: colour must be #rrggbb"),
        (["--hint", "10,10,#ff0000,nan"], 2, "--hint: hint radius must be a number"),
        (["--hint", "99999,10,#ff0000"], 1, "is outside the 451x300 image"),
        (["--hint", "1,1,#ff0000", "--mode", "tiled"], 2, "need a network (not --method transfer) and --mode fit"),
        (["--hints", "/nonexistent/hints.json"], 2, "--hints /nonexistent/hints.json: No such file"),
    ],
)
def test_cli_bad_hints_are_one_line(gray_file, tmp_path, args, code, message, capsys):
    assert message in one_error_line([str(gray_file), "-o", str(tmp_path / "o.png"), "-q", *args], capsys, code)
    assert not (tmp_path / "o.png").exists()


def test_cli_too_many_hints_is_one_line(gray_file, tmp_path, capsys):
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"x": 1, "y": 1, "color": "#000000"}] * 1001))
    line = one_error_line([str(gray_file), "-o", str(tmp_path / "o.png"), "--hints", str(many)], capsys, 2)
    assert "at most 1,000 hints" in line


def test_bench_hints_phase_reports_ratios():
    """``make bench``'s hints phase (bench/hints.py) on one round: every kind measured, ratios against plain."""
    from colorize_rt.bench.hints import hint_latency, hints_markdown

    res = hint_latency(rounds=1, threads=1, log=lambda _: None)
    assert set(res["ms"]) == {"plain", "hints", "palette", "both"} and res["ratio"]["plain"] == 1.0
    assert res["pixels"] == 1200 * 900 and all(v > 0 for v in res["ms"].values())
    md = "\n".join(hints_markdown(res))
    assert "| no guidance | 10 hints | palette |" in md and "CPU:" in md
    assert "skipped: quick mode" in "\n".join(hints_markdown({"status": "skipped", "reason": "quick mode"}))
