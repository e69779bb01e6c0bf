"""FP16 conversion (onnxconverter-common): fp32 I/O and decode head, ORT CPU runs it, AuC within 0.2."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.core.files import list_images
from colorize_rt.eval.gate import accuracy_gate
from colorize_rt.export.cli import export_main
from colorize_rt.export.fp16 import convert_fp16
from colorize_rt.export.graph import get_metadata
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import save_checkpoint

skdata = pytest.importorskip("skimage.data")
IMAGES = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "colorwheel"]


def _session(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("val")
    for name in IMAGES:
        rgb = getattr(skdata, name)()[..., :3]
        s = 160 / min(rgb.shape[:2])
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(d / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return d


@pytest.fixture(scope="module")
def fp32_model(tiny_onnx):
    return tiny_onnx


@pytest.fixture(scope="module")
def fp16_model(fp32_model, tmp_path_factory):
    return convert_fp16(fp32_model, tmp_path_factory.mktemp("fp16") / "model.fp16.onnx")


def test_types_io_fp32_network_fp16_decode_fp32(fp16_model):
    m = onnx.load(str(fp16_model))
    onnx.checker.check_model(m)
    F, H = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert {i.name: i.type.tensor_type.elem_type for i in m.graph.input} == {"L": F, "temperature": F}
    assert m.graph.output[0].type.tensor_type.elem_type == F
    inits = {i.name: i for i in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    net_w = [inits[n.input[1]].data_type for n in convs if n.name.startswith("net/")]
    assert net_w and all(t == H for t in net_w)
    dec_conv = [n for n in convs if n.name.startswith("decode/")]
    assert len(dec_conv) == 1 and inits[dec_conv[0].input[1]].data_type == F  # bin table stays fp32
    assert "temperature" not in inits  # a real fp32 input, never an initializer
    assert get_metadata(m)["default_temperature"] == "0.38"
    m = onnx.shape_inference.infer_shapes(m)
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.value_info, *m.graph.output]}
    for n in m.graph.node:
        if n.name.startswith("decode/") and n.op_type in ("Softmax", "Resize", "Div"):
            assert all(types.get(o) == F for o in n.output), n.name
    assert get_metadata(m)["precision"] == "fp16"


def test_ort_cpu_runs_it_close_to_fp32(fp32_model, fp16_model):
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (2, 1, 64, 96)).astype(np.float32)
    for t in (0.38, 1.0):
        feed = {"L": L, "temperature": np.array(t, np.float32)}
        a = _session(fp16_model).run(["ab"], feed)[0]
        b = _session(fp32_model).run(["ab"], feed)[0]
        assert a.dtype == np.float32 and a.shape == (2, 2, 64, 96)
        assert np.abs(a - b).max() < 0.5  # ab units (-110..110)
    assert np.abs(_session(fp16_model).run(["ab"], {"L": L, "temperature": np.array(0.38, np.float32)})[0]).max() > 0.5


def test_auc_within_02_of_fp32(fp32_model, fp16_model, image_dir):
    gate = accuracy_gate(fp32_model, fp16_model, list_images(image_dir), 0.2, names=("fp32", "fp16"))
    assert gate.n_images >= 4
    assert gate.passed, gate.message()
    assert abs(gate.drop) < 0.2


def test_rejects_non_fp32_input(fp16_model, tmp_path):
    with pytest.raises(ValueError, match="already fp16"):
        convert_fp16(fp16_model, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_fp16_with_check(tmp_path, image_dir):
    torch.manual_seed(0)
    net = create_model("mobile", width=0.125)
    ck = save_checkpoint(
        tmp_path / "c.pt",
        {
            "model": net.state_dict(),
            "variant": "mobile",
            "variant_args": {"width": 0.125, "head": "classification"},
            "config": {},
            "step": 0,
        },
    )
    out = tmp_path / "m16.onnx"
    res = CliRunner().invoke(export_main, [str(ck), "-o", str(out), "--precision", "fp16", "--val", str(image_dir)])
    assert res.exit_code == 0, res.output
    assert "fp32" in res.output and "fp16" in res.output and "accuracy gate ok" in res.output
    assert get_metadata(onnx.load(str(out)))["precision"] == "fp16"
