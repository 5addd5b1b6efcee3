"""Headless Chromium (Debian's chromium + chromium-driver, driven by selenium) and a Jupyter server
with nbgrader's formgrader, for the end-to-end tests.  Tests skip when the browser is missing;
``.ci/run`` installs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coursekit import course

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("COURSEKIT_SCREENSHOTS")  # folder to keep screenshots in (for a human to look at)


def require_browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium is missing (Debian: apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, path: Path, name: str) -> Path:
    """Save a full-page screenshot to ``path`` (and to $COURSEKIT_SCREENSHOTS when set)."""
    time.sleep(1)  # let the page finish drawing
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 600), 8000))
    target = path / f"{name}.png"
    driver.save_screenshot(str(target))
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(SHOTS) / target.name)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(root: Path, token: str = ""):
    """A Jupyter server in the course folder (nbgrader's server extensions on), as the README starts it;
    without a token unless ``token`` is given.  Its output goes to ``<root>/jupyter-server.log``."""
    port = _free_port()
    log = open(root / "jupyter-server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--ServerApp.password="],
        cwd=root, env=course.command_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status" + (f"?token={token}" if token else ""), timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            raise RuntimeError("the Jupyter server did not start")
        if process.poll() is not None:
            raise RuntimeError("the Jupyter server stopped:\n" + (root / "jupyter-server.log").read_text()[-3000:])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
