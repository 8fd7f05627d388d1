"""The HTTP server on its own: failed requests are logged, never printed as tracebacks."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import unittest
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from binance_exporter.metrics.exposition import Exposition
from binance_exporter.metrics.http import ExporterServer
from tests.support import wait_until


class BrokenExposition(Exposition):
    """An exposition whose page cannot be produced: stands in for a bug of ours."""

    def page(self):
        raise RuntimeError("no page")


class FailedRequestTest(unittest.TestCase):
    """What a failed request leaves on stderr and in the log."""

    def serve(self, exposition: Exposition) -> str:
        """Start a server on a free loopback port; returns its base URL."""
        server = ExporterServer(("127.0.0.1", 0), exposition, lambda: True, "test")
        server.serve_in_thread()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def test_a_scraper_that_resets_mid_request_is_one_debug_line(self):
        url = self.serve(Exposition(CollectorRegistry()))
        port = int(url.rsplit(":", 1)[1])
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), \
                self.assertLogs("binance_exporter.metrics.http", "DEBUG") as logs:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never end
            # SO_LINGER 0: close() sends RST, as a scraper killed by its timeout may.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            wait_until(lambda: logs.records, timeout=5)
        self.assertIn("went away", logs.records[0].getMessage())
        self.assertEqual(logs.records[0].levelname, "DEBUG")
        self.assertEqual(stderr.getvalue(), "")
        # The server still answers.
        with urllib.request.urlopen(url + "/-/healthy", timeout=5) as response:
            self.assertEqual(response.status, 200)

    def test_a_bug_while_answering_is_logged_with_its_traceback(self):
        url = self.serve(BrokenExposition(CollectorRegistry()))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), \
                self.assertLogs("binance_exporter.metrics.http", "ERROR") as logs:
            with self.assertRaises((urllib.error.URLError, ConnectionError)):
                urllib.request.urlopen(url + "/metrics", timeout=5)  # pylint: disable=consider-using-with
            wait_until(lambda: logs.records, timeout=5)
        self.assertIn("could not answer", logs.records[0].getMessage())
        self.assertIn("RuntimeError: no page", logs.output[0])
        self.assertEqual(stderr.getvalue(), "")


if __name__ == "__main__":
    unittest.main()
