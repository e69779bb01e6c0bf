import pytest
import torch

from colorize_rt.models import create_model
from colorize_rt.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from colorize_rt.training import soup


def _ckpt(path, seed, variant="mobile", width=0.125, ema=True):
    torch.manual_seed(seed)
    net = create_model(variant, width=width)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.num_batches_tracked.fill_(seed)
    sd = net.state_dict()
    other = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}  # the raw weights, when EMA is the soup's
    state = {"model": other if ema else sd, "ema": sd if ema else None, "variant": variant, "variant_args": net.variant_args}
    save_checkpoint(path, state)
    return sd


def test_soup_is_the_weighted_mean_of_the_ema_weights_and_loads(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 1)
    b = _ckpt(tmp_path / "b.pt", 2, ema=False)
    assert soup.main([str(tmp_path / "s.pt"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "3", "1"]) == 0
    state = load_checkpoint(tmp_path / "s.pt")
    for key, value in state["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.75 * a[key] + 0.25 * b[key])
        else:
            assert torch.equal(value, a[key])  # integer buffers: the first input's
    assert [r["weight"] for r in state["soup"]] == [0.75, 0.25]
    net, _ = model_from_checkpoint(tmp_path / "s.pt")
    out = net(torch.zeros(1, 1, 32, 32))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("second", "weights", "message"),
    [
        ({"seed": 2, "width": 0.25}, None, "holds"),
        ({"seed": 2, "variant": "l2"}, None, "holds"),
        ({"seed": 2}, ["1", "0"], "positive"),
        ({"seed": 2}, ["1"], "1 weights for 2"),
    ],
)
def test_soup_rejects_mismatched_checkpoints_and_bad_weights(tmp_path, capsys, second, weights, message):
    _ckpt(tmp_path / "a.pt", 1)
    _ckpt(tmp_path / "b.pt", **second)
    argv = [str(tmp_path / "s.pt"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt")] + (["--weights", *weights] if weights else [])
    assert soup.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("colorize-soup: error:") and message in err and "\n" not in err
    assert not (tmp_path / "s.pt").exists()


def test_soup_refuses_to_overwrite_an_input_or_soup_one_checkpoint(tmp_path, capsys):
    _ckpt(tmp_path / "a.pt", 1)
    _ckpt(tmp_path / "b.pt", 2)
    before = (tmp_path / "a.pt").read_bytes()
    assert soup.main([str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 2
    assert (tmp_path / "a.pt").read_bytes() == before
    assert soup.main([str(tmp_path / "s.pt"), str(tmp_path / "a.pt")]) == 2
    assert "at least two" in capsys.readouterr().err


def test_soup_refuses_an_out_that_is_a_folder_or_under_a_file(tmp_path, capsys):
    _ckpt(tmp_path / "a.pt", 1)
    _ckpt(tmp_path / "b.pt", 2)
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    for out, message in ((tmp_path / "folder", "is a folder"), (tmp_path / "afile" / "s.pt", "cannot write to folder")):
        assert soup.main([str(out), str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("colorize-soup: error:") and message in err and "\n" not in err
    assert list((tmp_path / "folder").iterdir()) == [] and (tmp_path / "afile").read_text() == "x"


def test_soup_of_huge_weights_does_not_overflow(tmp_path, capsys):
    a = _ckpt(tmp_path / "a.pt", 1)
    b = _ckpt(tmp_path / "b.pt", 2)
    assert soup.main([str(tmp_path / "s.pt"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "1e308", "1e308"]) == 0
    state = load_checkpoint(tmp_path / "s.pt")
    key = "model1.0.weight"
    torch.testing.assert_close(state["model"][key], 0.5 * a[key] + 0.5 * b[key])
    assert [r["weight"] for r in state["soup"]] == [0.5, 0.5]
    argv = [str(tmp_path / "t.pt"), str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "1e308", "1e-308"]
    assert soup.main(argv) == 2  # the small one would count as exactly 0
    assert "at least 1e-300 × the largest" in capsys.readouterr().err
    assert not (tmp_path / "t.pt").exists()
