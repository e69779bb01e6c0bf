"""TensorRT engine code paths that run without TensorRT: profile sizing, sidecar matching, the
missing-dependency message; a real build where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
import shutil

import onnx
import pytest
from click.testing import CliRunner

from colorize_rt.export import tensorrt_engine as te
from colorize_rt.export.cli import engine_main
from colorize_rt.export.onnx_export import export_onnx
from colorize_rt.models import create_model

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = shutil.which("nvidia-smi") is not None


@pytest.fixture(scope="module")
def model(tiny_onnx):
    return tiny_onnx


# --- sizing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rtx3060-6gb", "rtx3060-12gb"])
def test_profiles_fit_the_card_with_headroom(name):
    card = te.card_profile(name)
    plan = te.size_plan(card, bytes_per_pixel=512, weight_bytes=130 << 20)  # ~ the paper's net, fp32
    assert [r.name for r in plan.profiles] == ["single", "tiles"]
    for r in plan.profiles:
        assert plan.estimate_bytes(r) <= card.budget_bytes
        assert all(x % 64 == 0 for x in r.max[2:]) and r.min[2:] == (8, 8)  # from the network's stride up
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


def test_activation_estimate_from_the_onnx(model, tmp_path):
    bpp, weights = te.activation_stats(onnx.load(str(model)))
    # decode head at 1/4 resolution: 313 fp32 softmax in + out = 2 * 313 * 4 / 16 bytes per input pixel
    assert bpp >= 2 * 313 * 4 / 16
    assert 0.5e6 < weights < 5e6
    big = export_onnx(create_model("mobile", width=0.5), tmp_path / "wide.onnx")
    bpp_big, w_big = te.activation_stats(onnx.load(str(big)))
    assert w_big > 4 * weights and bpp_big >= bpp


def test_dry_run_prints_profiles(model):
    r = CliRunner().invoke(engine_main, [str(model), "--profile", "rtx3060-6gb", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "profile single" in r.output and "profile tiles" in r.output and "workspace 1 GiB" in r.output
    r = CliRunner().invoke(engine_main, [str(model), "--profile", "custom", "--dry-run"])
    assert r.exit_code == 2 and "--memory-gib" in r.output


# --- the ONNX as TensorRT sees it -------------------------------------------------------------------


def test_trt_onnx_keeps_temperature_an_input(model):
    src = te.onnx_for_trt(model)
    m = onnx.load_from_string(src.data)
    assert "temperature" in [i.name for i in m.graph.input]
    assert "temperature" not in [i.name for i in m.graph.initializer]
    assert src.default_temperature == pytest.approx(0.38) and src.metadata["precision"] == "fp32"
    assert src.temperature_shape == []
    per_sample = te.onnx_for_trt(model, per_sample=True)
    (t,) = [i for i in onnx.load_from_string(per_sample.data).graph.input if i.name == "temperature"]
    assert [d.dim_param or d.dim_value for d in t.type.tensor_type.shape.dim] == ["N", 1]
    assert per_sample.temperature_shape == ["N", 1]


# --- TensorRT itself -------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed; the missing-dependency path cannot be shown")
def test_missing_tensorrt_is_one_line(model, tmp_path):
    r = CliRunner().invoke(engine_main, [str(model), "-o", str(tmp_path / "m.engine")])
    assert r.exit_code == 3
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "install tensorrt on a machine with an NVIDIA GPU" in lines[0] and "gpu-cu12" in lines[0]
    assert not (tmp_path / "m.engine").exists()
    with pytest.raises(te.TensorRTMissing):
        te.require_tensorrt()


@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs TensorRT and an NVIDIA GPU")
def test_build_engine_for_real(model, tmp_path):  # pragma: no cover - GPU machines only
    engine = tmp_path / "m.engine"
    side = te.build_engine(model, engine, te.card_profile("rtx3060-6gb"), log=lambda *_: None)
    assert engine.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
    from colorize_rt.runtime.backends.engine_description import check_compatible, load_sidecar

    assert load_sidecar(engine) == side and side["precision"] == "fp32"
    here = te.require_tensorrt().__version__
    check_compatible(side, engine, tensorrt_version=here, onnx_sha256=te.file_sha256(model), **te.current_device())
