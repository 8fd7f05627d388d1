"""The exporter's HTTP endpoints: `/`, `/metrics`, `/-/healthy`, `/-/ready`.

A small router, `BaseHTTPRequestHandler` parsing each request, on a worker of
the connection loop in `connections`, which waits on every socket with one
thread. A scrape never waits on Binance or on a refresh: it reads the
published snapshot, whose part of the page is rendered at most once per
format (see `exposition`). `--web-config-file` adds TLS, headers and basic
auth (see `web_config`).
"""

from __future__ import annotations

import html
import io
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Callable

from binance_exporter import __version__
from binance_exporter.metrics.basic_auth import BasicAuth
from binance_exporter.metrics.certificates import ReloadingContext
from binance_exporter.metrics.connections import ConnectionLoop, Limits, canned
from binance_exporter.metrics.exposition import Exposition
from binance_exporter.metrics.web_config import WebConfig

LOG = logging.getLogger(__name__)
NOT_READY = b"Not ready: not every question answered yet, or a job is stuck\n"
PLAIN = "text/plain; charset=utf-8"
AUTHENTICATE = 'Basic realm="binance-exporter", charset="UTF-8"'

LANDING_PAGE = """<!DOCTYPE html>
<html><head><title>Binance Exporter</title></head>
<body>
<h1>Binance Exporter {version}</h1>
<p>Prometheus exporter for Binance SPOT market data from {base_url}.</p>
<ul>
<li><a href="/metrics">Metrics</a></li>
<li><a href="/-/healthy">Health</a> (200 while the process runs)</li>
<li><a href="/-/ready">Readiness</a> (200 once every question has been answered)</li>
</ul>
</body></html>
"""


class ExporterServer:  # pylint: disable=too-many-instance-attributes
    """The endpoints on one connection thread and a few workers (see `connections`).

    `web` adds TLS, extra response headers and basic auth (`--web-config-file`).
    With users configured, every path but `/-/healthy` needs them: a liveness
    probe (a kubelet, a load balancer) carries no credentials, and the answer
    tells nothing beyond the process being alive.
    """

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        address: tuple[str, int],
        exposition: Exposition,
        ready: Callable[[], bool],
        base_url: str,
        web: WebConfig | None = None,
        limits: Limits = Limits(),
    ) -> None:
        self.exposition = exposition
        self.ready = ready
        self.landing = LANDING_PAGE.format(
            version=html.escape(__version__), base_url=html.escape(base_url)
        ).encode()
        self.extra_headers = dict(web.headers) if web is not None else {}
        self.auth = BasicAuth(web.users) if web is not None and web.users else None
        self.tls = ReloadingContext(web.tls) if web is not None and web.tls else None
        # The kernel's backlog holds connections between two accepts; 5 (the
        # socketserver default) overflows when several scrapers and probes
        # connect at once, and a dropped SYN costs the client 1 s.
        listener = socket.create_server(address, backlog=128)
        self.server_address = listener.getsockname()[:2]
        self._loop = ConnectionLoop(listener, self.respond, self.tls, limits)
        self._serving = threading.Event()
        self._finished = threading.Event()

    def respond(self, head: bytes, client_address: tuple) -> tuple[bytes, bool]:
        """On a worker: the whole answer to one request head, and whether to keep the connection."""
        try:
            handler = Handler(head, client_address, self)
        except Exception:  # pylint: disable=broad-exception-caught
            self.handle_error(head, client_address)
            return canned(500, "Internal Server Error"), False
        headers = getattr(handler, "headers", None)
        # A request body is not read: the connection cannot carry another request.
        has_body = headers is not None and (
            headers.get("Content-Length", "0").strip() not in ("", "0")
            or "Transfer-Encoding" in headers)
        return handler.wfile.getvalue(), not handler.close_connection and not has_body

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """Log a request that could not be answered (a bug of ours) with its traceback."""
        del request
        LOG.exception("could not answer %s", client_address[0])

    def serve_forever(self) -> None:
        """Serve until `shutdown()`."""
        self._serving.set()
        try:
            self._loop.run()
        finally:
            self._finished.set()

    def serve_in_thread(self) -> threading.Thread:
        """Serve until `shutdown()` in a daemon thread, which is returned."""
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop serving and wait until the connection thread has stopped."""
        self._loop.stop()
        if self._serving.is_set():
            self._finished.wait()

    def server_close(self) -> None:
        """Close the listener, every connection and the workers."""
        self._loop.close()


class Handler(BaseHTTPRequestHandler):
    """Routes one request, read from its complete head, into a buffer; unknown paths are 404."""

    server: ExporterServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"
    server_version = f"binance-exporter/{__version__}"

    def setup(self) -> None:
        """The head arrived whole; the answer is written out by the connection loop."""
        self.rfile = io.BytesIO(self.request)  # type: ignore[arg-type]
        self.wfile = io.BytesIO()

    def handle(self) -> None:
        """One request: the loop hands the next one of the connection to a worker again."""
        self.handle_one_request()

    def finish(self) -> None:
        """Keep the buffered answer for the loop."""

    def end_headers(self) -> None:
        """The operator's extra headers (`http_server_config.headers`) go on every answer."""
        for name, value in self.server.extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        """Serve GET (and HEAD through `do_HEAD`)."""
        path, _, query = self.path.partition("?")
        auth = self.server.auth
        if auth is not None and path != "/-/healthy" \
                and not auth.allows(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", {"Content-Type": PLAIN,
                                                 "WWW-Authenticate": AUTHENTICATE})
        elif path == "/metrics":
            body, headers = self.server.exposition.render(
                self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", ""), query
            )
            self._send(200, body, headers)
        elif path == "/":
            self._send(200, self.server.landing, {"Content-Type": "text/html; charset=utf-8"})
        elif path == "/-/healthy":
            self._send(200, b"OK\n", {"Content-Type": PLAIN})
        elif path == "/-/ready":
            if self.server.ready():
                self._send(200, b"Ready\n", {"Content-Type": PLAIN})
            else:
                self._send(503, NOT_READY, {"Content-Type": PLAIN})
        else:
            self._send(404, b"Not found\n", {"Content-Type": PLAIN})

    def do_HEAD(self) -> None:  # pylint: disable=invalid-name
        """Like GET without the body."""
        self.do_GET()

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """One response: `headers` carries at least the Content-Type."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # pylint: disable=redefined-builtin
        """Scrapes are frequent and uninteresting: do not log each request."""
