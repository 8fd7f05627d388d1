"""Stream-mode throughput: diff events per second on one core, and scrapes meanwhile.

The exporter's own code path, in one process as in production: each event is
JSON text, parsed, applied to its local book (`StreamBooks.on_data`), and the
publisher republishes the books (`Republisher` running
`StreamRefresher.refresh_books`, which also re-renders /metrics) at most every
100 ms, exactly as in the exporter. A scraper in its own process, as Prometheus
would be, fetches /metrics (gzip) every 50 ms all the while. 50 symbols, 1000
levels a side, 10 changed levels per event (5 bids, 5 asks; a quarter of them
deletions).

Each of 3 rounds also times the feed alone (no publisher, no scraper), and
`naive_stream.NaiveBooks` on the same messages right after it, then one read
of the top levels of every book in each: those ratios hold while the
machine's speed drifts, which the absolute figures do not.
"""

from __future__ import annotations

import gc
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal

from prometheus_client import CollectorRegistry

from binance_exporter.binance.rest import ApiStats
from binance_exporter.metrics.collector import SnapshotCollector
from binance_exporter.metrics.exposition import Exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.market.types import SymbolInfo, Ticker24h
from binance_exporter.jobs.quotes import Settings
from binance_exporter.model import Answers, Snapshot, SnapshotStore
from binance_exporter.jobs.republisher import Republisher, StreamRefresher
from binance_exporter.sources.stream import StreamBooks, depth_stream
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.jobs.pool import DaemonPool

from .naive_stream import NaiveBooks
from .probes import percentile

SYMBOLS = 50
LEVELS = 1000
TICK = Decimal("0.01")
SCRAPE_INTERVAL = 0.05  # seconds between scrapes
READS = 20  # reads of every book's top levels, timed per round


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


def _loaded(rig: _Rig, events: int, seed: int) -> list[str]:
    """The messages, with the input moved out of the collector's way.

    200,000 strings held by the benchmark are not the exporter's: freezing
    them keeps the cyclic GC from walking them on the exporter's time.
    """
    messages = _events(rig.client, events, random.Random(seed))
    gc.collect()
    gc.freeze()
    return messages


def _full(events: int, seed: int) -> dict:
    """One run as in production: publisher on, a scraper in its own process."""
    rig = _Rig()
    messages = _loaded(rig, events, seed)
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
        [sys.executable, "-m", "bench.scrape_client", rig.url, "--gzip",
         "--count", "1000000", "--max-seconds", "600", "--interval", str(SCRAPE_INTERVAL)],
        stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it start; only scrapes that begin under load are kept
    # The connector's reader thread calls this with each text frame.
    on_message = StreamSupervisor("ws://unused", [], rig.books.on_data).on_message
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
    gc.unfreeze()
    return {
        "events_per_second": events / elapsed,
        "latencies": [latency for latency, begun in
                      zip(scraped["latencies_ms"], scraped["started_unix"])
                      if wall_started <= begun <= wall_ended],
        "publishes": publishes[0],
        "synced_books": len(rig.books.synced_books(1)),
        "resyncs": sum(rig.books.resyncs().values()),
    }


def _feed_only(events: int, seed: int) -> dict[str, float]:
    """The exporter's feed alone and the naive feed, on the same messages, back to back.

    Events/s of each, then the time one read of the top levels of all 50
    books takes in each (ms; the publisher does one such read per publish).
    """
    rig = _Rig()
    messages = _loaded(rig, events, seed)
    naive = NaiveBooks({s: rig.client.depth(s, LEVELS) for s in rig.client.mids})
    on_message = StreamSupervisor("ws://unused", [], rig.books.on_data).on_message
    figures = {}
    for side, feed in (("ours", lambda text: on_message(None, text)),
                       ("naive", naive.on_message)):
        started = time.perf_counter()
        for text in messages:
            feed(text)
        figures[side] = events / (time.perf_counter() - started)
    depth = Settings().depth_levels
    for side, read in (("ours_read", lambda: rig.books.synced_books(depth)),
                       ("naive_read", lambda: naive.top(depth))):
        started = time.perf_counter()
        for _ in range(READS):
            read()
        figures[side] = (time.perf_counter() - started) / READS * 1000
    rig.close()
    gc.unfreeze()
    if naive.gaps:
        raise RuntimeError(f"the naive feed saw {naive.gaps} gaps: the input is broken")
    return figures


def run(events: int = 200_000, rounds: int = 3, seed: int = 1) -> dict[str, float]:
    """`rounds` full runs and feed-only pairs: medians, and scrape latencies pooled (ms).

    The machines' speed drifts by as much as 2x within minutes, so every
    figure is taken `rounds` times, each round runs the full case and the
    feed alone back to back, and each naive figure comes right after ours.
    """
    full, feeds = [], []
    for _ in range(rounds):  # interleaved, so that a drift hits both alike
        full.append(_full(events, seed))
        feeds.append(_feed_only(events, seed))
    latencies = sorted(latency for one in full for latency in one["latencies"])
    return {
        "events": float(events),
        "rounds": float(rounds),
        "events_per_second": statistics.median(one["events_per_second"] for one in full),
        "events_per_second_min": min(one["events_per_second"] for one in full),
        "events_per_second_max": max(one["events_per_second"] for one in full),
        "feed_events_per_second": statistics.median(f["ours"] for f in feeds),
        "full_to_feed": statistics.median(one["events_per_second"] / f["ours"]
                                          for one, f in zip(full, feeds)),
        "naive_feed_events_per_second": statistics.median(f["naive"] for f in feeds),
        "read_ms": statistics.median(f["ours_read"] for f in feeds),
        "naive_read_ms": statistics.median(f["naive_read"] for f in feeds),
        "synced_books": float(min(one["synced_books"] for one in full)),
        "resyncs": float(sum(one["resyncs"] for one in full)),
        "publishes": float(sum(one["publishes"] for one in full)),
        "scrapes": float(len(latencies)),
        "scrape_p50_ms": percentile(latencies, 0.5) if latencies else float("nan"),
        "scrape_p99_ms": percentile(latencies, 0.99) if latencies else float("nan"),
        "scrape_max_ms": latencies[-1] if latencies else float("nan"),
    }


if __name__ == "__main__":
    sys.setswitchinterval(0.001)  # as the exporter does in stream mode
    for name, value in run().items():
        print(f"{name:>20} {value:,.2f}")
