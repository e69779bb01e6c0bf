"""Where an archive job reads and writes: local folders or fsspec URLs (``file://``, ``s3://``, ``gs://``).

SRC is listed once; DST mirrors its sub-folders (``DST/<relative path>`` with the output extension), so
output names are deterministic and a rerun can leave out what exists. Local writes are atomic (temp file,
then ``os.replace``); object-store writes are one PUT of the encoded bytes (an object appears whole or not
at all), so a batch that Ray runs twice leaves one file.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass, field

from ...core.atomic import atomic_write_bytes, check_writable, clean_stale_temps
from ...core.files import IMAGE_EXTS
from ...core.lazy import require

MANIFEST_DIR = "_manifest"  # under DST; never an input, never an output
_FSSPEC_HINT = "pip install 'colorize-rt[cluster]'"


class BatchPathError(ValueError):
    """SRC or DST cannot be used (missing, unreadable, unwritable, DST inside SRC); one line."""


@dataclass(frozen=True)
class Place:
    """A folder on some filesystem: the URL as given, its fsspec filesystem and its path there.

    ``storage_options`` are handed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` for an
    S3-compatible server); they travel to the Ray actors with the place.
    """

    url: str
    storage_options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def fs(self):
        return open_filesystem(self.url, self.storage_options)[0]

    @property
    def root(self) -> str:
        """The folder's path on its filesystem (no protocol, no trailing slash)."""
        return open_filesystem(self.url, self.storage_options)[1]

    @property
    def local(self) -> bool:
        return "://" not in self.url or self.url.startswith("file://")

    def join(self, rel: str) -> str:
        return posixpath.join(self.root, rel) if not self.local else os.path.join(self.root, *rel.split("/"))


_FS_CACHE: dict = {}


def open_filesystem(url: str, storage_options: dict | None = None):
    """The fsspec filesystem and path of ``url`` (a local path or a URL); opened once per process.

    Args:
        url: a folder path or fsspec URL.
        storage_options: fsspec options for that protocol.

    Returns:
        ``(filesystem, path)``; a local path comes back absolute.
    """
    if "://" not in url or url.startswith("file://"):
        path = os.path.abspath(url[len("file://") :] if url.startswith("file://") else url)
        return require("fsspec.implementations.local").LocalFileSystem(), path.rstrip(os.sep) or os.sep
    key = (url, repr(sorted((storage_options or {}).items())))
    if key not in _FS_CACHE:
        try:
            fsspec = require("fsspec")
            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except ImportError as exc:  # fsspec names the package of the protocol (s3fs, gcsfs)
            raise BatchPathError(f"{url}: {str(exc).splitlines()[0]} ({_FSSPEC_HINT})") from None
        except ValueError as exc:
            raise BatchPathError(f"{url}: {exc}") from None
        _FS_CACHE[key] = (fs, path.rstrip("/"))
    return _FS_CACHE[key]


def output_name(rel: str, fmt: str | None) -> str:
    """The output's path relative to DST for the input at ``rel`` (relative to SRC, ``/``-separated).

    Args:
        rel: the input's relative path.
        fmt: output format (``png``, ``jpg``, ...), or None to keep the input's.

    Returns:
        ``rel`` with the output extension.
    """
    stem, ext = posixpath.splitext(rel)
    if fmt:
        ext = "." + fmt.lower().lstrip(".")
    if ext.lower() not in IMAGE_EXTS:
        raise BatchPathError(f"unsupported output format '{ext}': use one of {', '.join(sorted(IMAGE_EXTS))}")
    return stem + ext


def _inside(child: Place, parent: Place) -> bool:
    if child.local != parent.local:
        return False
    if child.local:
        c, p = os.path.realpath(child.root), os.path.realpath(parent.root)
        return c == p or c.startswith(p.rstrip(os.sep) + os.sep)
    same_fs = child.url.split("://")[0] == parent.url.split("://")[0]
    return same_fs and (child.root == parent.root or child.root.startswith(parent.root + "/"))


def check_places(src: Place, dst: Place) -> None:
    """Before any work: SRC is a readable folder and DST is not inside it (nothing is written).

    Args:
        src: the input folder.
        dst: the output folder.

    Raises:
        BatchPathError: one line naming the problem.
    """
    fs = src.fs
    try:
        if not fs.isdir(src.root):
            what = "is a file, not a folder" if fs.exists(src.root) else "no such folder"
            raise BatchPathError(f"SRC {src.url}: {what}")
        fs.ls(src.root, detail=False)  # os.walk (and so fsspec's find) skips unreadable folders silently
    except BatchPathError:
        raise
    except PermissionError:
        raise BatchPathError(f"SRC {src.url}: cannot read this folder (permission denied)") from None
    except Exception as exc:  # noqa: BLE001 - every filesystem raises its own types; one line
        raise BatchPathError(f"SRC {src.url}: cannot read ({_one_line(exc)})") from None
    if _inside(dst, src):
        raise BatchPathError(f"DST {dst.url} is inside SRC {src.url}: outputs would be read as inputs; choose another DST")


def probe_destination(dst: Place) -> None:
    """Before any work: DST accepts a new file (a local folder is created; a probe object is put and removed).

    Args:
        dst: the output folder.

    Raises:
        BatchPathError: one line naming DST.
    """
    if dst.local:
        try:
            check_writable(dst.root)
        except OSError as exc:
            raise BatchPathError(f"DST {dst.url}: {exc.strerror or exc}") from None
        return
    probe = posixpath.join(dst.root, MANIFEST_DIR, f".write-test-{uuid.uuid4().hex}")
    try:
        dst.fs.pipe_file(probe, b"")
        dst.fs.rm_file(probe)
    except Exception as exc:  # noqa: BLE001
        raise BatchPathError(f"DST {dst.url}: cannot write ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def list_source_images(place: Place) -> list[str]:
    """Every image under ``place``, as sorted ``/``-separated paths relative to it (hidden entries and the
    manifest folder left out). One listing of the whole tree.

    Args:
        place: the folder.

    Returns:
        Relative paths of the files with an image extension.
    """
    found = place.fs.find(place.root, detail=False)
    root = place.root.rstrip("/") + "/" if not place.local else place.root.rstrip(os.sep) + os.sep
    out = []
    for path in found:
        rel = path[len(root) :] if path.startswith(root) else None
        if rel is None:
            continue
        rel = rel.replace(os.sep, "/")
        if rel.split("/")[0] == MANIFEST_DIR or _hidden(rel):
            continue
        if posixpath.splitext(rel)[1].lower() in IMAGE_EXTS:
            out.append(rel)
    return sorted(out)


def list_existing(place: Place) -> set[str]:
    """Relative paths of every file under ``place`` (empty when the folder does not exist yet)."""
    try:
        if not place.fs.exists(place.root):
            return set()
        found = place.fs.find(place.root, detail=False)
    except FileNotFoundError:
        return set()
    root = place.root.rstrip("/" if not place.local else os.sep) + ("/" if not place.local else os.sep)
    return {p[len(root) :].replace(os.sep, "/") for p in found if p.startswith(root)}


def put_bytes(place: Place, rel: str, data: bytes) -> str:
    """Write one output: atomically on a local disk, as one PUT on an object store. Idempotent.

    Args:
        place: DST.
        rel: the output's relative path.
        data: the encoded file.

    Returns:
        The written path.
    """
    path = place.join(rel)
    if place.local:
        atomic_write_bytes(path, data)
    else:
        place.fs.pipe_file(path, data)  # one request: the object appears whole or not at all
    return path


def sweep_temps(place: Place, rels: list[str]) -> int:
    """Remove temp files that killed local writers left in the folders of ``rels``.

    Args:
        place: DST (nothing to do on an object store: a PUT leaves no temp object).
        rels: relative output paths of this job.

    Returns:
        How many temp files were removed.
    """
    if not place.local:
        return 0
    folders = {os.path.dirname(place.join(rel)) for rel in rels}
    return sum(len(clean_stale_temps(folder)) for folder in sorted(folders))
