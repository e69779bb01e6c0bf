"""Both UIs in a real headless Chromium (Debian chromium + chromedriver through Selenium): upload an
image to the app running on localhost and check that the page shows a coloured result.

Set COLORIZE_RT_UPDATE_SCREENSHOT=1 to copy the Gradio screenshot to docs/ui-screenshot.png.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize_rt.core.constants import DEFAULT_T
from colorize_rt.runtime.api import Colorizer
from colorize_rt.runtime.pipeline.images import read_image
from tests.serve_support import AppProcess, mean_chroma, sample_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
pytest.importorskip("gradio", reason="pip install 'colorize-rt[serve]'")
pytest.importorskip("torch", reason="the test model is exported with torch (the [train] extra)")
pytest.importorskip("skimage", reason="sample photos come from scikit-image (the [dev] extra)")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000", "--force-device-scale-factor=1",
]  # fmt: skip

CPU_RUNTIMES = ("cpu", "openvino", "opencv")  # what auto may pick on the CPU, by measurement


@pytest.fixture(scope="module")
def model(tiny_onnx):
    shipped = REPO / "colorize_rt" / "assets" / "default.onnx"
    return shipped if shipped.is_file() else tiny_onnx


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def gradio_app(model, tmp_path_factory):
    app = AppProcess("gradio", model, tmp_path_factory.mktemp("gradio"), extra=("--max-upload-mb", "1"))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> Path:
    """A real 1.9 MB PNG (noise does not compress), over the apps' 1 MB limit in these tests."""
    import cv2
    import numpy as np

    path = tmp_path_factory.mktemp("big") / "big.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8))
    assert path.stat().st_size > 1.5 * 1024 * 1024
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "astronaut.png"
    path.write_bytes(sample_png(192))
    return path


def fetch_image(src: str):
    import numpy as np

    with urllib.request.urlopen(src, timeout=30) as resp:
        return np.asarray(Image.open(io.BytesIO(resp.read())).convert("RGB"))


def screenshot_region(driver, element, path: Path):
    import numpy as np

    driver.save_screenshot(str(path))
    shot = np.asarray(Image.open(path).convert("RGB"))
    r = element.rect
    return shot[int(r["y"]) : int(r["y"] + r["height"]), int(r["x"]) : int(r["x"] + r["width"])]


def wait_for(driver, fn, timeout=60, what="condition"):
    """Poll ``fn(driver)`` until it returns something truthy. An element the page re-rendered between finding
    it and reading it (Streamlit redraws on every run) counts as not there yet."""
    ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored).until(lambda d: fn(d))
    except Exception as exc:  # noqa: BLE001 - add the page's status to the failure
        status = driver.find_elements(By.CSS_SELECTOR, "#status, [data-testid=stAlert]")
        raise AssertionError(f"timed out waiting for {what}; status: {[s.text for s in status]}") from exc


def _text_with(text: str, part: str) -> str | None:
    """Returns: ``text`` if it contains ``part`` (for :func:`wait_for`: read once, so it cannot go stale)."""
    return text if part in text else None


