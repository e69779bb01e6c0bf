"""The TensorRT and cuda-python APIs the code uses, checked against the real packages without a GPU.

* Every TensorRT name the code uses (collected by AST from the builder and the runner) exists in the
  real ``tensorrt-cu12-bindings`` 10.0.1, 10.13.0.35 and 11.4.0.106 wheels (names read from the
  compiled module's strings and its ``__init__.py``; the module cannot be imported without libnvinfer),
  and, class by class, in ``tensorrt-stubs`` 10.13.
* The strict fake (``tests/fake_tensorrt.py``) has the stubs' method and parameter names.
* The real cuda-python 12.x and 13.x layouts import without a GPU, and activating the runner on a machine
  without an NVIDIA driver is one ``BackendError`` line.

The wheels are downloaded from PyPI into a cache (tests/wheels.py); without network these tests skip
with pip's reason.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import fake_tensorrt
from tests.wheels import fetch

ROOT = Path(__file__).resolve().parents[1]
TRT_SOURCES = [
    ROOT / p
    for p in (
        "colorize_rt/export/tensorrt_engine.py",
        "colorize_rt/runtime/backends/tensorrt_runner.py",
        "benchmarks/gpu_check.py",
    )
]
BINDINGS = ["10.0.1", "10.13.0.35", "11.4.0.106"]
FOREIGN = ("3.11", ("manylinux_2_17_x86_64", "manylinux_2_28_x86_64"))  # only read, never imported

# What the code names each TensorRT object (receiver expression -> TensorRT class).
RECEIVERS = {
    "builder": "Builder",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "config": "IBuilderConfig",
    "prof": "IOptimizationProfile",
    "cache": "ITimingCache",
    "fresh": "ITimingCache",
    "serialized": "IHostMemory",
    "self._runtime": "Runtime",
    "self.engine": "ICudaEngine",
    "self.context": "IExecutionContext",
}
TRT_MODULE_NAMES = {"trt", "self._trt"}


def _expr(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _expr(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def used_tensorrt_names(paths=None) -> set[tuple[str, str]]:
    """(owner, attribute) pairs: owner is ``tensorrt`` for module attributes, a module attribute's name for
    its members (``trt.Logger.WARNING`` -> ("Logger", "WARNING")), else the receiver's TensorRT class."""
    used = set()
    for path in paths or TRT_SOURCES:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
            ):
                recv, name = _expr(node.args[0]), node.args[1]
                if isinstance(name, ast.Constant) and recv in RECEIVERS:
                    used.add((RECEIVERS[recv], name.value))
            if not isinstance(node, ast.Attribute):
                continue
            recv = _expr(node.value)
            if recv in TRT_MODULE_NAMES:
                used.add(("tensorrt", node.attr))
            elif recv in RECEIVERS:
                used.add((RECEIVERS[recv], node.attr))
            elif isinstance(node.value, ast.Attribute) and _expr(node.value.value) in TRT_MODULE_NAMES:
                used.add((node.value.attr, node.attr))
    return used


def test_the_collector_sees_the_code():
    used = used_tensorrt_names()
    for expected in [
        ("tensorrt", "Builder"),
        ("IBuilderConfig", "set_timing_cache"),
        ("ITimingCache", "serialize"),
        ("IExecutionContext", "execute_async_v3"),
        ("IExecutionContext", "set_optimization_profile_async"),
        ("Runtime", "engine_host_code_allowed"),
        ("BuilderFlag", "VERSION_COMPATIBLE"),
        ("Logger", "WARNING"),
        ("tensorrt", "nptype"),
    ]:
        assert expected in used
    # the strict fake covers everything the code uses, so the fake-backed tests exercise real call shapes
    fake_classes = {n: getattr(fake_tensorrt, n) for n in dir(fake_tensorrt) if isinstance(getattr(fake_tensorrt, n), type)}
    for owner, attr in used:
        if owner == "tensorrt":
            assert hasattr(fake_tensorrt, attr), attr
        elif owner in fake_classes and owner != "INetworkDefinition":
            assert hasattr(fake_classes[owner], attr) or attr in fake_classes[owner].__init__.__code__.co_names, (owner, attr)


def _binding_names(version: str) -> tuple[set[str], bytes]:
    dirs, why = fetch(f"tensorrt-cu12-bindings=={version}", foreign=FOREIGN)
    if not dirs:
        pytest.skip(why)
    (pkg,) = [p for d in dirs for p in d.glob("tensorrt_bindings") if p.is_dir()]
    blob = (pkg / "tensorrt.so").read_bytes()
    tree = ast.parse((pkg / "__init__.py").read_text())
    py_names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    py_names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    return py_names, blob


def _in_strings(name: str, blob: bytes) -> bool:
    """``name`` is a C string of the compiled module, or the tail of one (the linker merges string literals
    that end alike: "num_errors" lives inside "get_num_errors", "Builder" inside "IBuilder")."""
    return name.encode() + b"\0" in blob


@pytest.mark.parametrize("version", BINDINGS)
def test_every_tensorrt_name_exists_in_the_real_bindings(version):
    py_names, blob = _binding_names(version)
    missing = []
    for owner, attr in sorted(used_tensorrt_names()):
        names = [attr] if owner == "tensorrt" else [owner, attr]
        for n in names:
            if n not in py_names and not _in_strings(n, blob):
                missing.append(f"{owner}.{attr}")
    assert not missing, f"TensorRT {version} lacks {sorted(set(missing))}"


