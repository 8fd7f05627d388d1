"""The exporter's HTTP endpoints: `/`, `/metrics`, `/-/healthy`, `/-/ready`.

A small router on the standard library's threading server. A scrape never
waits on Binance or on a refresh: it reads the published snapshot, whose part
of the page is rendered at most once per format (see `exposition`).
"""

from __future__ import annotations

import html
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from binance_exporter import __version__
from binance_exporter.metrics.exposition import Exposition

LOG = logging.getLogger(__name__)
NOT_READY = b"Not ready: not every question answered yet, or a job is stuck\n"
PLAIN = "text/plain; charset=utf-8"

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


class ExporterServer(ThreadingHTTPServer):
    """Threading HTTP server that knows the exposition and the readiness check."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog of 5 overflows when several scrapers and probes
    # connect at once: the kernel drops the SYN and the client retries 1 s later.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        exposition: Exposition,
        ready: Callable[[], bool],
        base_url: str,
    ) -> None:
        self.exposition = exposition
        self.ready = ready
        self.landing = LANDING_PAGE.format(
            version=html.escape(__version__), base_url=html.escape(base_url)
        ).encode()
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """Log a failed request instead of printing socketserver's traceback on stderr.

        A scraper that times out or hangs up mid-request is ordinary
        (connection reset, broken pipe): one debug line. Anything else is a
        bug of ours and is logged with its traceback.
        """
        del request
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            LOG.debug("client %s went away: %s", client_address[0], error)
        else:
            LOG.exception("could not answer %s", client_address[0])

    def serve_in_thread(self) -> threading.Thread:
        """Serve until `shutdown()` in a daemon thread, which is returned."""
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread


class Handler(BaseHTTPRequestHandler):
    """Routes one request; unknown paths are 404."""

    server: ExporterServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, a small body waits
    # for the client's delayed ACK (40 ms) after the headers.
    disable_nagle_algorithm = True
    server_version = f"binance-exporter/{__version__}"

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        """Serve GET (and HEAD through `do_HEAD`)."""
        path, _, query = self.path.partition("?")
        if path == "/metrics":
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
