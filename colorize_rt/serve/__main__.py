"""``python -m colorize_rt.serve --ui gradio|streamlit`` (same as ``colorize-rt serve``)."""

import sys

from .cli import serve_main

sys.exit(serve_main(prog_name="python -m colorize_rt.serve"))
