"""``colorize-rt serve --ui gradio|streamlit``: a thin click command over :func:`colorize_rt.serve.launch`."""

from __future__ import annotations

import sys

import click

from ..runtime.backends.registry import BACKENDS
from ..runtime.limits import MAX_PIXELS
from . import DEFAULT_PORTS, UIS, launch


@click.command(name="serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--ui", type=click.Choice(UIS), default="gradio", show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 exposes the app on the network).",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port (gradio 7860, streamlit 8501).")
@click.option("--share", is_flag=True, help="Gradio only: also open a public *.gradio.live link.")
@click.option("--model", default="default", show_default=True, help="default | default-int8 | PATH.onnx | PATH.engine")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0.1, 2048),
    default=20.0,
    show_default=True,
    help="Uploads larger than this are refused with a message.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(*MAX_PIXELS.range),
    help="Refuse images declaring more pixels (decompression-bomb guard; default 50000000); 0 = no limit.",
)
@click.option(
    "--memory-budget-mb",
    type=click.FloatRange(16, 1024 * 1024),
    help="Working memory of all requests computing at once (default: 1/4 of free memory, 256..1536).",
)
@click.option("--slots", type=click.IntRange(1, 256), help="Requests computing at once (default: the core count).")
@click.option("--queue", type=click.IntRange(0, 4096), help="Requests waiting at most (default: 4 x slots); more get 503.")
def serve_command(ui, host, port, share, model, backend, max_upload_mb, max_pixels, memory_budget_mb, slots, queue):
    """Run the interactive UI (Gradio or Streamlit) on localhost."""
    from ..core.lazy import MissingDependency

    try:
        return launch(
            ui,
            host,
            port or DEFAULT_PORTS[ui],
            share,
            model=model,
            backend=backend,
            max_upload_mb=max_upload_mb,
            max_pixels=max_pixels,
            budget_mb=memory_budget_mb,
            slots=slots,
            queue=queue,
        )
    except (MissingDependency, ValueError) as exc:  # ValueError: a bad COLORIZE_RT_* setting, one line
        raise click.UsageError(str(exc)) from None
    except OSError as exc:  # e.g. the port is taken
        raise click.UsageError(f"cannot serve on {host}:{port}: {exc}") from None


def serve_main(argv: list[str] | None = None, prog_name: str = "colorize-rt serve") -> int:
    """Entry used by ``colorize-rt serve ...`` and ``python -m colorize_rt.serve``."""
    try:
        rv = serve_command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"{prog_name}: error: {exc.format_message()}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(serve_main())
