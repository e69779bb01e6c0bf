"""Point hints propagated along objects (training-free), at the network's resolution, in four steps:

1. the hints' corrections (``hint ab - predicted ab`` at the hint pixels) spread over the whole image by solving
   Levin et al. 2004's affinity equations for the correction, plus a weak pull toward no correction (``screen``):

       minimise  sum_(p~q) w_pq (r_p - r_q)^2 + screen * sum_p r_p^2    with r_p = hint_p - pred_p at hint pixels

   (``w`` the symmetric lightness affinities of 8-connected neighbours; a screened Poisson equation on the affinity
   graph), solved by Jacobi-preconditioned conjugate gradients coarse to fine (a cascadic solve: the quarter-
   resolution solution, upsampled, starts the half-resolution one, and so on), so it costs a few tens of milliseconds
   at 256² without a sparse solver (the runtime install has no scipy). This moves every region the hints reach,
   including the model's global colour cast, and keeps the prediction's own detail;
2. an edge-aware normalised convolution of the hint colours over L* (the domain transform's recursive filter,
   Gastal & Oliveira 2011): ``c = F(m * h) / F(m)`` is the hints' colour carried along regions of similar lightness
   (``F`` the filter, ``m`` the hint mask, ``h`` the hint colours), and step 1's result moves toward it by the
   confidence ``F(m) / (F(m) + k * F1)`` (``F1`` what one isolated hint pixel gives at its own position, ``k`` the
   reach): near many hints the hints' colours replace the prediction;
3. optionally (off by default: step 4 does better), Jacobi sweeps of Levin et al.'s affinity equations on the
   colours (each pixel the affinity-weighted mean of its 3x3 neighbours), hint pixels held;
4. the colours smoothed along the same affinities and held near the previous step's result ``y`` where the hints
   are far: ``min sum_(p~q) w_pq (x_p - x_q)^2 + sum_p pull_p (x_p - y_p)^2`` with
   ``pull_p = far * (1 - confidence_p) + near`` (step 2's confidence), a few conjugate-gradient iterations from y:
   near the hints this is Levin's colour solve, far from them a light edge-aware smoothing of the prediction.

The hint pixels get the hint colour exactly. Knobs measured on training photos (docs/hints.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .spec import PointHint

# Step 1: conjugate-gradient iterations per pyramid level, coarsest first (len - 1 halvings: a quarter, a half, the
# network resolution); () skips step 1. (100, 40, 20) with 30 sweeps measured +0.03 dB at 10 hints on 16 training
# photos, at about 1.5x the cost (docs/hints.md).
SOLVE_ITERATIONS = (100, 40, 10)
SCREEN = 1e-4  # step 1's pull toward no correction, against affinities of up to 1 per neighbour
VARIANCE_FACTOR = 0.6  # Levin et al.'s reference code: affinity exp(-(Y_p - Y_q)^2 / (0.6 * local variance)) ...
VARIANCE_FLOOR = 2e-6  # ... with the variance floored, in (L*/100)^2
# Step 4: CG iterations of min sum w (x_p - x_q)^2 + sum pull_p (x_p - y_p)^2 from the earlier steps' result y, with
# pull_p = FUSE_FAR * (1 - confidence_p) + FUSE_NEAR (step 2's confidence); 0 skips step 4.
FUSE_ITERATIONS = 20
FUSE_FAR = 1e-2
FUSE_NEAR = 1e-4
SIGMA_SPACE = 192.0  # filter's spatial extent, in network pixels
SIGMA_RANGE = 12.0  # lightness step (L* units) that counts as one spatial sigma of distance: edges stop hints
REACH = 0.02  # k: a hint's colour fades where its filtered mask falls below k times its peak
ITERATIONS = 3
# Step 3: Jacobi sweeps of the affinity equations per pyramid level, coarsest first; () = none. Shipped: none (step 4
# measured better; the previous release, without steps 1 and 4: 60). Without step 1, (150, 50, 0) with ANCHOR 0.01 (a
# quarter, a half, then upsampled; unreached pixels held at the prediction) measured +0.1 dB PSNR at 10 hints but 1.4
# points less rebalanced AuC on the validation sweep (docs/hints.md).
SWEEPS = ()
ANCHOR = 0.0  # pixels where the filter's confidence is below this keep the prediction during the sweeps (0: none)


@dataclass(frozen=True)
class PropagationSettings:
    """The propagation's knobs (defaults measured on training photos: docs/hints.md).

    ``solve_iterations=()`` skips step 1 (the correction solve), a huge ``reach`` (1e12) makes step 2 a no-op and
    ``sweeps=()`` skips step 3, ``fuse_iterations=0`` step 4: all four off leaves only the hint pixels changed.
    ``PropagationSettings(solve_iterations=(), sweeps=(60,), fuse_iterations=0)`` is the previous release's.
    """

    sigma_space: float = SIGMA_SPACE
    sigma_range: float = SIGMA_RANGE
    reach: float = REACH
    iterations: int = ITERATIONS
    sweeps: tuple[int, ...] = SWEEPS
    anchor: float = ANCHOR
    solve_iterations: tuple[int, ...] = SOLVE_ITERATIONS
    screen: float = SCREEN
    fuse_iterations: int = FUSE_ITERATIONS
    fuse_far: float = FUSE_FAR
    fuse_near: float = FUSE_NEAR


def _recursive_pass(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """One causal + anti-causal recursive filter along axis 0 of x (n, m, c) with feedback a (n, m)."""
    out = x.copy()
    for i in range(1, out.shape[0]):
        out[i] += a[i][:, None] * (out[i - 1] - out[i])
    for i in range(out.shape[0] - 2, -1, -1):
        out[i] += a[i + 1][:, None] * (out[i + 1] - out[i])
    return out


def edge_aware_filter(values: np.ndarray, L: np.ndarray, settings: PropagationSettings = PropagationSettings()) -> np.ndarray:
    """The domain transform's recursive filter of ``values`` guided by ``L``.

    Args:
        values: (h, w, c) float32 channels to filter.
        L: (h, w) guide (L*, 0..100).
        settings: spatial and range sigmas, iterations.

    Returns:
        (h, w, c) float32.
    """
    L = np.asarray(L, np.float32)
    ratio = settings.sigma_space / settings.sigma_range
    dx = 1.0 + ratio * np.abs(np.diff(L, axis=1))  # (h, w-1): domain distance between horizontal neighbours
    dy = 1.0 + ratio * np.abs(np.diff(L, axis=0))  # (h-1, w)
    out = np.asarray(values, np.float32).copy()
    n = settings.iterations
    for k in range(n):
        sigma = settings.sigma_space * np.sqrt(3.0) * 2 ** (n - k - 1) / np.sqrt(4.0**n - 1)
        base = np.float32(np.exp(-np.sqrt(2.0) / sigma))
        ax = np.concatenate([np.zeros((L.shape[0], 1), np.float32), base**dx], axis=1)  # feedback into column j
        ay = np.concatenate([np.zeros((1, L.shape[1]), np.float32), base**dy], axis=0)
        out = np.swapaxes(_recursive_pass(np.swapaxes(out, 0, 1), ax.T), 0, 1)
        out = _recursive_pass(out, ay)
    return out


def hint_mask(hints: list[PointHint], shape: tuple[int, int], scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Hints drawn at network resolution.

    Args:
        hints: hints in input-image pixels.
        shape: (h, w) of the network-resolution map.
        scale: (sy, sx) network pixels per input pixel.

    Returns:
        (mask (h, w) float32 in {0, 1}, ab (h, w, 2) float32 the hint colours where the mask is 1; later hints win).
    """
    h, w = shape
    sy, sx = scale
    mask = np.zeros((h, w), np.float32)
    ab = np.zeros((h, w, 2), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for hint in hints:
        cy = min(h - 1.0, max(0.0, (hint.y + 0.5) * sy - 0.5))
        cx = min(w - 1.0, max(0.0, (hint.x + 0.5) * sx - 0.5))
        r = hint.radius * min(sx, sy)
        y0, y1 = max(0, int(np.floor(cy - r - 1))), min(h, int(np.ceil(cy + r + 2)))
        x0, x1 = max(0, int(np.floor(cx - r - 1))), min(w, int(np.ceil(cx + r + 2)))
        d2 = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2
        inside = d2 <= max(r, 0.5) ** 2 + 1e-6
        if not inside.any():  # a radius under half a network pixel: the nearest pixel
            inside = d2 == d2.min()
        mask[y0:y1, x0:x1][inside] = 1.0
        ab[y0:y1, x0:x1][inside] = hint.ab
    return mask, ab


def apply_point_hints(
    L: np.ndarray,
    ab: np.ndarray,
    mask: np.ndarray,
    hint_ab: np.ndarray,
    settings: PropagationSettings = PropagationSettings(),
) -> np.ndarray:
    """Spread the hints' corrections over ``ab`` along ``L``'s regions; hint pixels get the hint colour exactly.

    Args:
        L: (h, w) L* at network resolution.
        ab: (2, h, w) the prediction.
        mask: (h, w) 1 at hint pixels (``hint_mask``).
        hint_ab: (h, w, 2) hint colours at those pixels.
        settings: the propagation's knobs.

    Returns:
        (2, h, w) float32.
    """
    if not mask.any():
        return ab
    held = mask > 0
    ab = np.asarray(ab, np.float32)
    if settings.solve_iterations:
        correction = np.zeros_like(ab)
        correction[:, held] = np.moveaxis(hint_ab, -1, 0)[:, held] - ab[:, held]
        ab = ab + cascadic_solve(L, held, correction, settings)
    pred = np.moveaxis(ab, 0, -1)
    stack = np.concatenate([hint_ab * mask[..., None], mask[..., None]], axis=-1)
    filtered = edge_aware_filter(stack, L, settings)
    carried = filtered[..., :2] / np.maximum(filtered[..., 2:], np.float32(1e-20))
    confidence = filtered[..., 2:] / (filtered[..., 2:] + np.float32(settings.reach * _single_pixel_peak(settings)))
    out = pred + confidence * (carried - pred)
    out[held] = hint_ab[held]
    out = np.moveaxis(out, -1, 0).copy()
    if settings.sweeps:
        # pixels the hints do not reach (far away, or behind an edge) keep the prediction: they anchor the solve, so a
        # lone hint does not flood the whole image as Levin's solve with one constraint would
        anchored = held | (confidence[..., 0] < settings.anchor)
        values = np.where(held[None], np.moveaxis(hint_ab, -1, 0), out) * anchored[None]
        out = coarse_to_fine(out, L, anchored.astype(np.float32), values, settings.sweeps)
    if settings.fuse_iterations:
        # step 4: the colours smoothed along the affinities, held near step 3's result where the hints are far
        pull = np.float32(settings.fuse_far) * (1.0 - confidence[..., 0]) + np.float32(settings.fuse_near)
        out = conjugate_gradients(out, L, held, pull, settings.fuse_iterations, target=out)
    return np.ascontiguousarray(out)


def _half(a: np.ndarray) -> np.ndarray:
    """Area-average (..., h, w) to (..., h // 2, w // 2) (at least 1 x 1)."""
    size = (max(1, a.shape[-1] // 2), max(1, a.shape[-2] // 2))
    if a.ndim == 2:
        return cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    return np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in a])


def coarse_to_fine(
    start: np.ndarray, L: np.ndarray, mask: np.ndarray, hint_ab: np.ndarray, sweeps: tuple[int, ...]
) -> np.ndarray:
    """``affinity_sweeps`` on a pyramid: ``sweeps[0]`` at the coarsest level, each result upsampled as the next
    level's start, ``sweeps[-1]`` at full resolution. A coarse pixel is held (a hint) when any of its pixels is, with
    the mean colour of those pixels.

    Args:
        start: (2, h, w) the first guess (hint pixels already set).
        L: (h, w) L*.
        mask: (h, w) 1 at hint pixels.
        hint_ab: (2, h, w) hint colours (0 elsewhere).
        sweeps: sweeps per level, coarsest first; ``len(sweeps) - 1`` halvings.

    Returns:
        (2, h, w) float32 with the hint pixels at their colours.
    """
    pyramid = [(np.asarray(L, np.float32), mask.astype(np.float32), hint_ab.astype(np.float32), start.astype(np.float32))]
    for _ in range(len(sweeps) - 1):
        Lc, mc, hc, sc = pyramid[-1]
        m2, h2 = _half(mc), _half(hc)
        held = (m2 > 0).astype(np.float32)
        pyramid.append((_half(Lc), held, np.where(held > 0, h2 / np.maximum(m2, 1e-6), 0.0).astype(np.float32), _half(sc)))
    x = pyramid[-1][3]
    for level in range(len(pyramid) - 1, -1, -1):
        Lc, mc, hc, _ = pyramid[level]
        if x.shape[1:] != Lc.shape:
            x = np.stack([cv2.resize(c, (Lc.shape[1], Lc.shape[0]), interpolation=cv2.INTER_LINEAR) for c in x])
        held = mc > 0
        x[:, held] = hc[:, held]
        n = sweeps[len(pyramid) - 1 - level]
        if n:
            x = affinity_sweeps(x, Lc, held, n)
    return x


_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def affinity_weights(L: np.ndarray) -> np.ndarray:
    """Levin et al. 2004's weights of each pixel's 8 neighbours (rows sum to 1; edge pixels repeat their border).

    Args:
        L: (h, w) L*.

    Returns:
        (8, h, w) float32, in the order of ``_SHIFTS``.
    """
    h, w = L.shape
    Y = np.asarray(L, np.float32) / 100.0
    pad = np.pad(Y, 1, mode="edge")
    neigh = np.stack([pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _SHIFTS])
    var = np.maximum(np.concatenate([neigh, Y[None]]).var(axis=0) * 0.6, 2e-6)
    wts = np.exp(-((neigh - Y[None]) ** 2) / var[None])
    return (wts / wts.sum(axis=0, keepdims=True)).astype(np.float32)


def affinity_sweeps(ab: np.ndarray, L: np.ndarray, held: np.ndarray, sweeps: int) -> np.ndarray:
    """Jacobi sweeps of ``ab_r = sum_s w_rs ab_s`` (Levin et al.'s equations) with the ``held`` pixels fixed.

    Args:
        ab: (2, h, w) float32 start.
        L: (h, w) L* (the affinities).
        held: (h, w) bool, pixels kept as they are.
        sweeps: number of sweeps.

    Returns:
        (2, h, w) float32.
    """
    _, h, w = ab.shape
    wts = affinity_weights(L)
    keep = ab[:, held].copy()
    buf = np.empty((2, h + 2, w + 2), np.float32)
    x = ab.astype(np.float32, copy=True)
    acc = np.empty_like(x)
    tmp = np.empty_like(x)
    for _ in range(sweeps):
        buf[:, 1:-1, 1:-1] = x
        buf[:, 0, 1:-1], buf[:, -1, 1:-1] = x[:, 0], x[:, -1]
        buf[:, :, 0], buf[:, :, -1] = buf[:, :, 1], buf[:, :, -2]
        acc.fill(0.0)
        for k, (dy, dx) in enumerate(_SHIFTS):
            np.multiply(buf[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], wts[k], out=tmp)
            acc += tmp
        x, acc = acc, x
        x[:, held] = keep
    return x


@lru_cache(maxsize=8)
def _single_pixel_peak(settings: PropagationSettings) -> float:
    """What the filter leaves at an isolated pixel's own position on a flat guide (the normaliser of ``reach``)."""
    size = int(min(257, 2 * settings.sigma_space * 3 + 1)) | 1
    impulse = np.zeros((size, size, 1), np.float32)
    impulse[size // 2, size // 2] = 1.0
    return float(edge_aware_filter(impulse, np.zeros((size, size), np.float32), settings)[size // 2, size // 2, 0])


# Step 1: the correction solve.

_EDGES = ((0, 1), (1, 0), (1, 1), (1, -1))  # the 4 of a pixel's 8 neighbours after it; each edge stored once


def edge_weights(L: np.ndarray) -> np.ndarray:
    """Levin et al. 2004's affinities between 8-connected neighbours, made symmetric.

    ``w_pq = (exp(-(Y_p - Y_q)^2 / s_p) + exp(-(Y_q - Y_p)^2 / s_q)) / 2`` with ``s_p`` 0.6 times the lightness
    variance of the 3x3 window around p (floored), ``Y = L* / 100``.

    Args:
        L: (h, w) L*.

    Returns:
        (4, h, w) float32: entry k at p is the weight of the edge from p to p + ``_EDGES[k]`` (0 where that is outside).
    """
    h, w = L.shape
    Y = np.asarray(L, np.float32) / np.float32(100.0)
    pad = np.pad(Y, 1, mode="edge")
    window = np.stack([pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    var = np.maximum(window.var(axis=0) * np.float32(VARIANCE_FACTOR), np.float32(VARIANCE_FLOOR))
    out = np.zeros((4, h, w), np.float32)
    for k in range(len(_EDGES)):
        src, dst = _edge_slices(k, h, w)
        d2 = (Y[src] - Y[dst]) ** 2
        out[k][src] = 0.5 * (np.exp(-d2 / var[src]) + np.exp(-d2 / var[dst]))
    return out


def _edge_slices(k: int, h: int, w: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The pixels p that have a neighbour p + ``_EDGES[k]`` inside (h, w), and those neighbours."""
    dy, dx = _EDGES[k]
    src = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
    dst = (slice(dy, h), slice(max(0, dx), w + min(0, dx)))
    return src, dst


def _stencil(L: np.ndarray, held: np.ndarray, screen: float) -> np.ndarray:
    """The screened affinity Laplacian as a 3x3 stencil per pixel, rows of ``held`` pixels zero.

    Returns:
        (3, 3, h, w) float32: entry (1 + dy, 1 + dx) at p multiplies x at p + (dy, dx); the centre is
        ``screen + sum of p's edge weights``, a neighbour ``-w``.
    """
    h, w = L.shape
    weights = edge_weights(L)
    stencil = np.zeros((3, 3, h, w), np.float32)
    stencil[1, 1] = screen
    for k, (dy, dx) in enumerate(_EDGES):
        src, dst = _edge_slices(k, h, w)
        stencil[1 + dy, 1 + dx][src] = -weights[k][src]
        stencil[1 - dy, 1 - dx][dst] = -weights[k][src]
        stencil[1, 1][src] += weights[k][src]
        stencil[1, 1][dst] += weights[k][src]
    stencil[:, :, held] = 0.0
    return stencil


def conjugate_gradients(
    x: np.ndarray,
    L: np.ndarray,
    held: np.ndarray,
    screen: float | np.ndarray,
    iterations: int,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients on the screened affinity Laplacian, ``held`` pixels fixed:
    ``min sum_(p~q) w_pq (x_p - x_q)^2 + sum_p screen_p (x_p - target_p)^2``.

    Args:
        x: (c, h, w) float32 start; its values at ``held`` pixels are the constraints.
        L: (h, w) L* (the affinities).
        held: (h, w) bool.
        screen: the pull toward ``target``, one value or one per pixel (h, w).
        iterations: CG iterations.
        target: (c, h, w) what the screen pulls toward (None: 0).

    Returns:
        (c, h, w) float32.
    """
    c, h, w = x.shape
    stencil = _stencil(L, held, screen)
    inverse = np.where(held, 0.0, 1.0 / np.maximum(stencil[1, 1], 1e-12)).astype(np.float32)
    padded = np.zeros((c, h + 2, w + 2), np.float32)
    taps = [(i, j) for i in range(3) for j in range(3) if (i, j) != (1, 1)]

    def apply(v: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
        padded[:, 1:-1, 1:-1] = v
        np.multiply(stencil[1, 1], v, out=out)
        for i, j in taps:
            np.multiply(stencil[i, j], padded[:, i : i + h, j : j + w], out=tmp)
            out += tmp
        return out

    x = x.astype(np.float32, copy=True)
    q, tmp = np.empty_like(x), np.empty_like(x)
    residual = -apply(x, q, tmp)  # zero at held pixels (their rows are zero)
    if target is not None:
        residual += np.where(held, np.float32(0.0), screen).astype(np.float32) * target
    z = residual * inverse
    direction = z.copy()
    rz = np.einsum("chw,chw->c", residual, z)
    for _ in range(iterations):
        apply(direction, q, tmp)
        step = (rz / np.maximum(np.einsum("chw,chw->c", direction, q), np.float32(1e-30)))[:, None, None]
        np.multiply(direction, step, out=tmp)
        x += tmp
        np.multiply(q, step, out=tmp)
        residual -= tmp
        np.multiply(residual, inverse, out=z)
        rz_next = np.einsum("chw,chw->c", residual, z)
        direction *= (rz_next / np.maximum(rz, np.float32(1e-30)))[:, None, None]
        direction += z
        rz = rz_next
    return x


def cascadic_solve(L: np.ndarray, held: np.ndarray, values: np.ndarray, settings: PropagationSettings) -> np.ndarray:
    """The screened affinity equations solved coarse to fine: ``settings.solve_iterations[0]`` CG iterations at the
    coarsest level, each result upsampled (bilinear) as the next level's start. A coarse pixel is held when any of its
    pixels is, with the mean of their values.

    Args:
        L: (h, w) L*.
        held: (h, w) bool, the hint pixels.
        values: (c, h, w) the constraints at ``held`` pixels (0 elsewhere).
        settings: iterations per level and the screen.

    Returns:
        (c, h, w) float32, equal to ``values`` at ``held`` pixels.
    """
    levels = [(np.asarray(L, np.float32), held.astype(np.float32), (values * held).astype(np.float32))]
    for _ in range(len(settings.solve_iterations) - 1):
        Lc, mc, vc = levels[-1]
        m2, v2 = _half(mc), _half(vc)
        levels.append(
            (_half(Lc), (m2 > 0).astype(np.float32), np.where(m2 > 0, v2 / np.maximum(m2, 1e-6), 0.0).astype(np.float32))
        )
    x = np.zeros_like(levels[-1][2])
    for level in range(len(levels) - 1, -1, -1):
        Lc, mc, vc = levels[level]
        if x.shape[1:] != Lc.shape:
            x = np.stack([cv2.resize(c, (Lc.shape[1], Lc.shape[0]), interpolation=cv2.INTER_LINEAR) for c in x])
        keep = mc > 0
        x[:, keep] = vc[:, keep]
        x = conjugate_gradients(x, Lc, keep, settings.screen, settings.solve_iterations[len(levels) - 1 - level])
    return x
