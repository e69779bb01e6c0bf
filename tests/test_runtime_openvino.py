"""The OpenVINO backend and ``auto`` chosen by measurement (runtime/backends/openvino_runner.py, auto_choice.py).

Real models (the shipped ``default``, ``default-int8`` and ``default-l2``, a tampered copy), real OpenVINO,
ONNX Runtime and OpenCV dnn sessions. Seams: ``registry.openvino_precisions`` forces the bf16 path,
``auto_choice.library_versions`` fakes a version change, ``core.lazy``'s import stands for a missing OpenVINO.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colorize_rt.core.lazy import MissingDependency, available
from colorize_rt.runtime.backends import auto_choice, registry, selfcheck
from colorize_rt.runtime.backends.registry import BackendError, SelfCheckError, open_runner
from colorize_rt.runtime.backends.runners import OrtRunner, predict_ab, predict_ab_batch
from colorize_rt.runtime.backends.shipped_models import SHIPPED, assets_dir
from tests.auto_support import FakeMachine
from tests.runtime_support import photo, run_cli, write_rgb

pytestmark = [
    pytest.mark.skipif(not available("openvino"), reason="openvino is not installed (pip install openvino)"),
    pytest.mark.timeout(300),  # pytest-timeout (dev extra): a hung OpenVINO compile fails the test
]

MODELS = {name: assets_dir() / fname for name, fname in SHIPPED.items()}
SIZES = [(8, 8), (13, 29), (40, 40), (24, 1000), (96, 64)]  # tiny, odd, the probe, a panorama strip, a photo


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORIZE_RT_SELFCHECK_CACHE", raising=False)
    monkeypatch.delenv("COLORIZE_RT_AUTO_CACHE", raising=False)
    monkeypatch.delenv("COLORIZE_RT_ORT_CACHE", raising=False)
    monkeypatch.setenv("COLORIZE_RT_AUTO_MEASURE", "sync")  # measured here, before the job
    # a quiet machine, whatever else runs on this one: a loaded measurement would be measured again
    monkeypatch.setattr(auto_choice, "new_load_meter", FakeMachine(others_share=0.0).meter)
    yield
    selfcheck.wait_for_cache()


def _L(h: int, w: int) -> np.ndarray:
    """Real gray levels: the test photo's L*-like values resized to (h, w)."""
    import cv2

    gray = cv2.cvtColor(photo(), cv2.COLOR_RGB2GRAY)
    return (cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * (100 / 255)).astype(np.float32)


@pytest.fixture(scope="module")
def references():
    """ONNX Runtime's ab for every shipped model and size (the reference the other runtimes are held to)."""
    out = {}
    for name, path in MODELS.items():
        if path.is_file():
            with OrtRunner(path) as ort_runner:
                out[name] = {hw: predict_ab(ort_runner, _L(*hw)) for hw in SIZES}
    return out


# -- the runner ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["openvino", "opencv"])
@pytest.mark.parametrize("name", list(SHIPPED))
def test_every_shipped_model_matches_onnx_runtime_at_every_size(name, backend, references):
    """fp32 to the self-check's fp32 tolerance on every pixel of odd, tiny and panorama sizes; INT8 (a different
    integer kernel) within the INT8 tolerance on average."""
    if not MODELS[name].is_file():
        pytest.skip(f"{name} is not shipped in this checkout")
    runner = registry.make_runner(backend, MODELS[name])
    int8 = "int8" in name
    if backend == "opencv":
        from colorize_rt.runtime.backends.opencv_runner import opencv_survives

        ok, reason = opencv_survives(MODELS[name])  # OpenCV 5.1 dies of SIGFPE on default-l2: refused, not run
        if not ok:
            with pytest.raises(RuntimeError, match="OpenCV dnn"):
                runner.activate()
            pytest.skip(reason)
    with runner:
        for hw in SIZES:
            ab = predict_ab(runner, _L(*hw))
            ref = references[name][hw]
            assert ab.shape == ref.shape == (2, *hw)
            diff = np.abs(ab - ref)
            if int8:
                assert diff.mean() < 3.0, (name, backend, hw, diff.mean())
            else:
                assert diff.mean() < 0.05 and diff.max() < 2.0, (name, backend, hw, diff.mean(), diff.max())


def test_temperature_is_an_input():
    with registry.make_runner("openvino", MODELS["default"]) as runner:
        L = _L(64, 64)[None, None]
        cold, warm = predict_ab_batch(runner, L, 0.1), predict_ab_batch(runner, L, 1.0)
        assert np.abs(cold - warm).mean() > 1.0
        np.testing.assert_allclose(predict_ab_batch(runner, L, 0.1), cold, atol=1e-3)


