"""Watching a child process from outside: spawn it, poll its HTTP endpoints, read /proc.

Linux only (resident memory and CPU time come from /proc/<pid>).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import ROOT, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Child:
    """A Python module run as a process on a free loopback port; output kept in a file."""

    def __init__(self, module: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(  # pylint: disable=consider-using-with
            prefix="bench-", suffix=".log")
        # Spawn time on both clocks: wall (to compare with the fake's request
        # log) and monotonic (for durations).
        self.spawned_wall = time.time()
        self.spawned = time.monotonic()
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", module, *args, "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log,
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log(self) -> str:
        """What the process wrote on stderr so far."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def wait_status(self, path: str, status: int = 200, timeout: float = 60.0,
                    interval: float = 0.002) -> float:
        """Poll `path` until it answers `status`; returns time.monotonic() of that answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited early:\n{self.log()}")
            try:
                if get(self.url + path)[0] == status:
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.url}{path} did not answer {status} within {timeout} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; removes the log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body)."""
    host_port = url.split("/", 3)[2]
    path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    connection = http.client.HTTPConnection(host_port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of `pid` in MB of 10**6 bytes (the /proc fields are in KiB).

    `field` "VmHWM" gives the high-water mark: the largest RSS the process
    has had, however briefly, which sampling every few seconds would miss.
    """
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def median(values: list[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with `share` of the values at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(round(len(ordered) * share, 9)))
    return ordered[rank - 1]


def start_scraper(url: str, interval: float) -> subprocess.Popen:
    """`bench.scrape_client` in its own process, gzip, one scrape per `interval` s."""
    return subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "bench.scrape_client", url, "--gzip",
         "--count", "1000000", "--max-seconds", "600", "--interval", str(interval)],
        stdout=subprocess.PIPE, text=True)


def stop_scraper(scraper: subprocess.Popen, started: float, ended: float) -> list[float]:
    """Stop it; the latencies (ms) of the scrapes that began between the two Unix times."""
    scraper.send_signal(signal.SIGINT)
    scraped = json.loads(scraper.communicate(timeout=30)[0])
    return [latency for latency, begun in zip(scraped["latencies_ms"], scraped["started_unix"])
            if started <= begun <= ended]
