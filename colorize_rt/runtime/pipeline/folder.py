"""Many inputs: expand files/folders/globs, plan output paths, and colorize them in parallel lanes.

Each photo goes through one lane, start to end (decode, network input, network, recombine, encode), and a
lane per core and per network stream runs at once (``lane_count``), so every core works on some photo and
nothing is handed between threads.
The lanes' network calls run at the same time where the engine allows it (``engine.streams`` > 1: a
``Colorizer`` opened for ``purpose="throughput"``), else one at a time while the other lanes decode and
encode. Measured on a folder of 48 gray 256² PNGs (2-core Xeon, issue 26): the former layout (a reader
thread, the network in the caller, writer threads) cost 1.3x the network alone per photo; lanes with two
one-thread network streams cost less than the network alone does with both threads on one photo. A bad
input is reported in one line and skipped; the rest are still processed.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ...core.atomic import check_writable, clean_stale_temps
from ...core.cpu import usable_cores
from ...core.files import IMAGE_EXTS
from .images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    read_image,
    side_by_side,
    write_bgr,
    write_image,
)
from .modes import gray_of, recombine_bgr

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


def _link_problem(p: Path) -> str | None:
    """'broken link' / 'symlink loop' for a symlink whose target cannot be reached, else None."""
    if not p.is_symlink():
        return None
    try:
        p.resolve(strict=True)
    except FileNotFoundError:
        return "broken link"
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError("Symlink loop ..."); later, OSError ELOOP
        return "symlink loop"
    return None


def walk_folder(folder: Path) -> tuple[list[Path], dict[str, list[Path]]]:
    """The images under ``folder`` (recursive, sorted; hidden entries and linked folders not followed) and
    what was skipped, by reason: ``broken link``, ``symlink loop``, ``GIF file`` (GIFs are often animated:
    pass a still one by name), ``linked folder`` (not followed), ``other file``."""
    files: list[Path] = []
    skipped: dict[str, list[Path]] = {}
    for f in sorted(folder.rglob("*")):
        if _hidden(f, folder):
            continue
        reason = _link_problem(f)
        if reason is None and f.is_dir():
            if not f.is_symlink():
                continue
            reason = "linked folder"
        elif reason is None and f.suffix.lower() in IMAGE_EXTS and f.is_file():
            files.append(f)
            continue
        elif reason is None:
            reason = "GIF file" if f.suffix.lower() == ".gif" else "other file"
        skipped.setdefault(reason, []).append(f)
    return files, skipped


def skipped_note(folder: str, skipped: dict[str, list[Path]]) -> str:
    """One line: what a folder walk skipped, with up to two names per reason."""
    parts = []
    for reason, paths in skipped.items():
        names = ", ".join(str(p) for p in paths[:2]) + (", ..." if len(paths) > 2 else "")
        parts.append(f"{len(paths)} {reason}{'s' if len(paths) > 1 else ''} ({names})")
    return f"{folder}: skipped " + "; ".join(parts)


def expand_inputs(items: list[str], notes: list[str] | None = None) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files, folders (recursive, image extensions, hidden entries skipped) and globs ->
    ([(path, root folder or None)], [one-line errors for items that match nothing]). What a folder walk
    skipped (broken links, symlink loops, GIFs, other files) is appended to ``notes``, one line per folder."""
    found: list[tuple[Path, Path | None]] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(p: Path, root: Path | None) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append((p, root))

    for item in items:
        if not item.strip():  # Path("") is ".": an unset shell variable would colorize the whole folder
            errors.append("an empty input path (an unset variable?): name a file or folder, e.g. . for this one")
            continue
        p = Path(item)
        if p.is_dir():
            files, skipped = walk_folder(p)
            if skipped and notes is not None:
                notes.append(skipped_note(item, skipped))
            if not files:
                errors.append(f"{item}: folder has no images")
            for f in files:
                add(f, p)
        elif _link_problem(p):
            errors.append(f"{item}: {_link_problem(p)}")
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


def check_outputs_writable(jobs: list[Job]) -> None:
    """Before any compute: every output folder exists (created if needed) and accepts a new file, and no
    stale temp files of killed runs are left in it.

    Raises:
        UsageError: naming the first folder that cannot be written.
    """
    for folder in sorted({job.dst.parent for job in jobs}):
        try:
            check_writable(folder)
        except OSError as exc:
            raise UsageError(exc.strerror or str(exc)) from None
        clean_stale_temps(folder)


