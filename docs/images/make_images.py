"""Make the README's pictures: a DARTS cell drawing and a dashboard screenshot during a search.

Usage: python docs/images/make_images.py   (needs Debian's `chromium` for the screenshot)
Writes docs/images/darts_cells.png and docs/images/dashboard.png. The search is a synthetic-objective
nb201 search (instant trials with a short sleep), so the picture shows a study being written.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> int:
    from nasforge.core import registry
    from nasforge.dashboard.headless import Chromium
    from nasforge.dashboard.server import make_server, serve_in_thread
    from nasforge.report.drawing import draw

    darts = registry.create("space", "darts")
    draw(darts, darts.sample(np.random.default_rng(11)), HERE / "darts_cells.png")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "demo.db"
        search = subprocess.Popen(
            [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--strategy", "evolution",
             "--evaluator", "synthetic", "--evaluator-option", "sleep=0.1", "--evaluator-option", "noise=0.2",
             "--trials", "400", "--workers", "1", "--study", "nb201-evolution", "--storage", f"sqlite:///{db}",
             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(8)
            server = make_server(f"sqlite:///{db}", port=0)
            stop = serve_in_thread(server)
            with Chromium(width=1280, height=1020) as browser:
                browser.goto(f"http://127.0.0.1:{server.server_address[1]}/#/study/nb201-evolution")
                browser.wait_for("document.body.dataset.leaderboard > 10", timeout=30)
                time.sleep(0.5)
                browser.screenshot(HERE / "dashboard.png")
                if browser.errors:
                    raise SystemExit(f"page errors: {browser.errors}")
            stop()
        finally:
            search.terminate()
            search.wait(timeout=20)
    print(f"wrote {HERE / 'darts_cells.png'} and {HERE / 'dashboard.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
