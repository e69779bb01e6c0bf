"""Triton model repository: config.pbtxt parsed with Triton's ModelConfig protobuf, layout, model runs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.export import triton
from colorize_rt.export.cli import export_main
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import save_checkpoint


def _tiny_checkpoint(path, head: str = "classification"):
    """A seeded width-0.125 ``mobile`` checkpoint with ``head`` (classification or regression) at ``path``."""
    torch.manual_seed(0)
    net = create_model("mobile", width=0.125, head=head)
    state = {"model": net.state_dict(), "variant": "mobile", "config": {}, "step": 0}
    return save_checkpoint(path, {**state, "variant_args": {"width": 0.125, "head": head}})


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    d = tmp_path_factory.mktemp("t")
    ck = _tiny_checkpoint(d / "c.pt")
    r = CliRunner().invoke(
        export_main,
        [str(ck), "-o", str(d / "m.onnx"), "--triton", str(d / "repo"), "--triton-max-batch", "16"],
    )
    assert r.exit_code == 0, r.output
    return d / "repo"


def test_config_parses_with_tritons_protobuf(repo):
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] not installed")
    from google.protobuf import text_format

    cfg = text_format.Parse((repo / "colorize" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert cfg.name == "colorize" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    assert cfg.HasField("dynamic_batching") and list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    (inp, t), (out, logits) = cfg.input, cfg.output
    assert (inp.name, list(inp.dims), inp.data_type) == ("L", [1, -1, -1], pb.TYPE_FP32)
    assert (t.name, list(t.dims), t.data_type) == ("temperature", [1], pb.TYPE_FP32)
    assert (out.name, list(out.dims), out.data_type) == ("ab", [2, -1, -1], pb.TYPE_FP32)
    assert (logits.name, list(logits.dims), logits.data_type) == ("logits", [313, -1, -1], pb.TYPE_FP32)
    assert isinstance(triton.validate_config((repo / "colorize" / "config.pbtxt").read_text()), pb.ModelConfig)


def test_repository_model_runs_as_triton_would(repo, tmp_path):
    """Triton's dynamic batcher stacks requests along N: L [N, 1, H, W] and temperature [N, 1]; each
    request keeps its own temperature and gets what the original model gives at that temperature."""
    s = ort.InferenceSession(str(repo / "colorize" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("L", ["N", 1, "H", "W"]), ("temperature", ["N", 1])]
    L = np.random.default_rng(0).uniform(0, 100, (3, 1, 64, 64)).astype(np.float32)
    temps = np.array([[0.38], [1.0], [0.1]], np.float32)
    batched = s.run(["ab"], {"L": L, "temperature": temps})[0]
    original = ort.InferenceSession(str(repo.parent / "m.onnx"), providers=["CPUExecutionProvider"])
    for i, t in enumerate(temps[:, 0]):
        one = original.run(["ab"], {"L": L[i : i + 1], "temperature": np.array(t, np.float32)})[0]
        np.testing.assert_allclose(batched[i : i + 1], one, atol=1e-4)
    assert np.abs(batched[1] - batched[0]).max() > 1e-3


@pytest.mark.timeout(300)
def test_config_outputs_are_the_models_and_logits_serve_a_palette(repo, tmp_path):
    """Triton refuses a config that lists an output the model lacks: the config lists exactly the repository
    model's outputs, batched with a dimension per sample (``logits`` [N, 313, H/4, W/4]); a client that asks for the
    logits gets what the palette needs (their annealed mean is the graph's own ``ab``). An L2 model (no logits)
    gets a config with ``ab`` only."""
    from colorize_rt.core.decode import annealed_mean
    from colorize_rt.runtime.guidance.palette import palette_ab
    from colorize_rt.runtime.guidance.spec import palette_from_colors

    text = (repo / "colorize" / "config.pbtxt").read_text()
    s = ort.InferenceSession(str(repo / "colorize" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    listed = [n for n in ("ab", "logits") if f'name: "{n}"' in text]
    assert [o.name for o in s.get_outputs()] == listed == ["ab", "logits"]
    L = np.random.default_rng(1).uniform(0, 100, (2, 1, 64, 96)).astype(np.float32)
    ab, logits = s.run(["ab", "logits"], {"L": L, "temperature": np.full((2, 1), 0.38, np.float32)})
    assert logits.shape == (2, 313, 16, 24)
    import cv2

    mean = annealed_mean(logits[:1], 0.38)[0]
    np.testing.assert_allclose(
        np.stack([cv2.resize(c, (96, 64), interpolation=cv2.INTER_LINEAR) for c in mean]), ab[0], atol=1e-3
    )
    blue = palette_ab(logits[:1], palette_from_colors("#2050e0"), 0.38, (64, 96))
    assert blue[1].mean() < ab[0][1].mean() - 5  # b* toward blue

    ck = _tiny_checkpoint(tmp_path / "l2.pt", head="regression")
    r = CliRunner().invoke(export_main, [str(ck), "-o", str(tmp_path / "l2.onnx"), "--triton", str(tmp_path / "repo")])
    assert r.exit_code == 0, r.output
    l2 = (tmp_path / "repo" / "colorize" / "config.pbtxt").read_text()
    assert 'name: "ab"' in l2 and "logits" not in l2 and triton.validate_config(l2)


def test_plan_config_and_invalid_configs():
    text = triton.triton_config("colorize-trt", "tensorrt_plan", max_batch_size=12, instance_kind="KIND_GPU")
    assert triton.validate_config(text)
    assert "preferred_batch_size: [ 4, 8 ]" in text
    with pytest.raises(ValueError):
        triton.validate_config(text.replace("dims: [ 2, -1, -1 ]", "dims: [ 2, -1, -1 "))
    with pytest.raises(ValueError):
        triton.validate_config(text.replace('name: "ab"', 'name: "rgb"'))
    with pytest.raises(ValueError):
        triton.validate_config(text.replace('name: "temperature"', 'name: "T"'))
    with_logits = triton.triton_config("colorize-trt", "tensorrt_plan", logits=True)
    assert triton.validate_config(with_logits) and 'name: "logits"' in with_logits
    if triton._model_config_pb2() is not None:
        with pytest.raises(ValueError, match="logits must have dims"):
            triton.validate_config(with_logits.replace("dims: [ 313, -1, -1 ]", "dims: [ 2, -1, -1 ]"))
        with pytest.raises(ValueError, match="outputs ab"):
            triton.validate_config(with_logits.replace('name: "logits"', 'name: "probs"'))
    with pytest.raises(ValueError):
        triton.triton_config("x", "pytorch_libtorch")
    with pytest.raises(ValueError, match="needs a .onnx"):
        triton.write_repository("model.pt", "/tmp/never-written")


def test_structural_fallback_without_tritonclient():
    text = triton.triton_config("c", "onnxruntime_onnx")
    assert triton._structural_check(text)["platform"] == "onnxruntime_onnx"
    with pytest.raises(ValueError):
        triton._structural_check(text.replace("dynamic_batching", "batching"))
    with pytest.raises(ValueError):
        triton._structural_check(text.replace('name: "temperature"', 'name: "T"'))


def test_tritonclient_without_grpcio_falls_back(monkeypatch, tmp_path):
    """``tritonclient.grpc`` raises RuntimeError (not ImportError) when grpcio is missing: validation falls
    back to the structural check instead of crashing, and the repository is still written."""
    import builtins

    real_import = builtins.__import__

    def no_grpc(name, *args, **kwargs):
        if name.startswith("tritonclient.grpc"):
            raise RuntimeError("The installation does not include grpc support. Specify 'grpc' or 'all' while installing")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_grpc)
    text = triton.triton_config("c", "tensorrt_plan")
    assert triton.validate_config(text) == {"name": "c", "platform": "tensorrt_plan", "max_batch_size": "8"}
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan bytes")
    d = triton.write_repository(plan, tmp_path / "repo", name="c")
    assert (d / "1" / "model.plan").read_bytes() == b"plan bytes" and (d / "config.pbtxt").read_text() == text
