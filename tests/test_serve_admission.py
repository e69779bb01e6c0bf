"""Admission control (memory budget, FIFO queue, refusals) and the shared parameter bounds, in-process."""

from __future__ import annotations

import threading
import time

import pytest

from colorize_rt.runtime.limits import SIZE, TEMPERATURE, ParameterError
from colorize_rt.runtime.pipeline.images import ImageHeader
from colorize_rt.serve.admission import (
    Admission,
    AdmissionConfig,
    MiB,
    Overloaded,
    TooLarge,
    estimate_bytes,
    network_pixels,
)


@pytest.mark.parametrize(
    ("bound", "value", "expected"),
    [(SIZE, "16", 16), (SIZE, 4096, 4096), (SIZE, " 256 ", 256), (TEMPERATURE, "0.01", 0.01), (TEMPERATURE, 10, 10.0)],
)
def test_bounds_accept_their_range(bound, value, expected):
    assert bound.check(value) == expected


@pytest.mark.parametrize(
    ("bound", "value"),
    [
        (SIZE, 7),
        (SIZE, -5),
        (SIZE, "1234567890123456789012"),
        (SIZE, 8192),
        (SIZE, "64.5"),
        (SIZE, 64.5),
        (SIZE, True),
        (SIZE, "6_4"),
        (TEMPERATURE, 0),
        (TEMPERATURE, "nan"),
        (TEMPERATURE, float("inf")),
        (TEMPERATURE, 1e-5),
        (TEMPERATURE, 1e-300),
        (TEMPERATURE, 1e9),
        (TEMPERATURE, None),
    ],
)
def test_bounds_refuse_in_one_line(bound, value):
    with pytest.raises(ParameterError, match=f"^{bound.name} must be ") as info:
        bound.check(value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 120


def test_cli_uses_the_same_bounds():
    import click

    from colorize_rt.runtime.cli import cli

    params = {p.name: p for p in cli.params}
    size = params["size"].type
    assert (size.min, size.max) == SIZE.range
    temperature = params["temperature"]
    assert temperature.type.convert("0.01", temperature, None) == 0.01
    for bad in ("nan", "inf", "0", "1e-5", "10.5"):
        with pytest.raises(click.BadParameter, match="temperature must be a number from 0.01 to 10"):
            temperature.type.convert(bad, temperature, None)


def test_cost_estimates_grow_with_pixels_size_and_depth():
    small, big = ImageHeader(1000, 1000, 8, 3, "PNG"), ImageHeader(7000, 7000, 8, 3, "PNG")
    deep = ImageHeader(1000, 1000, 16, 4, "PNG")
    assert estimate_bytes(big, "fit", 256) > 16 * estimate_bytes(small, "fit", 256) > 0
    assert estimate_bytes(small, "fit", 4096) > 6000 * MiB  # the network at 4096^2 alone needs ~6.5 GB
    assert estimate_bytes(deep, "fit", 256, network=False) > 2 * estimate_bytes(small, "fit", 256, network=False)
    assert network_pixels(big, "tiled", 256) > 40e6 > network_pixels(small, "tiled", 256)
    assert network_pixels(ImageHeader(80, 1000, 8, 3, "PNG"), "fit", 256) == 24 * 256  # 20 padded to 24


def _config(**kw):
    base = {"budget_mb": 100, "slots": 2, "queue": 2, "wait_s": 5.0}
    base.update(kw)
    return AdmissionConfig(**base)


def test_too_large_for_the_budget_or_the_network():
    gate = Admission(_config(max_network_mp=1.0))
    with pytest.raises(TooLarge, match="needs about 200 MB of working memory; this server allows 100 MB: fix it"):
        gate.check_size(200 * MiB, 0, "a request", "fix it")
    with pytest.raises(TooLarge, match="runs the network on 2 MP; this server allows 1 MP per request"):
        gate.check_size(MiB, 2_000_000, "a request", "fix it")
    gate.check_size(100 * MiB, 1_000_000, "a request", "fix it")


def _hold(gate, cost, started, release, log, name):
    try:
        with gate.admit(cost):
            log.append(("in", name))
            started.set()
            release.wait(10)
        log.append(("out", name))
    except Overloaded as exc:
        log.append(("refused", name, exc.retry_after_s))


def _until(condition, timeout=10.0):
    """Poll ``condition`` until it holds (a slow, busy host may take a while to start a thread)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_budget_queue_fifo_and_refusals():
    gate = Admission(_config(budget_mb=100, slots=4, queue=2))
    log: list = []
    release_a, release_b = threading.Event(), threading.Event()
    a_in, b_in, c_in = threading.Event(), threading.Event(), threading.Event()
    ta = threading.Thread(target=_hold, args=(gate, 70 * MiB, a_in, release_a, log, "a"))
    ta.start()
    assert a_in.wait(5)
    # b (60 MB) does not fit beside a (70 MB): it queues; c (10 MB) would fit but must not jump the queue
    tb = threading.Thread(target=_hold, args=(gate, 60 * MiB, b_in, release_b, log, "b"))
    tb.start()
    assert _until(lambda: gate.stats()["waiting"] == 1)
    tc = threading.Thread(target=_hold, args=(gate, 10 * MiB, c_in, release_b, log, "c"))
    tc.start()
    assert _until(lambda: gate.stats()["waiting"] == 2)
    assert gate.stats()["in_use_mb"] == 70
    # the queue (2) is full: the next one is refused at once, with a Retry-After
    with pytest.raises(Overloaded, match="busy") as info:
        with gate.admit(MiB):
            pass
    assert info.value.retry_after_s >= 1
    release_a.set()
    assert b_in.wait(5) and c_in.wait(5)
    assert [e[1] for e in log if e[0] == "in"] == ["a", "b", "c"]  # FIFO
    release_b.set()
    for t in (ta, tb, tc):
        t.join(10)
    s = gate.stats()
    assert (s["computing"], s["waiting"], s["in_use_mb"]) == (0, 0, 0)
    assert s["admitted"] == 3 and s["refused_busy"] == 1


def test_waiting_too_long_is_refused():
    gate = Admission(_config(budget_mb=100, slots=1, queue=4, wait_s=0.3))
    started, release, log = threading.Event(), threading.Event(), []
    t = threading.Thread(target=_hold, args=(gate, MiB, started, release, log, "a"))
    t.start()
    assert started.wait(5)
    t0 = time.monotonic()
    with pytest.raises(Overloaded, match="no turn within 0.3 s"):
        with gate.admit(MiB):
            pass
    assert 0.25 < time.monotonic() - t0 < 3
    release.set()
    t.join(10)
    with gate.admit(MiB):  # free again
        assert gate.stats()["computing"] == 1


def test_config_from_env_and_defaults(monkeypatch):
    monkeypatch.setenv("COLORIZE_RT_MEMORY_BUDGET_MB", "300")
    monkeypatch.setenv("COLORIZE_RT_SLOTS", "3")
    cfg = AdmissionConfig.from_env(queue=5)
    assert (cfg.budget_mb, cfg.slots, cfg.queue) == (300.0, 3, 5)
    monkeypatch.setenv("COLORIZE_RT_SLOTS", "many")
    with pytest.raises(ValueError, match="COLORIZE_RT_SLOTS='many' is not an integer"):
        AdmissionConfig.from_env()
    monkeypatch.delenv("COLORIZE_RT_SLOTS")
    monkeypatch.delenv("COLORIZE_RT_MEMORY_BUDGET_MB")
    d = AdmissionConfig.default()
    assert 256 <= d.budget_mb <= 1536 and d.slots >= 1 and d.queue == 4 * d.slots
