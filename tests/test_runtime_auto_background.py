"""``auto``'s first job never waits for the measurement, and a loaded measurement is measured again
(runtime/backends/auto_background.py, cpu_load.py, registry.open_cpu_auto).

Real models and runners throughout. Seams: ``auto_choice.new_load_meter`` reads a fake machine's ``/proc/stat``
(tests/auto_support.py, the kernel's format), ``wait_for_turn`` gets a fake clock and reader, and the in-process
tests replace ``start_background`` by a recorder so no detached process outlives them; the command test starts
the real detached process and waits for it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from colorize_rt.runtime.backends import auto_background, auto_choice, registry, selfcheck
from colorize_rt.runtime.backends.auto_choice import CpuChoice, ProvisionalChoice, load_choice
from colorize_rt.runtime.backends.cpu_load import LOADED_SHARE, LoadMeter, machine_jiffies
from colorize_rt.runtime.backends.registry import BackendError, SelfCheckError, open_runner
from colorize_rt.runtime.backends.shipped_models import SHIPPED, assets_dir
from tests.auto_support import FakeMachine, proc_stat
from tests.runtime_support import photo, run_cli, write_rgb

real_start = auto_background.start_background

pytestmark = pytest.mark.timeout(300)

MODELS = {name: assets_dir() / fname for name, fname in SHIPPED.items()}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_CACHE", str(tmp_path / "cache"))
    for name in ("COLORIZE_RT_SELFCHECK_CACHE", "COLORIZE_RT_AUTO_CACHE", "COLORIZE_RT_ORT_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 1.0)
    yield
    selfcheck.wait_for_cache()


@pytest.fixture
def started(monkeypatch) -> list:
    """Background mode, with ``start_background`` recording its requests instead of starting a process."""
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "background")
    calls = []

    def record(key, request):
        calls.append((key, request))
        return "started"

    monkeypatch.setattr(auto_background, "start_background", record)
    return calls


def _spy_measurements(monkeypatch) -> list:
    calls = []
    real = registry.time_candidates

    def spy(openers, *args, **kw):
        calls.append(sorted(openers))
        return real(openers, *args, **kw)

    monkeypatch.setattr(registry, "time_candidates", spy)
    return calls


# -- the load check -----------------------------------------------------------------------------------------
def test_proc_stat_counters_are_read_from_the_kernels_format():
    busy, total = machine_jiffies(proc_stat(user=1000, system=200, idle=5000, iowait=100))
    assert total == 1000 + 147462 + 200 + 5000 + 100 + 0 + 6127 + 1521
    assert busy == total - 5000 - 100
    if Path("/proc/stat").is_file():
        real_busy, real_total = machine_jiffies(Path("/proc/stat").read_text())
        assert 0 < real_busy < real_total
    with pytest.raises(ValueError, match="no 'cpu' line"):
        machine_jiffies("intr 1 2 3\n")


@pytest.mark.parametrize("others", [0.0, 0.2, 0.3, 0.6])
def test_others_share_is_what_the_machine_did_beyond_our_own_cpu(others):
    sample = FakeMachine(others_share=others, own_cpu_s=1.5).meter().start().stop()
    assert sample.wall_s == 2.0 and sample.own_cpu_s == 1.5
    assert sample.others_share == pytest.approx(others, abs=0.01)
    assert sample.loaded == (others > LOADED_SHARE)


def test_an_unreadable_proc_stat_is_unknown_load_not_loaded():
    def missing() -> str:
        raise OSError("no /proc here")

    sample = LoadMeter(read_stat=missing).start().stop()
    assert sample.others_share is None and not sample.loaded


def test_the_measuring_process_waits_for_its_turn():
    clock = [0.0]

    def sleep(s):
        clock[0] += s

    def machine(busy_share: float):
        jiffies = {"busy": 0, "total": 0}

        def read():
            jiffies["total"] += 50
            jiffies["busy"] += round(50 * busy_share)
            return f"cpu  {jiffies['busy']} 0 0 {jiffies['total'] - jiffies['busy']} 0 0 0 0 0 0\n"

        return read

    kw = {"sleep": sleep, "clock": lambda: clock[0], "max_wait_s": 30.0}
    assert auto_background.wait_for_turn(1, parent_alive=lambda pid: False, read_stat=machine(1.0), **kw) == "parent exited"
    clock[0] = 0.0
    assert auto_background.wait_for_turn(1, parent_alive=lambda pid: True, read_stat=machine(0.05), **kw) == "idle"
    assert auto_background.IDLE_FOR_S <= clock[0] <= auto_background.IDLE_FOR_S + 1.0
    clock[0] = 0.0
    assert auto_background.wait_for_turn(1, parent_alive=lambda pid: True, read_stat=machine(0.8), **kw) == "waited 30 s"
    assert 30.0 <= clock[0] <= 31.0


# -- a loaded measurement is measured again --------------------------------------------------------------------
def test_a_loaded_measurement_is_measured_again_and_the_least_loaded_kept(monkeypatch):
    """Shares 60 %, 40 %, 50 %: measured at three starts, then the 40 % table is kept and recalled."""
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    calls = _spy_measurements(monkeypatch)
    shares = iter([0.6, 0.4, 0.5])
    monkeypatch.setattr(auto_choice, "new_load_meter", lambda: FakeMachine(others_share=next(shares)).meter())
    seen = []
    for _ in range(3):
        runner, _ = open_runner(MODELS["default"], "auto")
        runner.deactivate()
        saved = load_choice(runner.auto_choice.key)
        seen.append((saved.tries, round(saved.others_share, 2), saved.loaded))
    assert len(calls) == 3
    assert seen == [(1, 0.6, True), (2, 0.4, True), (3, 0.4, True)]  # the third (50 %) lost to the second
    runner, _ = open_runner(MODELS["default"], "auto")  # three tries: recalled, not measured
    runner.deactivate()
    assert len(calls) == 3 and runner.auto_choice.cached and runner.auto_choice.others_share == pytest.approx(0.4)
    text = "\n".join(runner.auto_choice.lines())
    assert "other processes took 40% of the CPU; loaded, the least loaded of 3 tries" in text


def test_a_table_still_loaded_after_its_tries_gets_one_more_a_day_later(monkeypatch):
    """Three loaded tries (60 %, 40 %, 50 %) are recalled the same day; a day after the last, one more try runs,
    and a quiet one replaces the table for good. A loaded extra try that loses restarts the day's wait."""
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    calls = _spy_measurements(monkeypatch)
    shares = iter([0.6, 0.4, 0.5, 0.7, 0.02])
    monkeypatch.setattr(auto_choice, "new_load_meter", lambda: FakeMachine(others_share=next(shares)).meter())
    now = [1_000_000.0]
    monkeypatch.setattr(auto_choice.time, "time", lambda: now[0])  # the time module: the registry's clock too

    def start() -> auto_choice.CpuChoice:
        runner, _ = open_runner(MODELS["default"], "auto")
        runner.deactivate()
        return load_choice(runner.auto_choice.key)

    for _ in range(3):
        start()
        now[0] += 60
    assert len(calls) == 3
    now[0] += auto_choice.RETRY_LOADED_AFTER_S - 300  # the same day: recalled
    assert start().tries == 3 and len(calls) == 3
    now[0] += 600  # a day after the last try: a fourth, loaded (70 %), loses to the 40 % table
    kept = start()
    assert len(calls) == 4 and kept.tries == 4 and kept.others_share == pytest.approx(0.4) and kept.tried_at == now[0]
    now[0] += 3600  # the wait starts again from that try
    assert start().tries == 4 and len(calls) == 4
    now[0] += auto_choice.RETRY_LOADED_AFTER_S
    quiet = start()
    assert len(calls) == 5 and not quiet.loaded and quiet.others_share == pytest.approx(0.02)
    now[0] += 30 * auto_choice.RETRY_LOADED_AFTER_S
    assert start().others_share == pytest.approx(0.02) and len(calls) == 5  # a quiet table stands


