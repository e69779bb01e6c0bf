"""``colorize-bench --quick`` end to end: real models, real runners, real photos (or sample images), and
the JSON / Markdown / PNG it writes."""

import json
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from colorize_rt.bench.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


@pytest.mark.slow
def test_quick_run_writes_consistent_reports(tmp_path, cache):
    out = tmp_path / "res"
    main(
        [
            "--quick",
            "--out",
            str(out),
            "--cache",
            str(cache),
            "--sizes",
            "64",
            "--batches",
            "1,2",
            "--e2e-images",
            "4",
            "--tiled-sizes",
            "256,384",
        ]
    )
    rec = json.loads((out / "bench.json").read_text())
    assert rec["mode"] == "quick" and rec["machine"]["cores"] >= 1 and rec["machine"]["versions"]["onnxruntime"]
    assert rec["peaks"]["fp32_gflops"] > 0 and rec["peaks"]["int8_gops"] > 0
    assert [(c["size"], c["batch"]) for c in rec["cases"]] == [(64, 1), (64, 2)]
    for i, case in enumerate(rec["cases"]):
        res = case["results"]
        for name in ("ort-fp32", "ort-int8", "torch-fp32", "torch-bf16", "opencv-dnn"):
            if i > 0 and name.startswith("torch") and res[name]["status"] == "skipped":
                assert res[name]["reason"].startswith("time budget")  # a very busy machine; allowed
                continue
            assert res[name]["status"] == "ok", (name, res[name])
            r, t = res[name], np.asarray(res[name]["times_ms"])
            assert r["runs"] == len(t) >= 3
            assert r["median_ms"] == pytest.approx(np.median(t)) and r["p99_ms"] == pytest.approx(np.percentile(t, 99))
            assert r["throughput_img_s"] == pytest.approx(case["batch"] / (t.mean() / 1e3))
            assert r["gflops"] > 0 and 0 < r["fraction_of_peak"] and r["peak_rss_mb"] > 0
        assert res["ort-int8"]["speedup_vs_ort_fp32"]["pairs"] == res["ort-int8"]["runs"]
    first = rec["cases"][0]
    assert first["results"]["torch-fp32"]["agreement_vs_ort_fp32"]["max_abs_ab"] < 0.05  # same weights
    assert first["ratios"]["int8_vs_torch_fp32"]["median"] > 0
    for case in rec["cases"]:
        res = case["results"]
        for name in ("ort-cuda-fp32", "trt-int8"):  # no GPU here: recorded, not crashed
            assert res[name]["status"] in ("unavailable", "ok")
    assert rec["headline"]["model"] == "mobile" and rec["headline"]["int8_vs_opencv_dnn"]["median"] > 0
    e2e = rec["end_to_end"]
    assert e2e["status"] == "ok", e2e
    assert e2e["images"] == e2e["written"] == 4 and e2e["infer_calls"] == 4
    assert 0 < e2e["model_busy_fraction"] <= 1 and e2e["images_per_s"] > 0
    tiled = rec["tiled"]["sizes"]
    assert [r["status"] for r in tiled] == ["ok", "ok"] and all(r["peak_rss_mb"] > 0 for r in tiled)
    assert rec["tiled"]["linearity"].startswith("seconds per Mpixel")

    md = (out / "bench.md").read_text()
    assert "## Headline (mobile, 64², batch 1)" in md and "| mobile | 64 | 2 | ort-int8 |" in md
    assert "## End to end" in md and "## Tiled mode" in md and "| 384² |" in md
    with Image.open(out / "bench.png") as im:
        assert im.format == "PNG" and im.width > 500


@pytest.mark.slow
def test_quick_mode_runs_under_two_minutes(tmp_path, cache):
    t0 = time.monotonic()
    main(["--quick", "--out", str(tmp_path), "--cache", str(cache)])
    assert time.monotonic() - t0 < 120
    rec = json.loads((tmp_path / "bench.json").read_text())
    assert rec["elapsed_s"] < 120 and {c["size"] for c in rec["cases"]} == {64, 128}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "resnet"], "unknown model(s) resnet"),
        (["--sizes", "100"], "multiples of 8"),
        (["--sizes", "1000000"], "--sizes: 1 to 16 integers from 1 to 4096"),  # was a 3 TB allocation
        (["--batches", "100000"], "--batches: 1 to 16 integers from 1 to 256"),
        (["--tiled-sizes", "99999"], "--tiled-sizes: 1 to 16 integers from 1 to 16384"),
        (["--backends", "tpu"], "unknown backend(s) tpu"),
    ],
)
def test_bad_arguments_fail_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_make_bench_wrapper_is_the_same_entry_point():
    from benchmarks import bench

    assert bench.main is main
