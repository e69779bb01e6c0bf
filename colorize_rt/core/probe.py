"""The known-answer probe every colorize-rt model carries: a small fixed L* crop of a real photo plus the fp32
reference ab output for it, stored compactly in the model's metadata (pure numpy).

Encoding (metadata key ``selfcheck_probe``, a JSON string of about 11 KB for the 40x40 probe):

* ``L_u8``: the L* input as uint8 (L* = u8 * 100 / 255), base64. The network is always fed the decoded
  float32 map, so the input is exact and the reference was computed from the same numbers;
* ``ab_f16``: the fp32 reference output (2, H, W) rounded to float16 (0.03 ab at most for |ab| < 64), base64;
* ``temperature``, ``reference`` (what produced the reference) and ``sha256`` over the two arrays, so a
  damaged or edited probe is reported as such instead of blaming the model.

Runners compare their output for the probe against the reference with ``compare`` and judge it against the
tolerance of the model's precision (``TOLERANCES``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBE_KEY = "selfcheck_probe"
PROBE_VERSION = 1
# 40: the stride-32 encoders need more than 24x24 in ONNX Runtime's NCHWc kernels (AVX-512 and AVX2 both
# run 40x40); 40x40 is 2.4 % of the pixels of a 256x256 inference.
PROBE_SIDE = 40
L_SCALE = 100.0 / 255.0

# (mean |dab|, p99 |dab|) allowed against the fp32 reference, per precision of the model under test, set from
# measurements on this probe with the shipped default model (benchmarks/results/int8-selfcheck.md):
# * fp32: the same model elsewhere differs by < 0.01 (fp16-stored weights 0.02); fp16 compute gives 0.03 / 0.14
#   and TF32 (GPU fp32 matmuls) is below fp16. 0.3 / 2.0 is 10x that; one conv weight x3 moves the probe by
#   0.51-21 mean in each of the 7 layers tried, stem to decoder.
# * fp16: 0.03 / 0.14 measured on ONNX Runtime CPU; GPU fp16 accumulation may be several times worse: 1.0 / 5.0.
# * int8: 0.8-1.5 / 2.9-5.4 for the 7-bit-weight recipes (the same on VNNI and AVX2); INT8 kernels that
#   saturate (full-range weights on AVX2 without VNNI) give >= 11 / 27: 3.0 / 15.0 sits between.
# * bf16: an fp32 model computed in bf16 (OpenVINO on AVX512-BF16 / AMX) gives 0.5 / 3.0 on this probe and
#   0.45 / 1.9 over a 256² photo (OpenVINO 2026.4, 2-core Xeon with AMX), about half INT8's; its rebalanced AuC
#   on the 262 val photos drops by 0.25 (fp32 70.67, bf16 70.42, INT8 70.42). Only ``auto`` judges a bf16 run
#   as bf16, as it judges its INT8 variant as INT8: a user who names an fp32 model gets fp32's tolerance.
#   Its 8-bit mantissa puts it with fp16 (11 bits, but GPU accumulation): 1.0 / 5.0.
# A model of unknown precision is judged as INT8 (the loosest).
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (0.3, 2.0),
    "fp16": (1.0, 5.0),
    "bf16": (1.0, 5.0),
    "int8": (3.0, 15.0),
}


class ProbeError(ValueError):
    """The probe in a model's metadata cannot be read (damaged, edited or from another version)."""


@dataclass(frozen=True)
class Probe:
    """A decoded probe: ``L`` (H, W) float32 L*, ``ab`` (2, H, W) float32 reference."""

    L: np.ndarray
    ab: np.ndarray
    temperature: float
    reference: str = "fp32"


def probe_crop_path() -> Path:
    """Returns: the shipped L* crop (uint8, ``PROBE_SIDE`` square), cut from scikit-image's ``coffee`` photo
    (CC0; rows 140-179, columns 380-419)."""
    return Path(__file__).resolve().parent.parent / "assets" / "probe_L.npy"


