"""Embed the known-answer probe (``core.probe``, ``runtime.selfcheck.make_probe``) into an ONNX model's
metadata, keeping everything else (graph, weights, other metadata) as it is.

``python -m colorize_rt.export.probe MODEL.onnx --reference FP32.onnx [-o OUT.onnx]`` (in place by default,
written atomically). ``colorize-export`` and ``colorize-calibrate`` call ``probe_metadata`` themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..core.atomic import atomic_path
from ..core.probe import PROBE_KEY
from .graph import get_metadata, set_metadata


def probe_metadata(reference: str | Path, temperature: float | None = None) -> dict[str, str]:
    """Returns: ``{"selfcheck_probe": ...}`` with the fp32 ``reference`` model's answer on the probe crop.

    Args:
        reference: the fp32 ONNX model the probe's reference output comes from.
        temperature: annealed-mean temperature (default: the model's own default).
    """
    from ..runtime.backends.selfcheck import make_probe

    return {PROBE_KEY: make_probe(reference, temperature)}


def ensure_probe(metadata: dict[str, str], onnx_path: str | Path) -> dict[str, str]:
    """Returns: ``metadata`` with a probe: its own when it has one, else one computed from ``onnx_path`` (for
    ONNX files made elsewhere; the reference is then that model's own ONNX Runtime CPU output).

    Args:
        metadata: an ONNX model's metadata props.
        onnx_path: that model.
    """
    if metadata.get(PROBE_KEY):
        return dict(metadata)
    return {**metadata, **probe_metadata(onnx_path)}


def embed_probe(model: str | Path, reference: str | Path, output: str | Path | None = None) -> Path:
    """Write ``model`` with a probe computed from ``reference`` to ``output`` (default: in place, atomically).

    Args:
        model: the ONNX model to carry the probe (fp32, fp16 or INT8).
        reference: its fp32 reference model (may be ``model`` itself when that is fp32).
        output: where to write (default ``model``).

    Returns:
        The written path.
    """
    import onnx

    model, output = Path(model), Path(output or model)
    meta = probe_metadata(reference)
    proto = onnx.load(str(model))  # loaded after the reference ran: picks up concurrent rewrites of the file
    set_metadata(proto, {**get_metadata(proto), **meta})
    with atomic_path(output) as tmp:
        onnx.save(proto, str(tmp))
    return output


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), help="fp32 reference (default: MODEL).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output (default: MODEL, in place).")
def main(model, reference, output):
    """Embed the known-answer probe into MODEL's metadata."""
    try:
        out = embed_probe(model, reference or model, output)
    except (ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"wrote {out} (known-answer probe from {Path(reference or model).name})")


if __name__ == "__main__":  # pragma: no cover
    main()
