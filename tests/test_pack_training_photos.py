import shutil
import subprocess
import sys

import cv2

from .conftest import ROOT, TRAIN_DIR, needs

SCRIPT = ROOT / "scripts" / "pack_training_photos.py"


@needs(TRAIN_DIR)
def test_pack_writes_centre_squares_and_refuses_an_existing_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in sorted(TRAIN_DIR.iterdir())[:3]:
        shutil.copy(f, src / f.name)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    first = sorted(TRAIN_DIR.iterdir())[0]
    (src / "sub").mkdir()
    shutil.copy(first, src / "sub" / first.name)  # the same name in a subfolder is kept, not overwritten
    dst = tmp_path / "packed"
    run = subprocess.run([sys.executable, str(SCRIPT), str(src), str(dst), "--size", "96"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = sorted(p for p in dst.rglob("*") if p.is_file())
    assert [p.suffix for p in out] == [".webp"] * 4  # the unreadable file is skipped
    assert (dst / "sub" / first.with_suffix(".webp").name).exists()
    for p in out:
        assert cv2.imread(str(p)).shape == (96, 96, 3)
    assert not (tmp_path / "packed.partial").exists()

    again = subprocess.run([sys.executable, str(SCRIPT), str(src), str(dst)], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    argv = [sys.executable, str(SCRIPT), str(src), str(tmp_path / "x"), "--quality", "0"]
    bad = subprocess.run(argv, capture_output=True, text=True)
    assert bad.returncode == 2 and "--quality" in bad.stderr
