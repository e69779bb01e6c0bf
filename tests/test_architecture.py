"""The package's architecture, checked on its source (AST scans, no imports of the package needed).

* Imports point one way: core <- models <- runtime <- eval <- training / export / calibration <-
  serve / bench, with ``colorize_rt/cli.py`` (and ``__main__.py``) on top combining layers for the
  ``colorize-rt`` command. Module-level and function-level imports count, relative and absolute, and
  so do ``require("...")`` / ``importlib.import_module("...")`` with a literal name. Within one layer
  different subpackages do not import each other, except the directions listed in ``SIDEWAYS``.
* Inside ``runtime``, parts point one way too (``RUNTIME_PARTS``): backends and the image pipeline
  never import each other; ``api`` joins them; video and the archive batch job sit on ``api``; the
  command (``runtime.cli``) is on top.
* ``core`` and ``runtime`` never import torch (the runtime install has no torch); no module imports
  the test helpers in ``tests/``.
* No public name is defined in two modules (``CONVENTIONS`` aside); a numpy formula and its torch
  twin are named ``x`` / ``x_torch`` and the twin's docstring names the numpy one.
* Every ``COLORIZE_*`` environment variable the project reads is listed in docs/ENVIRONMENT.md.
* ONNX Runtime sessions are made in one place (``runtime.session.ort_session``).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "colorize_rt"

# Subpackage -> layer; a module may import from lower layers and from its own subpackage.
LAYERS = {
    "core": 0,
    "models": 1,
    "runtime": 2,
    "eval": 3,
    "training": 4,
    "export": 4,
    "calibration": 4,
    "serve": 5,
    "bench": 5,
}
TOP = 6  # colorize_rt/cli.py and colorize_rt/__main__.py: may import anything
ROOT_LAYER = 0  # colorize_rt/__init__.py (the version string) sits with core
# Same-layer imports that are allowed, (importer, imported): calibration quantizes graphs that export
# named (export.graph's node prefixes and metadata helpers).
SIDEWAYS = {("calibration", "export")}
TORCH_FREE = {"core", "runtime"}
# runtime's parts (a subpackage or a top-level module of runtime) -> the parts each may import.
_BASE = {"limits"}
RUNTIME_PARTS = {
    "limits": set(),
    "backends": _BASE,
    "pipeline": _BASE,
    "guidance": _BASE | {"pipeline"},
    "api": _BASE | {"backends", "pipeline", "guidance"},
    "video": _BASE | {"backends", "pipeline", "guidance", "api"},
    "batch": _BASE | {"backends", "pipeline", "guidance", "api"},
    "cli": _BASE | {"backends", "pipeline", "guidance", "api", "video", "batch"},
}
# Public names that every command module / logger module has by convention (entry points, loggers).
CONVENTIONS = {"main", "cli", "log"}
DYNAMIC_IMPORTERS = {"require", "import_module"}


def _module_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute dotted name of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(path: Path, package_dir: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in a file, at any depth.

    Args:
        path: a ``.py`` file inside ``package_dir``.
        package_dir: the package's folder (``colorize_rt``).

    Returns:
        Imported names; ``from a.b import c`` gives ``a.b.c`` (``c`` may be a module or a member).
    """
    module = _module_name(path, package_dir)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0] if node.args else None
            if name in DYNAMIC_IMPORTERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return found


def _layer(dotted: str, package: str) -> tuple[str, int]:
    parts = dotted.split(".")
    if len(parts) == 1:
        return package, ROOT_LAYER
    sub = parts[1]
    if sub in ("cli", "__main__"):
        return sub, TOP
    if sub in LAYERS:
        return sub, LAYERS[sub]
    return sub, ROOT_LAYER  # a member of the root package (``from colorize_rt import __version__``)


def layer_violations(package_dir: Path) -> list[str]:
    """Every import that points the wrong way (or imports torch where it must not).

    Args:
        package_dir: the package's folder.

    Returns:
        One line per violation: ``file:line: importer -> imported (why)``.
    """
    package = package_dir.name
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        module = _module_name(path, package_dir)
        if module.split(".")[1:2] and module.split(".")[1] not in LAYERS and module.split(".")[1] not in ("cli", "__main__"):
            bad.append(f"{path.relative_to(package_dir.parent)}: module outside every layer (add it to LAYERS)")
            continue
        sub, layer = _layer(module, package)
        for line, name in imports_of(path, package_dir):
            where = f"{path.relative_to(package_dir.parent)}:{line}: {module} -> {name}"
            top = name.split(".")[0]
            if top == "torch" and sub in TORCH_FREE:
                bad.append(f"{where} ({sub} must stay torch-free)")
            if top == "tests":
                bad.append(f"{where} (test helpers live in tests/, the package never imports them)")
            if top != package:
                continue
            their_sub, their_layer = _layer(name, package)
            if their_sub == sub or layer == TOP:
                continue
            if their_layer > layer:
                bad.append(f"{where} ({sub} is below {their_sub})")
            elif their_layer == layer and (sub, their_sub) not in SIDEWAYS:
                bad.append(f"{where} ({sub} and {their_sub} are one layer; allowed sideways: {sorted(SIDEWAYS)})")
    return bad


