import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLORIZE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
TRAIN_DIR = SHARED / "data" / "colorize-train" / "train"
VAL_DIR = SHARED / "data" / "colorize-train" / "val"


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (shared data lives outside the repo)")


@pytest.fixture(scope="session")
def sample_rgb():
    """Real photos from scikit-image, as uint8 RGB."""
    from skimage import data

    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
