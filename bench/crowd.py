"""Scrapes among a crowd of idle and trickling connections, ours beside the naive exporter.

A client that opens a connection and never finishes its request, or sends a
header byte a second, must cost the exporter neither a thread nor a slower
scrape. Each exporter runs as a process on the fake market; this process
holds `IDLE` silent and `TRICKLING` trickling connections to it while the
scrape client (its own process) scrapes every `SCRAPE_INTERVAL` seconds, and
the exporter's threads and file descriptors are read from /proc meanwhile.
All traffic is loopback, bounded in count and time.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from bench.probes import percentile, start_scraper, stop_scraper
from bench.scenarios import Target, start_fake

IDLE, TRICKLING = 250, 250
SECONDS = 10.0
SCRAPE_INTERVAL = 0.05  # seconds between scrapes
# Everything but the blank line that would end the request: it never completes.
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trickle\r\n"


@dataclass(frozen=True)
class Crowd:
    """What one exporter showed under the crowd."""

    scrape_p50_ms: float
    scrape_p99_ms: float
    scrapes: int
    threads_before: int
    threads_during: int  # the most seen while the crowd was connected
    fds_during: int


def _count(pid: int, what: str) -> int:
    return len(os.listdir(f"/proc/{pid}/{what}"))


def measure(target: Target) -> Crowd:
    """Run `target` on the fake market, connect the crowd, scrape meanwhile."""
    fake = start_fake(target)
    child = target.start(fake, "top", update=10, refresh=60)
    sockets: list[socket.socket] = []
    try:
        child.wait_status("/-/ready")
        threads_before = _count(child.pid, "task")
        for _ in range(IDLE + TRICKLING):
            sockets.append(socket.create_connection(("127.0.0.1", child.port), timeout=5))
        scraper = start_scraper(child.url + "/metrics", SCRAPE_INTERVAL)
        time.sleep(1.0)  # let it start; only scrapes that begin with the crowd count
        started = time.time()
        peak_threads = peak_fds = 0
        for sent in range(int(SECONDS)):  # one byte a second on each trickling connection
            for sock in sockets[IDLE:]:
                try:
                    sock.send(REQUEST[sent:sent + 1])
                except OSError:
                    pass  # closed by the server's deadline: that is its right
            peak_threads = max(peak_threads, _count(child.pid, "task"))
            peak_fds = max(peak_fds, _count(child.pid, "fd"))
            time.sleep(1.0)
        latencies = sorted(stop_scraper(scraper, started, time.time()))
        return Crowd(percentile(latencies, 0.5), percentile(latencies, 0.99), len(latencies),
                     threads_before, peak_threads, peak_fds)
    finally:
        for sock in sockets:
            sock.close()
        child.stop()
        fake.stop()
