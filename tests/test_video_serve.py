"""Video in the server: the HTTP image endpoint answers a video upload with a clear 415, and the Gradio
app's Video tab colorizes a short clip (``ColorizeService.colorize_video_file``)."""

from __future__ import annotations

import pytest

from tests.conftest import VAL_DIR, needs
from tests.video_support import pan_frames, photo, read_timestamps, to_gray, write_clip

pytest.importorskip("av")
pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    if not VAL_DIR.exists():
        pytest.skip(f"{VAL_DIR} not present")
    img = photo(sorted(VAL_DIR.glob("*.jpg"))[0], 192, 144)
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", to_gray(pan_frames(img, 8, 96, 72)))


@pytest.fixture(scope="module")
def service():
    from colorize_rt.serve.service import ColorizeService

    return ColorizeService(backend="cpu")


def test_signatures():
    from colorize_rt.runtime.video.io import video_signature

    assert video_signature(b"\x00\x00\x00\x18ftypisom" + b"\0" * 20) == "MP4/MOV"
    assert video_signature(b"\x00\x00\x00\x1cftypavif" + b"\0" * 20) is None  # an AVIF image
    assert video_signature(b"\x1a\x45\xdf\xa3" + b"\0" * 20) == "Matroska/WebM"
    assert video_signature(b"RIFF\0\0\0\0AVI LIST") == "AVI"
    assert video_signature(b"RIFF\0\0\0\0WEBPVP8 ") is None
    assert video_signature(b"\x89PNG\r\n\x1a\n") is None


@needs(VAL_DIR)
def test_http_endpoint_answers_a_video_with_415(clip, service):
    from fastapi.testclient import TestClient

    from colorize_rt.serve.http_api import create_api

    with TestClient(create_api(service)) as client:
        r = client.post("/api/colorize", content=clip.read_bytes())
    assert r.status_code == 415
    msg = r.json()["error"]
    assert "video (MP4/MOV)" in msg and "colorize-rt clip.mp4" in msg and "\n" not in msg


@needs(VAL_DIR)
def test_ui_video_tab_colorizes_a_short_clip(clip, service, tmp_path):
    out, line = service.colorize_video_file(str(clip), str(tmp_path))
    assert out.endswith("clip_color.mp4") and "8 frames" in line
    assert read_timestamps(out) == read_timestamps(clip)


def test_ui_video_tab_refuses_a_non_video_in_one_line(service, tmp_path):
    from colorize_rt.serve.service import UserError

    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="the video is not usable") as exc:
        service.colorize_video_file(str(bad), str(tmp_path))
    assert "\n" not in str(exc.value)


def test_gradio_app_has_the_video_tab(service):
    pytest.importorskip("gradio")
    from colorize_rt.serve.gradio_app import build_blocks

    demo = build_blocks(service)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"video-in", "video-run", "video-out", "video-stabilize"} <= ids