def test_a_quiet_measurement_is_kept_after_a_loaded_one(monkeypatch):
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    calls = _spy_measurements(monkeypatch)
    shares = iter([0.7, 0.05])
    monkeypatch.setattr(auto_choice, "new_load_meter", lambda: FakeMachine(others_share=next(shares)).meter())
    for _ in range(3):
        runner, _ = open_runner(MODELS["default"], "auto")
        runner.deactivate()
    assert len(calls) == 2  # the loaded one, then a quiet one that stands
    choice = runner.auto_choice
    assert choice.cached and not choice.loaded and choice.tries == 2 and choice.others_share == pytest.approx(0.05)
    assert "measured again" not in "\n".join(choice.lines())


def test_a_loaded_table_is_used_and_measured_again_in_the_background(monkeypatch, started):
    """Background mode: the loaded table's winner runs now; the measurement is handed to the background."""
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    monkeypatch.setattr(auto_choice, "new_load_meter", FakeMachine(others_share=0.8).meter)
    runner, _ = open_runner(MODELS["default"], "auto")
    runner.deactivate()
    assert runner.auto_choice.loaded and not started
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "background")
    calls = _spy_measurements(monkeypatch)
    runner, used = open_runner(MODELS["default"], "auto")
    with runner:
        assert isinstance(runner.auto_choice, CpuChoice) and runner.auto_choice.cached and not calls
        assert runner.auto_choice.winner().backend == used
    assert [key for key, _ in started] == [runner.auto_choice.key]


