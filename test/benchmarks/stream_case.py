"""Stream-mode throughput: diff events per second on one core, and scrapes meanwhile.

The exporter's own code path, in one process as in production: each event is
JSON text, parsed, applied to its local book (`StreamBooks.on_data`), and the
publisher republishes the books (`StreamRefresher.refresh_books`, which also
re-renders /metrics) every 100 ms. A second thread scrapes /metrics over HTTP
all the while. 50 symbols, 1000 levels a side, ~10 changed levels per event.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import urllib.request
from decimal import Decimal

from prometheus_client import CollectorRegistry

from binance_exporter.binance_client import ApiStats
from binance_exporter.collector import SnapshotCollector
from binance_exporter.exposition import Exposition
from binance_exporter.http_server import ExporterServer
from binance_exporter.market import SymbolInfo, Ticker24h
from binance_exporter.refresh import Settings
from binance_exporter.snapshot import Answers, Snapshot, SnapshotStore
from binance_exporter.stream_refresh import PUBLISH_INTERVAL, StreamRefresher
from binance_exporter.stream_source import StreamBooks, depth_stream
from binance_exporter.workers import DaemonPool

SYMBOLS = 50
LEVELS = 1000
TICK = Decimal("0.01")


def _snapshot_payload(mid: int) -> dict:
    bids = [[str(Decimal(mid - 1 - i) * TICK), "1.00000000"] for i in range(LEVELS)]
    asks = [[str(Decimal(mid + 1 + i) * TICK), "1.00000000"] for i in range(LEVELS)]
    return {"lastUpdateId": 100, "bids": bids, "asks": asks}


class _SnapshotClient:
    def __init__(self) -> None:
        self.mids = {f"S{i:02d}USDT": 100_000 + 1000 * i for i in range(SYMBOLS)}

    def depth(self, symbol: str, _limit: int) -> dict:
        """A deep two-sided book around the symbol's mid."""
        return _snapshot_payload(self.mids[symbol])

    @staticmethod
    def stats() -> ApiStats:
        """No REST traffic in this case."""
        return ApiStats({}, None, 6000, 0.0)


def _events(client: _SnapshotClient, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """Combined-stream messages, consecutive ids per symbol, near-touch changes."""
    next_id = {s: 101 for s in client.mids}
    messages = []
    names = list(client.mids)
    for _ in range(count):
        symbol = rng.choice(names)
        mid = client.mids[symbol]
        bids = [[str(Decimal(mid - 1 - rng.randrange(50)) * TICK),
                 "0" if rng.random() < 0.25 else f"{rng.uniform(0.1, 5):.8f}"] for _ in range(5)]
        asks = [[str(Decimal(mid + 1 + rng.randrange(50)) * TICK),
                 "0" if rng.random() < 0.25 else f"{rng.uniform(0.1, 5):.8f}"] for _ in range(5)]
        first = next_id[symbol]
        next_id[symbol] = first + 3
        data = {"e": "depthUpdate", "E": 1, "s": symbol, "U": first, "u": first + 2,
                "b": bids, "a": asks}
        messages.append((depth_stream(symbol), json.dumps({"stream": depth_stream(symbol),
                                                           "data": data})))
    return messages


class _Rig:
    """Synced books for SYMBOLS symbols, a refresher over them, and a /metrics server."""

    def __init__(self) -> None:
        self.client = _SnapshotClient()
        self.pool = DaemonPool(2)
        self.books = StreamBooks(self.client, self.pool, LEVELS)
        store = SnapshotStore()
        self.refresher = StreamRefresher(self.client, store, Settings(), self.books,
                                         on_track=self.books.track)
        names = list(self.client.mids)
        self.books.track(names)
        self.books.on_connect()  # every book fetches its snapshot
        deadline = time.monotonic() + 10
        while len(self.books.synced_books(1)) < SYMBOLS and time.monotonic() < deadline:
            time.sleep(0.05)
        tickers = tuple(Ticker24h(s, Decimal(1), Decimal(1), 1) for s in names[:5])
        store.publish(Snapshot(answers=Answers(
            symbols={s: SymbolInfo(s, s[:3], "USDT", "TRADING") for s in names},
            top_btc=tickers, top_usdt=tickers, notional={}, spread_symbols=tuple(names),
            spreads={}, spread_ratios={}, deltas={})))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(store.current, self.client.stats))
        exposition = Exposition(registry)
        store.subscribe(exposition.update)
        self.server = ExporterServer(("127.0.0.1", 0), exposition, lambda: True, "bench")
        self.server.serve_in_thread()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def close(self) -> None:
        """Stop the server and the workers."""
        self.server.shutdown()
        self.server.server_close()
        self.pool.shutdown()
        self.refresher.close()


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))] if values else float("nan")


def run(events: int = 200_000, seed: int = 1) -> dict[str, float]:
    """Feed `events` diff events; returns events/s and scrape latency figures (ms)."""
    rig = _Rig()
    messages = _events(rig.client, events, random.Random(seed))
    stop = threading.Event()
    latencies: list[float] = []
    publishes = [0]

    def publisher() -> None:
        while not stop.is_set():
            rig.refresher.refresh_books()
            publishes[0] += 1
            stop.wait(PUBLISH_INTERVAL)

    def scraper() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            with urllib.request.urlopen(rig.url, timeout=5) as response:
                response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            stop.wait(0.05)

    threads = [threading.Thread(target=publisher, daemon=True),
               threading.Thread(target=scraper, daemon=True)]
    for thread in threads:
        thread.start()
    on_data = rig.books.on_data
    started = time.perf_counter()
    for stream, text in messages:
        on_data(stream, json.loads(text)["data"])
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(5)
    rig.close()
    latencies.sort()
    return {
        "events": float(events),
        "events_per_second": events / elapsed,
        "synced_books": float(len(rig.books.synced_books(1))),
        "resyncs": float(sum(rig.books.resyncs().values())),
        "publishes": float(publishes[0]),
        "scrapes": float(len(latencies)),
        "scrape_p50_ms": _percentile(latencies, 0.5),
        "scrape_p99_ms": _percentile(latencies, 0.99),
        "scrape_max_ms": latencies[-1] if latencies else float("nan"),
    }


if __name__ == "__main__":
    sys.setswitchinterval(0.001)  # as the exporter does in stream mode
    for name, value in run().items():
        print(f"{name:>20} {value:,.2f}")
