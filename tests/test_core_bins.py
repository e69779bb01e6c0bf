import numpy as np
import pytest

from colorize_rt.core import bins, decode
from colorize_rt.core.constants import NUM_BINS

from .conftest import REFERENCE, needs


def test_table_shape_order_and_ends():
    t = bins.ab_bins()
    assert t.shape == (NUM_BINS, 2)
    assert tuple(t[0]) == (-90, 50) and tuple(t[-1]) == (100, 0)
    keys = t[:, 0] * 1000 + t[:, 1]
    assert np.all(np.diff(keys) > 0)  # sorted by a, then b


@needs(REFERENCE / "pts_in_hull.npy")
def test_table_equals_official_pts_in_hull():
    ref = np.load(REFERENCE / "pts_in_hull.npy")
    assert np.array_equal(bins.ab_bins(), ref.astype(np.float32))


def test_soft_encode_five_nearest_gaussian():
    rng = np.random.default_rng(0)
    ab = rng.uniform(-80, 80, (2, 2, 16, 16)).astype(np.float32)
    z = bins.soft_encode(ab)
    assert z.shape == (2, NUM_BINS, 16, 16)
    np.testing.assert_allclose(z.sum(1), 1.0, atol=1e-5)
    assert ((z > 0).sum(1) == 5).all()
    # check one pixel by brute force
    px = ab[1, :, 3, 7]
    d2 = ((bins.ab_bins() - px) ** 2).sum(1)
    nearest = np.argsort(d2)[:5]
    w = np.exp(-d2[nearest] / (2 * 25.0))
    np.testing.assert_allclose(z[1, nearest, 3, 7], w / w.sum(), rtol=1e-4)


def test_soft_encode_exact_bin_centre_peaks_there():
    ab = np.zeros((1, 2, 1, 1), np.float32)
    z = bins.soft_encode(ab)[0, :, 0, 0]
    centre = int(np.where((bins.ab_bins() == 0).all(1))[0][0])
    assert z.argmax() == centre
    # 4 neighbours at distance 10 share the rest equally
    assert np.isclose(z[centre], 1 / (1 + 4 * np.exp(-100 / 50)), rtol=1e-5)


def test_annealed_mean_limits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, NUM_BINS, 2, 2)) * 3
    table = bins.ab_bins()
    mode = table[logits.argmax(1)]  # (3, 2, 2, 2)
    np.testing.assert_allclose(np.moveaxis(decode.annealed_mean(logits, 1e-3), 1, -1), mode, atol=1e-3)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean = np.einsum("nqhw,qc->nchw", p, table)
    np.testing.assert_allclose(decode.annealed_mean(logits, 1.0), mean, atol=1e-3)
    with pytest.raises(ValueError):
        decode.annealed_mean(logits, 0.0)


def test_bins_hash_is_stable():
    assert bins.bins_hash() == bins.bins_hash() and len(bins.bins_hash()) == 16
