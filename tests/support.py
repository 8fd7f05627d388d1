"""Helpers for end-to-end tests: free ports, the exporter as a real process, scrapes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None):
    """GET `url`; returns (status, headers, body) also for 4xx/5xx answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def parse_samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            samples[(item.name, tuple(sorted(item.labels.items())))] = item.value
    return samples


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Exporter:
    """`python -m binance_exporter` as a child process on a free loopback port."""

    def __init__(self, base_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "binance_exporter",
            "--base-url", base_url,
            "--listen-address", "127.0.0.1",
            "--port", str(self.port),
            "--timeout", "2",
            *args,
        ]
        # Files, not pipes: a long run prints more than a pipe buffer holds,
        # and an unread pipe would block the exporter's report printing.
        # The parent reads through its own handles, never the child's (which
        # share a file offset with it).
        self._logs = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self._paths = (Path(self._logs.name) / "stdout", Path(self._logs.name) / "stderr")
        with open(self._paths[0], "w", encoding="utf-8") as out, \
                open(self._paths[1], "w", encoding="utf-8") as err:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                command,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=err,
            )

    def wait_healthy(self, timeout: float = 10.0) -> None:
        """Wait until /-/healthy answers (the HTTP server is up)."""
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited early: {self.output()}")
            try:
                return http_get(self.url + "/-/healthy", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(healthy, timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until /-/ready says 200 (every question answered)."""
        self.wait_healthy(timeout)
        wait_until(lambda: http_get(self.url + "/-/ready", timeout=1)[0] == 200, timeout)

    def scrape(self) -> Samples:
        """Read /metrics and parse it."""
        status, _headers, body = http_get(self.url + "/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        return parse_samples(body.decode())

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) printed so far."""
        return (
            self._paths[0].read_text(encoding="utf-8", errors="replace"),
            self._paths[1].read_text(encoding="utf-8", errors="replace"),
        )

    def close(self) -> None:
        """Stop the process and remove its output files."""
        self.stop()
        self._logs.cleanup()


def run_once(base_url: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """`python -m binance_exporter --once` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "binance_exporter", "--base-url", base_url, "--timeout", "2",
         "--once", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series is absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


def registry_with(collector: Collector) -> CollectorRegistry:
    """A fresh registry holding only `collector`, for `get_sample_value` in collector tests."""
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def taker_totals(trades: list[dict]) -> dict[str, list]:
    """What the trade-flow counters must read after exactly `trades` (aggTrades objects):
    taker side -> [trades, base volume, quote volume]."""
    expected: dict[str, list] = {"buy": [0, Decimal(0), Decimal(0)],
                                 "sell": [0, Decimal(0), Decimal(0)]}
    for trade in trades:
        totals = expected["sell" if trade["m"] else "buy"]
        totals[0] += trade["l"] - trade["f"] + 1
        totals[1] += Decimal(trade["q"])
        totals[2] += Decimal(trade["p"]) * Decimal(trade["q"])
    return expected


def trades_counted(samples: Samples, symbol: str, expected: dict[str, list]) -> bool:
    """True when the page's trade counters of `symbol` equal `expected` (`taker_totals`):
    the trades exactly, the volumes as far as a float64 carries them."""
    def near(name: str, side: str, value: Decimal) -> bool:
        served = sample(samples, name, symbol=symbol, taker_side=side)
        return served is not None and abs(served - float(value)) <= 1e-9 * max(1.0, float(value))

    return all(sample(samples, "binance_trades_total", symbol=symbol, taker_side=side) == count
               and near("binance_traded_base_volume_total", side, base)
               and near("binance_traded_quote_volume_total", side, quote)
               for side, (count, base, quote) in expected.items())
