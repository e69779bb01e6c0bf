"""The job's manifest: one JSON line per source under ``DST/_manifest/<run id>.jsonl``.

Each row names the source, its destination, its status (``done`` / ``skipped`` / ``failed``), the error (one
line), the milliseconds spent, the model's sha256, the run id and when it started (Unix time; the
fields are ``worker.MANIFEST_FIELDS``). A failed image is a row, not a failed job. Ray may run a batch twice
after a worker dies; the rows are keyed by source, so the manifest still has exactly one row per source (the
last one wins).
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid

from .paths import MANIFEST_DIR, Place, put_bytes


def new_run_id() -> str:
    """A sortable, unique run id: UTC time and 8 random hex digits, e.g. ``20261207T160600Z-1a2b3c4d``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def one_row_per_source(rows: list[dict]) -> list[dict]:
    """The rows with one per source (a retried batch's later row replaces the earlier), sorted by source.

    Args:
        rows: manifest rows, possibly repeated for a source.

    Returns:
        One row per source.
    """
    by_source = {}
    for row in rows:
        by_source[row["source"]] = row
    return [by_source[k] for k in sorted(by_source)]


def write_manifest(dst: Place, run_id: str, rows: list[dict]) -> str:
    """Write the manifest (one JSON object per line) under ``DST/_manifest/``, atomically / as one PUT.

    Args:
        dst: the output folder.
        run_id: this run's id (the file name).
        rows: one row per source.

    Returns:
        The manifest's path on DST's filesystem.
    """
    text = "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)
    return put_bytes(dst, posixpath.join(MANIFEST_DIR, f"{run_id}.jsonl"), text.encode("utf-8"))


def read_manifest(dst: Place, run_id: str) -> list[dict]:
    """The rows of one run's manifest.

    Args:
        dst: the output folder.
        run_id: the run's id.

    Returns:
        The rows, in file order.
    """
    with dst.fs.open(dst.join(f"{MANIFEST_DIR}/{run_id}.jsonl"), "rb") as fh:
        return [json.loads(line) for line in fh.read().decode("utf-8").splitlines() if line.strip()]