def test_a_removed_name_would_be_caught():
    """The check can fail: names TensorRT dropped are absent from the versions that dropped them."""
    _, blob_10 = _binding_names("10.0.1")
    _, blob_11 = _binding_names("11.4.0.106")
    assert _in_strings("execute_async_v3", blob_10) and _in_strings("num_errors", blob_10)
    assert not _in_strings("device_memory_size_v2", blob_10)  # added in 10.1
    assert not _in_strings("execute_async_v2", blob_10)  # removed in 10.0
    assert not _in_strings("device_memory_size", blob_11) and _in_strings("device_memory_size_v2", blob_11)  # removed in 11


def _lenient_parse(text: str) -> ast.Module:
    """ast.parse, blanking the few stub lines that are not valid Python (pybind11 signatures such as a
    parameter without default after defaulted ones)."""
    lines = text.splitlines()
    for _ in range(200):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            k = (exc.lineno or 1) - 1
            indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
            body = "" if lines[k].rstrip().endswith(":") else " ..."
            lines[k] = f"{indent}def _unparsable_{k}(self):{body}"
    raise AssertionError("tensorrt.pyi does not parse")


def _stubs() -> dict[str, tuple[set[str], list[str], dict]]:
    dirs, why = fetch("tensorrt-stubs==10.13.0.35.1")
    if not dirs:
        pytest.skip(why)
    (pyi,) = [p for d in dirs for p in d.glob("tensorrt_bindings/tensorrt.pyi")]
    classes = {}
    for node in _lenient_parse(pyi.read_text()).body:
        if isinstance(node, ast.ClassDef):
            members, sigs = set(), {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                    sigs.setdefault(item.name, []).append([a.arg for a in item.args.args[1:]])
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.ClassDef):
                    members.add(item.name)
            classes[node.name] = (members, [_expr(b) for b in node.bases], sigs)
    return classes


def _members(classes, name: str) -> set[str]:
    members, bases, _ = classes[name]
    out = set(members)
    for b in bases:
        if b in classes:
            out |= _members(classes, b)
    return out


def test_every_tensorrt_name_exists_in_the_stubs_class_by_class():
    classes = _stubs()
    missing = []
    for owner, attr in sorted(used_tensorrt_names()):
        if owner == "tensorrt":
            if attr not in classes and attr not in {"nptype", "__version__"}:
                missing.append(attr)
        elif owner not in classes or attr not in _members(classes, owner):
            missing.append(f"{owner}.{attr}")
    assert not missing, f"not in tensorrt-stubs 10.13: {missing}"


FAKE_TO_STUB = [
    "Builder",
    "IBuilderConfig",
    "IOptimizationProfile",
    "OnnxParser",
    "ITimingCache",
    "Runtime",
    "ICudaEngine",
    "IExecutionContext",
    "Logger",
]


@pytest.mark.parametrize("name", FAKE_TO_STUB)
def test_fake_follows_the_stubs(name):
    classes = _stubs()
    _, _, sigs = classes[name]
    members = _members(classes, name)
    fake = getattr(fake_tensorrt, name)
    for attr, value in vars(fake).items():
        if attr.startswith("_") and (attr != "__init__" or "__init__" not in sigs):
            continue  # interfaces without a Python constructor in TensorRT still need one in the fake
        if attr not in members and not (name == "IBuilderConfig" and attr in {"valid"}):
            if callable(value) or isinstance(value, property):
                assert attr in {"valid"}, f"{name}.{attr} is not in the stubs"
            continue
        if inspect.isfunction(value) and attr in sigs:
            params = [p for p in inspect.signature(value).parameters if p != "self"]
            assert any(s[: len(params)] == params for s in sigs[attr]), f"{name}.{attr}{params} vs stubs {sigs[attr]}"


def _cuda_layout(major: int) -> list[Path]:
    spec = "cuda-bindings>=12.6,<13" if major == 12 else "cuda-bindings>=13,<14"
    dirs, why = fetch(spec, deps=True)
    if not dirs:
        pytest.skip(why)
    return dirs


@pytest.mark.parametrize("major", [12, 13])
def test_real_cuda_python_without_a_driver_is_one_backend_error_line(major, tmp_path):
    """Real cuda-python (both layouts), the strict fake TensorRT: no NVIDIA driver here, so activation
    fails in cudaSetDevice, and the user sees one actionable line."""
    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver")
    dirs = _cuda_layout(major)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"never read: activation stops before deserialising")
    code = textwrap.dedent(f"""
        import json, sys
        from tests import fake_tensorrt
        sys.modules["tensorrt"] = fake_tensorrt
        from cuda.bindings import runtime as cudart
        import cuda.bindings
        from colorize_rt.runtime.backends.registry import BackendError, open_runner
        try:
            open_runner({str(engine)!r}, "tensorrt")
            msg = None
        except BackendError as exc:
            msg = str(exc)
        print(json.dumps({{"msg": msg, "file": cudart.__file__, "version": cuda.bindings.__version__}}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, dirs), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"].startswith(f"{major}.") and str(dirs[0].parent) in out["file"]
    msg = out["msg"]
    assert msg and "\n" not in msg and msg.startswith("--backend tensorrt failed to initialise: cudaSetDevice failed: cudaError")


def test_installed_cuda_python_layout_imports_without_a_gpu():
    """The cuda-python the dev extra installs (12.x): the module and every function the runner calls."""
    cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed (dev extra)")
    from colorize_rt.runtime.backends import tensorrt_runner

    tree = ast.parse(inspect.getsource(tensorrt_runner))
    used = sorted(
        {_expr(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _expr(n).startswith(("cudart.", "self._cudart."))}
    )
    chains = {u.split("cudart.", 1)[1] for u in used}
    assert {"cudaMemcpyAsync", "cudaStreamCreateWithFlags", "cudaMemcpyKind.cudaMemcpyDeviceToHost"} <= chains
    for chain in chains:
        obj = cudart
        for part in chain.split("."):
            obj = getattr(obj, part)
    assert tensorrt_runner._cudart() is cudart
