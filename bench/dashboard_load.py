"""Dashboard page load with a 10,000-trial study, in headless Chromium (Debian's `chromium`).

Usage: python bench/dashboard_load.py [--trials 10000] [--repeats 5]
Writes bench/results/dashboard_load.md and .csv. The study is written straight into a fresh SQLite store
(nb201 architectures, scores, params, a 3-epoch curve each); then, for each repeat, a fresh navigation to
the study page is timed from the browser's own clock: first contentful paint, and the moment the page
has drawn its leaderboard, history and front from the 10,000 trials (the `nasforge-study-painted` mark).
Also timed: `nasforge dashboard` from launch to its first answer, and the study API call alone.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def write_store(path: Path, trials: int) -> None:
    import numpy as np

    from nasforge.core import registry
    from nasforge.storage.schema import IntermediateModel, TrialModel
    from nasforge.storage.sql import Store

    store = Store(f"sqlite:///{path}")
    info = store.create_study("big", owner="", config={"space": "nb201", "space_config": {}, "strategy": "random"},
                              objective="valid_accuracy", direction="maximize", artifact_dir="")
    space = registry.create("space", "nb201")
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1)
    rows, points = [], []
    for n in range(trials):
        arch = space.sample(rng)
        acc = float(rng.uniform(40, 92))
        rows.append({"study_id": info.id, "number": n, "key": f"{space.key(arch)}#{n}", "arch": space.to_json(arch),
                     "state": "complete" if n % 50 else "failed", "score": acc if n % 50 else None,
                     "metrics": {"valid_accuracy": acc, "flops": float(rng.integers(1e6, 1e8))},
                     "params": int(rng.integers(1e4, 1e6)), "seed": n, "started": start + timedelta(seconds=n),
                     "finished": start + timedelta(seconds=n + 1), "duration": 1.0, "budget": {}, "info": {}})
    with store.engine.begin() as conn:
        conn.execute(TrialModel.__table__.insert(), rows)
        ids = dict(conn.exec_driver_sql("SELECT number, id FROM trials").all())
        for n in range(trials):
            points += [{"trial_id": ids[n], "step": e, "name": "valid_accuracy", "value": 30.0 + e} for e in (1, 2, 3)]
        conn.execute(IntermediateModel.__table__.insert(), points)
    store.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_cli_start(db: Path) -> float:
    """Seconds from launching `nasforge dashboard` to its first HTTP answer."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "dashboard", "--storage", f"sqlite:///{db}",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 30:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/api/studies")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - start
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("the dashboard did not answer within 30 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from nasforge.dashboard.headless import Chromium
    from nasforge.dashboard.server import make_server, serve_in_thread

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        write_store(db, args.trials)
        starts = [time_cli_start(db) for _ in range(3)]
        server = make_server(f"sqlite:///{db}", port=0)
        stop = serve_in_thread(server)
        port = server.server_address[1]
        api = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/study/big")
            size = len(conn.getresponse().read())
            api.append(time.perf_counter() - t)
        with Chromium(width=1280, height=900) as browser:
            for i in range(args.repeats + 1):  # the first load warms the browser's cache of nothing: dropped
                browser.goto("about:blank")
                browser.wait_for("document.readyState === 'complete' && location.href === 'about:blank'")
                browser.goto(f"http://127.0.0.1:{port}/#/study/big")
                painted = browser.wait_for(
                    "performance.getEntriesByName('nasforge-study-painted').length && "
                    "performance.getEntriesByName('nasforge-study-painted')[0].startTime", timeout=30)
                fcp = browser.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
                shown = browser.evaluate("document.querySelectorAll('#leaderboard tbody tr').length")
                if i:
                    rows.append({"repeat": i, "trials": args.trials, "first_contentful_paint_ms": round(fcp or -1, 1),
                                 "study_painted_ms": round(painted, 1), "leaderboard_rows": shown,
                                 "study_api_ms": round(api[i - 1] * 1000, 1), "study_json_bytes": size})
            assert not browser.errors, browser.errors
        stop()
    with open(OUT / "dashboard_load.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    chromium = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()
    median = statistics.median
    lines = [
        f"# Dashboard page load: a study of {args.trials:,} trials",
        "",
        f"Command: `/work/tools/cpu-quiet python bench/dashboard_load.py --trials {args.trials} --repeats "
        f"{args.repeats}` ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.machine()}, 2-core VM, Python {platform.python_version()}, {chromium}, headless, "
        "SQLite store. Target: first paint under 1 s.",
        "",
        "| repeat | first contentful paint (ms) | study page drawn (ms) | leaderboard rows | study API alone (ms) |",
        "|---|---|---|---|---|",
        *[f"| {r['repeat']} | {r['first_contentful_paint_ms']} | {r['study_painted_ms']} | {r['leaderboard_rows']} | "
          f"{r['study_api_ms']} |" for r in rows],
        "",
        f"Median: first contentful paint {median(r['first_contentful_paint_ms'] for r in rows):.0f} ms; the study "
        f"page drawn (leaderboard, history of all {args.trials:,} trials, the front, running trials) "
        f"{median(r['study_painted_ms'] for r in rows):.0f} ms after navigation starts; the study API answers "
        f"{rows[0]['study_json_bytes'] / 1e6:.2f} MB of JSON in {median(r['study_api_ms'] for r in rows):.0f} ms.",
        f"`nasforge dashboard` answers its first request {median(starts):.2f} s after launch (median of 3: "
        + ", ".join(f"{s:.2f}" for s in starts) + ").",
        "",
        "Times are the browser's own (`performance` entries, from navigation start). The page asks for the study",
        "once per 2 s while it is open; each answer is the whole study page's data (top-50 leaderboard, every",
        "finished trial's value and time, params of complete trials and the front).",
    ]
    (OUT / "dashboard_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
