"""Headless Chromium opens the dashboard while a search writes to the store and sees new trials arrive.

Needs Debian's `chromium` (.ci/run installs it): skipped without it, a failure in CI (NASFORGE_CI=1). Every
wait is bounded, so a broken browser fails the test in well under a minute instead of hanging CI.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nasforge.dashboard.headless import Chromium, find_chromium
from nasforge.dashboard.server import make_server, serve_in_thread

ROWS = "document.querySelectorAll('#leaderboard tbody tr[data-trial]').length"


def chromium_or_skip() -> str:
    found = find_chromium()
    if found:
        return found
    if os.environ.get("NASFORGE_CI"):
        pytest.fail("NASFORGE_CI is set but no chromium is installed: .ci/run must install it")
    pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")


def wait_for_study(db: Path, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    if conn.execute("SELECT count(*) FROM trials t JOIN studies s ON s.id = t.study_id "
                                    "WHERE s.name = ? AND t.state = 'complete'", (name,)).fetchone()[0]:
                        return
            except sqlite3.Error:
                pass
        time.sleep(0.2)
    raise AssertionError(f"the search stored no complete trial of {name!r} within {timeout:.0f} s")


def test_dashboard_shows_trials_while_a_search_writes(tmp_path: Path) -> None:
    binary = chromium_or_skip()
    db = tmp_path / "live.db"
    search = subprocess.Popen(
        [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--strategy", "random", "--evaluator",
         "synthetic", "--evaluator-option", "sleep=0.3", "--trials", "60", "--workers", "1", "--study", "live",
         "--storage", f"sqlite:///{db}", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stop = None
    try:
        wait_for_study(db, "live")
        server = make_server(f"sqlite:///{db}", port=0)
        stop = serve_in_thread(server)
        with Chromium(binary, timeout=20) as browser:
            browser.goto(f"http://127.0.0.1:{server.server_address[1]}/#/study/live")
            first = int(browser.wait_for(f"{ROWS} > 0 && {ROWS}", timeout=20))
            assert search.poll() is None, "the search must still be writing"
            later = int(browser.wait_for(f"{ROWS} > {first} && {ROWS}", timeout=20))  # polled, not reloaded
            assert later > first
            browser.wait_for("document.querySelector('#history').width > 0", timeout=5)
            shot = browser.screenshot(tmp_path / "dashboard.png")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
            browser.goto(f"http://127.0.0.1:{server.server_address[1]}/#/study/live/trial/0")
            browser.wait_for("document.querySelector('img.drawing') && document.querySelector('img.drawing').complete "
                             "&& document.querySelector('img.drawing').naturalWidth > 0", timeout=20)
            time.sleep(0.3)
            assert browser.errors == []
    finally:
        if stop is not None:
            stop()
        search.terminate()
        try:
            search.wait(timeout=20)
        except subprocess.TimeoutExpired:
            search.kill()
            search.wait(timeout=10)