def test_the_same_input_gives_the_same_bytes_every_call():
    """One dynamic-shape model for every size: a size seen again runs the same compiled model, so a photo
    colorized twice in one process gives identical output (a static recompile once changed the last bits)."""
    L = _L(48, 72)[None, None]
    with registry.make_runner("openvino", MODELS["default"]) as runner:
        first = predict_ab_batch(runner, L)
        for _ in range(3):
            assert np.array_equal(predict_ab_batch(runner, L), first)
        assert runner.compiled_precision() == "f32"  # set explicitly, even on a CPU with bf16


def test_throughput_splits_a_batch_over_requests_and_matches_latency():
    L = np.stack([_L(64, 64), _L(64, 64)[::-1].copy(), _L(64, 64)[:, ::-1].copy(), _L(64, 64) * 0.5])[:, None]
    with registry.make_runner("openvino", MODELS["default"], purpose="throughput") as tp:
        out_tp = predict_ab_batch(tp, L)
        n_requests = tp.optimal_requests()
    with registry.make_runner("openvino", MODELS["default"]) as lat:
        out_lat = predict_ab_batch(lat, L)
        assert lat.optimal_requests() == 1
    assert n_requests >= 1 and out_tp.shape == (4, 2, 64, 64)
    np.testing.assert_allclose(out_tp, out_lat, atol=1e-3)


def test_every_output_passes_through_and_optional_ones_on_request():
    with registry.make_runner("openvino", MODELS["default"]) as runner:
        feed = {"L": _L(32, 32)[None, None], "temperature": np.array(0.38, np.float32), "not_an_input": np.zeros(3)}
        plain = runner.infer(feed)
        assert "ab" in plain and "logits" not in plain
        if runner.has_output("logits"):
            both = runner.infer(feed, outputs=("ab", "logits"))
            assert both["logits"].shape == (1, 313, 8, 8) and np.allclose(both["ab"], plain["ab"], atol=1e-3)
        with pytest.raises(ValueError, match="has no output nope"):
            runner.infer(feed, outputs=("nope",))


@pytest.mark.parametrize("cache", ["1", "0"])
def test_logits_are_computed_only_when_asked_for(tmp_path, monkeypatch, cache):
    """The model runs without its on-request output (saved once as an IR in the cache folder, or in memory with
    the cache off); a call that asks for ``logits`` runs the whole model; ``ab`` is the same to the bit."""
    monkeypatch.setenv("COLORIZE_RT_ORT_CACHE", cache)
    L = _L(48, 72)[None, None]
    t = np.array(0.38, np.float32)
    for _ in range(2):  # the second start finds the saved IR (cache on)
        with registry.make_runner("openvino", MODELS["default"]) as runner:
            assert runner.has_output("logits") and {p.get_any_name() for p in runner._dynamic.outputs} == {"ab"}
            lean = runner.infer({"L": L, "temperature": t})
            assert runner._whole is None  # nothing asked for logits yet
            whole = runner.infer({"L": L, "temperature": t}, outputs=("ab", "logits"))
            assert runner._whole is not None and whole["logits"].shape == (1, 313, 12, 18)
            assert np.array_equal(lean["ab"], whole["ab"])
            assert np.array_equal(runner.infer({"L": L, "temperature": t})["ab"], lean["ab"])
    saved = sorted(p.suffix for p in (tmp_path / "cache" / "openvino").glob("ov*-cpu*/lean/default-*-lean*.*"))
    assert saved == ([] if cache == "0" else [".bin", ".json", ".xml"])


def test_a_damaged_saved_ir_is_built_again(tmp_path):
    L = _L(40, 56)[None, None]
    with registry.make_runner("openvino", MODELS["default"]) as runner:
        want = predict_ab_batch(runner, L)
    (saved,) = (tmp_path / "cache" / "openvino").glob("ov*-cpu*/lean/default-*.bin")
    saved.write_bytes(saved.read_bytes()[:1000])  # truncated, as by a full disk
    for blob in saved.parent.parent.glob("*.blob"):  # and no compiled copy to fall back on
        blob.unlink()
    with registry.make_runner("openvino", MODELS["default"]) as runner:
        assert np.array_equal(predict_ab_batch(runner, L), want)
    assert saved.stat().st_size > 1000  # written again


