"""Idle and trickling clients: deadlines, size caps, and a scrape that still answers at once.

The connections are loopback sockets of this process, each closed by the test
or by the server's deadlines; every wait has a bound.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import threading
import time
import unittest

from binance_exporter.metrics.connections import ConnectionLoop, Limits
from binance_exporter.metrics.http import ExporterServer
from tests.integration.test_http_server import exposition

IDLE, TRICKLING = 250, 250
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trickle\r\n\r\n"


def threads() -> int:
    """Threads of this process, as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    """File descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


class SlowClientCase(unittest.TestCase):
    """A server with the given limits on a free loopback port."""

    def serve(self, limits: Limits = Limits()) -> int:
        """Start a server; its port."""
        server = ExporterServer(("127.0.0.1", 0), exposition(), lambda: True, "test",
                                limits=limits)
        server.serve_in_thread()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[1]

    def connect(self, port: int) -> socket.socket:
        """A client socket, closed at the end of the test."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(sock.close)
        return sock


class CrowdTest(SlowClientCase):
    """500 idle or trickling connections cost no thread and do not slow a scrape."""

    def test_scrapes_stay_fast_and_threads_flat(self):
        port = self.serve()
        scraper = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(scraper.close)
        warm = time.monotonic() + 1
        while time.monotonic() < warm:
            # Frequent scrapes start the exposition's one background renderer:
            # it belongs in the baseline.
            scraper.request("GET", "/metrics")
            scraper.getresponse().read()
        threads_before = threads()
        idle = [self.connect(port) for _ in range(IDLE)]
        trickling = [self.connect(port) for _ in range(TRICKLING)]
        sent, latencies, next_byte = 0, [], 0.0
        # Five seconds: a byte a second on each trickling connection, scrapes between.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if time.monotonic() >= next_byte:
                for sock in trickling:
                    sock.send(REQUEST[sent:sent + 1])
                sent, next_byte = sent + 1, time.monotonic() + 1
            started = time.perf_counter()
            scraper.request("GET", "/metrics")
            response = scraper.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            self.assertEqual(response.status, 200)
        threads_during, fds = threads(), open_fds()
        p99 = statistics.quantiles(latencies, n=100)[98]
        print(f"\n{IDLE} idle + {TRICKLING} trickling connections: {len(latencies)} scrapes, "
              f"median {statistics.median(latencies) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms; "
              f"threads {threads_before} -> {threads_during}; fds {fds}")
        self.assertLess(p99, 0.05)
        self.assertEqual(threads_during, threads_before)
        self.assertGreaterEqual(fds, 2 * (IDLE + TRICKLING))  # both ends are still open
        del idle


class DeadlineTest(SlowClientCase):
    """Heads late, idle keep-alive, oversize: each connection ends."""

    LIMITS = Limits(header_timeout=0.5, idle_timeout=0.5, max_request_line=256,
                    max_header_bytes=1024)

    def test_a_head_not_finished_in_time_gets_408(self):
        sock = self.connect(self.serve(self.LIMITS))
        sock.sendall(REQUEST[:20])
        answer = sock.recv(4096)
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
        self.assertEqual(sock.recv(4096), b"")

    def test_a_silent_connection_is_closed(self):
        sock = self.connect(self.serve(self.LIMITS))
        started = time.monotonic()
        self.assertEqual(sock.recv(4096), b"")
        self.assertLess(time.monotonic() - started, 3)

    def test_an_idle_keep_alive_connection_is_closed(self):
        sock = self.connect(self.serve(self.LIMITS))
        sock.sendall(REQUEST.replace(b"/metrics", b"/-/healthy"))
        answer = b""
        while not answer.endswith(b"OK\n"):
            answer += sock.recv(4096)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer)
        self.assertEqual(sock.recv(4096), b"")  # closed at the idle deadline

    def test_size_caps(self):
        port = self.serve(self.LIMITS)
        cases = {
            b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n": b"414",
            b"GET /" + b"a" * 400: b"414",  # no end of line yet, already too long
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100)
                                             for i in range(12)) + b"\r\n": b"431",
        }
        for request, status in cases.items():
            with self.subTest(status=status):
                sock = self.connect(port)
                sock.sendall(request)
                answer = sock.recv(4096)
                self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), answer)

    def test_pipelined_requests_are_answered_in_order(self):
        sock = self.connect(self.serve())
        sock.sendall(REQUEST.replace(b"/metrics", b"/-/healthy") + REQUEST.replace(
            b"/metrics", b"/nope"))
        answer = b""
        while b"Not found" not in answer:
            answer += sock.recv(4096)
        self.assertLess(answer.index(b"200 OK"), answer.index(b"404 Not Found"))


class LargeAnswerTest(unittest.TestCase):
    """An answer larger than the socket takes at once: the worker sends what it can, the
    loop thread the rest, and the client gets every byte in order."""

    def test_a_slow_reader_gets_the_whole_answer(self):
        body = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than loopback buffers hold
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        listener = socket.create_server(("127.0.0.1", 0))
        loop = ConnectionLoop(listener, lambda _head, _address: (head + body, True), None,
                              Limits())
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        self.addCleanup(loop.close)
        self.addCleanup(thread.join, 5)
        self.addCleanup(loop.stop)
        sock = socket.create_connection(listener.getsockname()[:2], timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(REQUEST)
        time.sleep(0.3)  # the worker's send fills the buffers and hands the rest over
        received = bytearray()
        while len(received) < len(head) + len(body):
            chunk = sock.recv(1 << 20)
            self.assertTrue(chunk, "the connection closed early")
            received += chunk
        self.assertEqual(bytes(received), head + body)
        sock.sendall(REQUEST)  # and the connection serves the next request
        self.assertTrue(sock.recv(64).startswith(b"HTTP/1.1 200 OK"))


if __name__ == "__main__":
    unittest.main()