def test_gradio_upload_shows_coloured_result(browser, gradio_app, model, photo, tmp_path):
    t0 = time.monotonic()
    browser.get(gradio_app.url + "/")
    upload = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"), what="upload")
    shown = browser.find_element(By.CSS_SELECTOR, "#backend").text  # auto: the CPU runtime measured fastest here
    used = next((name for name in CPU_RUNTIMES if f"backend: {name}" in shown), None)
    assert used, shown
    upload.send_keys(str(photo))
    result = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#result img"), what="result image")
    status = browser.find_element(By.CSS_SELECTOR, "#status").text
    assert f"192x192 · classification · {used}" in status
    colour = fetch_image(result.get_attribute("src"))
    gray = fetch_image(browser.find_element(By.CSS_SELECTOR, "#gray img").get_attribute("src"))
    assert colour.shape == gray.shape == (192, 192, 3)
    assert mean_chroma(gray) < 1.0 and mean_chroma(colour) > 3.0
    time.sleep(0.5)  # let the image paint
    region = screenshot_region(browser, result, tmp_path / "gradio.png")
    assert region.size and mean_chroma(region) > 3.0  # the screenshot shows colour where the result is
    assert "cache backend:" in browser.find_element(By.CSS_SELECTOR, "#cache-stats").text
    if os.environ.get("COLORIZE_RT_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "gradio.png", REPO / "docs" / "ui-screenshot.png")

    # live temperature preview: the picture becomes the library's T = 1 result (which way the chroma moves
    # depends on the model: the round-2 default is most saturated near T = 0.6)
    old_src = result.get_attribute("src")
    number = browser.find_element(By.CSS_SELECTOR, "#temperature input[type=number]")
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys("1", Keys.ENTER)
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src") != old_src,
        what="re-colorized preview",
    )
    hot = fetch_image(browser.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src"))
    engine = Colorizer(model, backend="cpu")
    lib_cold, lib_hot = (engine.colorize(read_image(photo), temperature=t).rgb for t in (DEFAULT_T, 1.0))
    err_hot, err_cold = (float(np.abs(hot.astype(int) - ref.astype(int)).mean()) for ref in (lib_hot, lib_cold))
    assert err_hot < 2.0 and err_cold > err_hot + 0.5, (err_hot, err_cold)

    # blend animation: a GIF with gray and colour ends
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Animation')]").click()
    gif_src = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#gif img"), what="gif").get_attribute("src")
    with urllib.request.urlopen(gif_src, timeout=30) as resp:
        gif = Image.open(io.BytesIO(resp.read()))
        assert gif.format == "GIF" and gif.n_frames > 10
    assert time.monotonic() - t0 < 60


def test_gradio_non_image_gets_a_clear_message(browser, gradio_app, tmp_path):
    browser.get(gradio_app.url + "/")
    upload = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"), what="upload")
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image\n")
    upload.send_keys(str(bad))
    wait_for(
        browser,
        lambda d: "not a usable image" in d.find_element(By.CSS_SELECTOR, "#status").text,
        what="error message",
    )
    text = browser.find_element(By.CSS_SELECTOR, "#status").text
    assert text == "Error: the image is not a usable image: not a recognised image file"


def test_gradio_oversized_upload_is_refused(browser, gradio_app, big_png):
    browser.get(gradio_app.url + "/")
    upload = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"), what="upload")
    upload.send_keys(str(big_png))
    msg = 'exceed the maximum allowed size of 1.0 Mb: "big.png"'
    wait_for(browser, lambda d: any(msg in t.text for t in d.find_elements(By.CSS_SELECTOR, ".toast-body")),
             what="size-limit toast")  # fmt: skip
    assert browser.find_element(By.CSS_SELECTOR, "#status").text == "Upload an image to start."
    assert not browser.find_elements(By.CSS_SELECTOR, "#result img")


pytest.importorskip("streamlit", reason="pip install 'colorize-rt[serve]'")


@pytest.fixture(scope="module")
def streamlit_app(model, tmp_path_factory):
    app = AppProcess("streamlit", model, tmp_path_factory.mktemp("streamlit"), extra=("--max-upload-mb", "1"))
    yield app
    app.stop()


def _streamlit_upload(browser, url: str, path: Path):
    browser.get(url + "/")
    sel = "input[data-testid=stFileUploaderDropzoneInput]"
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, sel), what="uploader").send_keys(str(path))


def test_streamlit_upload_shows_coloured_result(browser, streamlit_app, photo, tmp_path):
    t0 = time.monotonic()
    _streamlit_upload(browser, streamlit_app.url, photo)
    result = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".st-key-result img"), what="result image")
    status = browser.find_element(By.CSS_SELECTOR, "[data-testid=stAlert]").text
    assert any(f"192x192 · classification · {name}" in status for name in CPU_RUNTIMES), status
    colour = fetch_image(result.get_attribute("src"))
    gray = fetch_image(browser.find_element(By.CSS_SELECTOR, ".st-key-gray img").get_attribute("src"))
    assert colour.shape == gray.shape == (192, 192, 3)
    assert mean_chroma(gray) < 1.0 and mean_chroma(colour) > 3.0
    time.sleep(0.5)
    region = screenshot_region(browser, result, tmp_path / "streamlit.png")
    assert region.size and mean_chroma(region) > 3.0
    wait_for(  # the blend animation renders after the result
        browser,
        lambda d: any(
            (img.get_attribute("src") or "").endswith(".gif")
            for img in d.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")
        ),
        what="blend GIF",
    )
    wait_for(
        browser,
        lambda d: "Download (PNG, full resolution)" in d.find_element(By.CSS_SELECTOR, ".st-key-download").text,
        what="download button",
    )
    wait_for(
        browser,
        lambda d: "cache backend: disk" in d.find_element(By.CSS_SELECTOR, "[data-testid=stText]").text,
        what="cache status",
    )
    assert time.monotonic() - t0 < 120


def test_streamlit_non_image_gets_a_clear_message(browser, streamlit_app, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not an image\n")
    _streamlit_upload(browser, streamlit_app.url, bad)
    alert = "[data-testid=stAlert]"
    text = wait_for(browser, lambda d: _text_with(d.find_element(By.CSS_SELECTOR, alert).text, "usable image"), what="error")
    assert text == "Error: the image is not a usable image: not a recognised image file"


def test_streamlit_oversized_upload_is_refused(browser, streamlit_app, big_png):
    _streamlit_upload(browser, streamlit_app.url, big_png)
    wait_for(browser, lambda d: "1.0MB or smaller" in d.find_element(By.CSS_SELECTOR, "body").text, what="limit")
    assert not browser.find_elements(By.CSS_SELECTOR, ".st-key-result img")