def runtime_part_violations(package_dir: Path) -> list[str]:
    """Every import between runtime's parts that ``RUNTIME_PARTS`` does not allow.

    Args:
        package_dir: the package's folder.

    Returns:
        One line per violation: ``file:line: importer -> imported (why)``; a part missing from
        ``RUNTIME_PARTS`` is a violation of its own.
    """
    package = package_dir.name
    runtime = package_dir / "runtime"
    bad = []
    for path in sorted(runtime.rglob("*.py")) if runtime.is_dir() else []:
        module = _module_name(path, package_dir)
        parts = module.split(".")
        if len(parts) < 3:
            continue  # runtime/__init__.py
        part = parts[2]
        if part not in RUNTIME_PARTS:
            bad.append(f"{path.relative_to(package_dir.parent)}: runtime part '{part}' outside RUNTIME_PARTS")
            continue
        for line, name in imports_of(path, package_dir):
            their = name.split(".")
            if their[:2] != [package, "runtime"] or len(their) < 3 or their[2] == part:
                continue
            if their[2] not in RUNTIME_PARTS[part]:
                bad.append(
                    f"{path.relative_to(package_dir.parent)}:{line}: {module} -> {name} "
                    f"(runtime.{part} may import {sorted(RUNTIME_PARTS[part]) or 'no other part'})"
                )
    return bad


