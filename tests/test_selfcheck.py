"""The known-answer self-check (core.probe, runtime.selfcheck) and both x86 INT8 kernel paths (core.int8sim).

Real models throughout: the shipped ``default.onnx`` (a copy with one conv weight x3 stands for a tampered
file), the tiny exported test model, and real ONNX Runtime sessions. The AVX2 (VPMADDUBSW) path is exercised
through ``core.int8sim`` on every CPU; benchmarks/int8_paths.py checks that model against ONNX Runtime under
``qemu-x86_64 -cpu Haswell``.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from colorize_rt.core import probe as core_probe
from colorize_rt.core.int8sim import PATHS, SAFE_WEIGHT_MAX, matmul_u8s8, pair_sums_saturated, saturation_free, worst_pair_sum
from colorize_rt.runtime.backends import selfcheck
from colorize_rt.runtime.backends.runners import OrtRunner
from colorize_rt.runtime.backends.shipped_models import assets_dir
from tests.runtime_support import photo, run_cli, write_rgb

SHIPPED = assets_dir() / "default.onnx"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORIZE_RT_SELFCHECK_CACHE", raising=False)
    yield
    selfcheck.wait_for_cache()


def _env(tmp_path: Path, **extra) -> dict:
    import os

    return {**os.environ, "COLORIZE_RT_CACHE": str(tmp_path / "cache"), **extra}


def _tamper(src: Path, dst: Path, conv_index: int = 0, factor: float = 3.0) -> Path:
    """Copy ``src`` with one network conv weight multiplied by ``factor``; metadata (and probe) kept."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    casts = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Cast"}  # fp16-stored weights
    conv = [n for n in m.graph.node if n.op_type == "Conv" and n.name.startswith("net/")][conv_index]
    name = casts.get(conv.input[1], conv.input[1])
    init = next(i for i in m.graph.initializer if i.name == name)
    init.CopyFrom(
        numpy_helper.from_array(numpy_helper.to_array(init) * np.asarray(factor, numpy_helper.to_array(init).dtype), name)
    )
    onnx.save(m, str(dst))
    return dst


def _strip_probe(src: Path, dst: Path) -> Path:
    import onnx

    from colorize_rt.export.graph import get_metadata, set_metadata

    m = onnx.load(str(src))
    meta = get_metadata(m)
    meta.pop(core_probe.PROBE_KEY, None)
    set_metadata(m, meta)
    onnx.save(m, str(dst))
    return dst


# -- core.probe -------------------------------------------------------------------------------------------
def test_probe_round_trip_is_compact_and_checksummed():
    L_u8 = core_probe.load_probe_input()
    assert L_u8.shape == (core_probe.PROBE_SIDE, core_probe.PROBE_SIDE) and L_u8.std() > 20  # a real, textured crop
    ab = np.random.default_rng(0).normal(0, 30, (2, *L_u8.shape)).astype(np.float32)
    text = core_probe.encode_probe(L_u8, ab, 0.38, "test")
    assert len(text) < 16_000
    p = core_probe.decode_probe(text)
    np.testing.assert_allclose(p.ab, ab, atol=0.05)
    np.testing.assert_allclose(p.L, L_u8 * (100 / 255), atol=1e-4)
    d = json.loads(text)
    edited = np.frombuffer(base64.b64decode(d["ab_f16"]), np.float16).copy()
    edited[7] += 10
    d["ab_f16"] = base64.b64encode(edited.tobytes()).decode()
    with pytest.raises(core_probe.ProbeError, match="checksum"):
        core_probe.decode_probe(json.dumps(d))
    with pytest.raises(core_probe.ProbeError):
        core_probe.decode_probe("{not json")


def test_compare_and_tolerances():
    ref = np.zeros((2, 8, 8), np.float32)
    out = ref.copy()
    out[0, 0, 0] = 50.0
    stats = core_probe.compare(out, ref)
    assert stats["max"] == 50.0 and 0 < stats["mean"] < 1 and stats["p99"] < 50
    assert core_probe.within({"mean": 0.1, "p99": 0.5}, "fp32")
    assert not core_probe.within({"mean": 5.0, "p99": 0.5}, "fp32")
    assert core_probe.tolerance("int8") > core_probe.tolerance("fp16") > core_probe.tolerance("fp32")
    assert core_probe.tolerance("mystery") == core_probe.tolerance("int8")
    nan = out.copy()
    nan[1, 1, 1] = np.nan
    assert core_probe.compare(nan, ref)["max"] == np.inf


