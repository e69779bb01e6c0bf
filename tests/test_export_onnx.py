"""ONNX export: interface, metadata, exact simplification (BN folding), parity with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from colorize_rt.core.bins import bins_hash
from colorize_rt.core.color import rgb_to_lab
from colorize_rt.core.hashing import file_sha256
from colorize_rt.export.cli import export_main
from colorize_rt.export.fold import ChannelShift, fold_bn_after_relu
from colorize_rt.export.graph import decode_nodes, fp32_nodes, get_metadata
from colorize_rt.export.onnx_export import config_hash, export_onnx
from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import save_checkpoint
from colorize_rt.models.decode import ColorizationGraph

skdata = pytest.importorskip("skimage.data")


def _randomise_bn(net: torch.nn.Module, seed: int = 0, negative: bool = False) -> torch.nn.Module:
    """Non-trivial BN statistics (a fresh BN is the identity, which would make folding untestable)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            if negative:
                m.weight.data[0] = -0.7
    return net.eval()


def _real_L(shape_hw: tuple[int, int], which: str) -> np.ndarray:
    import cv2

    rgb = getattr(skdata, which)()[..., :3]
    rgb = cv2.resize(rgb, (shape_hw[1], shape_hw[0]), interpolation=cv2.INTER_AREA)
    return rgb_to_lab(rgb.astype(np.float32) / 255.0)[..., 0]


def _session(path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return _randomise_bn(create_model("mobile", width=0.125))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, net):
    p = tmp_path_factory.mktemp("ckpt") / "smoke.pt"
    save_checkpoint(
        p,
        {
            "model": net.state_dict(),
            "variant": "mobile",
            "variant_args": {"width": 0.125, "head": "classification"},
            "config": {"lr": 3e-4, "batch": 8},
            "step": 12,
        },
    )
    return p


