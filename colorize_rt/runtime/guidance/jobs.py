"""Colorize a list of (input, output) jobs with hints and/or a palette (the ``colorize-rt --hint/--palette`` path):
one photo after another, each decoded, colorized by the caller's function, and written atomically; a photo that
fails (unreadable, a hint outside it) is one line and the run goes on."""

from __future__ import annotations

import time
from collections.abc import Callable

from tqdm import tqdm

from ..pipeline.folder import Job, Options, Summary
from ..pipeline.images import DecodedImage, ImageError, read_image, side_by_side, write_image
from ..pipeline.modes import gray_of
from .spec import GuidanceError


def run_guided_jobs(
    jobs: list[Job],
    colorize: Callable[[DecodedImage], DecodedImage],
    opts: Options,
    *,
    report: Callable[[str], None],
    progress: bool = True,
) -> Summary:
    """Run ``jobs`` through ``colorize``.

    Args:
        jobs: (input, output) pairs (``pipeline.folder.plan_outputs``).
        colorize: a decoded image -> its colorized image (the hints and palette bound in).
        opts: the run's options (``skip_existing``, ``max_pixels``, ``side_by_side``, ``quality`` are read).
        report: where one-line messages go.
        progress: show a progress bar.

    Returns:
        The ``Summary``.
    """
    t0 = time.perf_counter()
    todo = [job for job in jobs if not (opts.skip_existing and job.dst.exists())]
    summary = Summary(skipped=len(jobs) - len(todo))
    with tqdm(total=len(todo), disable=not progress or len(todo) < 2, unit="img", desc="colorize") as bar:
        for job in todo:
            try:
                image = read_image(job.src, opts.max_pixels)
                colour = colorize(image)
                if opts.side_by_side:
                    colour = side_by_side(gray_of(image), colour)
                write_image(colour, job.dst, quality=opts.quality)
                summary.done += 1
            except (ImageError, GuidanceError, ValueError) as exc:
                summary.failed += 1
                msg = f"{job.src}: {' '.join(str(exc).split())}" if not isinstance(exc, ImageError) else str(exc)
                summary.errors.append(msg)
                (bar.write if progress and len(todo) > 1 else report)(f"colorize-rt: error: {msg}")
            bar.update(1)
    summary.seconds = time.perf_counter() - t0
    return summary
