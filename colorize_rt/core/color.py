"""sRGB (D65, 2° observer) <-> CIE Lab, vectorised numpy, float32.

Ported from the formulas scikit-image uses (``skimage.color.rgb2lab`` / ``lab2rgb``) and tested
against them. RGB is float in [0, 1], channels last ``(..., 3)``; L in [0, 100], a/b roughly [-128, 127].

The 3 x 3 colour-space matrices are applied per pixel with ``cv2.transform``, not numpy's ``@``: ``@`` goes
to OpenBLAS, whose worker threads busy-wait for milliseconds after every call and so took a core from the
network and the codecs running next to it (a folder of small photos cost twice its CPU time).
"""

from __future__ import annotations

import cv2
import numpy as np

# sRGB -> XYZ (D65), the matrix skimage uses.
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=np.float64,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
Y_FROM_LINEAR_RGB = _RGB_TO_XYZ[1].astype(np.float32)  # relative luminance of linear sRGB
WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)
_EPS = 0.008856  # (6/29)^3
_KAPPA = 7.787  # (29/6)^2 / 3


def _apply_matrix(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x @ m.T`` for float32 pixels ``x`` (..., 3) and a matrix ``m`` (k, 3) -> (..., k) float32 (k = 1 drops
    the last axis), in one thread and without BLAS (see the module doc)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    m = np.atleast_2d(np.asarray(m, np.float32))
    shape = x.shape[:-1] + ((m.shape[0],) if m.shape[0] > 1 else ())
    if x.size == 0:
        return np.zeros(shape, np.float32)
    return cv2.transform(x.reshape(-1, 1, 3), m).reshape(shape)


def _check_last3(x: np.ndarray, name: str) -> None:
    if x.ndim < 1 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3); got {x.shape}")


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32)
    return np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92).astype(np.float32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.asarray(lin, dtype=np.float32)
    pos = np.maximum(lin, 0.0031308)  # avoid pow of negatives in the unused branch
    return np.where(lin > 0.0031308, 1.055 * pos ** (1 / 2.4) - 0.055, lin * 12.92).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape (..., 3) -> CIE Lab float32, shape (..., 3)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    _check_last3(rgb, "rgb")
    xyz = _apply_matrix(srgb_to_linear(rgb), _RGB_TO_XYZ / WHITE_D65[:, None])
    f = np.where(xyz > _EPS, np.cbrt(xyz), _KAPPA * xyz + 16.0 / 116.0)
    L = np.where(xyz[..., 1] > _EPS, 116.0 * f[..., 1] - 16.0, 903.3 * xyz[..., 1])
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1).astype(np.float32)


def lab_to_rgb_unclipped(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (..., 3) -> sRGB (..., 3), not clipped (out-of-gamut values fall outside [0, 1])."""
    lab = np.asarray(lab, dtype=np.float32)
    _check_last3(lab, "lab")
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = np.maximum(fy - b / 200.0, 0.0)  # as skimage: negative z is clamped
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / _KAPPA) * WHITE_D65.astype(np.float32)
    lin = _apply_matrix(xyz, _XYZ_TO_RGB)
    return linear_to_srgb(lin)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (..., 3) -> sRGB in [0, 1] float32, gamut-clipped after conversion."""
    return np.clip(lab_to_rgb_unclipped(lab), 0.0, 1.0)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Only the CIE L* channel of sRGB (..., 3) -> (...), cheaper than a full conversion."""
    rgb = np.asarray(rgb, dtype=np.float32)
    _check_last3(rgb, "rgb")
    return l_from_y(luminance(srgb_to_linear(rgb)))


def luminance(linear_rgb: np.ndarray) -> np.ndarray:
    """Relative luminance Y (white = 1) of linear sRGB (..., 3) -> (...) float32 (``Y_FROM_LINEAR_RGB``, no BLAS)."""
    return _apply_matrix(linear_rgb, Y_FROM_LINEAR_RGB)


def l_from_y(y: np.ndarray) -> np.ndarray:
    """Relative luminance Y (white = 1) -> CIE L*."""
    y = np.asarray(y, dtype=np.float32)
    return np.where(y > _EPS, 116.0 * np.cbrt(y) - 16.0, 903.3 * y).astype(np.float32)


def l_to_gray_rgb(L: np.ndarray) -> np.ndarray:
    """CIE L* (...) -> the sRGB gray value in [0, 1] with that lightness (a = b = 0)."""
    L = np.asarray(L, dtype=np.float32)
    fy = (L + 16.0) / 116.0
    y = np.where(fy > 0.2068966, fy**3, (fy - 16.0 / 116.0) / _KAPPA)
    return np.clip(linear_to_srgb(y), 0.0, 1.0)


def merge_l_ab(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L (H, W) and ab (2, H, W) -> Lab (H, W, 3)."""
    return np.concatenate([np.asarray(L, np.float32)[..., None], np.moveaxis(ab, 0, -1)], axis=-1)
