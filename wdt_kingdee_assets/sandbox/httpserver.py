"""A small threaded HTTP server for the simulators, bound to 127.0.0.1.

Each simulator is an *app*: ``handle(SimRequest) -> SimResponse``. The server turns the
exceptions below into what a real network does to a client: a connection reset, or a
connection that is held open and then closed without an answer (a read timeout).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class SimRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes
    cookies: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> SimResponse:
        body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        return cls(status, body, [("Content-Type", "application/json; charset=utf-8")])

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> SimResponse:
        return cls(
            status, text.encode("utf-8"), [("Content-Type", f"{content_type}; charset=utf-8")]
        )


class ServiceTime(threading.local):
    """When the call a server thread is answering may be answered (``time.monotonic()``).

    A simulated call takes its stated latency with the simulator's own work inside it, as a
    real server's answer time includes its processing: work first, then wait out the rest.
    """

    deadline = 0.0

    def start(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def add(self, seconds: float) -> None:
        self.deadline += seconds

    def wait(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


class ResetConnection(Exception):
    """Close the connection with a TCP reset and no answer."""


class HoldThenClose(Exception):
    """Keep the connection open ``seconds`` without answering, then close it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class SimApp(Protocol):
    def handle(self, request: SimRequest) -> SimResponse: ...


def _parse_cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name] = value
    return cookies


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the simulators keep their own call log."""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        request = SimRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            cookies=_parse_cookies(headers.get("cookie", "")),
        )
        if not request.path.startswith("/__admin__/"):
            self.server.api_calls.append((time.time(), request.path))
        try:
            if request.path == "/__admin__/calls":
                # When each API request arrived: for a benchmark in another process.
                response = SimResponse.json(self.server.api_calls)
            else:
                response = self.server.app.handle(request)
        except ResetConnection:
            self._reset()
            return
        except HoldThenClose as hold:
            time.sleep(hold.seconds)
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = _dispatch
    do_POST = _dispatch
    do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimApp) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.api_calls: list[tuple[float, str]] = []  # (epoch seconds, path) of each API request

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is normal under fault injection: stay quiet."""


class SimServer:
    """Runs one app on 127.0.0.1 in a background thread. ``port=0`` picks a free port."""

    def __init__(self, app: SimApp, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self._server = _Server((host, port), app)
        # A short poll lets stop() return within ~50 ms instead of the default 0.5 s: tests start
        # and stop a server per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def api_calls(self) -> list[tuple[float, str]]:
        """When each API request (not admin) arrived, and its path: what a benchmark times."""
        return list(self._server.api_calls)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SimServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