# -- the first job never waits --------------------------------------------------------------------------------
def test_no_table_runs_provisional_onnx_runtime_and_measures_in_the_background(monkeypatch, started):
    calls = _spy_measurements(monkeypatch)
    runner, used = open_runner(MODELS["default"], "auto", variants=[MODELS["default-int8"]])
    with runner:
        assert used == "cpu" and runner.model_path == MODELS["default"] and not calls  # nothing timed before the job
        status = runner.auto_choice
        assert isinstance(status, ProvisionalChoice) and status.runner == "onnxruntime default.onnx"
    ((key, request),) = started
    assert key == status.key and request["model"] == str(MODELS["default"])
    assert request["variants"] == [str(MODELS["default-int8"])] and request["purpose"] == "latency"
    assert "provisional: onnxruntime default.onnx; measuring in the background since" in status.lines()[0]


def test_provisional_never_runs_a_backend_that_failed_its_self_check(monkeypatch, started):
    real = registry.check_runner

    def check(runner, model_path, backend, use_cache=True, judge_as=None):
        verdict = real(runner, model_path, backend, use_cache=False, judge_as=judge_as)
        if backend == "cpu":  # ONNX Runtime (first in the order) fails on this machine
            verdict.status = "fail"
        return verdict

    monkeypatch.setattr(registry, "check_runner", check)
    verdicts = []
    runner, used = open_runner(MODELS["default"], "auto", verdicts=verdicts, warn=lambda m: None)
    with runner:
        assert used == "openvino" and runner.auto_choice.runner.startswith("openvino-")
    assert verdicts[0].backend == "cpu" and verdicts[0].status == "fail" and verdicts[-1].status == "pass"
    monkeypatch.setattr(
        registry,
        "check_runner",
        lambda r, m, b, use_cache=True, judge_as=None: _failing(real(r, m, b, use_cache=False, judge_as=judge_as)),
    )
    with pytest.raises(SelfCheckError):  # every candidate fails: refused, as before
        open_runner(MODELS["default"], "auto", warn=lambda m: None)


def _failing(verdict):
    verdict.status = "fail"
    return verdict


