"""Every number a console script takes is bounded at the command line: one line and exit 2 outside the range,
before any work (the brief: every parameter of every entry point is bounded)."""

from __future__ import annotations

import importlib
import math

import click
import pytest
import tomllib

from colorize_rt.cli import main as rt_main
from colorize_rt.runtime.backends.session import ort_session
from colorize_rt.runtime.limits import THREADS, ParameterError

from .conftest import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
ARGPARSE = {"colorize-train": "TrainConfig's BOUNDS (test_training)", "colorize-soup": "weights checked in soup.py"}


def _commands(script: str) -> list[click.Command]:
    module = importlib.import_module(SCRIPTS[script].split(":")[0])
    commands = [v for v in vars(module).values() if isinstance(v, click.Command)]
    if module.__name__ == "colorize_rt.cli":  # colorize-rt's dispatcher: the colorizer and `colorize-rt serve`
        for name in ("colorize_rt.runtime.cli", "colorize_rt.serve.cli"):
            commands += [v for v in vars(importlib.import_module(name)).values() if isinstance(v, click.Command)]
    return commands


def _bounds(param_type) -> tuple[float, float] | None:
    if isinstance(param_type, (click.IntRange, click.FloatRange)):
        return param_type.min, param_type.max
    bound = getattr(param_type, "bound", None)  # runtime.limits.Bound.click_type()
    return (bound.lo, bound.hi) if bound is not None else None


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - set(ARGPARSE)))
def test_every_numeric_option_has_both_bounds(script):
    commands = _commands(script)
    assert commands, f"{script}: no click command found"
    numeric = 0
    for command in commands:
        for param in command.params:
            t = param.type
            if isinstance(t, click.types.BoolParamType) or not (
                isinstance(t, (click.types.IntParamType, click.types.FloatParamType)) or _bounds(t)
            ):
                continue
            numeric += 1
            lo_hi = _bounds(t)
            assert lo_hi is not None, f"{script} {param.name}: unbounded {type(t).__name__}"
            lo, hi = lo_hi
            assert lo is not None and hi is not None and math.isfinite(hi), f"{script} {param.name}: {lo_hi}"
            ctx = click.Context(command)
            with pytest.raises(click.BadParameter):
                t.convert(str(hi * 2 + 1), param, ctx)
            if isinstance(param.default, (int, float)) and not isinstance(param.default, bool):  # not click's UNSET
                assert lo <= t.convert(param.default, param, ctx) <= hi, (script, param.name)
    assert numeric or script in ("colorize-soup",), f"{script}: expected numeric options"


def test_threads_are_bounded_in_the_library_and_on_the_command_line(tiny_onnx, tmp_path, capsys):

    assert THREADS.check(0) == 0 and THREADS.check("256") == 256
    with pytest.raises(ParameterError, match="threads must be an integer from 0 to 256; got 99999"):
        ort_session(tiny_onnx, threads=99999)
    assert ort_session(tiny_onnx, threads=1).get_inputs()
    image = ROOT / "docs" / "images"
    src = next(p for p in sorted(image.iterdir()) if p.suffix in (".png", ".jpg"))
    out = tmp_path / "out.png"
    with pytest.raises(SystemExit) as exited:
        rt_main([str(src), "-o", str(out), "--threads", "99999"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "threads must be an integer from 0 to 256" in err and "Traceback" not in err
    assert not out.exists()
