"""The scrape floor: a server that only sends fixed bytes, as fast as the stdlib allows.

`python -m bench.static_page_server --port P --page FILE` serves
FILE (a metrics page captured from the exporter) on `/metrics`, plain or
gzipped (compressed once, at start), over keep-alive HTTP/1.1 with
TCP_NODELAY and the headers and body in one write. Whatever it takes to
scrape this is what "serving pre-rendered bytes" costs on this machine.
"""

from __future__ import annotations

import argparse
import gzip
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class StaticHandler(BaseHTTPRequestHandler):
    """Answers every GET with the page; nothing else."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    plain = b""
    gzipped = b""

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        """The page, gzipped when asked."""
        zipped = "gzip" in self.headers.get("Accept-Encoding", "")
        body = self.gzipped if zipped else self.plain
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Content-Encoding: gzip\r\n" if zipped else "")
            + "\r\n"
        ).encode("ascii")
        self.wfile.write(head + body)

    def log_message(self, format: str, *args: object) -> None:  # pylint: disable=redefined-builtin
        """Quiet."""


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.static_page_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--page", type=Path, required=True)
    args = parser.parse_args(argv)
    StaticHandler.plain = args.page.read_bytes()
    StaticHandler.gzipped = gzip.compress(StaticHandler.plain, compresslevel=6, mtime=0)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), StaticHandler)
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
