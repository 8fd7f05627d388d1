"""Stream mode end to end: how long after the market moves does /metrics show it?

The exporter process runs in stream mode against the fake REST API and the
fake streams. Each step moves the fake market; once the fake has written that
step's diffs to the socket (`streams.flush()`), the clock starts, and /metrics
is polled every 10 ms until every served spread equals the market's own. The
fake rewrites every level of its books each step (thousands of levels per
event), far heavier than a real 100 ms diff, so this is a pessimistic figure.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal
from functools import partial
from fake_binance.market import Market
from fake_binance.server import FakeBinance
from fake_binance.streams import FakeStreams
from tests.support import Exporter, sample, wait_until

POLL = 0.01  # seconds between scrapes while waiting


def _spreads(market: Market, symbols: list[str]) -> dict[str, float]:
    spreads = {}
    for symbol in symbols:
        bids, asks = market.book(symbol)
        spreads[symbol] = float(Decimal(asks[0][0]) - Decimal(bids[0][0]))
    return spreads


def _shown(exporter: Exporter, expected: dict[str, float]) -> bool:
    samples = exporter.scrape()
    return all(sample(samples, "binance_spread", symbol=s) == v for s, v in expected.items())


def run(steps: int = 15) -> dict[str, float]:
    """Seconds from a step's diffs on the wire to /metrics showing them: median and max."""
    market = Market(seed=7)
    with FakeBinance(market) as rest, FakeStreams(market, ping_interval=5) as streams:
        exporter = Exporter(rest.url, "--source", "stream", "--no-analytics",
                            "--update-interval", "1", "--refresh-interval", "60",
                            "--stream-url", streams.url)
        try:
            exporter.wait_ready(timeout=30)
            symbols = [labels[0][1] for (name, labels) in exporter.scrape()
                       if name == "binance_spread"]
            delays = []
            for _ in range(steps):
                market.step()
                streams.flush()
                started = time.monotonic()
                wait_until(partial(_shown, exporter, _spreads(market, symbols)),
                           timeout=30, interval=POLL)
                delays.append(time.monotonic() - started)
        finally:
            exporter.close()
    return {"steps": float(steps), "median_s": statistics.median(delays),
            "max_s": max(delays), "symbols": float(len(symbols))}
