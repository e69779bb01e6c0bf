import numpy as np
import pytest
from skimage import color as skcolor

from colorize_rt.core import color


def _edge_colours():
    corners = np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
    ramps = np.linspace(0, 1, 33)[:, None] * np.ones(3)
    near_black = np.array([[0.001, 0.002, 0.0], [0.04, 0.04045, 0.0405], [0.0031, 0.0031308, 0.0032]])
    return np.concatenate([corners, ramps, near_black]).astype(np.float32)


@pytest.mark.parametrize("kind", ["random", "edge"])
def test_rgb_to_lab_matches_skimage(kind):
    rgb = np.random.default_rng(0).random((64, 64, 3), np.float32) if kind == "random" else _edge_colours()
    ours = color.rgb_to_lab(rgb)
    ref = skcolor.rgb2lab(rgb.astype(np.float64))
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-3


def test_lab_to_rgb_matches_skimage_in_gamut():
    rgb = np.random.default_rng(1).random((4096, 3), np.float32)
    lab = skcolor.rgb2lab(rgb.astype(np.float64))
    ours = color.lab_to_rgb(lab.astype(np.float32))
    ref = skcolor.lab2rgb(lab)
    assert np.abs(ours - ref).max() < 1e-3
    assert np.abs(ours - rgb).max() < 1e-3  # round trip


def test_lab_to_rgb_out_of_gamut_is_clipped_like_skimage():
    rng = np.random.default_rng(2)
    lab = np.stack([rng.uniform(0, 100, 5000), rng.uniform(-128, 127, 5000), rng.uniform(-128, 127, 5000)], -1)
    ours = color.lab_to_rgb(lab.astype(np.float32))
    assert ours.min() >= 0 and ours.max() <= 1
    with np.errstate(all="ignore"):
        ref = np.clip(skcolor.lab2rgb(lab), 0, 1)
    assert np.abs(ours - ref).max() < 1e-3


def test_l_only_and_gray_inverse():
    rgb = np.random.default_rng(3).random((100, 3), np.float32)
    assert np.abs(color.rgb_to_l(rgb) - color.rgb_to_lab(rgb)[..., 0]).max() < 1e-4
    L = np.linspace(0, 100, 101, dtype=np.float32)
    gray = color.l_to_gray_rgb(L)
    back = color.rgb_to_lab(np.repeat(gray[:, None], 3, 1))
    assert np.abs(back[:, 0] - L).max() < 1e-3
    # skimage's matrix rows sum to the D65 white only to ~1e-4, so gray carries |ab| of a few 1e-3
    assert np.abs(back[:, 1:]).max() < 1e-2


def test_bad_shape_raises():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        color.rgb_to_lab(np.zeros((4, 4, 2)))
