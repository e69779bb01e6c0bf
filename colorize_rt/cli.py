"""``colorize-rt``: the installed command, combining layers that must not import each other.

``colorize-rt [OPTIONS] INPUTS...`` is the runtime's command (``runtime.cli``); ``colorize-rt serve ...``
is the UI server (``serve.cli``); ``--info`` also reports the result cache (``serve.cache``). Only this
module imports both, so the runtime never imports ``serve``. Never imports torch.
"""

from __future__ import annotations

import sys

from .runtime import cli as runtime_cli


def _cache_info() -> dict:  # serve.cache is imported for --info only: not on every start
    from .serve.cache import cache_info

    return cache_info()


def _format_cache_info(info: dict) -> str:
    from .serve.cache import format_cache_info

    return format_cache_info(info)


def main(argv: list[str] | None = None) -> None:
    """Run ``colorize-rt`` and exit with its code.

    Args:
        argv: arguments (default ``sys.argv[1:]``); a first argument ``serve`` runs the UI server.
    """
    runtime_cli.interrupt_on_sigterm()  # for both commands, as before the split
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # `colorize-rt serve --ui gradio|streamlit`
        from .serve.cli import serve_main

        sys.exit(serve_main(argv[1:], prog_name=f"{runtime_cli.PROG} serve"))
    runtime_cli.main(argv, info_sections={"cache": (_cache_info, _format_cache_info)})


if __name__ == "__main__":
    main()
