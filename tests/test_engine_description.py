"""The TensorRT engine description (runtime/backends/engine_description.py): sidecar schema, the one compatibility
check (TensorRT's documented version/hardware rules), rebuild hint, EngineMismatch."""

from __future__ import annotations

import json

import pytest

from colorize_rt.runtime.backends import engine_description as ed

DEV = {"gpu_name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6"}


def _sidecar(**kw):
    args = {
        "tensorrt_version": "10.7.0",
        "card": {"name": "rtx3060-12gb", "memory_gib": 12.0},
        "profiles": [{"name": "single", "min": [1, 1, 8, 8], "opt": [1, 1, 256, 256], "max": [1, 1, 2048, 2048]}],
        "precision": "fp16",
        "onnx_sha256": "ab" * 32,
        "onnx_path": "m.onnx",
        "temperature_shape": [],
        **DEV,
    }
    args.update(kw)
    return ed.make_sidecar(**args)


def test_sidecar_schema():
    s = _sidecar()
    assert s["format"] == ed.SIDECAR_FORMAT and s["profile"] == "rtx3060-12gb"
    assert s["inputs"]["temperature"] == {"dtype": "float32", "shape": [], "default": 0.38}
    assert s["inputs"]["L"]["profiles"][0]["name"] == "single"
    assert json.loads(json.dumps(s)) == s
    assert "temperature" not in _sidecar(temperature_shape=None)["inputs"]
    assert ed.temperature_default(_sidecar(default_temperature=0.5)) == 0.5 and ed.temperature_default(None) == 0.38
    with pytest.raises(ValueError, match="hardware_compatibility"):
        _sidecar(hardware_compatibility="turing_plus")


@pytest.mark.parametrize(
    ("built", "running", "vc", "ok"),
    [
        ("10.7.0", "10.7.0", False, True),
        ("10.7.0", "10.8.0", False, False),  # plain engines: exactly the same version
        ("10.7.0", "10.13.0.35", True, True),  # version-compatible: later runtime, same major
        ("11.0.0", "11.4.0.106", True, True),
        ("10.13.0.35", "10.7.0", True, False),  # never an older runtime
        ("10.13.0.35", "11.4.0.106", True, True),  # documented pair 10 -> 11
        ("8.6.1", "10.0.1", True, True),  # documented pair 8 -> 10
        ("8.6.1", "11.4.0", True, False),  # 8 -> 11 is not supported
        ("10.13.0", "12.0.0", True, False),  # "runtime >= build" would have accepted this
        ("8.5.3", "8.6.1", True, False),  # version compatibility starts at 8.6
    ],
)
def test_version_rules(built, running, vc, ok):
    problem = ed.version_problem(built, running, vc)
    assert (problem is None) is ok, problem
    s = _sidecar(tensorrt_version=built, version_compatible=vc)
    assert (ed.compatibility_problems(s, tensorrt_version=running, **DEV) == []) is ok


def test_hardware_rules():
    ok = {"tensorrt_version": "10.7.0", **DEV}
    assert ed.compatibility_problems(_sidecar(), **ok) == []
    assert ed.compatibility_problems(_sidecar(), **{**ok, "gpu_name": "NVIDIA RTX A4000"}) == [
        "built on NVIDIA GeForce RTX 3060, this GPU is NVIDIA RTX A4000"
    ]
    assert ed.compatibility_problems(_sidecar(), **{**ok, "compute_capability": (8, 9), "gpu_name": "RTX 4090"})[0] == (
        "built for compute capability 8.6, this GPU is 8.9"
    )
    hc = _sidecar(hardware_compatibility="ampere_plus")
    assert ed.compatibility_problems(hc, **{**ok, "gpu_name": "NVIDIA H100", "compute_capability": "9.0"}) == []
    assert "Ampere or newer" in ed.compatibility_problems(hc, **{**ok, "gpu_name": "Tesla T4", "compute_capability": "7.5"})[0]
    same = _sidecar(hardware_compatibility="same_compute_capability")
    assert ed.compatibility_problems(same, **{**ok, "gpu_name": "NVIDIA RTX A6000"}) == []
    assert ed.compatibility_problems(same, **{**ok, "compute_capability": "8.9"})
    changed = ed.compatibility_problems(_sidecar(), **ok, onnx_sha256="cd" * 32)
    assert changed == ["the ONNX model changed since the engine was built"]


def test_check_compatible_is_one_line_with_the_rebuild_command():
    s = _sidecar(version_compatible=True, hardware_compatibility="ampere_plus")
    with pytest.raises(ed.EngineMismatch) as e:
        ed.check_compatible(s, "/engines/m.engine", tensorrt_version="12.0.0", **DEV)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m.engine does not match this machine: built with TensorRT 10.7.0")
    flags = "--version-compatible --hardware-compatible"
    assert msg.endswith(f"rebuild it: colorize-engine m.onnx --profile rtx3060-12gb {flags} -o /engines/m.engine")
    ed.check_compatible(s, "m.engine", tensorrt_version="11.1.0", **DEV)  # fine: 10 -> 11


def test_load_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    assert ed.sidecar_path(engine) == tmp_path / "m.engine.json"
    assert ed.load_sidecar(engine) is None
    ed.sidecar_path(engine).write_text(json.dumps(_sidecar()))
    assert ed.load_sidecar(engine)["precision"] == "fp16"
    ed.sidecar_path(engine).write_text("{not json")
    with pytest.raises(ed.EngineMismatch, match="not valid JSON.*colorize-engine"):
        ed.load_sidecar(engine)
    ed.sidecar_path(engine).write_text("[1, 2]")
    with pytest.raises(ed.EngineMismatch, match="not a JSON object"):
        ed.load_sidecar(engine)


def test_one_home_for_the_engine_description():
    """The builder and the runner use this module's names; neither defines its own."""
    from colorize_rt.export import tensorrt_engine
    from colorize_rt.runtime.backends import tensorrt_runner

    for name in ("EngineMismatch", "sidecar_path", "make_sidecar", "rebuild_hint"):
        for mod in (tensorrt_engine, tensorrt_runner):
            obj = getattr(mod, name, None)
            assert obj is None or obj is getattr(ed, name), (mod.__name__, name)
    for gone in ("ensure_engine", "verify_engine", "read_sidecar", "check_sidecar", "EngineMismatch"):
        assert gone not in vars(tensorrt_engine) or vars(tensorrt_engine)[gone] is getattr(ed, gone, None)
