"""The known-answer self-check every runner passes on activation (torch-free).

``check_runner`` feeds the model's probe (``core.probe``: a 40x40 L* crop of a real photo and the fp32
reference ab) to an activated runner and compares mean and p99 |dab| with the tolerance of the model's
precision. The verdict is cached on disk under (model sha256, backend, provider options, CPU features,
runtime versions), so only the first activation of a model on a machine runs the probe; the model's sha256
is itself cached under the file's (size, mtime, ctime, inode), so a second run reads two small JSON files.

``Verdict.status`` is ``"pass"``, ``"fail"`` or ``"unchecked"`` (the model carries no probe, or it cannot be
read); what a failure does (error or fall back) is decided by ``backends.open_runner`` and
``api.Colorizer``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ... import __version__
from ...core.atomic import atomic_write_text
from ...core.cpu import cpu_flags, cpu_model, int8_dot_path
from ...core.hashing import file_sha256
from ...core.paths import cache_dir
from ...core.probe import PROBE_KEY, PROBE_VERSION, TOLERANCES, ProbeError, compare, decode_probe, tolerance, within
from .runners import Runner, predict_ab

CACHE_KIND = "selfcheck"
NO_PROBE = "no known-answer probe in its metadata (not written by colorize-export or colorize-calibrate)"
KEY_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "f16c")
INT8_PATH_TEXT = {
    "vnni": "VNNI/AMX: exact int32 dot products",
    "avx2": "AVX2, no VNNI: VPMADDUBSW int16 pair sums (exact for 7-bit weights)",
    "other": "no AVX2/VNNI integer kernels",
}


class SelfCheckFailed(RuntimeError):
    """A runner's output for the model's known-answer probe is outside the tolerance; ``verdict`` says why."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.cause())
        self.verdict = verdict


@dataclass
class Verdict:
    """The outcome of one known-answer check."""

    status: str  # "pass" | "fail" | "unchecked"
    model: str
    backend: str
    precision: str
    mean: float | None = None
    p99: float | None = None
    tolerance: tuple[float, float] | None = None
    reason: str = ""
    cached: bool = False
    seconds: float = 0.0
    key: str = field(default="", repr=False)

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def cause(self) -> str:
        """Returns: one line naming what disagrees and by how much (for errors and fallback warnings)."""
        if self.status == "unchecked":
            return f"{self.model} could not be checked: {self.reason}"
        tol = self.tolerance or tolerance(self.precision)
        return (
            f"{self.reason}: mean |Δab| {self.mean:.1f} (allowed {tol[0]:g}), p99 {self.p99:.1f} "
            f"(allowed {tol[1]:g}) on the known-answer probe"
        )

    def line(self) -> str:
        """Returns: a one-line summary for ``--info``."""
        if self.status == "unchecked":
            return f"{self.model} on {self.backend}: not checked: {self.reason}"
        how = "cached" if self.cached else f"ran the probe in {self.seconds * 1e3:.1f} ms"
        head = f"{self.model} on {self.backend}: {self.status}"
        return f"{head} (mean |Δab| {self.mean:.2f}, p99 {self.p99:.2f}; {self.precision} tolerance {self.tolerance}; {how})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("key", None)
        return d


def int8_path_description(path: str | None = None) -> str:
    """Returns: how this CPU's integer kernels compute INT8 dot products, in words."""
    path = path or int8_dot_path()
    return INT8_PATH_TEXT.get(path, path)


def _failure_reason(precision: str, backend: str) -> str:
    if precision == "int8" and backend == "cpu":
        path = int8_dot_path()
        cpu = "AVX2, no VNNI" if path == "avx2" else ("VNNI" if path == "vnni" else "no VNNI")
        return f"INT8 kernels on this CPU ({cpu}) disagree with fp32"
    if precision == "fp32" and "bf16" in backend:
        return f"bf16 compute on {backend} disagrees with fp32"
    if precision == "fp32":
        return f"{backend} output disagrees with the model's own fp32 reference (model file changed after export?)"
    return f"{precision.upper()} results on {backend} disagree with fp32"


# -- cache ------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    if cache_read_only():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data))
    except OSError:
        pass  # a read-only cache only costs the probe next time