@pytest.mark.parametrize("name", ["default", "default-int8"])
def test_the_decode_runs_without_a_softmax_node_and_gives_the_same_ab(name):
    """The lean model's Softmax -> expectation is rewritten as sums of exponentials: no Softmax is left in what
    OpenVINO runs, and ab matches the file's own graph on OpenVINO (f32) at two sizes and temperatures."""
    from colorize_rt.runtime.backends.openvino_models import softmax_expectation_as_sums
    from colorize_rt.runtime.backends.openvino_runner import import_openvino

    ov = import_openvino()
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}
    plain = core.compile_model(str(MODELS[name]), "CPU", cfg)
    with registry.make_runner("openvino", MODELS[name]) as runner:
        ran = {op.get_rt_info()["layerType"].astype(str) for op in runner._dynamic.get_runtime_model().get_ordered_ops()}
        assert "Softmax" not in ran
        for (h, w), t in (((48, 72), 0.38), ((96, 64), 1.0)):
            L = _L(h, w)[None, None]
            temp = np.array(t, np.float32).reshape([1] * len(plain.input("temperature").get_partial_shape()))
            want = plain.create_infer_request().infer({"L": L, "temperature": temp})[plain.output("ab")]
            got = predict_ab_batch(runner, L, t)
            assert np.abs(got - want).max() < 1e-3
    assert not softmax_expectation_as_sums(core.read_model(str(MODELS["default-l2"])))  # no Softmax: untouched


def test_compiled_models_are_cached_under_the_cache_root(tmp_path):
    with registry.make_runner("openvino", MODELS["default-l2"]):
        pass
    folders = list((tmp_path / "cache" / "openvino").glob("ov*-cpu*"))
    assert len(folders) == 1 and any(folders[0].iterdir())


# -- the registry -----------------------------------------------------------------------------------------
def test_explicit_openvino_runs_and_is_self_checked():
    verdicts = []
    runner, used = open_runner(MODELS["default"], "openvino", verdicts=verdicts)
    with runner:
        assert used == "openvino" and runner.name.startswith("openvino-")
        assert verdicts[-1].status == "pass" and verdicts[-1].backend == runner.name


@pytest.mark.parametrize("bf16_passes", [False, True])
def test_bf16_is_kept_only_where_the_self_check_passes(monkeypatch, bf16_passes):
    """The bf16 path forced through the seam: the known-answer check's verdict decides between bf16 and f32."""
    monkeypatch.setattr(registry, "openvino_precisions", lambda path: ["bf16", "f32"])
    real = registry.check_runner

    def check(runner, model_path, backend, use_cache=True, judge_as=None):
        verdict = real(runner, model_path, backend, use_cache=False, judge_as=judge_as)
        if runner.name == "openvino-bf16":  # what this CPU's bf16 computes does not decide the test
            verdict.status = "pass" if bf16_passes else "fail"
        return verdict

    monkeypatch.setattr(registry, "check_runner", check)
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 60.0)  # every candidate opened, whatever the load
    verdicts = []
    runner, _ = open_runner(MODELS["default"], "openvino", verdicts=verdicts)
    with runner:
        assert runner.name == ("openvino-bf16" if bf16_passes else "openvino-f32")
        assert [v.backend for v in verdicts] == (["openvino-bf16"] if bf16_passes else ["openvino-bf16", "openvino-f32"])
        assert runner.compiled_precision() == ("bf16" if bf16_passes else "f32") or not bf16_passes
    # under auto a failing bf16 is a row of the table, never the choice
    runner, _ = open_runner(MODELS["default"], "auto", verdicts=verdicts)
    with runner:
        rows = {r.label: r for r in runner.auto_choice.rows}
        bf16 = rows["openvino-bf16 default.onnx"]
        assert (bf16.status == "timed") == bf16_passes
        if not bf16_passes:
            assert bf16.status == "self-check failed" and runner.name != "openvino-bf16"


