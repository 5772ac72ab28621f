"""Headless Chromium (Debian's chromium and chromedriver) driving `vidcolor serve`'s page, and the
page served from a thread: for the browser tests and `examples/make_page_screenshots.py`."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# as the machine notes say: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which a closed network refuses
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).exists() and shutil.which(Path(program).name) is None:
            return f"{program} is missing (apt-get install chromium chromium-driver; .ci/run does)"
    return None


@contextmanager
def headless_chromium(width: int = 1300, height: int = 1000) -> Iterator[object]:
    """A selenium WebDriver on headless Chromium with a window of ``width`` x ``height``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve the Flask ``app`` on a free loopback port from a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
