"""Where colorize-rt keeps its caches on disk (one helper; every variable is listed in docs/ENVIRONMENT.md)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ROOT_ENV = "COLORIZE_RT_CACHE"


def cache_dir(kind: str, override_env: str | None = None) -> Path:
    """The cache folder for one kind of cached artefact (not created here).

    Resolution: ``$override_env`` when that variable is set (a folder for this kind only); otherwise
    ``$COLORIZE_RT_CACHE/<kind>``, else ``$XDG_CACHE_HOME/colorize-rt/<kind>``, else
    ``~/.cache/colorize-rt/<kind>``.

    Args:
        kind: sub-folder name, e.g. ``"results"``, ``"calibration"``, ``"ort-trt"``, ``"bench"``.
        override_env: name of an environment variable that, when set, gives this kind's folder directly.

    Returns:
        The folder path.
    """
    if override_env and os.environ.get(override_env):
        return Path(os.environ[override_env]).expanduser()
    root = os.environ.get(CACHE_ROOT_ENV)
    if root:
        return Path(root).expanduser() / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "colorize-rt" / kind
