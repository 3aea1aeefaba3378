"""The dashboard server: read-only, loopback by default, only its own routes and assets."""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasforge.cli.main import main
from nasforge.dashboard.reader import StoreReader
from nasforge.dashboard.server import make_server, serve_in_thread
from tests.report.conftest import write_study


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, float]]]:
    db = tmp_path / "d.db"
    scores = write_study(f"sqlite:///{db}", name="made/one two")
    server = make_server(f"sqlite:///{db}", port=0)
    stop = serve_in_thread(server)
    yield server.server_address[1], db, scores
    stop()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, dict(response.getheaders())


def snapshot(db: Path) -> tuple[list[tuple], int]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT number, state, score FROM trials ORDER BY number").fetchall(), \
            conn.execute("SELECT count(*) FROM trial_metrics").fetchone()[0]


def test_pages_and_api(served: tuple[int, Path, dict[str, float]]) -> None:
    port, _, scores = served
    status, body, headers = request(port, "GET", "/")
    assert status == 200 and b"/static/app.js" in body and "script-src 'self'" in headers["Content-Security-Policy"]
    for asset in ("app.js", "style.css"):
        assert request(port, "GET", f"/static/{asset}")[0] == 200
    studies = json.loads(request(port, "GET", "/api/studies")[1])
    assert [s["name"] for s in studies["studies"]] == ["made/one two"]
    study = json.loads(request(port, "GET", "/api/study/made%2Fone%20two")[1])
    board = study["leaderboard"]
    assert [r["trial"] for r in board] == sorted(map(int, scores), key=lambda n: (-scores[str(n)], n))
    assert len(study["history"]["rows"]) == len(scores) + 2  # the two failures too
    assert set(study["pareto"]["front"]) <= {r["trial"] for r in board}
    trial = json.loads(request(port, "GET", "/api/study/made%2Fone%20two/trial/3")[1])
    assert [p["step"] for p in trial["curve"]] == [1, 2, 3] and "export" in trial["commands"]
    assert "--replay trial3.json" in trial["commands"]["replay"]
    status, svg, headers = request(port, "GET", "/api/study/made%2Fone%20two/trial/3/drawing.svg")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and b'id="node-0-in"' in svg
    compare = json.loads(request(port, "GET", "/api/compare?studies=made%2Fone%20two")[1])
    assert compare["studies"][0]["complete"] == len(scores)
    assert request(port, "GET", "/api/study/nope")[0] == 404
    assert request(port, "GET", "/api/study/made%2Fone%20two/trial/99")[0] == 404
    assert request(port, "HEAD", "/")[0] == 200


def test_no_route_writes_and_nothing_outside_the_assets(served: tuple[int, Path, dict[str, float]]) -> None:
    port, db, _ = served
    before = snapshot(db)
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/", "/api/studies", "/api/study/made%2Fone%20two", "/api/study/made%2Fone%20two/trial/0"):
            status, _, headers = request(port, method, path, body=b"{}")
            assert status == 405 and headers["Allow"] == "GET, HEAD", (method, path)
    for path in ("/static/../reader.py", "/static/%2e%2e/reader.py", "/../../etc/passwd", "/static/..%2f..%2fsql.py",
                 "/api/study/..", "/static/..\\x.py"):
        assert request(port, "GET", path)[0] == 400, path
    for path in ("/static/reader.py", "/static/", "/server.py", "/assets/app.js", "/api/", "/api/nope", "/favicon.ico",
                 "/static/app.js/x", "/api/study/made%2Fone%20two/trial/x", "/etc/passwd"):
        assert request(port, "GET", path)[0] == 404, path
    assert snapshot(db) == before


def test_read_only_store(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    write_study(f"sqlite:///{db}")
    reader = StoreReader(f"sqlite:///{db}")
    with reader.engine.connect() as conn, pytest.raises(Exception, match="readonly"):
        conn.exec_driver_sql("DELETE FROM trials")
    reader.close()
    assert snapshot(db)[0]
    missing = tmp_path / "none.db"
    assert main(["dashboard", "--storage", f"sqlite:///{missing}", "--port", "0"]) == 2
    assert not missing.exists()  # never creates a database


def test_non_loopback_needs_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "d.db"
    write_study(f"sqlite:///{db}")
    assert main(["dashboard", "--storage", f"sqlite:///{db}", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err and len(err.strip().splitlines()) == 1
    for host in ("127.0.0.1", "localhost", "::1"):
        from nasforge.dashboard.server import check_bind

        check_bind(host, allow_remote=False)
    server = make_server(f"sqlite:///{db}", host="0.0.0.0", port=0, allow_remote=True)
    server.server_close()
    assert main(["dashboard", "--storage", f"sqlite:///{db}", "--port", "70000"]) == 2


def test_pareto_view_is_the_studys_own_front(tmp_path: Path) -> None:
    """`--objectives valid_accuracy,latency_ms`: the dashboard's front is `trials --pareto`'s, over latency;
    a single-objective study's is over its objective and params, as `trials --pareto` has it too."""
    from nasforge.api import Study
    from tests.report.conftest import write_objectives_study

    url = f"sqlite:///{tmp_path / 'mo.db'}"
    write_objectives_study(url)
    write_study(url, name="single")
    reader = StoreReader(url)
    view = reader.study("mo")["pareto"]
    assert view["objectives"] == ["valid_accuracy:max", "latency_ms:min"]
    assert (view["x"], view["y"]) == ("latency_ms", "valid_accuracy")
    study = Study("mo", url)
    assert view["front"] == [t.number for t in study.pareto_front()]
    complete = {t.number: t for t in study.trials if t.state.value == "complete"}
    assert {p[0] for p in view["points"]} == set(complete)
    assert all(p[1] == complete[p[0]].metrics["latency_ms"] and p[2] == complete[p[0]].metrics["valid_accuracy"]
               for p in view["points"])
    single = reader.study("single")["pareto"]
    assert (single["x"], single["y"]) == ("params", "valid_accuracy")
    assert single["front"] == [t.number for t in Study("single", url).pareto_front()]