def test_bf16_is_judged_as_fp32_when_asked_for_and_as_bf16_under_auto(monkeypatch):
    """``--backend openvino`` with the fp32 model holds a bf16 run to fp32's tolerance; ``auto``, which chooses
    the precision itself (as it chooses the INT8 variant), holds it to bf16's, and caches that apart."""
    monkeypatch.setattr(registry, "openvino_precisions", lambda path: ["bf16", "f32"])
    real = registry.check_runner
    seen = []

    def check(runner, model_path, backend, use_cache=True, judge_as=None):
        verdict = real(runner, model_path, backend, use_cache=use_cache, judge_as=judge_as)
        seen.append((runner.name, Path(model_path).name, judge_as, verdict))
        return verdict

    monkeypatch.setattr(registry, "check_runner", check)
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 60.0)
    open_runner(MODELS["default"], "openvino")[0].deactivate()
    explicit = [(j, v) for name, _, j, v in seen if name == "openvino-bf16"]
    assert explicit and all(
        j is None and v.precision == "fp32" and v.tolerance == selfcheck.TOLERANCES["fp32"] for j, v in explicit
    )
    seen.clear()
    open_runner(MODELS["default"], "auto", variants=[MODELS["default-int8"]])[0].deactivate()
    judged = {(name, model): (j, v) for name, model, j, v in seen}
    j, v = judged[("openvino-bf16", "default.onnx")]
    assert j == "bf16" and v.precision == "bf16" and v.tolerance == selfcheck.TOLERANCES["bf16"]
    assert judged[("openvino-f32", "default.onnx")][0] is None and judged[("onnxruntime-cpu", "default.onnx")][0] is None
    assert v.status == ("pass" if v.mean <= 1.0 and v.p99 <= 5.0 else "fail")
    # both judgements of the same run are now cached, apart: neither is read back as the other
    selfcheck.wait_for_cache()
    runner = registry.make_runner("openvino", MODELS["default"], precision="bf16")
    with runner:
        as_fp32 = real(runner, MODELS["default"], "openvino-bf16")
        as_bf16 = real(runner, MODELS["default"], "openvino-bf16", judge_as="bf16")
    assert as_fp32.cached and as_bf16.cached
    assert (as_fp32.precision, as_fp32.tolerance) == ("fp32", selfcheck.TOLERANCES["fp32"])
    assert (as_bf16.precision, as_bf16.tolerance) == ("bf16", selfcheck.TOLERANCES["bf16"])
    assert as_fp32.mean == pytest.approx(as_bf16.mean)


def test_real_bf16_verdict_on_this_cpu():
    """Without the seam: bf16 is tried only on a CPU with bf16 arithmetic, and kept only if its check passes."""
    from colorize_rt.core.cpu import native_bf16

    verdicts = []
    runner, _ = open_runner(MODELS["default"], "openvino", verdicts=verdicts)
    with runner:
        tried = [v.backend for v in verdicts]
        assert tried[0] == ("openvino-bf16" if native_bf16() else "openvino-f32")
        assert runner.name == verdicts[-1].backend and verdicts[-1].status == "pass"
        assert all(v.status == "fail" for v in verdicts[:-1])


def test_a_tampered_model_is_refused(tmp_path):
    from tests.test_selfcheck import _tamper

    bad = _tamper(MODELS["default"], tmp_path / "tampered.onnx")
    with pytest.raises(SelfCheckError, match="mean \\|Δab\\|") as info:
        open_runner(bad, "openvino")
    assert "\n" not in str(info.value)
    with pytest.raises(SelfCheckError):  # auto: every CPU runtime refuses it
        open_runner(bad, "auto")


def test_auto_measures_once_and_again_on_a_version_change(monkeypatch):
    calls = []
    real = registry.time_candidates

    def spy(runners, *args, **kw):
        calls.append(sorted(runners))
        return real(runners, *args, **kw)

    monkeypatch.setattr(registry, "time_candidates", spy)
    variants = [MODELS["default-int8"]]
    runner, used = open_runner(MODELS["default"], "auto", variants=variants)
    choice = runner.auto_choice
    runner.deactivate()
    assert len(calls) == 1 and not choice.cached and choice.timing_s <= auto_choice.MEASURE_BUDGET_S + 1.0
    labels = {r.label for r in choice.rows}
    assert {"onnxruntime default.onnx", "onnxruntime default-int8.onnx", "openvino-f32 default.onnx"} <= labels
    assert {"opencv-dnn default.onnx", "openvino-f32 default-int8.onnx"} <= labels
    timed = [r for r in choice.rows if r.ms is not None]
    assert choice.winner().ms == min(r.ms for r in timed)  # the fastest that passed
    assert all(r.status == "timed" for r in timed) and choice.winner().status == "timed"

    runner, used_again = open_runner(MODELS["default"], "auto", variants=variants)  # recalled, not measured
    assert len(calls) == 1 and runner.auto_choice.cached and used_again == used
    assert runner.model_path.name == choice.winner().model
    runner.deactivate()

    versions = auto_choice.library_versions()
    monkeypatch.setattr(auto_choice, "library_versions", lambda: {**versions, "openvino": "2099.1"})
    runner, _ = open_runner(MODELS["default"], "auto", variants=variants)
    runner.deactivate()
    assert len(calls) == 2 and not runner.auto_choice.cached


