"""The formgrader as the README tells a TA to start it: `jupyter server --no-browser` in the course folder, the
printed link with ?token= once (it logs in), then /formgrader."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.request

from coursekit import course

from . import browser

ROOT = course.ROOT


def test_the_documented_command_serves_the_formgrader_after_logging_in_with_the_token(tmp_path):
    root = course.copy_course(ROOT, tmp_path / "course")
    visitor = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with browser.jupyter_server(root, token="secret-token") as base:  # the README's command, with a known token
        assert "/login" in visitor.open(f"{base}/formgrader", timeout=10).url  # not logged in yet
        visitor.open(f"{base}/?token=secret-token", timeout=10).read()  # the printed link: logs in (a cookie)
        formgrader = visitor.open(f"{base}/formgrader", timeout=30)
        html = formgrader.read().decode()
        assert formgrader.status == 200 and "/login" not in formgrader.url and "formgrader" in html.lower()
        assert "warning-exchange" not in html  # the course's own exchange folder exists: no warning about it
        printed = (root / "jupyter-server.log").read_text()
        assert re.search(rf"{re.escape(base)}/\S*\?token=", printed), printed[-2000:]  # the link to open
