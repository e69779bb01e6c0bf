"""Before/after grids for the README and model card from scikit-image's sample photos.

    python scripts/readme_figures.py OUT.jpg MODEL.onnx [MODEL.onnx ...] [--labels a,b,...]

Columns: gray input | each model | ground truth. Rows: the sample photos.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.pipeline.images import DecodedImage

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
ROW_H = 192


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """The image under a white bar holding its caption."""
    bar = np.full((20, img.shape[1], 3), 255, np.uint8)
    scale = min(0.45, 0.45 * img.shape[1] / max(1, cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 8))
    cv2.putText(bar, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def main() -> None:
    from skimage import data

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--labels", default="")
    ap.add_argument("--photos", default=",".join(PHOTOS))
    args = ap.parse_args()
    labels = args.labels.split(",") if args.labels else [m.rsplit("/", 1)[-1] for m in args.models]
    engines = [Colorizer(m, backend="cpu") for m in args.models]
    rows = []
    for name in args.photos.split(","):
        rgb = getattr(data, name)()
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (round(w * ROW_H / h), ROW_H), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        image = DecodedImage(rgb=gray, alpha=None, bit_depth=8, source=name)
        cols = [_label(gray, "gray input")]
        for eng, lab in zip(engines, labels, strict=True):
            cols.append(_label(eng.colorize(image).rgb, lab))
        cols.append(_label(rgb, "ground truth"))
        rows.append(np.concatenate(cols, 1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