def load_probe_input(path: str | Path | None = None) -> np.ndarray:
    """Returns: the probe's L* crop as uint8 (H, W).

    Args:
        path: a ``.npy`` uint8 crop (default: ``probe_crop_path()``).
    """
    arr = np.load(path or probe_crop_path(), allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 2 or min(arr.shape) < 8:
        raise ProbeError(f"probe crop must be a 2-D uint8 array; got {arr.dtype} {arr.shape}")
    return arr


def decode_L(L_u8: np.ndarray) -> np.ndarray:
    """Returns: the float32 L* map (H, W) a uint8 probe crop stands for."""
    return (L_u8.astype(np.float32) * np.float32(L_SCALE)).astype(np.float32)


def _digest(L_u8: np.ndarray, ab16: np.ndarray) -> str:
    return hashlib.sha256(L_u8.tobytes() + ab16.tobytes()).hexdigest()


def encode_probe(L_u8: np.ndarray, ab: np.ndarray, temperature: float, reference: str) -> str:
    """Returns: the metadata string for a probe.

    Args:
        L_u8: uint8 (H, W) input crop.
        ab: the reference output (2, H, W) for ``decode_L(L_u8)`` at ``temperature``.
        temperature: annealed-mean temperature the reference was computed at.
        reference: what computed it (e.g. ``"fp32 onnxruntime-cpu 1.23"``).
    """
    L_u8 = np.ascontiguousarray(L_u8, dtype=np.uint8)
    ab16 = np.ascontiguousarray(ab, dtype=np.float16)
    if ab16.shape != (2, *L_u8.shape):
        raise ProbeError(f"reference ab shape {ab16.shape} does not match the input {L_u8.shape}")
    return json.dumps(
        {
            "version": PROBE_VERSION,
            "shape": list(L_u8.shape),
            "temperature": float(temperature),
            "reference": reference,
            "L_u8": base64.b64encode(L_u8.tobytes()).decode(),
            "ab_f16": base64.b64encode(ab16.tobytes()).decode(),
            "sha256": _digest(L_u8, ab16),
        },
        separators=(",", ":"),
    )


def decode_probe(text: str) -> Probe:
    """Returns: the ``Probe`` in a metadata string.

    Args:
        text: the value of the ``selfcheck_probe`` metadata key.

    Raises:
        ProbeError: the string is not a readable probe, or its checksum does not match.
    """
    try:
        d = json.loads(text)
        if int(d["version"]) != PROBE_VERSION:
            raise ProbeError(f"probe version {d['version']} is not {PROBE_VERSION}")
        h, w = (int(v) for v in d["shape"])
        L_u8 = np.frombuffer(base64.b64decode(d["L_u8"]), dtype=np.uint8).reshape(h, w)
        ab16 = np.frombuffer(base64.b64decode(d["ab_f16"]), dtype=np.float16).reshape(2, h, w)
        temperature = float(d["temperature"])
    except ProbeError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ProbeError(f"unreadable known-answer probe ({type(exc).__name__}: {exc})") from None
    if _digest(L_u8, ab16) != d.get("sha256"):
        raise ProbeError("the known-answer probe's checksum does not match (metadata damaged or edited)")
    return Probe(decode_L(L_u8), ab16.astype(np.float32), temperature, str(d.get("reference", "fp32")))


def compare(ab: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Returns: {mean, p99, max} of |ab - reference| over both channels (nan-safe: NaN counts as inf).

    Args:
        ab: output under test (2, H, W).
        reference: the probe's reference (2, H, W).
    """
    ab = np.asarray(ab, dtype=np.float32).reshape(reference.shape)
    d = np.abs(ab - reference)
    d = np.where(np.isfinite(d), d, np.inf)
    return {"mean": float(d.mean()), "p99": float(np.percentile(d, 99)), "max": float(d.max())}


def tolerance(precision: str) -> tuple[float, float]:
    """Returns: (mean, p99) allowed for a model of ``precision`` (unknown precisions: the INT8 tolerance)."""
    return TOLERANCES.get(precision, TOLERANCES["int8"])


def within(stats: dict[str, float], precision: str) -> bool:
    """Returns: whether ``compare`` stats are inside the tolerance of ``precision``."""
    mean_tol, p99_tol = tolerance(precision)
    return stats["mean"] <= mean_tol and stats["p99"] <= p99_tol
