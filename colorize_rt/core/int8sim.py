"""An exact numpy model of the two ways x86 CPUs compute ONNX Runtime's u8s8 integer dot products (pure numpy).

* ``vnni`` (AVX512-VNNI, AVX-VNNI, AMX): VPDPBUSD multiplies uint8 by int8 and accumulates in int32: exact.
* ``avx2`` (AVX2 or AVX-512 without VNNI): VPMADDUBSW multiplies uint8 by int8 and adds *adjacent pairs*
  (k = 2j, 2j+1) into int16 with signed saturation; VPMADDWD then adds those int16 values into int32
  (exact). A pair sum outside [-32768, 32767] is clipped, so results depend on the kernel path.

MLAS packs the reduction dimension K in consecutive order (groups of 4 bytes per column), so the pairs are
(0, 1), (2, 3), ...; zero points are applied afterwards from row/column sums, in int32, so saturation acts
on the raw uint8 activations (int8 activations are shifted to uint8 by +128 first). ``matmul_u8s8`` follows
this and was checked bit for bit against ONNX Runtime ``MatMulInteger`` under ``qemu-x86_64 -cpu Haswell``
(no VNNI) and natively on an AVX512-VNNI Xeon (benchmarks/int8_paths.py).

The fix colorize-rt uses follows from the model: with 7-bit weights (|w| <= 64, ONNX Runtime's
``reduce_range``) no pair can leave int16 (255 * 64 * 2 = 32640 <= 32767), so both paths give the same
integers; ``saturation_free`` checks that for a weight tensor.
"""

from __future__ import annotations

import numpy as np

INT16_MIN, INT16_MAX = -32768, 32767
SAFE_WEIGHT_MAX = INT16_MAX // (2 * 255)  # 64: the largest |w| for which no uint8 pair sum can saturate
PATHS = ("vnni", "avx2")


def pair_sums_saturated(a_u8: np.ndarray, b_s8: np.ndarray) -> np.ndarray:
    """VPMADDUBSW over the last axis of ``a_u8`` (M, K) against ``b_s8`` (K, N).

    Args:
        a_u8: uint8 activations (M, K).
        b_s8: int8 weights (K, N).

    Returns:
        int32 (M, K/2, N): the int16-saturated sums of adjacent products (K zero-padded to even).
    """
    a = np.asarray(a_u8, dtype=np.int32)
    b = np.asarray(b_s8, dtype=np.int32)
    if a.shape[-1] % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
        b = np.pad(b, ((0, 1), (0, 0)))
    even = a[:, 0::2, None] * b[None, 0::2, :]
    odd = a[:, 1::2, None] * b[None, 1::2, :]
    return np.clip(even + odd, INT16_MIN, INT16_MAX)


def matmul_u8s8(a_u8: np.ndarray, b_s8: np.ndarray, a_zero_point: int = 0, path: str = "vnni") -> np.ndarray:
    """``MatMulInteger(a, b, a_zero_point, 0)`` as the given x86 kernel path computes it.

    Args:
        a_u8: uint8 (M, K).
        b_s8: int8 (K, N).
        a_zero_point: the activations' zero point (subtracted exactly, after the products).
        path: ``"vnni"`` (exact) or ``"avx2"`` (VPMADDUBSW saturation).

    Returns:
        int32 (M, N).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}; got {path!r}")
    a = np.asarray(a_u8, dtype=np.uint8)
    b = np.asarray(b_s8, dtype=np.int8)
    if path == "vnni":
        raw = a.astype(np.int64) @ b.astype(np.int64)
    else:
        raw = pair_sums_saturated(a, b).astype(np.int64).sum(axis=1)
    zp_term = int(a_zero_point) * b.astype(np.int64).sum(axis=0, keepdims=True)
    return (raw - zp_term).astype(np.int32)


def worst_pair_sum(w_s8: np.ndarray) -> int:
    """Returns: the largest |pair sum| any uint8 input can produce with these int8 weights (any K order).

    Args:
        w_s8: quantized int8 weights (any shape).
    """
    w = np.abs(np.asarray(w_s8, dtype=np.int32))
    if w.size == 0:
        return 0
    top = np.sort(w.ravel())[-2:]
    return int(255 * top.sum()) if top.size == 2 else int(255 * top[0])


def saturation_free(w_s8: np.ndarray) -> bool:
    """Returns: whether VPMADDUBSW can never saturate with these weights (so the AVX2 path equals VNNI).

    Args:
        w_s8: quantized int8 weights.
    """
    return worst_pair_sum(w_s8) <= INT16_MAX
