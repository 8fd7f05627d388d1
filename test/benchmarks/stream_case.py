"""Stream-mode throughput: diff events per second on one core, and scrapes meanwhile.

The exporter's own code path, in one process as in production: each event is
JSON text, parsed, applied to its local book (`StreamBooks.on_data`), and the
publisher republishes the books (`Republisher` running
`StreamRefresher.refresh_books`, which also re-renders /metrics) at most every
100 ms, exactly as in the exporter. A scraper in its own process, as Prometheus
would be, fetches /metrics (gzip) every 50 ms all the while. 50 symbols, 1000
levels a side, 10 changed levels per event (5 bids, 5 asks; a quarter of them
deletions).
"""

from __future__ import annotations

import gc
import json
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

from prometheus_client import CollectorRegistry

from binance_exporter.binance_client import ApiStats
from binance_exporter.collector import SnapshotCollector
from binance_exporter.exposition import Exposition
from binance_exporter.http_server import ExporterServer
from binance_exporter.market import SymbolInfo, Ticker24h
from binance_exporter.refresh import Settings
from binance_exporter.snapshot import Answers, Snapshot, SnapshotStore
from binance_exporter.stream_refresh import Republisher, StreamRefresher
from binance_exporter.stream_source import StreamBooks, depth_stream
from binance_exporter.streams import StreamSupervisor
from binance_exporter.workers import DaemonPool

SYMBOLS = 50
LEVELS = 1000
TICK = Decimal("0.01")
SCRAPE_INTERVAL = 0.05  # seconds between scrapes


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


def _events(client: _SnapshotClient, count: int, rng: random.Random) -> list[str]:
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
        messages.append(json.dumps({"stream": depth_stream(symbol), "data": data}))
    return messages


class _Rig:
    """Synced books for SYMBOLS symbols, a refresher over them, and a /metrics server."""

    def __init__(self) -> None:
        self.client = _SnapshotClient()
        self.pool = DaemonPool(2)
        self.republisher = Republisher()
        self.books = StreamBooks(self.client, self.pool, LEVELS,
                                 on_change=self.republisher.changed)
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
    publishes = [0]
    refresh_books = rig.refresher.refresh_books

    def counted() -> Snapshot:
        publishes[0] += 1
        return refresh_books()

    rig.refresher.refresh_books = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=rig.republisher.run, args=(rig.refresher, stop),
                              daemon=True)
    thread.start()
    scraper = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "test.benchmarks.scrape_client", rig.url, "--gzip",
         "--count", "1000000", "--max-seconds", "600", "--interval", str(SCRAPE_INTERVAL)],
        stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it start; only scrapes that begin under load are kept
    # The connector's reader thread calls this with each text frame.
    on_message = StreamSupervisor("ws://unused", [], rig.books.on_data).on_message
    # The input itself must not weigh on the collector: 200,000 strings held
    # here are not the exporter's, so move them out of its generations.
    gc.collect()
    gc.freeze()
    wall_started, started = time.time(), time.perf_counter()
    for text in messages:
        on_message(None, text)
    elapsed = time.perf_counter() - started
    wall_ended = time.time()
    scraper.send_signal(signal.SIGINT)
    scraped = json.loads(scraper.communicate(timeout=30)[0])
    stop.set()
    thread.join(5)
    rig.close()
    latencies = sorted(latency for latency, begun in
                       zip(scraped["latencies_ms"], scraped["started_unix"])
                       if wall_started <= begun <= wall_ended)
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
