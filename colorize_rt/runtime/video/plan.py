"""Which command-line inputs are videos, where their outputs go, and running them one after another.

Videos are recognised by extension (``io.VIDEO_EXTS``) or, for a file with any other non-image extension,
by probing its container; a folder contributes its video files (its photos still go to the image
pipeline). Importing this module does not import PyAV: a photo-only run never loads it.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .io import VIDEO_EXTS, looks_like_video

_GLOB = set("*?[")


@dataclass(frozen=True)
class VideoJob:
    src: Path
    dst: Path | None  # None: the default ``<stem>_color.mp4`` (which may become .mkv for its audio)


def _folder_videos(folder: Path) -> list[Path]:
    out = []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).parts
        if any(part.startswith(".") for part in rel) or not f.is_file() or f.is_symlink() and not f.exists():
            continue
        if f.suffix.lower() in VIDEO_EXTS and not f.stem.endswith("_color"):
            out.append(f)
    return out


def _has_images(folder: Path, image_exts) -> bool:
    return any(f.suffix.lower() in image_exts for f in folder.rglob("*") if f.is_file())


def split_video_inputs(items: list[str], image_exts) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Separate videos from the rest.

    Args:
        items: command-line inputs (files, folders, globs).
        image_exts: the image extensions (``core.files.IMAGE_EXTS``).

    Returns:
        ([(video, the folder it was found in or None)], the items left for the image pipeline: files that
        are not videos, folders that hold images, globs with no video match).
    """
    videos: list[tuple[Path, Path | None]] = []
    rest: list[str] = []
    for item in items:
        p = Path(item) if item.strip() else None
        if p is not None and p.is_dir():
            found = _folder_videos(p)
            videos += [(f, p) for f in found]
            if not found or _has_images(p, image_exts):
                rest.append(item)
        elif p is not None and p.is_file():
            (videos.append((p, None)) if looks_like_video(p, image_exts) else rest.append(item))
        elif p is not None and _GLOB & set(item) and not p.exists():
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            vids = [m for m in matches if m.is_file() and m.suffix.lower() in VIDEO_EXTS]
            videos += [(m, None) for m in vids]
            if len(vids) < len(matches) or not matches:
                rest.append(item)
        else:
            rest.append(item)
    return videos, rest


def plan_video_jobs(videos: list[tuple[Path, Path | None]], output: str | None, many: bool) -> list[VideoJob]:
    """Output of every video: ``-o FILE`` for one input (a video extension), ``-o DIR/`` keeps names
    (``DIR/<stem>_color.mp4``, sub-folders of a folder input kept), no ``-o``: next to the input.

    Raises:
        ValueError: ``-o`` names a file but there are several inputs, or it would overwrite an input (one line).
    """
    out = Path(output) if output else None
    to_dir = out is not None and (
        many or len(videos) > 1 or out.is_dir() or str(output).endswith(("/", os.sep)) or not out.suffix
    )
    jobs = []
    for src, root in videos:
        if out is None:
            dst = None
        elif to_dir:
            rel = src.relative_to(root) if root is not None else Path(src.name)
            dst = out / rel.parent / f"{src.stem}_color.mp4"
        else:
            if out.suffix.lower() not in VIDEO_EXTS:
                raise ValueError(f"-o {output}: {src} is a video; name a video file (e.g. .mp4 or .mkv) or a folder")
            dst = out
        target = dst if dst is not None else src.with_name(f"{src.stem}_color.mp4")
        if target.resolve() == src.resolve():
            raise ValueError(f"refusing to overwrite input {src}: choose another -o")
        jobs.append(VideoJob(src, dst))
    return jobs


def run_video_jobs(
    jobs: list[VideoJob],
    colorizer,
    opts,
    *,
    report: Callable[[str], None],
    progress: bool,
    skip_existing: bool = False,
    quiet: bool = False,
) -> tuple[int, int]:
    """Colorize each video (``job.colorize_video``); a bad one is one error line and the rest go on.

    Returns:
        (videos done, videos failed).
    """
    from .io import VideoError
    from .job import colorize_video, default_video_output

    done = failed = 0
    for job in jobs:
        target = job.dst or default_video_output(job.src)
        if skip_existing and (target.exists() or target.with_suffix(".mkv").exists() and job.dst is None):
            continue
        try:
            result = colorize_video(job.src, colorizer, opts, job.dst, report=report, progress=progress)
        except VideoError as exc:
            failed += 1
            report(f"colorize-rt: error: {exc}")
            continue
        except OSError as exc:
            failed += 1
            report(f"colorize-rt: error: {job.src}: {exc.strerror or exc}")
            continue
        done += 1
        if not quiet:
            report(result.line())
    return done, failed


_SKIPPED_RE = re.compile(r"^.*: skipped (\d+) other files? \(([^()]*)\)$")


def without_video_notes(notes: list[str], jobs: list[VideoJob]) -> list[str]:
    """The folder walk's notes minus a 'skipped N other files (...)' line that only names this run's videos
    (the image walker does not know they are colorized by the video path)."""
    srcs = {str(job.src) for job in jobs}
    kept = []
    for note in notes:
        m = _SKIPPED_RE.match(note)
        names = m and m[2].split(", ")
        if m and int(m[1]) == len(names) and set(names) <= srcs:
            continue
        kept.append(note)
    return kept
