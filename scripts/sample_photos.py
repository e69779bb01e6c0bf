"""Write scikit-image's sample photos (and their gray versions) to a folder, for the demo and README.

python scripts/sample_photos.py build/demo
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def main(out: str) -> None:
    from skimage import data

    folder = Path(out)
    (folder / "gray").mkdir(parents=True, exist_ok=True)
    (folder / "color").mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        rgb = getattr(data, name)()
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / "color" / f"{name}.png"), bgr)
        cv2.imwrite(str(folder / "gray" / f"{name}.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    print(f"wrote {len(PHOTOS)} photos to {folder}/gray and {folder}/color")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/demo")