# -- core.int8sim: both kernel paths, on any CPU ------------------------------------------------------------
def test_vpmaddubsw_model_saturates_pairs_and_vnni_is_exact():
    a = np.array([[255, 255, 1, 2]], np.uint8)
    b = np.array([[127], [127], [-128], [3]], np.int8)
    pairs = pair_sums_saturated(a, b)
    assert pairs[0, :, 0].tolist() == [32767, -128 + 6]  # 64770 clipped to int16
    assert matmul_u8s8(a, b, 0, "vnni")[0, 0] == 255 * 127 * 2 - 128 + 6
    assert matmul_u8s8(a, b, 0, "avx2")[0, 0] == 32767 - 122
    with pytest.raises(ValueError):
        matmul_u8s8(a, b, 0, "sse")


def test_seven_bit_weights_make_both_paths_identical():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 96), dtype=np.uint8)
    full = rng.integers(-127, 128, (96, 16), dtype=np.int8)
    seven = np.clip(full, -SAFE_WEIGHT_MAX, SAFE_WEIGHT_MAX).astype(np.int8)
    assert not np.array_equal(matmul_u8s8(a, full, 128, "avx2"), matmul_u8s8(a, full, 128, "vnni"))
    np.testing.assert_array_equal(matmul_u8s8(a, seven, 128, "avx2"), matmul_u8s8(a, seven, 128, "vnni"))
    assert saturation_free(seven) and not saturation_free(full)
    assert worst_pair_sum(seven) == 255 * 2 * SAFE_WEIGHT_MAX <= 32767


