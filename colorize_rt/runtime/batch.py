"""Many inputs: expand files/folders/globs, plan output paths, and run decode / infer / encode overlapped.

Decoding (+ fit-mode preprocessing) runs in a reader thread a few images ahead, the network in the calling
thread, recombination + encoding in a writer thread, so the model is kept busy. A bad input is reported
in one line and skipped; the rest are still processed.
"""

from __future__ import annotations

import glob
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .images import (
    DEFAULT_MAX_PIXELS,
    READ_EXTS,
    WRITE_EXTS,
    ImageError,
    read_image,
    side_by_side,
    write_image,
)
from .pipeline import gray_of

_GLOB_CHARS = set("*?[")


class UsageError(ValueError):
    """Bad command-line usage (exit code 2); one line."""


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass
class Options:
    mode: str = "fit"
    size: int = 256
    tile: int = 512
    overlap: int = 64
    scale: float = 1.0
    temperature: float | None = None
    side_by_side: bool = False
    skip_existing: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    quality: int = 95
    reference: object = None  # DecodedImage for method "transfer"


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        per = f", {self.seconds / self.done:.2f} s/image" if self.done else ""
        return f"colorize-rt: {self.done} colorized, {self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s{per}"


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def expand_inputs(items: list[str]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files, folders (recursive, image extensions, hidden entries skipped) and globs ->
    ([(path, root folder or None)], [one-line errors for items that match nothing])."""
    found: list[tuple[Path, Path | None]] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(p: Path, root: Path | None) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append((p, root))

    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READ_EXTS and not _hidden(f, p))
            if not files:
                errors.append(f"{item}: folder has no images")
            for f in files:
                add(f, p)
        elif p.exists():
            add(p, None)
        elif _GLOB_CHARS & set(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                errors.append(f"{item}: no files match")
            for f in files:
                add(f, None)
        else:
            errors.append(f"{item}: no such file")
    return found, errors


def _out_ext(src: Path, fmt: str | None) -> str:
    if fmt:
        ext = "." + fmt.lower().lstrip(".")
    else:
        ext = src.suffix.lower() if src.suffix.lower() in WRITE_EXTS else ".png"
    if ext not in WRITE_EXTS:
        raise UsageError(f"unsupported output format '{ext}': use one of {', '.join(sorted(WRITE_EXTS))}")
    return ext


def plan_outputs(inputs: list[tuple[Path, Path | None]], output: str | None, fmt: str | None, many: bool = False) -> list[Job]:
    """Output path of every input. No ``-o``: ``<stem>_color<ext>`` next to the input. ``-o FILE``: one
    input only. ``-o DIR``: ``DIR/<input file name>`` (sub-folders of a folder input kept)."""
    jobs: list[Job] = []
    out = Path(output) if output else None
    to_dir = out is not None and (
        many
        or len(inputs) > 1
        or out.is_dir()
        or str(output).endswith(("/", os.sep))
        or not out.suffix
        or any(root for _, root in inputs)
    )
    if out is not None and not to_dir and out.suffix.lower() not in WRITE_EXTS:
        raise UsageError(f"-o {output}: unsupported output format; use one of {', '.join(sorted(WRITE_EXTS))}")
    if out is not None and to_dir and out.exists() and not out.is_dir():
        raise UsageError(f"-o {output} is a file but there are several inputs: pass a folder")
    for src, root in inputs:
        if out is None:
            dst = src.with_name(f"{src.stem}_color{_out_ext(src, fmt)}")
        elif to_dir:
            rel = src.relative_to(root) if root is not None else Path(src.name)
            dst = (out / rel).with_suffix(_out_ext(src, fmt) if (fmt or src.suffix.lower() not in WRITE_EXTS) else src.suffix)
        else:
            dst = out.with_suffix("." + fmt.lower().lstrip(".")) if fmt else out
            _out_ext(dst, None)
        jobs.append(Job(src, dst))
    srcs = {src.resolve(): src for src, _ in inputs}
    targets: dict[Path, Path] = {}
    for job in jobs:
        key = job.dst.resolve()
        if key in srcs:
            raise UsageError(f"refusing to overwrite input {srcs[key]}: choose another -o or --format")
        if key in targets:
            raise UsageError(f"{targets[key]} and {job.src} would both be written to {job.dst}: use separate runs")
        targets[key] = job.src
    return jobs


def run_batch(
    jobs: list[Job],
    engine,
    opts: Options,
    *,
    report: Callable[[str], None],
    progress: bool = True,
    prefetch: int = 2,
) -> Summary:
    """Colorize ``jobs`` with ``engine``; failures are reported (one line each) and counted."""
    from tqdm import tqdm

    summary = Summary()
    t0 = time.perf_counter()
    todo = []
    for job in jobs:
        if opts.skip_existing and job.dst.exists():
            summary.skipped += 1
        else:
            todo.append(job)
    fit = opts.mode == "fit" and engine.method != "transfer"
    bar = tqdm(total=len(todo), disable=not progress, unit="img", desc="colorize", dynamic_ncols=True)

    def fail(job: Job, exc: BaseException) -> None:
        summary.failed += 1
        msg = str(exc) if isinstance(exc, ImageError) else f"{job.src}: {' '.join(str(exc).split()) or type(exc).__name__}"
        summary.errors.append(msg)
        (bar.write if progress else report)(f"colorize-rt: error: {msg}")

    def read(job: Job):
        image = read_image(job.src, opts.max_pixels)
        return image, engine.prepare_fit(image, opts.size) if fit else None

    def finish(job: Job, image, ab):
        colour = engine.finish_fit(image, ab) if fit else ab
        if opts.side_by_side:
            colour = side_by_side(gray_of(image), colour)
        write_image(colour, job.dst, quality=opts.quality)

    readers = ThreadPoolExecutor(1, thread_name_prefix="colorize-read")
    writers = ThreadPoolExecutor(1, thread_name_prefix="colorize-write")
    reads: deque[tuple[Job, Future]] = deque()
    writes: deque[tuple[Job, Future]] = deque()

    def drain_writes(keep: int) -> None:
        while len(writes) > keep:
            wjob, fut = writes.popleft()
            try:
                fut.result()
                summary.done += 1
            except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
                fail(wjob, exc)
            bar.update(1)

    pending = iter(todo)
    try:
        for job in pending:
            reads.append((job, readers.submit(read, job)))
            if len(reads) > prefetch:
                break
        while reads:
            job, fut = reads.popleft()
            nxt = next(pending, None)
            if nxt is not None:
                reads.append((nxt, readers.submit(read, nxt)))
            try:
                image, L_small = fut.result()
                if fit:
                    result = engine.infer_fit(L_small, opts.temperature)
                else:
                    result = engine.colorize(
                        image,
                        temperature=opts.temperature,
                        mode=opts.mode,
                        size=opts.size,
                        tile=opts.tile,
                        overlap=opts.overlap,
                        scale=opts.scale,
                        reference=opts.reference,
                    )
            except Exception as exc:  # noqa: BLE001
                fail(job, exc)
                bar.update(1)
                continue
            writes.append((job, writers.submit(finish, job, image, result)))
            del image, result
            drain_writes(keep=1)
        drain_writes(keep=0)
    finally:
        for _, fut in reads:
            fut.cancel()
        for _, fut in writes:
            fut.cancel()
        readers.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
