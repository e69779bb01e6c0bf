"""L* + ab -> output pixels, at full resolution: a float path for any input and an 8-bit table path.

Both paths keep the input's lightness: an out-of-gamut colour is clipped into sRGB (as OpenCV does) only
where that keeps its L* within ``L_TOLERANCE``; otherwise its chroma is reduced until it does.

* Float path (``lab_to_pixels``): OpenCV's float Lab->RGB for images of every size (a 256² photo: 0.4 ms
  against 3-4 ms for ``core.color``'s numpy formulas, 2-core Xeon with AVX-512 VNNI; not timed on an
  AVX2-only CPU); clipped colours are checked as above. Its tables cost ~50 ms on the first call in a
  process: ``warm_colour_tables`` builds them in the background while a model opens.
* Table path (``gray_table_pixels``, 8-bit gray input and output): the output of every (gray level, a, b)
  is read from a table of sRGB values indexed by the gray level (so L* is exact: it is the input's) and ab
  rounded to integers. Rows of the table (one per ab pair) are computed with the float path the first
  time an image needs them. The per-pixel work is one ``cv2.remap`` gather, no float maths. With ab = 0
  the output is the input gray exactly.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zipfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ...core.color import l_from_y, luminance, srgb_to_linear
from ...core.paths import cache_dir
from .remap import remap

AB_MIN = -128  # a and b of table index 0 (the table path rounds ab to integers: error <= 0.5)
AB_LEVELS = 256  # indices 0..255 cover a, b in [-128, 127]
GAMUT_STEPS = 7  # bisection steps of the chroma scale of out-of-gamut colours (precision 2^-7: < 1 unit of ab)
L_TOLERANCE = 0.25  # L* change allowed to gamut clipping (8-bit rounding adds at most ~0.24 more)


@lru_cache(maxsize=2)
def _linear_lut(bit_depth: int) -> np.ndarray:
    n = 65536 if bit_depth == 16 else 256
    return srgb_to_linear(np.arange(n, dtype=np.float32) / (n - 1))


@lru_cache(maxsize=2)
def gray_l_lut(bit_depth: int) -> np.ndarray:
    """CIE L* of every gray code value (256 or 65536 entries, float32)."""
    return l_from_y(_linear_lut(bit_depth))


def l_star(rgb: np.ndarray, gray: bool = False) -> np.ndarray:
    """CIE L* (H, W) float32 of sRGB uint8/uint16 pixels (H, W, 3) (not gray x 100 / 255).

    Args:
        rgb: sRGB pixels, uint8 or uint16, channels last.
        gray: the three channels are equal (only the first is read: a table lookup per pixel).

    Returns:
        L* in [0, 100], float32, shape (H, W).
    """
    depth = 16 if rgb.dtype == np.uint16 else 8
    if gray:
        plane = rgb[..., 0]
        if depth == 8:
            return cv2.LUT(np.ascontiguousarray(plane), gray_l_lut(8)).reshape(plane.shape)
        return gray_l_lut(16)[plane]
    return l_from_y(luminance(_linear_lut(depth)[rgb]))


def _rgb(lab: np.ndarray) -> np.ndarray:
    """sRGB (n, 3) of Lab colours (n, 3), clipped to [0, 1] (OpenCV's float conversion)."""
    if not len(lab):
        return np.zeros((0, 3), np.float32)
    return cv2.cvtColor(np.ascontiguousarray(lab, np.float32)[:, None, :], cv2.COLOR_Lab2RGB)[:, 0, :]


def _lstar(rgb: np.ndarray) -> np.ndarray:
    """CIE L* (n,) of sRGB (n, 3) in [0, 1] (OpenCV's float conversion)."""
    if not len(rgb):
        return np.zeros(0, np.float32)
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32)[:, None, :], cv2.COLOR_RGB2Lab)[:, 0, 0]


_TINY, _BELOW_ONE = float(np.nextafter(np.float32(0), np.float32(1))), float(np.nextafter(np.float32(1), np.float32(0)))


def _clipped(rgb: np.ndarray) -> np.ndarray:
    """Per pixel (flat bool): some channel of OpenCV's clipped output is at 0 or 1 (it may have been outside)."""
    inside = cv2.inRange(rgb.reshape(-1, 1, 3), (_TINY,) * 3, (_BELOW_ONE,) * 3)
    return inside.ravel() == 0


