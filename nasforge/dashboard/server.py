"""`nasforge dashboard`: a local, read-only web UI over a store (stdlib http.server, no dependency).

Only GET (and HEAD) of known routes are answered: the page and its assets (a fixed list of files shipped in
the package), and JSON/SVG read through `StoreReader`. Every other method is refused with 405, unknown
paths with 404, and any path with a `..` segment with 400, so nothing outside the assets is ever served
and no request can write. It binds to 127.0.0.1 unless told otherwise with `allow_remote`.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from nasforge.core.errors import ConfigError, UserError
from nasforge.dashboard.reader import NotFound, StoreReader

ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
SVG = "image/svg+xml"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"--host {host} is not a loopback address: the dashboard has no login, so serving it "
                          "to other machines needs --allow-remote")


def _asset(name: str) -> bytes:
    return resources.files("nasforge.dashboard").joinpath("assets", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    reader: StoreReader  # set on the class made by make_server
    server_version = "nasforge-dashboard"
    sys_version = ""

    # ---- methods: only reads ----------------------------------------------------------------
    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _refuse_write(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b'{"error": "the dashboard is read-only"}', "application/json",
                   extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_write

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: a polling page would flood the terminal

    # ---- routing ---------------------------------------------------------------------------------
    def _answer(self, head: bool) -> None:
        raw = self.path
        parts = urlsplit(raw)
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        if any(".." in s.replace("\\", "/").split("/") or "\\" in s or "\x00" in s for s in segments):
            return self._error(HTTPStatus.BAD_REQUEST, "bad path")
        try:
            status, body, kind = self._route(segments, parse_qs(parts.query))
        except NotFound as exc:
            return self._error(HTTPStatus.NOT_FOUND, str(exc))
        except UserError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except Exception as exc:  # a store hiccup while a search writes: an error answer, not a dead server
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"{type(exc).__name__}: {exc}".splitlines()[0])
        # an SVG drawing carries its own inline <style>: allowed there, and nothing else (no script, no fetch)
        extra = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"} if kind == SVG else None
        self._send(status, b"" if head else body, kind, length=len(body), extra=extra)

    def _route(self, seg: list[str], query: dict[str, list[str]]) -> tuple[HTTPStatus, bytes, str]:
        if seg in ([""], ["index.html"]):
            return HTTPStatus.OK, _asset("index.html"), ASSETS["index.html"]
        if len(seg) == 2 and seg[0] == "static" and seg[1] in ASSETS:
            return HTTPStatus.OK, _asset(seg[1]), ASSETS[seg[1]]
        if seg[:1] == ["api"]:
            rest = seg[1:]
            if rest == ["studies"]:
                return self._json({"storage": self.reader.shown_url, "studies": self.reader.studies()})
            if len(rest) == 2 and rest[0] == "study":
                return self._json(self.reader.study(rest[1]))
            if len(rest) == 4 and rest[0] == "study" and rest[2] == "trial":
                return self._json(self.reader.trial(rest[1], _number(rest[3])))
            if len(rest) == 5 and rest[0] == "study" and rest[2] == "trial" and rest[4] == "drawing.svg":
                svg = self.reader.drawing(rest[1], _number(rest[3]))
                return HTTPStatus.OK, svg.encode(), SVG
            if rest == ["compare"]:
                names = [n for v in query.get("studies", []) for n in v.split(",") if n]
                if not names:
                    raise UserError("compare needs ?studies=A,B")
                return self._json(self.reader.compare(names[:12]))
        raise NotFound("no such page")

    def _json(self, data: Any) -> tuple[HTTPStatus, bytes, str]:
        return HTTPStatus.OK, json.dumps(data, separators=(",", ":")).encode(), "application/json"

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, length: int | None = None,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def _number(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"trial {text!r} is not a trial number")
    return int(text)


def make_server(storage: str, host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False
                ) -> ThreadingHTTPServer:
    """A bound server (not yet serving); port 0 picks a free one (`server.server_address`)."""
    check_bind(host, allow_remote)
    reader = StoreReader(storage)
    handler = type("BoundHandler", (Handler,), {"reader": reader})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        reader.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen: {exc.strerror}") from exc
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> Callable[[], None]:
    """Serve in a background thread; returns the function that stops it (tests, benchmarks, docs)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def run(storage: str, host: str, port: int, allow_remote: bool) -> int:
    server = make_server(storage, host, port, allow_remote)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"nasforge dashboard on http://{shown}:{bound_port}/ (read-only; Ctrl-C stops it)", file=sys.stderr,
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