def test_a_candidate_that_raises_while_timed_is_left_out(monkeypatch):
    real = registry.make_runner

    def make(backend, *args, **kw):
        runner = real(backend, *args, **kw)
        if backend == "opencv":  # passes the 40x40 probe, then fails at the timing size

            def boom(feed, outputs=None):
                if feed["L"].shape[-1] > 64:
                    raise RuntimeError("out of memory")
                return type(runner).infer_impl(runner, feed, outputs)

            runner.infer_impl = boom
        return runner

    monkeypatch.setattr(registry, "make_runner", make)
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 60.0)  # every candidate opened, whatever the load
    runner, used = open_runner(MODELS["default"], "auto", warn=lambda msg: None)
    with runner:
        rows = {r.backend: r for r in runner.auto_choice.rows}
        assert used != "opencv" and rows["opencv"].status == "failed to run" and rows["opencv"].ms is None


def _slowed(monkeypatch, backend: str, activate_s: float = 0.0, infer_s: float = 0.0) -> None:
    """Make ``backend``'s real runners open and/or run slower by the given seconds (the registry's make_runner seam)."""
    import time

    real = registry.make_runner

    def make(name, *args, **kw):
        runner = real(name, *args, **kw)
        if name == backend:
            activate, infer = runner.activate_impl, runner.infer_impl

            def slow_activate():
                time.sleep(activate_s)
                activate()

            def slow_infer(feed, outputs=None):
                time.sleep(infer_s)
                return infer(feed, outputs)

            runner.activate_impl, runner.infer_impl = slow_activate, slow_infer
        return runner

    monkeypatch.setattr(registry, "make_runner", make)


def test_a_slow_candidate_stops_being_timed(monkeypatch):
    """Successive halving: ONNX Runtime (opened first) made 0.6 s slower a run is dropped after its first timing."""
    _slowed(monkeypatch, "cpu", infer_s=0.6)  # its self-check runs slowly too: a budget that opens every candidate
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 60.0)
    runner, used = open_runner(MODELS["default"], "auto", warn=lambda msg: None)
    with runner:
        choice = runner.auto_choice
        slow = next(r for r in choice.rows if r.backend == "cpu")
        assert used != "cpu" and slow.status == "timed" and slow.runs == 1 and slow.ms >= 600
        assert slow.note.startswith("dropped after 1 run(s): over 2x the best median")
        assert choice.winner().ms == min(r.ms for r in choice.rows if r.ms is not None)
        assert choice.winner().runs >= 1 and runner.active_providers


def test_candidates_are_opened_only_while_budget_remains(monkeypatch):
    """OpenVINO's compile made 1.5 s slower: after it, nothing else fits the 2 s budget, and the table says so."""
    _slowed(monkeypatch, "openvino", activate_s=1.5)
    monkeypatch.setattr(registry, "openvino_precisions", lambda path: ["f32", "bf16"])  # bf16 tried on any CPU
    runner, _ = open_runner(MODELS["default"], "auto", variants=[MODELS["default-int8"]], warn=lambda msg: None)
    with runner:
        choice = runner.auto_choice
        rows = {r.label: r for r in choice.rows}
        assert [r.label for r in choice.rows][:3] == [  # the cheapest to open first
            "onnxruntime default.onnx",
            "onnxruntime default-int8.onnx",
            "openvino-f32 default.onnx",
        ]
        assert rows["openvino-f32 default.onnx"].status == "timed" and choice.open_s >= 1.5
        skipped = [r for r in choice.rows if r.status == auto_choice.NOT_TIMED_BUDGET]
        assert {"openvino-f32 default-int8.onnx", "openvino-bf16 default.onnx", "opencv-dnn default.onnx"} <= {
            r.label for r in skipped
        }
        assert all(r.ms is None for r in skipped) and choice.winner().status == "timed"
        text = "\n".join(choice.lines())
        assert f"of a {auto_choice.MEASURE_BUDGET_S:g} s budget" in text and "opening and checking" in text
        assert all(f"{r.label}" in text for r in skipped) and text.count("not timed: budget") == len(skipped)