@pytest.fixture(scope="module")
def exported(tmp_path_factory, checkpoint):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    res = CliRunner().invoke(export_main, [str(checkpoint), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_interface_opset_and_checks(exported):
    m = onnx.load(str(exported))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(m, full_check=True)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    ins = {i.name: i for i in m.graph.input}
    assert set(ins) == {"L", "temperature"}
    L = ins["L"].type.tensor_type
    assert L.elem_type == onnx.TensorProto.FLOAT and [d.dim_param or d.dim_value for d in L.shape.dim] == [
        "N",
        1,
        "H",
        "W",
    ]
    assert len(ins["temperature"].type.tensor_type.shape.dim) == 0  # scalar
    out, logits = m.graph.output  # ab, and the optional 313-bin logits the palette reads
    assert logits.name == "logits" and [d.dim_param or d.dim_value for d in logits.type.tensor_type.shape.dim][:2] == ["N", 313]
    assert out.name == "ab" and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == [
        "N",
        2,
        "H",
        "W",
    ]
    # temperature is a real input (not an initializer): ORT lists it, TensorRT and OpenCV can set it
    s = _session(exported)
    assert [i.name for i in s.get_inputs()] == ["L", "temperature"]
    assert s.get_overridable_initializers() == []


def test_metadata(exported, checkpoint):
    meta = get_metadata(onnx.load(str(exported)))
    assert meta["variant"] == "mobile" and meta["width"] == "0.125"
    assert meta["bins_hash"] == bins_hash()
    assert float(meta["default_temperature"]) == pytest.approx(0.38)
    assert (meta["l_cent"], meta["l_norm"], meta["ab_norm"]) == ("50.0", "100.0", "110.0")
    assert meta["training_config_hash"] == config_hash({"lr": 3e-4, "batch": 8})
    assert meta["checkpoint_sha256"] == file_sha256(checkpoint)
    assert meta["precision"] == "fp32" and meta["training_step"] == "12"
    assert "7/7 BN-after-ReLU" in meta["graph_simplification"]
    assert json.loads(meta["variant_args"])["width"] == 0.125


def test_graph_is_simplified_and_named(exported):
    m = onnx.load(str(exported))
    ops = [n.op_type for n in m.graph.node]
    assert "BatchNormalization" not in ops and "Identity" not in ops and "Constant" not in ops
    dec = {n.op_type for n in m.graph.node if n.name in decode_nodes(m)}
    assert {"Div", "Softmax", "Conv", "Resize"} <= dec
    assert all(n.name.startswith(("pre/", "net/", "decode/")) for n in m.graph.node)
    assert set(fp32_nodes(m)) >= set(decode_nodes(m))


@pytest.mark.parametrize(
    "n,h,w,t,img",
    [
        (1, 64, 64, 0.38, "astronaut"),
        (2, 96, 136, 0.38, "chelsea"),
        (3, 48, 200, 1.0, "coffee"),
        (1, 128, 72, 0.1, "rocket"),
        (2, 80, 80, 2.5, "immunohistochemistry"),
    ],
)
def test_parity_with_pytorch(exported, net, n, h, w, t, img):
    L = np.stack([_real_L((h, w), img) + k * 0.5 for k in range(n)])[:, None].astype(np.float32)
    ab_onnx = _session(exported).run(["ab"], {"L": L, "temperature": np.array(t, np.float32)})[0]
    with torch.no_grad():
        ab_torch = ColorizationGraph(net)(torch.from_numpy(L), torch.tensor(t)).numpy()
    assert ab_onnx.shape == (n, 2, h, w)
    assert np.abs(ab_onnx - ab_torch).max() < 1e-3
    assert np.abs(ab_torch).max() > 0.5  # the model colours something: the comparison is not vacuous


def _t(value: float = 0.38) -> np.ndarray:
    return np.array(value, np.float32)


def test_temperature_is_a_real_graph_input(exported):
    """Listed by ONNX Runtime as an input, not an initializer; documented; required (no hidden default)."""
    m = onnx.load(str(exported))
    assert "temperature" not in [i.name for i in m.graph.initializer]
    (t_in,) = [i for i in m.graph.input if i.name == "temperature"]
    assert list(t_in.type.tensor_type.shape.dim) == [] and "0.38" in t_in.doc_string
    assert get_metadata(m)["default_temperature"] == "0.38"
    s = _session(exported)
    assert [(i.name, i.shape) for i in s.get_inputs()] == [("L", ["N", 1, "H", "W"]), ("temperature", [])]
    assert s.get_overridable_initializers() == []
    L = _real_L((64, 96), "chelsea")[None, None].astype(np.float32)
    with pytest.raises(Exception, match="temperature"):
        s.run(["ab"], {"L": L})
    cold, hot = (s.run(["ab"], {"L": L, "temperature": _t(v)})[0] for v in (0.38, 3.0))
    assert np.abs(hot - cold).max() > 1e-3


def test_opencv_dnn_sets_temperature(exported):
    """OpenCV dnn (what OpenCV's colorization sample users run) can set T by name and sees the output change."""
    import cv2

    L = _real_L((64, 96), "chelsea")[None, None].astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(exported))
    outs = {}
    for t in (0.38, 3.0):
        net.setInput(L, "L")
        net.setInput(_t(t).reshape(1), name="temperature")
        outs[t] = np.asarray(net.forward()).copy()
    ref = _session(exported).run(["ab"], {"L": L, "temperature": _t(0.38)})[0]
    assert np.abs(outs[0.38] - ref).max() < 1e-3
    assert np.abs(outs[3.0] - outs[0.38]).max() > 1e-3


def _legacy_copy(exported, path, value=0.38):
    """A model as older exports wrote it: temperature listed as an input and given an initializer default."""
    from onnx import numpy_helper

    m = onnx.load(str(exported))
    m.graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), "temperature"))
    onnx.save(m, str(path))
    return path


