import numpy as np
import pytest

from colorize_rt.core import metrics, prior
from colorize_rt.core.bins import ab_bins, nearest_bins
from colorize_rt.core.constants import NUM_BINS

from .conftest import REFERENCE, TRAIN_DIR, needs


def test_rebalance_weights_normalised_and_inverse():
    p = np.random.default_rng(0).random(NUM_BINS) ** 4
    p /= p.sum()
    w = prior.rebalance_weights(p)
    p_s = prior.smooth_prior(p)
    assert np.isclose((p_s * w).sum(), 1.0, atol=1e-5)
    # λ = 0.5: w ∝ 1 / (0.5 p̃ + 0.5 / Q); rarer smoothed bins weigh more
    order = np.argsort(p_s)
    assert np.all(np.diff(w[order]) <= 1e-6)
    ratio = w[order[0]] / w[order[-1]]
    expected = (0.5 * p_s[order[-1]] + 0.5 / NUM_BINS) / (0.5 * p_s[order[0]] + 0.5 / NUM_BINS)
    assert np.isclose(ratio, expected, rtol=1e-4)


def test_uniform_prior_gives_unit_weights():
    w = prior.rebalance_weights(np.full(NUM_BINS, 1 / NUM_BINS), smooth=False)
    np.testing.assert_allclose(w, 1.0, rtol=1e-5)


def test_smoothing_preserves_mass_and_spreads():
    p = np.zeros(NUM_BINS)
    centre = int(np.where((ab_bins() == 0).all(1))[0][0])
    p[centre] = 1
    s = prior.smooth_prior(p)
    assert np.isclose(s.sum(), 1) and s.argmax() == centre
    neighbour = int(np.where((ab_bins() == (10, 0)).all(1))[0][0])
    assert np.isclose(s[neighbour] / s[centre], np.exp(-100 / (2 * 5.0**2)), rtol=1e-6)


def test_bad_prior_rejected():
    with pytest.raises(ValueError):
        prior.rebalance_weights(np.ones(10))


@needs(TRAIN_DIR)
@needs(REFERENCE / "prior_probs_trainset.npy")
def test_prior_of_shared_trainset_matches_reference():
    from colorize_rt.core.files import list_images
    from colorize_rt.training.train import compute_prior

    ours = compute_prior(list_images(TRAIN_DIR)[::6])  # a sixth of the set, spread over all sources
    ref = np.load(REFERENCE / "prior_probs_trainset.npy")
    assert np.corrcoef(ours, ref)[0, 1] > 0.95


def test_auc_hand_computed_case():
    # 4 pixels, errors 0, 10, 20, 200 -> CDF(t) = 1/4 for t<10, 2/4 for 10<=t<20, 3/4 up to 150.
    ab_true = np.zeros((2, 1, 4), np.float32)
    ab_pred = np.array([[[0, 10, 20, 200]], [[0, 0, 0, 0]]], np.float32)
    acc = metrics.AucAccumulator()
    acc.add(ab_pred, ab_true)
    t = np.arange(151)
    cdf = np.where(t < 10, 0.25, np.where(t < 20, 0.5, 0.75))
    expected = np.trapezoid(cdf) / 150 * 100
    assert np.isclose(acc.auc_raw(), expected)
    # all ground truth in one bin: rebalanced == raw
    assert np.isclose(acc.auc_rebalanced(), expected)


def _three_exact_one_rare() -> metrics.AucAccumulator:
    """3 pixels of bin A, ab (0, 0), predicted exactly; 1 pixel of bin B, ab (50, 50), off by 200."""
    ab_true = np.array([[[0, 0, 0, 50]], [[0, 0, 0, 50]]], np.float32)
    ab_pred = ab_true.copy()
    ab_pred[0, 0, 3] += 200
    acc = metrics.AucAccumulator()
    acc.add(ab_pred, ab_true)
    return acc


def test_rebalanced_weights_rare_bins_up():
    acc = _three_exact_one_rare()
    assert np.isclose(acc.auc_raw(), 75.0)
    assert np.isclose(acc.auc_rebalanced(), 50.0)  # each bin carries half the weight


def test_psnr():
    a = np.zeros((4, 4, 3))
    assert np.isclose(metrics.psnr(a + 0.1, a), 20.0)


def test_raw_auc_per_image_mean_differs_from_pooled():
    """The paper's raw AuC averages images; pooling lets a big image outweigh a small one."""
    acc = metrics.AucAccumulator()
    big_true = np.zeros((2, 10, 10), np.float32)
    acc.add(big_true, big_true)  # 100 exact pixels: AuC 100
    small_true = np.zeros((2, 1, 1), np.float32)
    acc.add(small_true + np.array([200, 0], np.float32)[:, None, None], small_true)  # 1 pixel off by 200: AuC 0
    assert np.isclose(acc.auc_raw_per_image(), 50.0)
    assert np.isclose(acc.auc_raw(), 100 * 100 / 101)
    assert np.isnan(metrics.AucAccumulator().auc_raw_per_image())


def test_rebalanced_auc_with_a_given_prior():
    acc = _three_exact_one_rare()
    (a, b), _ = nearest_bins(np.array([[0, 0], [50, 50]], np.float32), 1)
    p = np.full(NUM_BINS, 1e-3)
    p[a], p[b] = 0.3, 0.1  # weights 1/p: A pixels 3 x 1/0.3 = 10, the B pixel 1/0.1 = 10 -> half each
    assert np.isclose(acc.auc_rebalanced(p), 50.0)
    p[b] = 0.3  # equal weight per pixel -> the raw AuC
    assert np.isclose(acc.auc_rebalanced(p), acc.auc_raw())
    freq = np.zeros(NUM_BINS)
    freq[a], freq[b] = 3, 1  # the set's own frequencies reproduce the default
    assert np.isclose(acc.auc_rebalanced(freq), acc.auc_rebalanced())


@pytest.mark.parametrize("bad", [np.ones(312), np.full(NUM_BINS, np.nan), -np.ones(NUM_BINS), np.zeros(NUM_BINS)])
def test_check_prior_refuses_bad_priors(bad):
    with pytest.raises(ValueError, match="prior"):
        metrics.check_prior(bad)
