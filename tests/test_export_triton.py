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


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    d = tmp_path_factory.mktemp("t")
    torch.manual_seed(0)
    net = create_model("mobile", width=0.125)
    ck = save_checkpoint(
        d / "c.pt",
        {
            "model": net.state_dict(),
            "variant": "mobile",
            "variant_args": {"width": 0.125, "head": "classification"},
            "config": {},
            "step": 0,
        },
    )
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
    (inp, t), (out,) = cfg.input, cfg.output
    assert (inp.name, list(inp.dims), inp.data_type) == ("L", [1, -1, -1], pb.TYPE_FP32)
    assert (t.name, list(t.dims), t.data_type) == ("temperature", [1], pb.TYPE_FP32)
    assert (out.name, list(out.dims), out.data_type) == ("ab", [2, -1, -1], pb.TYPE_FP32)
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