def test_a_damaged_measurement_file_is_measured_again(tmp_path):
    runner, _ = open_runner(MODELS["default-l2"], "auto")
    runner.deactivate()
    saved = list((tmp_path / "cache" / "auto-choice").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["chosen"]
    saved[0].write_text("{not json")
    runner, _ = open_runner(MODELS["default-l2"], "auto")
    runner.deactivate()
    assert not runner.auto_choice.cached and json.loads(saved[0].read_text())["chosen"]


def _no_openvino(monkeypatch):
    """Stand for an install without OpenVINO: core.lazy's import of it fails."""
    import colorize_rt.core.lazy as lazy

    real = lazy.importlib.import_module

    def fake(name, *args):
        if name.split(".")[0] == "openvino":
            raise ImportError(f"No module named '{name}'")
        return real(name, *args)

    monkeypatch.setattr(lazy.importlib, "import_module", fake)
    monkeypatch.setattr(registry, "openvino_installed", lambda: False)  # found without importing it


def test_missing_openvino_is_one_line_and_auto_falls_back(monkeypatch):
    _no_openvino(monkeypatch)
    with pytest.raises(BackendError, match=r"--backend openvino: openvino is not installed: pip install openvino") as info:
        open_runner(MODELS["default"], "openvino")
    assert "\n" not in str(info.value)
    seen = []
    runner, used = open_runner(MODELS["default"], "auto", warn=seen.append)
    with runner:
        assert used in ("cpu", "opencv") and not any(r.backend == "openvino" for r in runner.auto_choice.rows)
    assert len(seen) == 1 and "OpenVINO is not installed" in seen[0] and "\n" not in seen[0]
    with pytest.raises(MissingDependency):
        registry.make_runner("openvino", MODELS["default"]).activate()


# -- the command ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gray_png(tmp_path_factory) -> Path:
    import cv2

    rgb = cv2.resize(photo(), (120, 72), interpolation=cv2.INTER_AREA)
    return write_rgb(tmp_path_factory.mktemp("img") / "gray.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("mode", ["fit", "tiled"])
def test_cli_on_openvino_colorizes_in_both_modes(tmp_path, gray_png, mode):
    out = tmp_path / "out.png"
    extra = ["--tile", "64", "--overlap", "16"] if mode == "tiled" else []
    env = {"COLORIZE_RT_CACHE": str(tmp_path / "cache")}
    r = run_cli(str(gray_png), "-o", str(out), "--backend", "openvino", "--mode", mode, "-q", *extra, env=_env(env))
    assert r.returncode == 0 and out.is_file(), r.stderr
    import cv2

    rgb = cv2.imread(str(out))
    assert rgb.shape == (72, 120, 3)
    chroma = np.abs(rgb.astype(int) - rgb.mean(axis=2, keepdims=True)).mean()
    assert chroma > 2  # coloured, not gray


def test_cli_missing_openvino_backend_is_one_line(tmp_path, gray_png):
    code = (
        "import sys, colorize_rt.core.lazy as lazy\n"
        "real = lazy.importlib.import_module\n"
        "def fake(name, *a):\n"
        "    if name.split('.')[0] == 'openvino': raise ImportError(name)\n"
        "    return real(name, *a)\n"
        "lazy.importlib.import_module = fake\n"
        "from colorize_rt.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    import subprocess
    import sys

    from tests.runtime_support import ROOT

    out = tmp_path / "o.png"
    args = [str(gray_png), "-o", str(out), "--backend", "openvino"]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=_env({}), timeout=120)
    assert r.returncode == 2 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install openvino" in lines[0], r.stderr


def test_info_prints_the_table_auto_chose_from(tmp_path):
    env = _env({"COLORIZE_RT_CACHE": str(tmp_path / "cache")})
    r = run_cli("--info", "--json", env=env)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    if d["backends_available"]["cuda"] or d["backends_available"]["ort-trt"]:
        pytest.skip("a GPU backend is available: auto does not measure the CPU")
    table = d["auto_choice"]
    assert table["chosen"] in [row["label"] for row in table["rows"]] and d["openvino"]
    assert Path(d["model"]["path"]).name == table["chosen"].split()[-1]
    text = run_cli("--info", env=env).stdout  # measured again (nothing was saved): on a shared CPU, maybe another winner
    assert "auto on this CPU" in text and "measured table" in text
    assert any(f"* {row['label']}" in text for row in table["rows"])
    assert not (tmp_path / "cache" / "auto-choice").exists()  # --info writes nothing


def _env(extra: dict) -> dict:
    import os

    return {**os.environ, **extra}