def _warm() -> None:
    one = np.zeros((1, 1, 3), np.float32)
    cv2.cvtColor(cv2.cvtColor(one, cv2.COLOR_Lab2RGB), cv2.COLOR_RGB2Lab)


_WARMER: threading.Thread | None = None
_WARM_LOCK = threading.Lock()


def warm_colour_tables() -> None:
    """Build OpenCV's Lab conversion tables (~50 ms, once per process) in a background thread, so the first
    image does not wait for them (OpenCV releases the GIL: it overlaps a model's opening)."""
    global _WARMER
    with _WARM_LOCK:
        if _WARMER is None:
            # not a daemon: a thread killed inside OpenCV at exit aborts the process ("exception not rethrown")
            _WARMER = threading.Thread(target=_warm, name="colour-tables")
            _WARMER.start()


def gamut_map(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (n, 3) of Lab colours (L (n,), ab (n, 2)) with their lightness kept.

    Out-of-gamut colours are clipped where that keeps L* within ``L_TOLERANCE``; the others get the largest
    chroma scale in [0, 1] whose clipped colour does (bisection on the ab scale). So the output differs
    from plain clipping only where clipping would change the lightness.
    """
    lab = np.concatenate([np.reshape(L, (-1, 1)), np.reshape(ab, (-1, 2))], axis=1).astype(np.float32)
    rgb = _rgb(lab)
    bad = np.flatnonzero(np.abs(_lstar(rgb) - lab[:, 0]) > L_TOLERANCE)
    if len(bad):
        sub = lab[bad]
        lo = np.zeros((len(bad), 1), np.float32)
        hi = np.ones((len(bad), 1), np.float32)
        trial = sub.copy()
        for _ in range(GAMUT_STEPS):
            mid = (lo + hi) / 2
            trial[:, 1:] = sub[:, 1:] * mid
            ok = (np.abs(_lstar(_rgb(trial)) - sub[:, 0]) <= L_TOLERANCE)[:, None]
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
        trial[:, 1:] = sub[:, 1:] * lo
        rgb[bad] = _rgb(trial)
    return rgb


_CORNERS = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], np.float32)


def _round_keeping_lightness(L: np.ndarray, rgb255: np.ndarray) -> np.ndarray:
    """sRGB (n, 3) in [0, 255] rounded to integers; where plain rounding moves L* by more than 0.2 (at the
    gamut's edge it can move it by a third of a unit), the one of the 8 floor/ceil roundings whose L* is
    closest to ``L`` (n,)."""
    out = np.floor(rgb255 + 0.5)
    off = np.flatnonzero(np.abs(_lstar(out / 255.0) - L) > 0.2)
    if len(off):
        cand = np.floor(rgb255[off])[:, None, :] + _CORNERS[None]  # (k, 8, 3)
        np.clip(cand, 0, 255, out=cand)
        lstar = _lstar((cand / 255.0).reshape(-1, 3)).reshape(len(off), 8)
        out[off] = cand[np.arange(len(off)), np.abs(lstar - L[off, None]).argmin(axis=1)]
    return out


def lab_to_pixels(L: np.ndarray, ab_hw2: np.ndarray, dtype, gray: np.ndarray | None = None) -> np.ndarray:
    """L (H, W) + ab (H, W, 2) -> sRGB (H, W, 3) uint8/uint16, chroma-reduced into the gamut (L* kept).

    Args:
        L: CIE L* per pixel.
        ab: a, b per pixel.
        dtype: np.uint8 or np.uint16.
        gray: the gray input (H, W) of ``dtype`` that ``L`` came from, if any: pixels with ab = 0 then
            return it bit-exactly (OpenCV's float conversion is off by a few 16-bit steps there).

    Returns:
        The pixels.
    """
    lab = np.empty((*L.shape, 3), np.float32)
    lab[..., 0] = L
    lab[..., 1:] = ab_hw2
    labf = lab.reshape(-1, 3)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)  # fast, but clips out-of-gamut channels to [0, 1]
    flat = rgb.reshape(-1, 3)
    clipped = np.flatnonzero(_clipped(rgb))
    if len(clipped):
        sub = labf[clipped]
        clipped = clipped[(sub[:, 1] != 0) | (sub[:, 2] != 0)]  # ab = 0: a gray, never out of gamut
        flat[clipped] = gamut_map(labf[clipped, 0], labf[clipped, 1:])
    top = 65535.0 if dtype == np.uint16 else 255.0
    rgb *= top
    if dtype == np.uint8 and len(clipped):  # gamut-mapped colours: rounded towards their L*
        flat[clipped] = _round_keeping_lightness(labf[clipped, 0], flat[clipped]) - 0.5  # + 0.5 below
    rgb += 0.5
    out = rgb.astype(dtype)
    if gray is not None:
        ab = np.ascontiguousarray(ab_hw2, np.float32).reshape(-1, 1, 2)
        neutral = np.flatnonzero(cv2.inRange(ab, (0.0, 0.0), (0.0, 0.0)).ravel())  # ab = 0: the input gray
        if len(neutral):
            out.reshape(-1, 3)[neutral] = gray.reshape(-1)[neutral][:, None]
    return out


# -- 8-bit table path ------------------------------------------------------------------------------------
MAX_PALETTE = 32766  # ab pairs one image may use on the table path (cv2.remap takes sides under 32767)


TABLE_VERSION = 2  # of the colour maths behind the table: saved rows are reused only by the same version
TABLE_CACHE_ENV = "COLORIZE_RT_TABLE_CACHE"


def table_file() -> Path:
    """Where computed table rows are kept between runs (``<cache root>/srgb-table/``)."""
    name = f"gray-v{TABLE_VERSION}-tol{L_TOLERANCE}-steps{GAMUT_STEPS}-cv{cv2.__version__}.npz"
    return cache_dir("srgb-table") / name


def _digest(ids: np.ndarray, rows: np.ndarray) -> str:
    return hashlib.sha256(ids.astype("<i4").tobytes() + rows.tobytes()).hexdigest()


class _GrayTable:
    """sRGB uint8 of every (a, b, gray level) with a, b integers in [-128, 127]: ``rows[pair, g]`` with
    ``pair = (a + 128) * 256 + (b + 128)``.

    Rows (256 gray levels each) are computed on first use (thread-safe); the 50 MB array is allocated
    untouched, so only the rows that images need take memory. Computed rows are saved (``table_file``,
    with a sha256 of their bytes, written atomically) and loaded by later processes, so a run does not
    recompute the rows earlier runs needed; a file that fails its checksum is ignored and rewritten.
    ``COLORIZE_RT_TABLE_CACHE=0`` turns that off.
    """

    def __init__(self, persist: bool | None = None) -> None:
        self.rows = np.zeros((AB_LEVELS * AB_LEVELS, 256, 3), np.uint8)
        self.built = np.zeros(AB_LEVELS * AB_LEVELS, bool)
        self._lock = threading.Lock()
        if persist is None:
            persist = os.environ.get(TABLE_CACHE_ENV, "1").strip().lower() not in ("0", "off", "false", "no")
        self.persist = persist
        self._loaded = not persist

    def _load(self) -> None:
        self._loaded = True
        try:
            with np.load(table_file(), allow_pickle=False) as z:
                ids, rows, digest = z["ids"], z["rows"], str(z["digest"])
            ok = rows.dtype == np.uint8 and rows.shape == (len(ids), 256, 3) and _digest(ids, rows) == digest
            if ok and len(ids) and 0 <= ids.min() and ids.max() < len(self.built):
                self.rows[ids] = rows
                self.built[ids] = True
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # none yet, or damaged: computed again and rewritten

    def _save(self) -> None:
        ids = np.flatnonzero(self.built).astype(np.int32)
        rows = self.rows[ids]
        path = table_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        except OSError:  # read-only cache: the rows are simply computed again next time
            return
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, ids=ids, rows=rows, digest=np.array(_digest(ids, rows)))
            os.replace(tmp, path)  # atomic: other processes see the old file or the new one
        except OSError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)

    def ensure(self, pairs: np.ndarray) -> None:
        """Compute the rows of ``pairs`` (sorted unique row indices) that are not built yet."""
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self._load()
        need = pairs[~self.built[pairs]]
        if not len(need):
            return
        with self._lock:
            need = need[~self.built[need]]
            if not len(need):
                return
            a = (need // AB_LEVELS + AB_MIN).astype(np.float32)
            b = (need % AB_LEVELS + AB_MIN).astype(np.float32)
            lab = np.empty((len(need), 256, 3), np.float32)
            lab[..., 0] = gray_l_lut(8)[None, :]
            lab[..., 1] = a[:, None]
            lab[..., 2] = b[:, None]
            rows = lab_to_pixels(lab[..., 0], lab[..., 1:], np.uint8)
            rows[(a == 0) & (b == 0)] = np.arange(256, dtype=np.uint8)[:, None]  # ab = 0: the gray, bit-exact
            self.rows[need] = rows
            self.built[need] = True
            if self.persist:
                self._save()


_TABLE: _GrayTable | None = None
_TABLE_LOCK = threading.Lock()


def gray_table() -> _GrayTable:
    """The process-wide table of the 8-bit path (allocated on first use; rows filled lazily)."""
    global _TABLE
    with _TABLE_LOCK:
        if _TABLE is None:
            _TABLE = _GrayTable()
        return _TABLE


def ab_pairs(ab_hw2: np.ndarray) -> np.ndarray:
    """Table row (int32) of ab values (..., 2): a and b rounded to integers and clamped to [-128, 127]."""
    idx = np.rint(ab_hw2 - AB_MIN)
    np.clip(idx, 0, AB_LEVELS - 1, out=idx)
    idx = idx.astype(np.int32)
    return idx[..., 0] * AB_LEVELS + idx[..., 1]


class Palette:
    """The table rows some images' ab pairs use: ``src`` (n, 256, 3) uint8 is a ``cv2.remap`` source with
    x = gray level and y = palette entry."""

    def __init__(self, *pairs: np.ndarray):
        counts = sum(np.bincount(p.ravel(), minlength=AB_LEVELS * AB_LEVELS) for p in pairs)
        ids = np.flatnonzero(counts)
        if len(ids) > MAX_PALETTE:
            raise ValueError(f"{len(ids)} distinct ab pairs: more than the table path's {MAX_PALETTE}")
        table = gray_table()
        table.ensure(ids)
        self.src = table.rows[ids]
        self._entry = np.zeros(AB_LEVELS * AB_LEVELS, np.int16)
        self._entry[ids] = np.arange(len(ids), dtype=np.int16)

    def maps(self, pairs: np.ndarray) -> np.ndarray:
        """(..., 4) uint8 per pair: bytes [0, 0, entry low, entry high]. With the gray level written into
        byte 0 (``lookup``) and viewed as int16 pairs, this is the (x = gray, y = entry) map of ``cv2.remap``."""
        out = np.zeros((*pairs.shape, 4), np.uint8)
        out[..., 2:] = self._entry[pairs].astype("<i2").view(np.uint8).reshape(*pairs.shape, 2)
        return out

    def lookup(self, gray: np.ndarray, maps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """sRGB (H, W, 3) uint8 of gray levels (H, W) uint8 with entries from ``maps`` (H, W, 4) uint8, contiguous
        (as ``maps``, replicated to full resolution; its byte 0 is overwritten with the gray levels)."""
        cv2.mixChannels([gray], [maps], [0, 0])
        return remap(self.src, maps.view(np.int16), None, cv2.INTER_NEAREST, dst=out)


def gray_table_pixels(gray: np.ndarray, ab_hw2: np.ndarray) -> np.ndarray:
    """8-bit gray (H, W) + ab (H, W, 2) -> sRGB (H, W, 3) uint8 through the table (L* exact); the float
    path when the ab values need more table rows than a palette holds."""
    pairs = ab_pairs(ab_hw2)
    try:
        pal = Palette(pairs)
    except ValueError:
        plane = np.ascontiguousarray(gray)
        return lab_to_pixels(cv2.LUT(plane, gray_l_lut(8)), ab_hw2, np.uint8, gray=plane)
    return pal.lookup(np.ascontiguousarray(gray), pal.maps(pairs))