def public_definitions(package_dir: Path) -> dict[str, list[str]]:
    """Public names bound at module level (def, class, assignment), -> modules defining them.

    Args:
        package_dir: the package's folder.

    Returns:
        ``{name: [module, ...]}`` for every public module-level name.
    """
    defs: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package_dir.rglob("*.py")):
        module = _module_name(path, package_dir)
        for node in ast.parse(path.read_text()).body:
            names: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    elts = target.elts if isinstance(target, ast.Tuple) else [target]
                    names += [e.id for e in elts if isinstance(e, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                if not name.startswith("_"):
                    defs[name].append(module)
    return defs


def duplicate_names(package_dir: Path) -> dict[str, list[str]]:
    """Public names defined in more than one module (``CONVENTIONS`` excepted)."""
    return {k: v for k, v in public_definitions(package_dir).items() if len(v) > 1 and k not in CONVENTIONS}


def unpaired_torch_twins(package_dir: Path) -> list[str]:
    """``x_torch`` functions without a numpy ``x`` elsewhere, or whose docstring does not name ``x``."""
    defs = public_definitions(package_dir)
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_torch"):
                twin = node.name.removesuffix("_torch")
                if twin not in defs:
                    bad.append(f"{node.name}: no numpy twin '{twin}'")
                elif f"``{twin}``" not in (ast.get_docstring(node) or ""):
                    bad.append(f"{node.name}: docstring does not name its numpy twin '{twin}'")
    return bad


# -- the package --------------------------------------------------------------------------------


def test_imports_point_one_way():
    assert layer_violations(PACKAGE) == []


def test_runtime_parts_point_one_way():
    assert runtime_part_violations(PACKAGE) == []


def test_no_public_name_defined_twice():
    assert duplicate_names(PACKAGE) == {}


def test_torch_twins_are_named_and_documented():
    assert unpaired_torch_twins(PACKAGE) == []
    defs = public_definitions(PACKAGE)
    assert {"annealed_mean", "annealed_mean_torch", "soft_encode", "soft_encode_torch"} <= set(defs)


def test_onnx_runtime_sessions_come_from_one_helper():
    """``runtime.session.ort_session`` is the only place that builds ``InferenceSession`` / ``SessionOptions``."""
    home = PACKAGE / "runtime" / "backends" / "session.py"
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and path != home:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("InferenceSession", "SessionOptions"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert found == []


def test_every_environment_variable_is_documented():
    doc = (ROOT / "docs" / "ENVIRONMENT.md").read_text()
    used = set()
    for folder in ("colorize_rt", "tests", "benchmarks", "scripts", "docker"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sh", ".yml", ".yaml", ".cpu", ".gpu", ""}:
                used |= set(re.findall(r"\bCOLORIZE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore")))
    assert used, "the scan found no variables at all"
    assert sorted(v for v in used if f"`{v}`" not in doc) == []


# -- the checks themselves, on a synthetic package ------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "colorize_rt"
    for rel, text in {"__init__.py": "", **files}.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(pkg).parents:
            (pkg / parent / "__init__.py").touch()
        path.write_text(text)
    return pkg


def test_checker_accepts_downward_imports(tmp_path):
    pkg = _tree(
        tmp_path,
        {
            "core/a.py": "import numpy\n",
            "runtime/b.py": "from ..core import a\nfrom ..core.a import x\n",
            "serve/c.py": "def f():\n    from ..runtime.b import y\n    import colorize_rt.eval.d\n",
            "eval/d.py": "",
            "calibration/e.py": "from ..export.f import g\n",
            "export/f.py": "",
            "cli.py": "from .serve import c\nfrom .runtime import b\n",
        },
    )
    assert layer_violations(pkg) == []


@pytest.mark.parametrize(
    "rel, text, why",
    [
        ("runtime/x.py", "from ..serve.cli import main\n", "runtime is below serve"),
        ("runtime/x.py", "def f():\n    from ..serve import cli\n", "runtime is below serve"),  # function level
        ("runtime/x.py", "import colorize_rt.export.graph\n", "runtime is below export"),  # absolute
        ("core/x.py", "def f():\n    from colorize_rt.models import m\n", "core is below models"),
        ("runtime/x.py", "from ..cli import main\n", "runtime is below cli"),
        ("runtime/x.py", "from .. import serve\n", "runtime is below serve"),  # a subpackage as a name
        ("export/x.py", "from ..calibration import q\n", "export and calibration are one layer"),
        ("export/x.py", "from ..training.checkpoint import load\n", "export and training are one layer"),
        ("serve/x.py", "from ..bench import b\n", "serve and bench are one layer"),
        ("runtime/x.py", "def f():\n    require('colorize_rt.serve.cache')\n", "runtime is below serve"),  # dynamic
        ("runtime/x.py", "def f():\n    import torch\n", "runtime must stay torch-free"),
        ("core/x.py", "import importlib\nimportlib.import_module('torch')\n", "core must stay torch-free"),
        ("extra/x.py", "", "outside every layer"),
        ("serve/x.py", "def f():\n    from tests.serve_support import free_port\n", "the package never imports them"),
    ],
)
def test_checker_finds_violations(tmp_path, rel, text, why):
    pkg = _tree(tmp_path, {rel: text, "runtime/ok.py": "from ..core import a\n", "core/a.py": ""})
    found = layer_violations(pkg)
    assert found and all(why in f for f in found), found


@pytest.mark.parametrize(
    "rel, text, ok",
    [
        ("runtime/pipeline/x.py", "from ..backends.runners import OrtRunner\n", False),
        ("runtime/backends/x.py", "def f():\n    from ..pipeline import images\n", False),
        ("runtime/backends/x.py", "from ..api import Colorizer\n", False),
        ("runtime/api.py", "from .video import y\n", False),
        ("runtime/attic/x.py", "", False),  # a part nobody placed
        ("runtime/video/x.py", "from ..api import Colorizer\nfrom ..pipeline.images import read_image\n", True),
        ("runtime/cli.py", "from .batch import job\nfrom .video import clip\n", True),
        ("runtime/backends/x.py", "from ..limits import THREADS\nfrom .runners import OrtRunner\n", True),
    ],
)
def test_checker_finds_runtime_part_violations(tmp_path, rel, text, ok):
    pkg = _tree(tmp_path, {rel: text})
    assert (runtime_part_violations(pkg) == []) is ok, runtime_part_violations(pkg)


def test_checker_finds_duplicate_names_and_unpaired_twins(tmp_path):
    pkg = _tree(
        tmp_path,
        {
            "core/a.py": "METHODS = ('a',)\ndef mean(x):\n    return x\n_private = 1\nlog = None\n",
            "serve/b.py": "from ..core import a\nMETHODS = a.METHODS\n_private = 2\nlog = None\n",
            "models/c.py": 'def mean_torch(x):\n    """Torch twin of ``mean``."""\n',
            "models/d.py": 'def median_torch(x):\n    """No twin."""\n',
        },
    )
    assert duplicate_names(pkg) == {"METHODS": ["colorize_rt.core.a", "colorize_rt.serve.b"]}
    assert unpaired_torch_twins(pkg) == ["median_torch: no numpy twin 'median'"]
