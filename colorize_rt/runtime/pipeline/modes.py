"""The colorization pipeline around a network: pure numpy/OpenCV functions, no runner state.

* ``fit`` mode: downscale the image to the network size, predict ab there, upsample ab to full resolution
  and recombine with the full-resolution L* in row strips (no full-resolution float image is ever held);
  8-bit gray photos of a megapixel or more go through the table path of ``compose`` (no float maths per
  pixel).
* ``tiled`` mode: run the network on overlapping tiles at a chosen scale, feather-blend ab across the
  overlaps in a rolling band of rows, and emit finished output rows as soon as they are final, so memory
  is bounded by the band (tile height x width) plus the uint8/uint16 input and output images.
* ``transfer``: model-free Reinhard colour transfer in Lab from a reference image.

``predict`` callables map L* batches (N, 1, H, W), H and W multiples of 8, to ab (N, 2, H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ...core.color import l_to_gray_rgb
from ...core.constants import NET_MIN_SIDE, NET_MULTIPLE
from ...core.netinput import pad_to_multiple
from .compose import Palette, ab_pairs, gray_table_pixels, l_star, lab_to_pixels
from .images import DecodedImage
from .remap import remap

Predict = Callable[[np.ndarray], np.ndarray]
STRIP_ROWS = 256  # rows recombined at a time at full resolution (float path)
TABLE_STRIP_ROWS = 64  # rows per step of the table path: its map and output stay in the L2 cache
TABLE_MIN_PIXELS = 1_000_000  # smaller 8-bit gray images take the float path (fewer new table rows)


# -- colour helpers -------------------------------------------------------------------------------------
def gray_plane(image: DecodedImage) -> np.ndarray:
    """The one channel of a gray image (H, W), contiguous (no copy when decoding kept it as one plane)."""
    return np.ascontiguousarray(image.rgb[..., 0])


def uses_table(image: DecodedImage) -> bool:
    """Whether the 8-bit table path recombines this image (8-bit gray, large enough to repay its rows)."""
    return image.gray and image.rgb.dtype == np.uint8 and image.height * image.width >= TABLE_MIN_PIXELS


def gray_of(image: DecodedImage) -> DecodedImage:
    """The image's L* rendered as gray (for --side-by-side), computed in strips."""
    if image.gray:  # a gray image is its own L* rendering
        return image
    out = np.empty_like(image.rgb)
    top = image.max_value
    for y0 in range(0, image.height, STRIP_ROWS):
        g = l_to_gray_rgb(l_star(image.rgb[y0 : y0 + STRIP_ROWS], image.gray))
        out[y0 : y0 + STRIP_ROWS] = (g * top + 0.5).astype(out.dtype)[..., None]
    return replace(image, rgb=out, gray=False)