def test_rewrite_legacy_temperature_initializer(exported, tmp_path):
    import cv2

    from colorize_rt.export.graph import rewrite_temperature_input

    legacy = _legacy_copy(exported, tmp_path / "legacy.onnx")
    with pytest.raises(cv2.error, match="temperature"):  # OpenCV dnn cannot set an initializer
        net = cv2.dnn.readNetFromONNX(str(legacy))
        net.setInput(np.full((1, 1, 64, 64), 50.0, np.float32), "L")
        net.setInput(_t().reshape(1), "temperature")
    L = _real_L((64, 96), "coffee")[None, None].astype(np.float32)
    before = _session(legacy).run(["ab"], {"L": L})[0]  # the initializer let callers omit T
    meta_before = get_metadata(onnx.load(str(legacy)))
    out = tmp_path / "fixed.onnx"
    result = rewrite_temperature_input(legacy, out)
    assert result["max_abs_diff"] == 0.0 and result["default_temperature"] == pytest.approx(0.38)
    fixed = onnx.load(str(out))
    assert "temperature" not in [i.name for i in fixed.graph.initializer]
    assert get_metadata(fixed) == meta_before  # every metadata entry kept as it was
    np.testing.assert_array_equal(_session(out).run(["ab"], {"L": L, "temperature": _t()})[0], before)
    assert legacy.read_bytes() != out.read_bytes()  # input untouched when dst is given
    assert _session(legacy).get_overridable_initializers()[0].name == "temperature"


def test_rewrite_that_changes_the_output_writes_nothing(exported, tmp_path):
    from colorize_rt.export.graph import rewrite_temperature_input

    legacy = _legacy_copy(exported, tmp_path / "legacy.onnx")
    before = legacy.read_bytes()
    with pytest.raises(RuntimeError, match="output changed.*nothing written"):
        rewrite_temperature_input(legacy, atol=-1.0)  # any difference, even none, counts as a change
    assert legacy.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["legacy.onnx"]


def test_rewrite_keeps_a_non_default_initializer_value(exported, tmp_path):
    from colorize_rt.export.graph import rewrite_temperature_input

    legacy = _legacy_copy(exported, tmp_path / "warm.onnx", value=0.7)
    L = _real_L((64, 64), "astronaut")[None, None].astype(np.float32)
    before = _session(legacy).run(["ab"], {"L": L})[0]
    assert rewrite_temperature_input(legacy)["default_temperature"] == pytest.approx(0.7)  # in place
    assert get_metadata(onnx.load(str(legacy)))["default_temperature"] == str(float(np.float32(0.7)))
    np.testing.assert_array_equal(_session(legacy).run(["ab"], {"L": L, "temperature": _t(float(np.float32(0.7)))})[0], before)


@pytest.mark.parametrize("name", ["default", "default-int8", "default-l2"])
def test_shipped_models_take_temperature_as_input(name):
    from colorize_rt import __file__ as package_init

    path = Path(package_init).parent / "assets" / f"{name}.onnx"  # the files in the package, not $COLORIZE_RT_ASSETS
    m = onnx.load(str(path))
    assert "temperature" not in [i.name for i in m.graph.initializer]
    assert get_metadata(m)["default_temperature"] == "0.38"
    s = _session(path)
    assert "temperature" in [i.name for i in s.get_inputs()]
    L = _real_L((64, 64), "coffee")[None, None].astype(np.float32)
    cold, hot = (s.run(["ab"], {"L": L, "temperature": _t(v)})[0] for v in (0.38, 2.0))
    if get_metadata(m)["head"] == "classification":
        assert np.abs(hot - cold).max() > 1e-2
    else:
        np.testing.assert_array_equal(hot, cold)  # L2 models ignore T


def test_bn_fold_is_exact_and_reports():
    torch.manual_seed(1)
    net = _randomise_bn(create_model("mobile", width=0.125), seed=3)
    folded, report = fold_bn_after_relu(net)
    assert len(report.folded) == 7 and not report.kept
    assert sum(isinstance(m, ChannelShift) for m in folded.modules()) == 7
    x = torch.rand(2, 1, 64, 96) - 0.5
    with torch.no_grad():
        assert (net(x) - folded(x)).abs().max() < 1e-4
    # the original is untouched
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 7


