"""benchmarks.model_latency: interleaved CPU latency of colorize-rt models, ratios to the first."""

import json
import shutil

import pytest

from benchmarks.model_latency import main, measure


def test_measure_runs_every_model_and_ratios_to_the_first(tiny_onnx, tmp_path):
    twin = shutil.copy(tiny_onnx, tmp_path / "twin.onnx")
    result = measure([str(tiny_onnx), str(twin)], size=64, reps=3)
    first, second = result["models"]
    assert (result["size"], result["reps"]) == (64, 3)
    assert first["ratio_to_first"] == 1.0 and first["median_ms"] > 0
    assert second["model"] == str(twin) and 0 < second["ratio_to_first"] < 100


def test_cli_writes_json_and_refuses_bad_arguments(tiny_onnx, tmp_path, capsys):
    out = tmp_path / "lat.json"
    assert main([str(tiny_onnx), "--size", "32", "--reps", "2", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["models"][0]["model"] == str(tiny_onnx)
    assert "of the first" in capsys.readouterr().out
    for bad in (["--size", "30"], ["--reps", "0"], ["--size", "100000"]):
        with pytest.raises(SystemExit) as exc:
            main([str(tiny_onnx), *bad])
        assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.onnx")])
    assert "no such model" in capsys.readouterr().err