# -- fit mode -------------------------------------------------------------------------------------------
def fit_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """Network-side (h, w): the longer side becomes ``size``, aspect kept (before padding to 8)."""
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_pixels(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize pixels to (h, w): area averaging to shrink (in two steps for large factors: first by the
    largest integer k <= half the factor dividing both sides, OpenCV's fast path), bicubic to enlarge."""
    H, W = rgb.shape[:2]
    if (H, W) == (h, w):
        return rgb
    if h * w >= H * W:
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
    kmax = min(H // h, W // w) // 2
    k = next((k for k in range(kmax, 1, -1) if H % k == 0 and W % k == 0), 1)
    if k > 1:
        rgb = cv2.resize(rgb, (W // k, H // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def prepare_fit(image: DecodedImage, size: int) -> np.ndarray:
    """The network input for fit mode: L* (h, w) of the image resized so its longer side is ``size``."""
    h, w = fit_shape(image.height, image.width, size)
    if image.gray:
        small = resize_pixels(gray_plane(image), h, w)
        return l_star(small[..., None], True)
    return l_star(resize_pixels(image.rgb, h, w))


def predict_single(predict: Predict, L: np.ndarray) -> np.ndarray:
    """L (h, w) -> ab (2, h, w) through a padded network call (edge-padded to a multiple of 8 and to at
    least the network's minimum side, so panoramas and strips of any aspect ratio run)."""
    h, w = L.shape
    return predict(pad_to_multiple(L)[None, None])[0, :, :h, :w]


def _source_coords(n_out: int, n_src: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Half-pixel-centred source coordinates (as cv2.resize INTER_LINEAR) of output indices."""
    idx = np.arange(start, n_out if stop is None else stop, dtype=np.float64)
    return ((idx + 0.5) * (n_src / n_out) - 0.5).astype(np.float32)


def upsample_rows(ab_hw2: np.ndarray, ys: np.ndarray, map_x: np.ndarray) -> np.ndarray:
    """Bilinearly sample ab (h, w, 2) at rows ``ys`` (source coords) and columns ``map_x`` -> (n, W, 2)."""
    if (
        len(map_x) == ab_hw2.shape[1]
        and np.array_equal(ys, np.round(ys))
        and np.array_equal(map_x, np.arange(len(map_x), dtype=np.float32))
    ):
        return ab_hw2[np.clip(ys.astype(np.int64), 0, ab_hw2.shape[0] - 1)]
    mx = np.ascontiguousarray(np.broadcast_to(map_x[None, :], (len(ys), len(map_x))))
    my = np.ascontiguousarray(np.broadcast_to(ys[:, None], (len(ys), len(map_x))))
    return remap(ab_hw2, mx, my, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)


def _block_coords(n_out: int, n_src: int, q: int, stop: int | None = None) -> np.ndarray:
    """Source coordinates (as ``_source_coords``) of the centres of the q-pixel blocks of [0, stop)."""
    centres = np.arange(-(-(n_out if stop is None else stop) // q), dtype=np.float64) * q + (q - 1) / 2
    return ((centres + 0.5) * (n_src / n_out) - 0.5).astype(np.float32)


def _table_block(H: int, W: int, h: int, w: int) -> int:
    """Block side q of the table path: ab is sampled once per q x q block; q is 1, 2 or 4 and at most a
    third of a network pixel, so the steps between blocks stay far below the ab rounding of the table."""
    factor = min(H / h, W / w)
    return 4 if factor >= 12 else 2 if factor >= 6 else 1


def _recombine_table(image: DecodedImage, ab_hw2: np.ndarray, bgr: bool = False) -> np.ndarray | None:
    """The table path of ``recombine``: ab is sampled bilinearly at the centres of q x q blocks, turned into
    palette entries there and replicated to full resolution strip by strip (the last W mod q columns are
    sampled per pixel); each strip is then one gather from the table. None when the image needs more ab
    pairs than a palette holds. ``bgr``: channels in OpenCV's order (for the encoder), not RGB."""
    H, W = image.height, image.width
    h, w = ab_hw2.shape[:2]
    q = _table_block(H, W, h, w)
    Wm = W // q * q
    mx, my = _block_coords(W, w, q, Wm), _block_coords(H, h, q)
    grid = (np.ascontiguousarray(np.broadcast_to(c, (len(my), len(mx)))) for c in (mx[None, :], my[:, None]))
    ab_q = remap(ab_hw2, *grid, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    pairs = ab_pairs(ab_q.reshape(len(my), len(mx), 2))
    tail = np.zeros((H, 0), np.int32)
    if Wm < W:
        tail = ab_pairs(upsample_rows(ab_hw2, _source_coords(H, h), _source_coords(W, w, Wm, W)))
    try:
        pal = Palette(pairs, tail)
    except ValueError:  # more ab pairs than a palette holds: the float path
        return None
    if bgr:
        pal.src = np.ascontiguousarray(pal.src[..., ::-1])
    blocks, tail_maps = pal.maps(pairs), pal.maps(tail)
    gray = gray_plane(image)
    out = np.empty((H, W, 3), np.uint8)
    step = TABLE_STRIP_ROWS // q * q
    for y0 in range(0, H, step):
        y1 = min(H, y0 + step)
        bq = blocks[y0 // q : -(-y1 // q)]
        maps = bq if q == 1 else cv2.resize(bq, (Wm, bq.shape[0] * q), interpolation=cv2.INTER_NEAREST)
        if Wm == W:
            pal.lookup(gray[y0:y1], maps[: y1 - y0], out=out[y0:y1])
        else:
            out[y0:y1, :Wm] = pal.lookup(gray[y0:y1, :Wm], maps[: y1 - y0])
            out[y0:y1, Wm:] = pal.lookup(gray[y0:y1, Wm:], np.ascontiguousarray(tail_maps[y0:y1]))
    return out


def _ab_hw2(ab_lowres: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(ab_lowres, 0, -1).astype(np.float32))


def _pixels(image: DecodedImage, y0: int, y1: int, ab: np.ndarray) -> np.ndarray:
    """The float path for rows [y0, y1) of ``image`` with their full-resolution ab (n, W, 2)."""
    rows = image.rgb[y0:y1]
    gray = np.ascontiguousarray(rows[..., 0]) if image.gray else None
    return lab_to_pixels(l_star(rows, image.gray), ab, image.rgb.dtype, gray=gray)


def recombine_bgr(image: DecodedImage, ab_lowres: np.ndarray) -> np.ndarray | None:
    """``recombine`` straight into OpenCV's BGR order (what its encoders take: no RGB -> BGR copy before
    writing) when the 8-bit table path applies; None otherwise (use ``recombine``)."""
    return _recombine_table(image, _ab_hw2(ab_lowres), bgr=True) if uses_table(image) else None


def recombine(image: DecodedImage, ab_lowres: np.ndarray) -> DecodedImage:
    """Upsample ab (2, h, w) to the image's size and merge with its full-res L*, strip by strip."""
    H, W = image.height, image.width
    ab_hw2 = _ab_hw2(ab_lowres)
    if uses_table(image):
        rgb = _recombine_table(image, ab_hw2)
        if rgb is not None:
            return image.with_rgb(rgb)
    h, w = ab_hw2.shape[:2]
    map_x = _source_coords(W, w)
    out = np.empty((H, W, 3), dtype=image.rgb.dtype)
    for y0 in range(0, H, STRIP_ROWS):
        y1 = min(H, y0 + STRIP_ROWS)
        ab = upsample_rows(ab_hw2, _source_coords(H, h, y0, y1), map_x)
        out[y0:y1] = _pixels(image, y0, y1, ab)
    return image.with_rgb(out)


def colorize_fit(image: DecodedImage, predict: Predict, size: int = 256) -> DecodedImage:
    return recombine(image, predict_single(predict, prepare_fit(image, size)))


# -- tiled mode -----------------------------------------------------------------------------------------
def _align_up(n: int, m: int = NET_MULTIPLE) -> int:
    return -(-n // m) * m


def tile_grid(tile: int, overlap: int) -> tuple[int, int]:
    """(tile, stride) aligned to the network's stride, so every tile sees the same pixel grid as a
    whole-image pass (and the same edge padding at the far border)."""
    tile = max(NET_MULTIPLE, tile // NET_MULTIPLE * NET_MULTIPLE)
    stride = max(NET_MULTIPLE, (tile - overlap) // NET_MULTIPLE * NET_MULTIPLE)
    return tile, stride


def tile_starts(n: int, tile: int, stride: int) -> list[int]:
    """Start offsets (multiples of 8) of tiles of length ``min(tile, n - start)`` covering [0, n).
    The last tile starts at ``n - tile`` rounded up to 8 and is edge-padded back to ``tile``."""
    if n <= tile:
        return [0]
    return list(range(0, n - tile, stride)) + [_align_up(n - tile)]


def feather(length: int, start: int, n: int, overlap: int) -> np.ndarray:
    """1-D blending weights of a tile: linear ramps of ``overlap`` pixels on edges interior to [0, n)."""
    i = np.arange(length, dtype=np.float32) + 0.5
    w = np.ones(length, np.float32)
    if overlap > 0:
        if start > 0:
            w = np.minimum(w, i / overlap)
        if start + length < n:
            w = np.minimum(w, (length - i) / overlap)
    return w


@dataclass
class _Band:
    """Weighted ab sums for network rows [y0, y0 + len)."""

    y0: int
    ab: np.ndarray  # (rows, W, 2)
    w: np.ndarray  # (rows, W)

    def extend_to(self, y1: int) -> None:
        extra = y1 - (self.y0 + len(self.w))
        if extra > 0:
            width = self.w.shape[1]
            self.ab = np.concatenate([self.ab, np.zeros((extra, width, 2), np.float32)])
            self.w = np.concatenate([self.w, np.zeros((extra, width), np.float32)])

    def pop_until(self, y: int) -> np.ndarray:
        """Normalised ab of rows [y0, y), removed from the band."""
        k = y - self.y0
        out = self.ab[:k] / np.maximum(self.w[:k, :, None], 1e-12)
        self.ab, self.w, self.y0 = self.ab[k:], self.w[k:], y
        return out


class _RowEmitter:
    """Turns final network-scale ab rows (in order) into full-resolution ab rows (in order)."""

    def __init__(self, hs: int, ws: int, H: int, W: int):
        self.hs, self.H = hs, H
        self.map_x = _source_coords(W, ws)
        self.buf = np.zeros((0, ws, 2), np.float32)
        self.f0 = 0  # network row of buf[0]
        self.next_y = 0  # next full-res row to emit

    def push(self, rows: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        self.buf = np.concatenate([self.buf, rows]) if len(self.buf) else rows
        f1 = self.f0 + len(self.buf)
        done = f1 >= self.hs
        while self.next_y < self.H:
            y1 = min(self.H, self.next_y + STRIP_ROWS)
            ys = _source_coords(self.H, self.hs, self.next_y, y1)
            if not done:
                ok = np.floor(ys) + 1 <= f1 - 1
                y1 = self.next_y + int(np.argmin(ok)) if not ok.all() else y1
                if y1 == self.next_y:
                    break
                ys = ys[: y1 - self.next_y]
            yield self.next_y, y1, upsample_rows(self.buf, ys - self.f0, self.map_x)
            self.next_y = y1
        if self.next_y < self.H:
            keep_from = max(self.f0, int(np.floor(_source_coords(self.H, self.hs, self.next_y, self.next_y + 1)[0])))
            self.buf = self.buf[keep_from - self.f0 :]
            self.f0 = keep_from


def tiled_ab(
    image: DecodedImage,
    predict: Predict,
    tile: int = 512,
    overlap: int = 64,
    scale: float = 1.0,
    batch: int = 4,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Tiled inference at ``scale`` of the full resolution, feather-blended; yields full-resolution ab
    row strips ``(y0, y1, ab (y1 - y0, W, 2))`` in order, holding only a band of tile rows at a time."""
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap ({overlap}) must be >= 0 and smaller than the tile ({tile})")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1]; got {scale}")
    H, W = image.height, image.width
    hs, ws = (H, W) if scale == 1 else (max(1, round(H * scale)), max(1, round(W * scale)))
    src = image.rgb if (hs, ws) == (H, W) else resize_pixels(image.rgb, hs, ws)
    tile, stride = tile_grid(tile, overlap)
    ramp = tile - stride
    ys, xs = tile_starts(hs, tile, stride), tile_starts(ws, tile, stride)
    pad_h, pad_w = (max(NET_MIN_SIDE, _align_up(min(tile, n))) for n in (hs, ws))
    band = _Band(0, np.zeros((0, ws, 2), np.float32), np.zeros((0, ws), np.float32))
    emitter = _RowEmitter(hs, ws, H, W)
    for r, ty in enumerate(ys):
        th = min(tile, hs - ty)
        band.extend_to(ty + th)
        wy = feather(th, ty, hs, ramp)
        for b0 in range(0, len(xs), batch):
            group = xs[b0 : b0 + batch]
            tiles = []
            for x in group:
                tw = min(tile, ws - x)
                L = l_star(src[ty : ty + th, x : x + tw], image.gray)
                tiles.append(np.pad(L, ((0, pad_h - th), (0, pad_w - tw)), mode="edge"))
            ab = predict(np.stack(tiles)[:, None])
            for x, a in zip(group, ab, strict=True):
                tw = min(tile, ws - x)
                wt = wy[:, None] * feather(tw, x, ws, ramp)[None, :]
                sl = (slice(ty - band.y0, ty - band.y0 + th), slice(x, x + tw))
                band.ab[sl] += np.moveaxis(a[:, :th, :tw], 0, -1) * wt[..., None]
                band.w[sl] += wt
        nxt = ys[r + 1] if r + 1 < len(ys) else hs
        yield from emitter.push(band.pop_until(nxt))


def colorize_tiled(
    image: DecodedImage,
    predict: Predict,
    tile: int = 512,
    overlap: int = 64,
    scale: float = 1.0,
    batch: int = 4,
) -> DecodedImage:
    """Tiled mode: ab from ``tiled_ab`` merged with the full-res L* strip by strip into the output."""
    out = np.empty((image.height, image.width, 3), dtype=image.rgb.dtype)
    table = uses_table(image)
    gray = gray_plane(image) if table else None
    for y0, y1, ab in tiled_ab(image, predict, tile, overlap, scale, batch):
        out[y0:y1] = gray_table_pixels(gray[y0:y1], ab) if table else _pixels(image, y0, y1, ab)
    return image.with_rgb(out)


# -- model-free colour transfer (Reinhard et al. 2001) ----------------------------------------------------
@dataclass
class LabStats:
    mean: np.ndarray  # (3,) L, a, b
    std: np.ndarray  # (3,)
    ab_by_l: np.ndarray  # (101, 2): mean ab of pixels at each integer L* (for gray targets)


def _small_lab(image: DecodedImage, side: int = 512) -> np.ndarray:
    h, w = fit_shape(image.height, image.width, min(side, max(image.height, image.width)))
    small = resize_pixels(image.rgb, h, w).astype(np.float32) / image.max_value
    return cv2.cvtColor(small, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def lab_stats(image: DecodedImage) -> LabStats:
    """Mean/std of L, a, b (OpenCV Lab on a <=512 px copy) and an L*-keyed mean-ab table."""
    lab = _small_lab(image)
    mean, std = cv2.meanStdDev(lab.reshape(-1, 1, 3))
    keys = np.clip(np.round(lab[:, 0]), 0, 100).astype(np.int64)
    counts = np.bincount(keys, minlength=101).astype(np.float64)
    table = np.zeros((101, 2), np.float32)
    filled = counts > 0
    for c in range(2):
        sums = np.bincount(keys, weights=lab[:, 1 + c], minlength=101)
        vals = sums[filled] / counts[filled]
        table[:, c] = np.interp(np.arange(101), np.flatnonzero(filled), vals)
    kernel = np.array([1, 4, 6, 4, 1], np.float32) / 16
    table = np.stack([np.convolve(np.pad(table[:, c], 2, mode="edge"), kernel, "valid") for c in range(2)], -1)
    return LabStats(mean.ravel().astype(np.float32), std.ravel().astype(np.float32), table.astype(np.float32))


def transfer_ab(L: np.ndarray, ab_target: np.ndarray | None, ref: LabStats, tgt: LabStats) -> np.ndarray:
    """Reinhard transfer of ab for pixels with lightness ``L`` (n, W) -> (n, W, 2).

    A colour target gets classic per-channel mean/std matching of a and b. A gray target has no chroma
    statistics to match (std 0), so its lightness is matched to the reference's (mean/std of L*) and each
    pixel takes the reference's mean ab at that lightness. The target's own L* is kept either way.
    """
    if ab_target is not None and float(np.hypot(tgt.std[1], tgt.std[2])) > 2.0:
        scale = ref.std[1:] / np.maximum(tgt.std[1:], 1e-6)
        return ((ab_target - tgt.mean[1:]) * scale + ref.mean[1:]).astype(np.float32)
    Lm = (L - tgt.mean[0]) * (ref.std[0] / max(float(tgt.std[0]), 1e-6)) + ref.mean[0]
    keys = np.clip(np.round(Lm), 0, 100).astype(np.int64)
    return ref.ab_by_l[keys]


def colorize_transfer(image: DecodedImage, reference: DecodedImage) -> DecodedImage:
    ref, tgt = lab_stats(reference), lab_stats(image)
    colourful = not image.gray
    out = np.empty_like(image.rgb)
    top = float(image.max_value)
    for y0 in range(0, image.height, STRIP_ROWS):
        rows = image.rgb[y0 : y0 + STRIP_ROWS]
        L = l_star(rows, image.gray)
        ab_t = cv2.cvtColor(rows.astype(np.float32) / top, cv2.COLOR_RGB2Lab)[..., 1:] if colourful else None
        out[y0 : y0 + STRIP_ROWS] = lab_to_pixels(L, transfer_ab(L, ab_t, ref, tgt), out.dtype)
    return image.with_rgb(out)