def test_bn_with_negative_scale_is_left_alone():
    torch.manual_seed(2)
    net = _randomise_bn(create_model("mobile", width=0.125), negative=True)
    folded, report = fold_bn_after_relu(net)
    assert len(report.kept) == 7 and not report.folded
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert (net(x) - folded(x)).abs().max() < 1e-5


def test_l2_model_same_interface(tmp_path):
    torch.manual_seed(0)
    net = _randomise_bn(create_model("l2", width=0.125))
    p = export_onnx(net, tmp_path / "l2.onnx")
    L = _real_L((64, 80), "astronaut")[None, None].astype(np.float32)
    s = _session(p)
    a = s.run(["ab"], {"L": L, "temperature": np.array(0.38, np.float32)})[0]
    b = s.run(["ab"], {"L": L, "temperature": np.array(2.0, np.float32)})[0]
    with torch.no_grad():
        ref = ColorizationGraph(net)(torch.from_numpy(L)).numpy()
    assert a.shape == (1, 2, 64, 80)
    np.testing.assert_allclose(a, b)  # temperature ignored
    assert np.abs(a - ref).max() < 1e-3
    assert get_metadata(onnx.load(str(p)))["head"] == "regression"


def test_lite0_export_parity(tmp_path):
    torch.manual_seed(0)
    net = create_model("mobile-lite0", pretrained=False, decoder_width=0.25).eval()
    p = export_onnx(net, tmp_path / "lite.onnx")
    L = _real_L((64, 96), "coffee")[None, None].astype(np.float32)
    out = _session(p).run(["ab"], {"L": L, "temperature": _t()})[0]
    with torch.no_grad():
        ref = ColorizationGraph(net)(torch.from_numpy(L)).numpy()
    assert np.abs(out - ref).max() < 1e-3
    meta = get_metadata(onnx.load(str(p)))
    assert meta["width"] == "0.25" and "no BN after ReLU" in meta["graph_simplification"]


def test_rejects_old_opset(tmp_path, net):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(net, tmp_path / "x.onnx", opset=13)
    assert not (tmp_path / "x.onnx").exists()


def test_cli_missing_checkpoint_is_one_line(tmp_path):
    res = CliRunner().invoke(export_main, [str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert not (tmp_path / "m.onnx").exists()


def test_fp16_weight_storage_halves_the_file_keeps_fp32_compute(exported, tmp_path):
    from colorize_rt.export.compress import store_weights_fp16

    small = store_weights_fp16(exported, tmp_path / "small.onnx")
    assert small.stat().st_size < 0.6 * exported.stat().st_size
    meta = get_metadata(onnx.load(str(small)))
    assert meta["weights_storage"] == "fp16" and meta["precision"] == "fp32"
    L = np.stack([_real_L((96, 128), "coffee")])[:, None]
    a = _session(exported).run(["ab"], {"L": L, "temperature": _t()})[0]
    b = _session(small).run(["ab"], {"L": L, "temperature": _t()})[0]
    assert np.abs(a - b).max() < 0.05  # weight rounding only; inputs, outputs and compute stay fp32
    with pytest.raises(ValueError, match="no fp32 weights"):
        store_weights_fp16(small, tmp_path / "again.onnx")


def test_runtime_feeds_a_temperature_declared_as_one_element(exported, tmp_path):
    """Scalar is what colorize-export writes; a model declaring temperature [1] runs through the same runner."""
    from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab

    m = onnx.load(str(exported))
    (t_in,) = [i for i in m.graph.input if i.name == "temperature"]
    t_in.type.tensor_type.shape.dim.add().dim_value = 1
    onnx.save(m, str(tmp_path / "t1.onnx"))
    L = _real_L((40, 56), "coffee")
    with OrtRunner(tmp_path / "t1.onnx") as one, OrtRunner(exported) as scalar:
        for t in (0.38, 2.0):
            np.testing.assert_array_equal(predict_ab(one, L, t), predict_ab(scalar, L, t))