def test_a_failed_measurement_is_retried_then_reported(tmp_path, monkeypatch, started):
    """A measuring process that fails records one line; after MAX_ATTEMPTS nothing more starts and --info says so."""
    request = {"key": "k" * 32, "model": str(tmp_path / "gone.onnx"), "variants": [], "threads": 0}
    request |= {"max_side": 1024, "purpose": "latency"}
    lock = auto_background.lock_path(request["key"])
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        code = auto_background.main(["--lock-fd", str(fd), "--parent", "1", json.dumps(request)])
    finally:
        os.close(fd)
    state = auto_background.MeasureState.load(request["key"])
    assert code == 1 and "gone.onnx is gone" in state.last_error and "\n" not in state.last_error

    runner, _ = open_runner(MODELS["default-l2"], "auto")
    runner.deactivate()
    key = runner.auto_choice.key
    auto_background.MeasureState(auto_background.MAX_ATTEMPTS, time.time(), "RuntimeError: boom").save(key)
    monkeypatch.setattr(auto_background, "start_background", real_start)  # which must start nothing now
    runner, used = open_runner(MODELS["default-l2"], "auto")  # a later start still works, on the provisional runner
    with runner:
        status = runner.auto_choice
        assert used == "cpu" and status.state == "failed" and len(started) == 1
        assert status.lines()[0].endswith("measurement failed: RuntimeError: boom")
    assert real_start(key, {}) == "failed" and not auto_background.measuring(key)


def test_cache_off_measures_in_the_calling_process(monkeypatch, started):
    monkeypatch.setenv("COLORIZE_RT_AUTO_CACHE", "0")
    calls = _spy_measurements(monkeypatch)
    runner, _ = open_runner(MODELS["default"], "auto")
    runner.deactivate()
    assert len(calls) == 1 and isinstance(runner.auto_choice, CpuChoice) and not started
    assert not (Path(os.environ["COLORIZE_RT_CACHE"]) / "auto-choice").exists()


def test_a_bad_measure_mode_is_one_line(monkeypatch):
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "later")
    with pytest.raises(BackendError, match="COLORIZE_RT_AUTO_MEASURE='later': use one of background, sync") as info:
        open_runner(MODELS["default"], "auto")
    assert "\n" not in str(info.value)


