"""Image files on disk: the one set of image extensions the project reads and writes, folder listing, and
whether an output path names one of the inputs."""

from __future__ import annotations

from pathlib import Path

# Every format the runtime reads and writes (through Pillow / OpenCV) and the folders the tools scan.
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under a folder (recursive, by extension), sorted.

    Args:
        folder: the folder to scan.
        limit: keep at most this many (``None`` or 0: all).

    Returns:
        Sorted paths of the files whose suffix is in ``IMAGE_EXTS``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    return files[:limit] if limit else files


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file: resolved paths equal, or (both existing) the same inode, so
    hard links and symlinks count. The one check every tool makes before writing an output over an input.

    Args:
        a: a path (e.g. the output).
        b: another path (e.g. an input).

    Returns:
        True when writing ``a`` would replace ``b``.
    """
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists() and a.samefile(b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()
