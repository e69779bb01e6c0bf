import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLORIZE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
TRAIN_DIR = SHARED / "data" / "colorize-train" / "train"
VAL_DIR = SHARED / "data" / "colorize-train" / "val"
IMAGENET_PRIOR = REFERENCE / "prior_probs_imagenet_candidate.npy"  # the paper's evaluation weights

# auto measures the CPU in the calling process (runtime/backends/auto_background.py): tests that open auto see
# the measured table, and no detached measuring process outlives a test (tests of the background set it back)
os.environ.setdefault("COLORIZE_RT_AUTO_MEASURE", "sync")


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (shared data lives outside the repo)")


@pytest.fixture(scope="session")
def sample_rgb():
    """Real photos from scikit-image, as uint8 RGB."""
    from skimage import data

    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """The one tiny real model every runtime/serve test shares: mobile (width 0.125, seed 0) exported to ONNX."""
    pytest.importorskip("torch", reason="exporting the tiny test model needs torch (the [train] extra)")
    from tests.runtime_support import export_tiny_model

    return export_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real redis-server for one test module, or None where it is not installed (tests then use the disk cache)."""
    import shutil

    from tests.serve_support import RedisServer

    if shutil.which("redis-server") is None:
        yield None
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as srv:
        yield srv
