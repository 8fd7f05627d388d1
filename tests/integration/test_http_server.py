"""The HTTP server on its own: routes, negotiation on the wire, and failed requests."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import io
import shutil
import socket
import struct
import subprocess
import unittest
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from binance_exporter.binance.rest import ApiStats
from binance_exporter.metrics.exposition import Exposition, build_exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.model import Snapshot
from tests.support import http_get, parse_samples, wait_until
from tests.unit.test_metrics_describe import FULL

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def exposition() -> Exposition:
    """An exposition of a fresh exporter: no answers yet, no request sent."""
    current = Snapshot()
    return build_exposition(lambda: current, lambda: ApiStats({}, None, 6000, 0.0))


class BrokenExposition(Exposition):
    """An exposition whose page cannot be produced: stands in for a bug of ours."""

    def render(self, accept: str, accept_encoding: str, query: str):
        raise RuntimeError("no page")


class ServerCase(unittest.TestCase):
    """Starts a server on a free loopback port for each test."""

    def serve(self, page: Exposition, ready: bool = True) -> str:
        """Serve `page` with a fixed readiness; returns the base URL."""
        server = ExporterServer(("127.0.0.1", 0), page, lambda: ready, "test")
        server.serve_in_thread()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return f"http://127.0.0.1:{server.server_address[1]}"


class RoutesTest(ServerCase):
    """Each path's answer."""

    def test_metrics_in_the_text_format(self):
        status, headers, body = http_get(self.serve(exposition()) + "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(parse_samples(body.decode())[("binance_up", ())], 0)

    def test_metrics_in_openmetrics_when_asked(self):
        url = self.serve(exposition()) + "/metrics"
        status, headers, body = http_get(url, headers={"Accept": OPENMETRICS})
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"))
        self.assertIn("binance_up", [family.name for family in parse_openmetrics(body.decode())])

    def test_metrics_gzip_and_name_filter(self):
        url = self.serve(exposition()) + "/metrics?name[]=binance_up"
        status, headers, body = http_get(url, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertEqual(list(parse_samples(gzip.decompress(body).decode())), [("binance_up", ())])

    def test_head_has_the_length_and_no_body(self):
        port = int(self.serve(exposition()).rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(connection.close)
        connection.request("HEAD", "/metrics")
        response = connection.getresponse()
        self.assertEqual(response.status, 200)
        self.assertGreater(int(response.headers["Content-Length"]), 0)
        self.assertEqual(response.read(), b"")

    def test_health_readiness_and_unknown_paths(self):
        url = self.serve(exposition(), ready=False)
        self.assertEqual(http_get(url + "/")[0], 200)
        status, _, body = http_get(url + "/-/healthy")
        self.assertEqual((status, body), (200, b"OK\n"))
        self.assertEqual(http_get(url + "/-/ready")[0], 503)
        self.assertEqual(http_get(url + "/nope")[0], 404)
        self.assertEqual(http_get(self.serve(exposition()) + "/-/ready")[0], 200)


@unittest.skipUnless(shutil.which("promtool") and shutil.which("curl"), "needs promtool and curl")
class ToolsTest(ServerCase):
    """What Prometheus's own checker and curl make of the page."""

    def test_promtool_accepts_the_text_format(self):
        # promtool reads only the text format; the OpenMetrics page is checked
        # by prometheus_client's strict parser instead.
        page = build_exposition(lambda: FULL, lambda: ApiStats({("/api/v3/depth", "200"): 1},
                                                               12, 6000, 0.0))
        _, _, body = http_get(self.serve(page) + "/metrics")
        self.assertIn(b"binance_fill_average_price{", body)
        check = subprocess.run(["promtool", "check", "metrics"], input=body,
                               capture_output=True, timeout=30, check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_curl_compressed_reads_the_gzip_page(self):
        url = self.serve(exposition()) + "/metrics"
        fetched = subprocess.run(["curl", "-sS", "--compressed", "-D", "-", url],
                                 capture_output=True, timeout=30, check=True)
        head, _, body = fetched.stdout.partition(b"\r\n\r\n")
        self.assertIn(b"content-encoding: gzip", head.lower())
        self.assertEqual(parse_samples(body.decode())[("binance_up", ())], 0)


class FailedRequestTest(ServerCase):
    """What a failed request leaves on stderr and in the log."""

    def test_a_scraper_that_resets_mid_request_is_one_debug_line(self):
        url = self.serve(exposition())
        port = int(url.rsplit(":", 1)[1])
        stderr = io.StringIO()
        # The connection loop (metrics.connections) reads the request and logs it.
        with contextlib.redirect_stderr(stderr), \
                self.assertLogs("binance_exporter.metrics", "DEBUG") as logs:
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
        url = self.serve(BrokenExposition(Snapshot, CollectorRegistry()))
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