def _out_ext(src: Path, fmt: str | None) -> str:
    if fmt:
        ext = "." + fmt.lower().lstrip(".")
    else:
        ext = src.suffix.lower() if src.suffix.lower() in IMAGE_EXTS else ".png"
    if ext not in IMAGE_EXTS:
        raise UsageError(f"unsupported output format '{ext}': use one of {', '.join(sorted(IMAGE_EXTS))}")
    return ext


def _same_format(ext: str) -> str:
    """One spelling per format (.jpeg is .jpg, .tif is .tiff)."""
    ext = ext.lower()
    return {".jpeg": ".jpg", ".tif": ".tiff"}.get(ext, ext)


def plan_outputs(
    inputs: list[tuple[Path, Path | None]],
    output: str | None,
    fmt: str | None,
    many: bool = False,
    notes: list[str] | None = None,
) -> list[Job]:
    """Output path of every input. No ``-o``: ``<stem>_color<ext>`` next to the input. ``-o FILE``: one
    input only. ``-o DIR``: ``DIR/<input file name>`` (sub-folders of a folder input kept).

    Files found by walking a folder that are this run's own outputs (an earlier run's ``*_color`` files
    next to their inputs, or anything under an ``-o`` folder inside the walked folder) are left out, so a
    second run on a folder works; ``notes`` gets one line saying how many. Inputs named one by one are
    never left out: an output that would overwrite one is a ``UsageError``.
    """
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
    if out is not None and not to_dir and out.suffix.lower() not in IMAGE_EXTS:
        raise UsageError(f"-o {output}: unsupported output format; use one of {', '.join(sorted(IMAGE_EXTS))}")
    if out is not None and to_dir and out.exists() and not out.is_dir():
        raise UsageError(f"-o {output} is a file but there are several inputs: pass a folder")
    left_out = 0
    if out is not None and to_dir:  # an -o folder inside a walked folder: what is in it are outputs
        out_key = out.resolve()
        kept = [(src, root) for src, root in inputs if not _inside_output(src, root, out_key)]
        left_out, inputs = len(inputs) - len(kept), kept
    for src, root in inputs:
        if out is None:
            dst = src.with_name(f"{src.stem}_color{_out_ext(src, fmt)}")
        elif to_dir:
            rel = src.relative_to(root) if root is not None else Path(src.name)
            dst = (out / rel).with_suffix(_out_ext(src, fmt) if (fmt or src.suffix.lower() not in IMAGE_EXTS) else src.suffix)
        else:
            if fmt and _same_format(out.suffix) != _same_format(_out_ext(out, fmt)):  # was: silently renamed
                raise UsageError(f"-o {output} names a {out.suffix} file but --format is {fmt}: drop one of them")
            dst = out
            _out_ext(dst, None)
        jobs.append(Job(src, dst))
    planned = {job.dst.resolve(): job.src.resolve() for job in jobs}  # output -> the input it comes from
    walked_outputs = [root is not None and planned.get(src.resolve(), src.resolve()) != src.resolve() for src, root in inputs]
    if any(walked_outputs):  # earlier runs' outputs next to their inputs
        jobs = [job for job, drop in zip(jobs, walked_outputs, strict=True) if not drop]
        inputs = [item for item, drop in zip(inputs, walked_outputs, strict=True) if not drop]
        left_out += sum(walked_outputs)
    if left_out and notes is not None:
        notes.append(f"left out {left_out} file{'s' if left_out > 1 else ''} that earlier runs wrote (this run's own outputs)")
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


def _inside_output(src: Path, root: Path | None, out_key: Path) -> bool:
    """A walked file under the -o folder, when that folder lies strictly inside the walked one."""
    if root is None:
        return False
    root_key = root.resolve()
    return out_key != root_key and out_key.is_relative_to(root_key) and src.resolve().is_relative_to(out_key)


def _network_error(exc: BaseException) -> bool:
    """Raised by ONNX Runtime (its own exception types, or any exception thrown from inside its package)."""
    if type(exc).__module__.startswith("onnxruntime"):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if f"{os.sep}onnxruntime{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _progress_bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm import tqdm  # only for a terminal: its import costs start-up time

    return tqdm(total=total, unit="img", desc="colorize", dynamic_ncols=True)


MAX_LANES = 8  # photos in flight at most (memory: each lane holds one decoded photo and its output)


def lane_count(engine, fit: bool, cores: int | None = None) -> int:
    """How many photos ``run_batch`` colorizes at once.

    Args:
        engine: the ``Colorizer``; its ``streams`` (network calls that may run at once, default 1) counts.
        fit: fit mode (other modes hold a full-resolution image per tile pass: two lanes at most).
        cores: CPU cores to fill (default: those this process may run on).

    Returns:
        ``streams + cores`` in fit mode, capped at ``MAX_LANES``: a lane for every network stream and every
        core, so the streams stay fed while other lanes decode, encode or wait on the disk (48 gray 256² PNGs,
        2-core Xeon, OpenVINO with 2 streams: 10.0 ms per photo with 4 lanes, 11.6 ms with 2); 2 in the other modes.
    """
    cores = usable_cores() if cores is None else cores
    streams = max(1, int(getattr(engine, "streams", 1) or 1))
    return min(MAX_LANES, streams + max(1, cores)) if fit else 2