def _wait_for(key: str, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while auto_background.measuring(key):
        assert time.monotonic() < end, "the background measurement did not finish"
        time.sleep(0.2)


def test_the_command_colorizes_first_then_measures_in_a_detached_process(tmp_path):
    """A real first run: the photo is written by a provisional runner, the detached process measures after the
    command has exited, and the next start opens the measured winner."""
    gray = write_rgb(tmp_path / "gray.png", photo()[::4, ::4].mean(axis=2).astype("uint8"))
    env = {**os.environ, "COLORIZE_RT_CACHE": str(tmp_path / "cache"), auto_background.AUTO_MEASURE_ENV: "background"}
    r = run_cli(str(gray), "-o", str(tmp_path / "out.png"), "-q", env=env)
    assert r.returncode == 0 and (tmp_path / "out.png").is_file(), r.stderr
    info = run_cli("--info", "--json", env=env)
    status = json.loads(info.stdout)["auto_choice"]
    assert info.returncode == 0 and status["provisional"] and status["runner"] == "onnxruntime default.onnx"
    key = status["key"]
    if status["state"] == "measuring":
        assert "measuring in the background since" in status["lines"][0]
        _wait_for(key)
    log = auto_background.log_path(key).read_text()
    assert "measuring (parent exited)" in log  # the measurement began only once the command had finished
    saved = json.loads(auto_choice.choice_path(key).read_text())
    assert saved["where"] == "background" and saved["chosen"] and saved["others_share"] is not None
    info = run_cli("--info", "--json", env=env)
    table = json.loads(info.stdout)["auto_choice"]
    assert table["chosen"] == saved["chosen"] and "measured table" in table["lines"][0]
    assert "in background" in table["lines"][0] and "one-time set-up" in table["lines"][0]


def test_the_measuring_process_holds_the_lock_until_it_exits(tmp_path, monkeypatch):
    """``start_background`` hands its lock to the child: a second start finds it held and starts nothing."""
    key = "b" * 32
    request = {"key": key, "model": str(tmp_path / "gone.onnx"), "variants": [], "threads": 0}
    request |= {"max_side": 1024, "purpose": "latency"}
    assert auto_background.start_background(key, request) == "started"
    held = auto_background.measuring(key)
    second = auto_background.start_background(key, request)
    _wait_for(key)
    state = auto_background.MeasureState.load(key)
    assert (held, second) in ((True, "running"), (False, "started"))  # the child may already have failed
    assert state.attempts >= 1 and "gone.onnx" in state.last_error
    assert "failed:" in auto_background.log_path(key).read_text()


# -- a short job weighs each runtime's start-up ---------------------------------------------------------------
def _row(label: str, backend: str, model: str, ms: float, start_ms: float) -> auto_choice.CandidateRow:
    return auto_choice.CandidateRow(label, backend, model, "f32" if backend == "openvino" else "", "timed", ms, 5, "", start_ms)


def test_a_short_job_weighs_start_up_against_speed(monkeypatch):
    """A saved table whose fastest network (OpenVINO INT8, 17 ms) costs 400 ms to start: six photos run on ONNX
    Runtime fp32 (48 ms, 60 ms to start); a long or unknown job on OpenVINO."""
    models = [MODELS["default"], MODELS["default-int8"]]
    key = registry._key(models, 0, "throughput")
    rows = [
        _row("openvino-f32 default-int8.onnx", "openvino", "default-int8.onnx", 17.0, 400.0),
        _row("onnxruntime default.onnx", "cpu", "default.onnx", 48.0, 60.0),
        auto_choice.CandidateRow("opencv-dnn default.onnx", "opencv", "default.onnx", status="not timed: budget"),
    ]
    table = CpuChoice(key, rows, "openvino-f32 default-int8.onnx", others_share=0.05, measured_at=time.time())
    expected = {n: min(rows[:2], key=lambda r: r.start_ms + n * r.ms).label for n in (1, 6, 9, 10, 100)}
    assert expected[6] == "onnxruntime default.onnx" and expected[100] == "openvino-f32 default-int8.onnx"
    assert all(table.winner_for(n).label == label for n, label in expected.items())
    assert table.winner_for(None).label == table.chosen
    auto_choice.save_choice(table)
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    ov_int8 = ("openvino", "default-int8.onnx")
    for runs, backend, model in ((6, "cpu", "default.onnx"), (None, *ov_int8), (500, *ov_int8)):
        runner, used = open_runner(MODELS["default"], "auto", variants=[MODELS["default-int8"]], purpose="throughput", runs=runs)
        with runner:
            assert (used, runner.model_path.name) == (backend, model) and runner.auto_choice.cached


def test_a_measurement_records_each_timed_runtimes_start_up(monkeypatch):
    monkeypatch.setenv(auto_background.AUTO_MEASURE_ENV, "sync")
    monkeypatch.setattr(auto_choice, "new_load_meter", FakeMachine(others_share=0.0).meter)
    monkeypatch.setattr(auto_choice, "MEASURE_BUDGET_S", 60.0)  # every candidate timed, whatever the load
    runner, _ = open_runner(MODELS["default"], "auto", warn=lambda m: None)
    runner.deactivate()
    timed = [r for r in runner.auto_choice.rows if r.ms is not None]
    assert len(timed) >= 2 and all(r.start_ms is not None and r.start_ms >= 0 for r in timed)
    assert all(r.start_ms is None for r in runner.auto_choice.rows if r.ms is None)
    assert "start" in "\n".join(runner.auto_choice.lines())
