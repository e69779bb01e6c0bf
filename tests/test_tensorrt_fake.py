"""The TensorRT builder and runner driven through their paths by strict fakes of ``tensorrt`` and cuda-python
(``tests/fake_tensorrt.py``, ``tests/fake_cudart.py``): real ONNX models, real files, real ONNX Runtime
behind the fake engine, no GPU."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from colorize_rt.export import tensorrt_engine as te
from colorize_rt.runtime.backends.engine_description import EngineMismatch, sidecar_path
from colorize_rt.runtime.backends.registry import BackendError, open_runner
from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab
from colorize_rt.runtime.backends.tensorrt_runner import CudaError, TrtRunner, pick_profile
from tests import fake_tensorrt
from tests.gpu_support import DEVICE, install_fakes

CARD = te.card_profile("rtx3060-6gb")


@pytest.fixture
def fakes(monkeypatch):
    return install_fakes(monkeypatch)


def _build(model, tmp_path, name="m.engine", **kw):
    engine = tmp_path / name
    logs = []
    side = te.build_engine(model, engine, kw.pop("card", CARD), device=DEVICE, log=logs.append, **kw)
    return engine, side, logs


def _L(n=1, h=64, w=96, seed=0):
    return np.random.default_rng(seed).uniform(0, 100, (n, 1, h, w)).astype(np.float32)


def _t(v=0.38):
    return np.array(v, np.float32)


@pytest.fixture
def ref(tiny_onnx):
    with OrtRunner(tiny_onnx) as r:
        yield r


# -- builder ------------------------------------------------------------------------------------------------
def test_build_writes_engine_sidecar_and_timing_cache(fakes, tiny_onnx, tmp_path):
    engine, side, logs = _build(tiny_onnx, tmp_path)
    assert engine.stat().st_size > 0 and json.loads(sidecar_path(engine).read_text()) == side
    assert side["tensorrt_version"] == fake_tensorrt.__version__ and side["gpu_name"] == DEVICE["gpu_name"]
    assert side["inputs"]["temperature"] == {"dtype": "float32", "shape": [], "default": 0.38}
    assert [p["name"] for p in side["inputs"]["L"]["profiles"]] == ["single", "tiles"]
    assert side["inputs"]["L"]["profiles"][0]["min"] == [1, 1, 8, 8]
    assert (tmp_path / "timing.cache").read_bytes().startswith(fakes[0].timing_cache_key)
    assert not any("warning" in line for line in logs)


def test_rejected_timing_cache_is_replaced_not_fatal(fakes, tiny_onnx, tmp_path):
    """A cache from another GPU/TensorRT: set_timing_cache returns False and get_timing_cache() would be
    None after the build; the builder starts a fresh cache, finishes, and saves the new one."""
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"cache-from-an-A100")
    engine, _, logs = _build(tiny_onnx, tmp_path)
    assert engine.is_file()
    assert any("rejected the timing cache" in line for line in logs)
    assert cache.read_bytes().startswith(fakes[0].timing_cache_key)
    assert [c for c in fakes[0].calls if c[0] == "set_timing_cache"] == [("set_timing_cache", True), ("set_timing_cache", False)]


def test_valid_timing_cache_is_reused(fakes, tiny_onnx, tmp_path):
    _build(tiny_onnx, tmp_path)
    fakes[0].calls.clear()
    _, _, logs = _build(tiny_onnx, tmp_path, "again.engine")
    assert [c for c in fakes[0].calls if c[0] == "set_timing_cache"] == [("set_timing_cache", True)]
    assert not any("warning" in line for line in logs)


def test_no_timing_cache_after_build_is_a_warning(fakes, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(fake_tensorrt.IBuilderConfig, "get_timing_cache", lambda self: None)
    engine, _, logs = _build(tiny_onnx, tmp_path)
    assert engine.is_file() and not (tmp_path / "timing.cache").exists()
    assert any("no timing cache to save" in line for line in logs)


def test_legacy_temperature_initializer_would_freeze_t_but_the_builder_keeps_it_an_input(fakes, tiny_onnx, tmp_path):
    from onnx import numpy_helper

    legacy = onnx.load(str(tiny_onnx))
    legacy.graph.initializer.append(numpy_helper.from_array(np.array(0.38, np.float32), "temperature"))
    network = fake_tensorrt.INetworkDefinition(0)
    fake_tensorrt.OnnxParser(network, fake_tensorrt.Logger()).parse(legacy.SerializeToString())
    assert [t["name"] for t in network.inputs] == ["L"]  # what TensorRT's parser does with it: a constant
    path = tmp_path / "legacy.onnx"
    onnx.save(legacy, str(path))
    source = te.onnx_for_trt(path)
    fake_tensorrt.OnnxParser(network, fake_tensorrt.Logger()).parse(source.data)
    assert [t["name"] for t in network.inputs] == ["L", "temperature"] and source.default_temperature == pytest.approx(0.38)
    _, side, _ = _build(path, tmp_path)
    assert side["inputs"]["temperature"]["shape"] == []


def test_parse_failure_is_one_error_with_the_parser_message(monkeypatch, tiny_onnx, tmp_path):
    install_fakes(monkeypatch, parse_fails=True)
    with pytest.raises(RuntimeError, match="could not parse .*Unsupported ONNX data type"):
        _build(tiny_onnx, tmp_path)
    assert not (tmp_path / "m.engine").exists() and not sidecar_path(tmp_path / "m.engine").exists()


def test_failed_build_writes_nothing(monkeypatch, tiny_onnx, tmp_path):
    install_fakes(monkeypatch, build_fails=True)
    with pytest.raises(RuntimeError, match="failed to build"):
        _build(tiny_onnx, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_profile_is_refused(fakes, tiny_onnx):
    builder = fake_tensorrt.Builder(fake_tensorrt.Logger())
    config = builder.create_builder_config()
    plan = te.size_plan(CARD, 200, 1 << 20)
    plan.profiles.append(te.ShapeRange("broken", (1, 1, 512, 512), (1, 1, 256, 256), (1, 1, 128, 128)))
    source = te.TrtSource(b"", {}, 0.38, [])
    with pytest.raises(RuntimeError, match="rejected optimisation profile broken"):
        te._add_profiles(builder, config, plan, source)


def test_compatibility_flags_reach_config_and_sidecar(fakes, tiny_onnx, tmp_path, monkeypatch):
    configs = []
    real = fake_tensorrt.Builder.create_builder_config
    monkeypatch.setattr(fake_tensorrt.Builder, "create_builder_config", lambda self: configs.append(real(self)) or configs[-1])
    _, side, _ = _build(tiny_onnx, tmp_path, version_compatible=True, hardware_compatible=True)
    (config,) = configs
    assert fake_tensorrt.BuilderFlag.VERSION_COMPATIBLE in config.flags
    assert config.hardware_compatibility_level == fake_tensorrt.HardwareCompatibilityLevel.AMPERE_PLUS
    assert side["version_compatible"] is True and side["hardware_compatibility"] == "ampere_plus"
    assert config.pool_limits[fake_tensorrt.MemoryPoolType.WORKSPACE] == CARD.workspace_gib * te.GiB


def test_per_sample_temperature_plan_has_a_temperature_profile(fakes, tiny_onnx, tmp_path):
    engine, side, _ = _build(tiny_onnx, tmp_path, per_sample_temperature=True, profiles=["tiles"], version_compatible=True)
    assert side["inputs"]["temperature"]["shape"] == ["N", 1]
    plan = json.loads(engine.read_bytes())
    (prof,) = plan["profiles"]
    assert prof["temperature"] == [[1, 1], [4, 1], [prof["L"][2][0], 1]]


def test_engine_cli_builds_with_fakes_and_triton_plan(fakes, tiny_onnx, tmp_path, monkeypatch):
    from colorize_rt.export.cli import engine_main

    monkeypatch.setattr(te, "current_device", lambda: dict(DEVICE))
    out = tmp_path / "cli.engine"
    r = CliRunner().invoke(engine_main, [str(tiny_onnx), "-o", str(out), "--triton", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    assert out.is_file() and f"wrote {out}" in r.output and "wrote Triton model repository" in r.output
    plan = tmp_path / "repo" / "colorize-trt" / "1" / "model.plan"
    assert json.loads(plan.read_bytes())["version_compatible"] is True  # loads on later TensorRT in Triton
    assert 'name: "temperature"' in (plan.parent.parent / "config.pbtxt").read_text()


# -- runner ---------------------------------------------------------------------------------------------
def test_runner_matches_onnxruntime(fakes, tiny_onnx, tmp_path, ref):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L(h=40, w=56)[0, 0]
    with TrtRunner(engine) as r:
        np.testing.assert_array_equal(predict_ab(r, L), predict_ab(ref, L))


def test_temperature_is_fed_and_changes_the_output(fakes, tiny_onnx, tmp_path, ref):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L()
    with TrtRunner(engine) as r:
        default = r.infer({"L": L})["ab"]  # the caller gave no temperature: the engine's default, 0.38
        hot = r.infer({"L": L, "temperature": _t(2.0)})["ab"]
    np.testing.assert_array_equal(default, ref.infer({"L": L, "temperature": _t()})["ab"])
    np.testing.assert_array_equal(hot, ref.infer({"L": L, "temperature": _t(2.0)})["ab"])
    assert np.abs(hot - default).max() > 1e-3


def test_tiles_batch_uses_the_tiles_profile(fakes, tiny_onnx, tmp_path, ref):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L(4, 512, 512)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": _t()})["ab"]
        ctx = fakes[0].last_context
        assert ctx.active_optimization_profile == 1
        assert [e for e in ctx.events if e[0] == "execute"].__len__() == 1  # one call, not four N=1 calls
        np.testing.assert_array_equal(out, ref.infer({"L": L, "temperature": _t()})["ab"])
        r.infer({"L": _L(1, 256, 256), "temperature": _t()})
        assert ctx.active_optimization_profile == 0  # a 256-px image: the single profile (opt 256)


def test_pick_profile_is_the_tightest():
    single = ((1, 1, 8, 8), (1, 1, 256, 256), (1, 1, 2048, 2048))
    tiles = ((1, 1, 8, 8), (4, 1, 512, 512), (16, 1, 512, 512))
    assert pick_profile((4, 1, 512, 512), [single, tiles]) == 1
    assert pick_profile((1, 1, 256, 256), [single, tiles]) == 0
    assert pick_profile((2, 1, 64, 64), [single, tiles]) == 1
    assert pick_profile((1, 1, 1024, 768), [single, tiles]) == 0
    assert pick_profile((20, 1, 512, 512), [single, tiles]) is None
    assert pick_profile((1, 1, 256, 256), [tiles, single]) == 1  # not merely the first that holds it
    assert pick_profile((4, 1, 512, 512), [tiles, single]) == 0


def test_profile_switch_comes_before_input_shapes_and_addresses_before_execute(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    with TrtRunner(engine) as r:
        r.infer({"L": _L(1, 64, 64)})
        r.infer({"L": _L(4, 512, 512)})
        r.infer({"L": _L(1, 128, 64)})
        events = fakes[0].last_context.events
    names = {"L", "temperature", "ab", "logits"}  # every output is bound; only the wanted ones are copied back
    run = []
    for e in events:
        run.append(e)
        if e[0] == "execute":
            switch = [i for i, x in enumerate(run) if x[0] == "switch"]
            shapes = [i for i, x in enumerate(run) if x[0] == "shape"]
            assert not switch or switch[-1] < shapes[0]  # a switch forgets shapes: it must come first
            assert {x[1] for x in run if x[0] == "address"} == names
            assert e[1] != 0  # a non-default stream
            run = []
    assert [e[1] for e in events if e[0] == "switch"] == [1, 0]


def test_batches_larger_than_any_profile_are_split(fakes, tiny_onnx, tmp_path, ref, monkeypatch):
    monkeypatch.setattr(te, "plan_for_onnx", lambda p, card, tile: te.size_plan(card, 200, 1 << 20, tile=tile, max_batch=3))
    engine, side, _ = _build(tiny_onnx, tmp_path)
    assert side["inputs"]["L"]["profiles"][1]["max"][0] == 3
    L = _L(7, 512, 512)
    temps = np.linspace(0.2, 1.0, 7).astype(np.float32)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": _t(0.5)})["ab"]
        executes = [e for e in fakes[0].last_context.events if e[0] == "execute"]
        assert len(executes) == 3  # 3 + 3 + 1
        np.testing.assert_array_equal(out, ref.infer({"L": L, "temperature": _t(0.5)})["ab"])
        assert temps.shape == (7,)


def test_images_below_an_old_engines_minimum_are_padded(fakes, tiny_onnx, tmp_path, ref, monkeypatch):
    """Engines built before profiles started at 8 px have a 64-px minimum: smaller inputs are edge-padded
    up to it and the output cropped back (they used to be refused)."""

    def old_plan(p, card, tile):
        plan = te.size_plan(card, 200, 1 << 20, tile=tile)
        plan.profiles = [te.ShapeRange(r.name, (1, 1, 64, 64), r.opt, r.max) for r in plan.profiles]
        return plan

    monkeypatch.setattr(te, "plan_for_onnx", old_plan)
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L(1, 32, 48)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": _t()})["ab"]
    padded = np.pad(L, ((0, 0), (0, 0), (0, 32), (0, 16)), mode="edge")
    assert out.shape == (1, 2, 32, 48)
    np.testing.assert_array_equal(out, ref.infer({"L": padded, "temperature": _t()})["ab"][..., :32, :48])


def test_small_images_run_unpadded_on_new_engines(fakes, tiny_onnx, tmp_path, ref):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L(1, 16, 24)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": _t()})["ab"]
        assert ("shape", "L", (1, 1, 16, 24)) in fakes[0].last_context.events
    np.testing.assert_array_equal(out, ref.infer({"L": L, "temperature": _t()})["ab"])


def test_shape_outside_every_profile_says_how_to_rebuild(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path, profiles=["tiles"])
    with TrtRunner(engine) as r, pytest.raises(EngineMismatch, match="outside the engine's profiles.*colorize-engine"):
        r.infer({"L": _L(1, 1024, 1024)})


def test_rejected_input_shape_is_an_error_not_a_wrong_result(fakes, tiny_onnx, tmp_path, monkeypatch):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    monkeypatch.setattr(fake_tensorrt.IExecutionContext, "set_input_shape", lambda self, name, shape: False)
    with TrtRunner(engine) as r, pytest.raises(EngineMismatch, match="rejected shape .* for input 'L'"):
        r.infer({"L": _L()})


def test_refused_profile_switch_is_an_error(fakes, tiny_onnx, tmp_path, monkeypatch):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    monkeypatch.setattr(fake_tensorrt.IExecutionContext, "set_optimization_profile_async", lambda self, k, s: False)
    with TrtRunner(engine) as r, pytest.raises(RuntimeError, match="refused to switch to optimisation profile 1"):
        r.infer({"L": _L(4, 512, 512)})


def test_failed_execute_is_an_error(monkeypatch, tiny_onnx, tmp_path):
    install_fakes(monkeypatch, execute_fails=True)
    engine, _, _ = _build(tiny_onnx, tmp_path)
    with TrtRunner(engine) as r, pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        r.infer({"L": _L()})


def test_context_none_says_rebuild_with_a_smaller_profile(monkeypatch, tiny_onnx, tmp_path):
    _, cuda = install_fakes(monkeypatch, context_none=True)
    engine, _, _ = _build(tiny_onnx, tmp_path)
    with pytest.raises(EngineMismatch, match="execution context.*smaller profile"):
        TrtRunner(engine).activate()
    assert cuda.streams == {} and cuda.allocations == {}
    with pytest.raises(BackendError, match="smaller profile") as e:
        open_runner(engine, "tensorrt")
    assert "\n" not in str(e.value)


def test_garbage_engine_file_is_refused_with_rebuild_hint(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    engine.write_bytes(b"\x00not a plan")
    with pytest.raises(EngineMismatch, match="could not be deserialized.*rebuild it: colorize-engine"):
        TrtRunner(engine).activate()


def test_mismatched_sidecar_is_refused_unless_unchecked(fakes, tiny_onnx, tmp_path):
    engine, side, _ = _build(tiny_onnx, tmp_path)
    sidecar_path(engine).write_text(json.dumps({**side, "gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}))
    with pytest.raises(EngineMismatch, match="compute capability 8.0, this GPU is 8.6.*colorize-engine") as e:
        TrtRunner(engine).activate()
    assert "\n" not in str(e.value)
    with TrtRunner(engine, check_sidecar=False) as r:
        assert r.infer({"L": _L()})["ab"].shape == (1, 2, 64, 96)


def test_version_compatible_engine_allows_host_code(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path, version_compatible=True)
    fake_tensorrt.reset(version="10.16.1.11")  # a later runtime of the same major
    fake_tensorrt.STATE.cudart = fakes[0].cudart
    with TrtRunner(engine) as r:
        assert r._runtime.engine_host_code_allowed is True
        assert r.infer({"L": _L()})["ab"].shape == (1, 2, 64, 96)


def test_per_sample_temperature_engine(fakes, tiny_onnx, tmp_path, ref):
    engine, _, _ = _build(tiny_onnx, tmp_path, per_sample_temperature=True, profiles=["tiles"])
    L = _L(3, 64, 64)
    temps = np.array([0.38, 1.0, 0.2], np.float32)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": temps})["ab"]
        same = r.infer({"L": L, "temperature": _t(1.0)})["ab"]  # one value for the whole batch
    for i, t in enumerate(temps):
        np.testing.assert_allclose(out[i : i + 1], ref.infer({"L": L[i : i + 1], "temperature": _t(t)})["ab"], atol=1e-5)
    np.testing.assert_allclose(same, ref.infer({"L": L, "temperature": _t(1.0)})["ab"], atol=1e-5)


def test_buffers_are_reused_and_freed(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    cuda = fakes[1]
    r = TrtRunner(engine).activate()
    r.infer({"L": _L(1, 64, 64)})
    mallocs = sum(c[0] == "cudaMalloc" for c in cuda.calls)
    r.infer({"L": _L(1, 64, 64, seed=1)})
    r.infer({"L": _L(1, 32, 32)})
    assert sum(c[0] == "cudaMalloc" for c in cuda.calls) == mallocs == 4  # L, temperature, ab, logits
    r.infer({"L": _L(1, 128, 128)})  # larger: L, ab and logits grow
    assert sum(c[0] == "cudaMalloc" for c in cuda.calls) == 7 and len(cuda.allocations) == 4
    assert list(cuda.streams.values()) == [1]  # cudaStreamNonBlocking
    r.deactivate()
    assert cuda.allocations == {} and cuda.streams == {}


def test_pure_cuda_stand_in_kernel(monkeypatch, tiny_onnx, tmp_path):
    """What benchmarks/gpu_check.sh runs on a GPU with real cuda-python: the runner's buffers, copies and
    stream sync around a kernel made of device-to-device copies on the runner's stream."""
    install_fakes(monkeypatch, kernel="copy")
    engine, _, _ = _build(tiny_onnx, tmp_path)
    L = _L(3, 64, 48)
    with TrtRunner(engine) as r:
        out = r.infer({"L": L, "temperature": _t(0.7)})["ab"]
    np.testing.assert_array_equal(out, fake_tensorrt.copy_kernel_reference(L, 0.7))


def test_no_cuda_driver_is_one_backend_error_line(monkeypatch, tiny_onnx, tmp_path):
    _, cuda = install_fakes(monkeypatch)
    engine, _, _ = _build(tiny_onnx, tmp_path)
    cuda.no_driver = True
    with pytest.raises(BackendError, match="cudaErrorInsufficientDriver.*driver version is insufficient") as e:
        open_runner(engine, "tensorrt")
    assert "\n" not in str(e.value)


def test_out_of_device_memory_is_a_cuda_error(fakes, tiny_onnx, tmp_path):
    engine, _, _ = _build(tiny_onnx, tmp_path)
    with TrtRunner(engine) as r:
        fakes[1].fail_malloc = True
        with pytest.raises(CudaError, match="cudaMalloc.*cudaErrorMemoryAllocation"):
            r.infer({"L": _L()})
