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
from colorize_rt.training.checkpoint import save_checkpoint


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
    pb = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient not installed")
    from google.protobuf import text_format

    cfg = text_format.Parse((repo / "colorize" / "config.pbtxt").read_text(), pb.ModelConfig())
    assert cfg.name == "colorize" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 16
    assert cfg.HasField("dynamic_batching") and list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    (inp,), (out,) = cfg.input, cfg.output
    assert (inp.name, list(inp.dims), inp.data_type) == ("L", [1, -1, -1], pb.TYPE_FP32)
    assert (out.name, list(out.dims), out.data_type) == ("ab", [2, -1, -1], pb.TYPE_FP32)
    assert isinstance(triton.validate_config((repo / "colorize" / "config.pbtxt").read_text()), pb.ModelConfig)


def test_repository_model_runs_as_triton_would(repo):
    """Triton's ORT backend feeds only the configured input L, batched along N."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    s = ort.InferenceSession(str(repo / "colorize" / "1" / "model.onnx"), so, providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["L"]
    L = np.random.default_rng(0).uniform(0, 100, (5, 1, 64, 64)).astype(np.float32)
    assert s.run(["ab"], {"L": L})[0].shape == (5, 2, 64, 64)


def test_plan_config_and_invalid_configs():
    text = triton.triton_config("colorize-trt", "tensorrt_plan", max_batch_size=12, instance_kind="KIND_GPU")
    assert triton.validate_config(text)
    assert "preferred_batch_size: [ 4, 8 ]" in text
    with pytest.raises(ValueError):
        triton.validate_config(text.replace("dims: [ 2, -1, -1 ]", "dims: [ 2, -1, -1 "))
    with pytest.raises(ValueError):
        triton.validate_config(text.replace('name: "ab"', 'name: "rgb"'))
    with pytest.raises(ValueError):
        triton.triton_config("x", "pytorch_libtorch")
    with pytest.raises(ValueError, match="needs a .onnx"):
        triton.write_repository("model.pt", "/tmp/never-written")


def test_structural_fallback_without_tritonclient():
    text = triton.triton_config("c", "onnxruntime_onnx")
    assert triton._structural_check(text)["platform"] == "onnxruntime_onnx"
    with pytest.raises(ValueError):
        triton._structural_check(text.replace("dynamic_batching", "batching"))
