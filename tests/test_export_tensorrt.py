"""TensorRT engine code paths that run without TensorRT: profile sizing, sidecar matching, the
missing-dependency message; a real build where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import json
import shutil

import onnx
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.export import tensorrt_engine as te
from colorize_rt.export.cli import engine_main
from colorize_rt.export.onnx_export import export_onnx
from colorize_rt.models import create_model

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = shutil.which("nvidia-smi") is not None


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    return export_onnx(create_model("mobile", width=0.125), tmp_path_factory.mktemp("m") / "model.onnx")


# --- sizing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rtx3060-6gb", "rtx3060-12gb"])
def test_profiles_fit_the_card_with_headroom(name):
    card = te.card_profile(name)
    plan = te.size_plan(card, bytes_per_pixel=512, weight_bytes=130 << 20)  # ~ the paper's net, fp32
    assert [r.name for r in plan.profiles] == ["single", "tiles"]
    for r in plan.profiles:
        assert plan.estimate_bytes(r) <= card.budget_bytes
        assert all(x % 64 == 0 for x in (*r.min[2:], *r.max[2:]))
        assert r.min <= r.opt <= r.max and r.min[0] == 1
    total = plan.estimate_bytes(plan.profiles[0]) + plan.workspace_bytes + card.reserved_gib * te.GiB
    assert total <= card.memory_gib * te.GiB * (1 - card.headroom) + 1


def test_bigger_card_allows_bigger_shapes():
    small = te.size_plan(te.card_profile("rtx3060-6gb"), 512, 130 << 20)
    big = te.size_plan(te.card_profile("rtx3060-12gb"), 512, 130 << 20)
    assert big.profiles[0].max[2] > small.profiles[0].max[2]
    assert big.profiles[1].max[0] > small.profiles[1].max[0]
    fp16 = te.size_plan(te.card_profile("rtx3060-6gb"), 256, 65 << 20)
    assert fp16.profiles[0].max[2] > small.profiles[0].max[2]


def test_sizing_caps_and_errors():
    plan = te.size_plan(te.card_profile("custom", memory_gib=80), 100, 0)
    assert plan.profiles[0].max[2] == te.MAX_SIDE_CAP and plan.profiles[1].max[0] == te.MAX_BATCH_CAP
    with pytest.raises(ValueError, match="does not fit"):
        te.size_plan(te.card_profile("custom", memory_gib=1.0), 512, 600 << 20)
    with pytest.raises(ValueError, match="--memory-gib"):
        te.card_profile("custom")
    with pytest.raises(ValueError, match="unknown profile"):
        te.card_profile("rtx9999")
    assert te.card_profile("rtx3060-6gb", workspace_gib=0.5).workspace_gib == 0.5


def test_activation_estimate_from_the_onnx(model):
    bpp, weights = te.activation_stats(onnx.load(str(model)))
    # decode head at 1/4 resolution: 313 fp32 softmax in + out = 2 * 313 * 4 / 16 bytes per input pixel
    assert bpp >= 2 * 313 * 4 / 16
    assert 0.5e6 < weights < 5e6
    big = export_onnx(create_model("mobile", width=0.5), model.with_name("wide.onnx"))
    bpp_big, w_big = te.activation_stats(onnx.load(str(big)))
    assert w_big > 4 * weights and bpp_big >= bpp


def test_dry_run_prints_profiles(model):
    r = CliRunner().invoke(engine_main, [str(model), "--profile", "rtx3060-6gb", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "profile single" in r.output and "profile tiles" in r.output and "workspace 1 GiB" in r.output
    r = CliRunner().invoke(engine_main, [str(model), "--profile", "custom", "--dry-run"])
    assert r.exit_code == 2 and "--memory-gib" in r.output


# --- sidecar ---------------------------------------------------------------------------------------

DEV = {"gpu_name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6"}


def _sidecar(**kw):
    plan = te.size_plan(te.card_profile("rtx3060-12gb"), 200, 10 << 20)
    args = {"tensorrt_version": "10.7.0", "plan": plan, "precision": "fp16", "onnx_sha256": "ab" * 32, **DEV}
    args.update(kw)
    return te.make_sidecar(**args)


def test_sidecar_contents():
    s = _sidecar()
    for key in ("tensorrt_version", "gpu_name", "compute_capability", "profile", "precision", "onnx_sha256"):
        assert s[key]
    assert s["profile"] == "rtx3060-12gb"
    assert [p["name"] for p in s["inputs"]["L"]["profiles"]] == ["single", "tiles"]
    assert s["inputs"]["temperature"]["shape"] == [] and s["inputs"]["temperature"]["default"] == 0.38
    json.dumps(s)


def test_sidecar_matching_rules():
    ok = dict(tensorrt_version="10.7.0", **DEV)
    assert te.check_sidecar(_sidecar(), **ok) == []
    assert "TensorRT 10.7.0" in te.check_sidecar(_sidecar(), **{**ok, "tensorrt_version": "10.8.0"})[0]
    assert te.check_sidecar(_sidecar(), **{**ok, "compute_capability": "8.9", "gpu_name": "RTX 4090"})
    assert te.check_sidecar(_sidecar(), **{**ok, "gpu_name": "NVIDIA RTX A4000"})  # same sm, other GPU
    assert te.check_sidecar(_sidecar(), **ok, onnx_sha256="cd" * 32) == ["the ONNX model changed since the engine was built"]
    vc = _sidecar(version_compatible=True)
    assert te.check_sidecar(vc, **{**ok, "tensorrt_version": "11.0.1"}) == []
    assert te.check_sidecar(vc, **{**ok, "tensorrt_version": "10.6.0"})
    hc = _sidecar(hardware_compatibility="ampere_plus")
    assert te.check_sidecar(hc, **{**ok, "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}) == []
    assert te.check_sidecar(hc, **{**ok, "gpu_name": "Tesla T4", "compute_capability": "7.5"})


def test_verify_refuses_mismatch_with_rebuild_message(tmp_path, model):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not really a plan")
    with pytest.raises(te.EngineMismatch, match="no sidecar.*colorize-engine"):
        te.verify_engine(engine, tensorrt_version="10.7.0", device=DEV)
    side = _sidecar(onnx_path=str(model), onnx_sha256=te.file_sha256(model))
    te.sidecar_path(engine).write_text(json.dumps(side))
    assert te.verify_engine(engine, model, tensorrt_version="10.7.0", device=DEV)["precision"] == "fp16"
    with pytest.raises(te.EngineMismatch) as e:
        te.verify_engine(engine, model, tensorrt_version="10.8.0", device=DEV)
    msg = str(e.value)
    assert "rebuild it: colorize-engine" in msg and str(model) in msg and "--profile rtx3060-12gb" in msg


def test_trt_onnx_keeps_temperature_an_input(model):
    data, meta, t = te.onnx_bytes_for_trt(model)
    m = onnx.load_from_string(data)
    assert "temperature" in [i.name for i in m.graph.input]
    assert "temperature" not in [i.name for i in m.graph.initializer]
    assert t == pytest.approx(0.38) and meta["precision"] == "fp32"
    baked = onnx.load_from_string(te.onnx_bytes_for_trt(model, bake_temperature=True)[0])
    assert "temperature" in [i.name for i in baked.graph.initializer]


# --- TensorRT itself -------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed; the missing-dependency path cannot be shown")
def test_missing_tensorrt_is_one_line(model, tmp_path):
    r = CliRunner().invoke(engine_main, [str(model), "-o", str(tmp_path / "m.engine")])
    assert r.exit_code == 3
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "install tensorrt on a machine with an NVIDIA GPU" in lines[0]
    assert not (tmp_path / "m.engine").exists()
    with pytest.raises(te.TensorRTMissing):
        te.require_tensorrt()


@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs TensorRT and an NVIDIA GPU")
def test_build_engine_for_real(model, tmp_path):  # pragma: no cover - GPU machines only
    engine = tmp_path / "m.engine"
    side = te.build_engine(model, engine, te.card_profile("rtx3060-6gb"), log=lambda *_: None)
    assert engine.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    assert te.verify_engine(engine, model)["precision"] == side["precision"] == "fp32"