def test_onnxruntime_integer_gemm_matches_the_model_on_this_cpu():
    """ORT's MatMulInteger equals one of the two modelled paths bit for bit, and with 7-bit weights both."""
    from onnx import TensorProto, helper, numpy_helper

    from colorize_rt.runtime.backends.session import ort_session

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    for w, need_both in (
        (rng.integers(-127, 128, (64, 24), dtype=np.int8), False),
        (rng.integers(-64, 65, (64, 24), dtype=np.int8), True),
    ):
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])],
            "g",
            [helper.make_tensor_value_info("A", TensorProto.UINT8, [48, 64])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, [48, 24])],
            initializer=[numpy_helper.from_array(w, "B"), numpy_helper.from_array(np.array(128, np.uint8), "a_zp")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 9
        (y,) = ort_session(model.SerializeToString()).run(["Y"], {"A": a})
        matches = [np.array_equal(y, matmul_u8s8(a, w, 128, p)) for p in PATHS]
        assert all(matches) if need_both else any(matches)


# -- runtime.selfcheck on real models -----------------------------------------------------------------------
def test_shipped_model_passes_and_second_check_is_cached(monkeypatch):
    with OrtRunner(SHIPPED) as runner:
        first = selfcheck.check_runner(runner, SHIPPED, "cpu")
        selfcheck.wait_for_cache()
        monkeypatch.setattr(selfcheck, "run_probe", lambda *a, **k: pytest.fail("probe ran despite a cached verdict"))
        second = selfcheck.check_runner(runner, SHIPPED, "cpu")
    assert first.status == "pass" and not first.cached and first.mean < 0.05
    assert second.status == "pass" and second.cached and second.mean == first.mean


def test_changed_file_is_checked_again(tmp_path):
    model = shutil.copy(SHIPPED, tmp_path / "m.onnx")
    with OrtRunner(model) as runner:
        assert selfcheck.check_runner(runner, model, "cpu").status == "pass"
    selfcheck.wait_for_cache()
    _tamper(Path(model), Path(model))  # same path, new content
    with OrtRunner(model) as runner:
        v = selfcheck.check_runner(runner, model, "cpu")
    assert v.status == "fail" and not v.cached and v.mean > core_probe.tolerance("fp32")[0]


def test_tensorrt_sidecar_probe_is_found(tmp_path):
    """An engine's sidecar keeps the ONNX metadata (probe included) under "metadata"."""
    import onnx

    from colorize_rt.export.graph import get_metadata

    meta = get_metadata(onnx.load(str(SHIPPED), load_external_data=False))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not an engine")
    (tmp_path / "m.engine.json").write_text(json.dumps({"precision": "fp32", "metadata": meta}))

    class NoSession:
        name = "tensorrt"

    got = selfcheck.runner_metadata(NoSession(), engine)
    assert got[core_probe.PROBE_KEY] == meta[core_probe.PROBE_KEY] and got["precision"] == "fp32"


# -- the CLI: refuse, fall back, note ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def gray_jpg(tmp_path_factory) -> Path:
    import cv2

    rgb = cv2.resize(photo("coffee"), (96, 64), interpolation=cv2.INTER_AREA)
    return write_rgb(tmp_path_factory.mktemp("img") / "coffee.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_tampered_model_file_is_refused_with_one_line(tmp_path, gray_jpg):
    bad = _tamper(SHIPPED, tmp_path / "tampered.onnx")
    out = tmp_path / "out.png"
    r = run_cli(str(gray_jpg), "--model", str(bad), "--backend", "cpu", "-o", str(out), env=_env(tmp_path))
    assert r.returncode != 0 and not out.exists()
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "tampered.onnx" in lines[0] and "mean |Δab|" in lines[0], r.stderr
    r = run_cli(str(gray_jpg), "--model", str(bad), "-o", str(out), env=_env(tmp_path))  # auto: no other candidate
    assert r.returncode != 0 and not out.exists() and len(r.stderr.strip().splitlines()) == 1


def test_shipped_model_by_name_falls_back_with_one_warning(tmp_path, gray_jpg):
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(SHIPPED, assets / "default.onnx")
    _tamper(SHIPPED, assets / "default-int8.onnx")  # stands for INT8 kernels that disagree with fp32
    out = tmp_path / "out.png"
    env = _env(tmp_path, COLORIZE_RT_ASSETS=str(assets))
    r = run_cli(str(gray_jpg), "--model", "default-int8", "--backend", "cpu", "-o", str(out), "-q", env=env)
    assert r.returncode == 0 and out.is_file(), r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "warning" in lines[0] and "using default.onnx" in lines[0] and "mean |Δab|" in lines[0]


def test_user_model_without_probe_runs_with_one_note(tmp_path, gray_jpg):
    plain = _strip_probe(SHIPPED, tmp_path / "mine.onnx")
    out = tmp_path / "out.png"
    r = run_cli(str(gray_jpg), "--model", str(plain), "-o", str(out), "-q", env=_env(tmp_path))
    assert r.returncode == 0 and out.is_file(), r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "could not be checked" in lines[0]


def test_info_shows_the_verdict_and_the_cpu_integer_path(tmp_path):
    r = run_cli("--info", "--json", "--backend", "cpu", env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["cpu_int8_path"]["path"] in ("vnni", "avx2", "other")
    assert [v["status"] for v in d["selfcheck"]] == ["pass"] and d["selfcheck"][0]["model"] == "default.onnx"
    r = run_cli("--info", "--backend", "cpu", env=_env(tmp_path))
    assert "CPU INT8 path:" in r.stdout and "self-check: default.onnx on cpu: pass" in r.stdout


def test_export_embeds_a_probe(tiny_onnx):
    import onnx

    from colorize_rt.export.graph import get_metadata

    meta = get_metadata(onnx.load(str(tiny_onnx), load_external_data=False))
    text = meta[core_probe.PROBE_KEY]
    assert len(text) < 16_000 and core_probe.decode_probe(text).ab.shape == (2, core_probe.PROBE_SIDE, core_probe.PROBE_SIDE)
    with OrtRunner(tiny_onnx) as runner:
        assert selfcheck.check_runner(runner, tiny_onnx, "cpu", use_cache=False).status == "pass"


def test_a_named_int8_model_runs_as_asked(tmp_path):
    """--model default-int8 runs INT8 under auto too (no 'INT8 is not faster' substitution): auto picks the backend."""
    r = run_cli("--info", "--json", "--model", "default-int8", env=_env(tmp_path))
    d = json.loads(r.stdout)
    assert r.returncode == 0 and Path(d["model"]["path"]).name == "default-int8.onnx", r.stderr
    if not (d["backends_available"]["cuda"] or d["backends_available"]["ort-trt"]):
        assert {row["model"] for row in d["auto_choice"]["rows"]} == {"default-int8.onnx"}
    assert "not faster" not in r.stderr