@dataclass
class _Run:
    """One batch: ``colorize_one`` takes a photo through every stage in the calling lane; failures are counted
    and reported (one line each) from the thread that collects the lanes' results."""

    engine: object
    opts: Options
    report: Callable[[str], None]
    bar: object = None
    summary: Summary = field(default_factory=Summary)

    @property
    def fit(self) -> bool:
        return self.opts.mode == "fit" and self.engine.method != "transfer"

    def fail(self, job: Job, exc: BaseException) -> None:
        self.summary.failed += 1
        if isinstance(exc, ImageError):
            msg = str(exc)
        elif _network_error(exc):  # never ONNX Runtime's raw text: it names graph nodes, not the problem
            msg = f"{job.src}: the network could not run on this image ({type(exc).__name__}); please report it"
        else:
            msg = f"{job.src}: {' '.join(str(exc).split()) or type(exc).__name__}"
        self.summary.errors.append(msg)
        (self.bar.write if self.bar is not None else self.report)(f"colorize-rt: error: {msg}")

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def colorize_one(self, job: Job) -> None:
        """Decode, colorize and write one photo (raises what fails; ``collect`` reports it)."""
        o = self.opts
        image = read_image(job.src, o.max_pixels)
        if self.fit:
            result = self.engine.infer_fit(self.engine.prepare_fit(image, o.size), o.temperature)
        else:
            kw = {"mode": o.mode, "size": o.size, "tile": o.tile, "overlap": o.overlap, "scale": o.scale}
            result = self.engine.colorize(image, temperature=o.temperature, reference=o.reference, **kw)
        self.finish(job, image, result)

    def finish(self, job: Job, image, result) -> None:
        if self.fit and not self.opts.side_by_side and image.alpha is None:
            bgr = recombine_bgr(image, result)  # the 8-bit table path, in the encoder's channel order
            if bgr is not None:
                write_bgr(bgr, job.dst, quality=self.opts.quality)
                return
        colour = self.engine.finish_fit(image, result) if self.fit else result
        if self.opts.side_by_side:
            colour = side_by_side(gray_of(image), colour)
        write_image(colour, job.dst, quality=self.opts.quality)

    def collect(self, job: Job, fut: Future) -> None:
        try:
            fut.result()
            self.summary.done += 1
        except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
            self.fail(job, exc)
        self.step()


def run_batch(
    jobs: list[Job],
    engine,
    opts: Options,
    *,
    report: Callable[[str], None],
    progress: bool = True,
    lanes: int | None = None,
) -> Summary:
    """Colorize ``jobs`` with ``engine``; failures are reported (one line each) and counted.

    Each photo is decoded, colorized and written in one lane, ``lanes`` photos at once (see the module doc);
    outputs are those of colorizing the photos one by one.

    Args:
        jobs: (input, output) pairs, as ``plan_outputs`` makes them.
        engine: a ``Colorizer`` (``prepare_fit`` / ``infer_fit`` / ``finish_fit`` / ``colorize``; ``streams``).
        opts: the run's options.
        report: where one-line messages go (without a progress bar).
        progress: show a progress bar (tqdm).
        lanes: photos in flight (default ``lane_count``; 1 colorizes them one after the other).

    Returns:
        The ``Summary`` (counts, errors, seconds).
    """
    t0 = time.perf_counter()
    todo = [job for job in jobs if not (opts.skip_existing and job.dst.exists())]
    run = _Run(engine, opts, report, _progress_bar(len(todo), progress))
    run.summary.skipped = len(jobs) - len(todo)
    lanes = max(1, min(MAX_LANES, lanes or lane_count(engine, run.fit)))
    running: dict[Future, Job] = {}
    with ThreadPoolExecutor(lanes, thread_name_prefix="colorize-lane") as pool:
        try:
            for job in todo:
                if len(running) >= lanes:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        run.collect(running.pop(fut), fut)
                running[pool.submit(run.colorize_one, job)] = job
            for fut in list(running):
                run.collect(running.pop(fut), fut)
        finally:
            for fut in running:
                fut.cancel()
            if run.bar is not None:
                run.bar.close()
    run.summary.seconds = time.perf_counter() - t0
    return run.summary