def _sha_memo(path: Path) -> tuple[Path, list[int]]:
    st = path.stat()
    memo = cache_dir(CACHE_KIND) / "sha256" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    return memo, [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def remembered_sha256(path: str | Path) -> str | None:
    """Returns: the file's sha256 if ``model_sha256`` already hashed it unchanged (a stat and a small read), else None.

    Args:
        path: the model file.
    """
    memo, stamp = _sha_memo(Path(path).resolve())
    cached = _read_json(memo)
    if cached and cached.get("stamp") == stamp and isinstance(cached.get("sha256"), str):
        return cached["sha256"]
    return None


def model_sha256(path: str | Path) -> str:
    """Returns: the file's sha256, cached under its (size, mtime, ctime, inode) so unchanged files hash once.

    Args:
        path: the model file.
    """
    path = Path(path).resolve()
    known = remembered_sha256(path)
    if known:
        return known
    memo, stamp = _sha_memo(path)
    digest = file_sha256(path)
    _write_json(memo, {"path": str(path), "stamp": stamp, "sha256": digest})
    return digest


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"colorize_rt": __version__, "probe": str(PROBE_VERSION), "tolerances": json.dumps(TOLERANCES, sort_keys=True)}
    for dist in (
        "onnxruntime",
        "onnxruntime-gpu",
        "tensorrt",
        "tensorrt-cu12",
        "tensorrt-cu13",
        "openvino",
        "opencv-python-headless",
        "opencv-python",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def runner_identity(runner: Runner) -> dict:
    """Returns: what about a runner can change its numbers: provider options, device name."""
    return {
        "runner": runner.name,
        "providers": json.dumps(getattr(runner, "providers", None), default=str, sort_keys=True),
        "device": getattr(runner, "device_name", ""),
    }


def verdict_key(model_sha: str, backend: str, identity: dict) -> str:
    """Returns: the cache key of a verdict: model sha256, backend, provider options, CPU, runtime versions.

    Args:
        model_sha: the model file's sha256.
        backend: the backend name.
        identity: ``runner_identity(runner)``.
    """
    parts = {
        "model": model_sha,
        "backend": backend,
        **identity,
        "cpu": cpu_model(),
        "cpu_flags": sorted(f for f in cpu_flags() if f in KEY_FLAGS),
        "versions": _versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# -- the check ----------------------------------------------------------------------------------------------
def runner_metadata(runner: Runner, model_path: Path) -> dict[str, str]:
    """Returns: the model's metadata, from the runner's open session when it has one (no second load)."""
    session = getattr(runner, "session", None)
    if session is not None:
        return dict(session.get_modelmeta().custom_metadata_map)
    from .shipped_models import model_metadata

    meta = dict(model_metadata(model_path))
    inner = meta.get("metadata")  # a TensorRT sidecar keeps the ONNX's metadata props under "metadata"
    if PROBE_KEY not in meta and isinstance(inner, str):
        try:
            props = json.loads(inner)
        except ValueError:
            props = {}
        if isinstance(props, dict) and props.get(PROBE_KEY):
            meta[PROBE_KEY] = props[PROBE_KEY]
    return meta


def run_probe(runner: Runner, probe_text: str, precision: str) -> tuple[dict[str, float], bool]:
    """Returns: (compare stats, within tolerance) for one activated runner.

    Args:
        runner: an activated runner.
        probe_text: the ``selfcheck_probe`` metadata value.
        precision: the model's precision (picks the tolerance).
    """
    probe = decode_probe(probe_text)
    stats = compare(predict_ab(runner, probe.L, probe.temperature), probe.ab)
    return stats, within(stats, precision)


def check_runner(
    runner: Runner, model_path: str | Path, backend: str, *, use_cache: bool = True, judge_as: str | None = None
) -> Verdict:
    """Run (or recall) the known-answer check of an activated runner.

    Args:
        runner: the activated runner for ``model_path``.
        model_path: the model file (``.onnx`` or TensorRT engine with its JSON sidecar).
        backend: the backend name the runner stands for (``cpu``, ``cuda``, ``ort-trt``, ``tensorrt``).
        use_cache: read and write the verdict cache.
        judge_as: the precision whose tolerance applies (default: the model's own), e.g. ``bf16`` for an fp32
            model that ``auto`` runs in bf16; part of the cache key.

    Returns:
        The ``Verdict`` (``status`` pass, fail or unchecked).
    """
    model_path = Path(model_path)
    meta = runner_metadata(runner, model_path)
    precision = judge_as or meta.get("precision", "unknown")
    base = {"model": model_path.name, "backend": backend, "precision": precision}
    probe_text = meta.get(PROBE_KEY)
    if not probe_text:
        return Verdict("unchecked", reason=NO_PROBE, **base)
    identity = runner_identity(runner) | ({"judged_as": judge_as} if judge_as else {})
    if use_cache and (hit := _cached_verdict(model_path, backend, identity)) is not None:
        return hit
    t0 = time.perf_counter()
    try:
        stats, ok = run_probe(runner, probe_text, precision)
    except ProbeError as exc:
        return Verdict("unchecked", reason=str(exc), **base)
    except Exception as exc:  # noqa: BLE001 - e.g. the probe's shape is outside a TensorRT engine's profiles
        return Verdict("unchecked", reason=f"the probe could not run ({type(exc).__name__}: {str(exc)[:120]})", **base)
    verdict = Verdict(
        "pass" if ok else "fail",
        mean=stats["mean"],
        p99=stats["p99"],
        tolerance=tolerance(precision),
        reason="" if ok else _failure_reason(precision, backend),
        seconds=time.perf_counter() - t0,
        **base,
    )
    if use_cache:  # hashing a large model costs more than the probe: do it off the critical path
        worker = threading.Thread(target=_store_verdict, args=(verdict, model_path, identity), name="selfcheck-cache")
        _PENDING.append(worker)
        worker.start()  # not a daemon: the interpreter waits for it at exit
    return verdict


_PENDING: list[threading.Thread] = []


def _cached_verdict(model_path: Path, backend: str, identity: dict) -> Verdict | None:
    sha = remembered_sha256(model_path)
    if sha is None:
        return None
    key = verdict_key(sha, backend, identity)
    hit = _read_json(cache_dir(CACHE_KIND) / f"{key}.json")
    if hit is None:
        return None
    try:
        tol = tuple(hit["tolerance"]) if hit.get("tolerance") else None
        return Verdict(**{**hit, "tolerance": tol, "cached": True, "key": key})
    except (TypeError, KeyError):
        return None  # written by another version: check again


def _store_verdict(verdict: Verdict, model_path: Path, identity: dict) -> None:
    verdict.key = verdict_key(model_sha256(model_path), verdict.backend, identity)
    _write_json(cache_dir(CACHE_KIND) / f"{verdict.key}.json", verdict.to_dict())


def wait_for_cache() -> None:
    """Block until verdicts being written in the background are on disk (tests, benchmarks)."""
    while _PENDING:
        _PENDING.pop().join()


def cache_enabled() -> bool:
    """Returns: False when ``COLORIZE_RT_SELFCHECK_CACHE=0`` (always run the probe)."""
    return os.environ.get("COLORIZE_RT_SELFCHECK_CACHE", "1") not in ("0", "off", "false", "no")


def cache_read_only() -> bool:
    """Returns: True when ``COLORIZE_RT_SELFCHECK_CACHE=read``: cached verdicts are used, nothing is written
    (``colorize-rt --info`` sets it, so asking for information leaves no files behind)."""
    return os.environ.get("COLORIZE_RT_SELFCHECK_CACHE", "1") == "read"


def make_probe(reference_model: str | Path, temperature: float | None = None) -> str:
    """Returns: the ``selfcheck_probe`` metadata value for models derived from an fp32 reference.

    The reference runs on ONNX Runtime's CPU provider on the shipped probe crop (``core.probe``).

    Args:
        reference_model: the fp32 ONNX model whose output is the known answer.
        temperature: annealed-mean temperature (default: the model's ``default_temperature``, else DEFAULT_T).
    """
    import onnxruntime as ort

    from ...core.constants import DEFAULT_T
    from ...core.probe import decode_L, encode_probe, load_probe_input
    from .runners import OrtRunner

    L_u8 = load_probe_input()
    with OrtRunner(reference_model) as runner:
        meta = dict(runner.session.get_modelmeta().custom_metadata_map)
        if temperature is None:
            try:
                temperature = float(meta.get("default_temperature", DEFAULT_T))
            except ValueError:
                temperature = DEFAULT_T
        ab = predict_ab(runner, decode_L(L_u8), temperature)
    precision = meta.get("precision", "fp32")
    return encode_probe(L_u8, ab, temperature, f"{precision} onnxruntime-cpu {ort.__version__}")


# Where benchmarks/int8_speed.py records a measured INT8/fp32 CPU speed in an INT8 model's metadata. Nothing reads
# it at start any more: ``auto`` measures on the machine itself (auto_choice), and a named model runs as asked.
SPEED_KEY = "cpu_int8_speedup"
