"""Levin, Lischinski & Weiss 2004, "Colorization using Optimization": the baseline for point hints.

Each pixel's ab is the affinity-weighted average of its 3x3 neighbours' (weights ``exp(-(Y_r - Y_s)^2 / (2 s_r^2))``,
``s_r^2`` the lightness variance of the window around r), hint pixels are fixed; one sparse linear solve per
channel (scipy, the ``dev`` extra). A 256² image is one 65,536-unknown system; at 1 MP it takes about a minute and
gigabytes, which is why it is the evaluation's baseline and not the product.
"""

from __future__ import annotations

import numpy as np

from ..core.lazy import require


def levin_colorize(L: np.ndarray, mask: np.ndarray, hint_ab: np.ndarray) -> np.ndarray:
    """Propagate hint colours over ``L`` with Levin et al.'s optimisation (no network).

    Args:
        L: (h, w) L* (0..100).
        mask: (h, w) 1 at hint pixels.
        hint_ab: (h, w, 2) hint colours where ``mask`` is 1.

    Returns:
        (2, h, w) float32 ab; zeros (gray) when there is no hint.
    """
    h, w = L.shape
    if not mask.any():
        return np.zeros((2, h, w), np.float32)
    sparse = require("scipy.sparse")
    linalg = require("scipy.sparse.linalg")
    Y = np.asarray(L, np.float64) / 100.0
    n = h * w
    idx = np.arange(n).reshape(h, w)
    pad = np.pad(Y, 1, mode="edge")
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    neigh = np.stack([pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in shifts])  # (8, h, w)
    window = np.concatenate([neigh, Y[None]])
    var = np.maximum(window.var(axis=0) * 0.6, 2e-6)  # as the reference code: 0.6 x variance, floored
    wts = np.exp(-((neigh - Y[None]) ** 2) / var[None])
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    valid = np.stack([(ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w) for dy, dx in shifts])
    wts = np.where(valid, wts, 0.0)
    wts /= np.maximum(wts.sum(axis=0, keepdims=True), 1e-12)
    fixed = mask.reshape(-1) > 0
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.ones(n)]
    for k, (dy, dx) in enumerate(shifts):
        ok = valid[k].reshape(-1) & ~fixed
        r = idx.reshape(-1)[ok]
        rows.append(r)
        cols.append(r + dy * w + dx)
        vals.append(-wts[k].reshape(-1)[ok])
    A = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    out = np.zeros((2, h, w), np.float32)
    solve = linalg.factorized(A.tocsc())
    for c in range(2):
        b = np.where(fixed, hint_ab[..., c].reshape(-1), 0.0)
        out[c] = solve(b).reshape(h, w)
    return out
