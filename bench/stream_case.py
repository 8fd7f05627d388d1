"""Stream-mode throughput: diff events per second on one core, and scrapes meanwhile.

The exporter's own code path, in one process as in production: each event is
JSON text, parsed, applied to its local book (`StreamBooks.on_data`), and the
publisher republishes the books (`Republisher` running
`QuotesJob.refresh_books` over a `StreamSource`) at most every 100 ms, exactly
as in the exporter. A scraper in its own process, as Prometheus would be,
fetches /metrics (gzip) every 50 ms all the while; the page is rendered
lazily, by the scrapes (`metrics.exposition`). 50 symbols, 1000 levels a side,
10 changed levels per event (5 bids, 5 asks; a quarter of them deletions).

Each of 3 rounds also times the feed alone (no publisher, no scraper), and
`naive_stream.NaiveBooks` on the same messages right after it, then one read
of the top levels of every book in each: those ratios hold while the
machine's speed drifts, which the absolute figures do not.

Then the render policies side by side, each round: the feed paced at 500
events/s (all 50 books moving, as depth@100ms streams do), a scrape every
1 s, 20 s each, once with the old eager policy (`eager_render_on_publish`:
render + gzip on every publish) and once with the exporter's lazy exposition.
Page renders per minute and this process's CPU seconds per second are what
they are compared on.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import threading
import time
from decimal import Decimal
from typing import Callable

from bench.report import spread
from binance_exporter.app import STREAM_SWITCH_INTERVAL
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import ApiStats
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.config import RankingConfig
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.republisher import Republisher
from binance_exporter.market.types import SymbolInfo, Ticker24h
from binance_exporter.metrics.exposition import Exposition, build_exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.model import Answers, Snapshot, SnapshotStore
from binance_exporter.sources.stream import depth_stream
from binance_exporter.sources.stream_source import StreamSource

from .naive_stream import NaiveBooks
from .probes import percentile, start_scraper, stop_scraper

SYMBOLS = 50
LEVELS = 1000
TICK = Decimal("0.01")
SCRAPE_INTERVAL = 0.05  # seconds between scrapes
READS = 20  # reads of every book's top levels, timed per round
# The render-policy comparison: Binance sends each book's diffs every 100 ms,
# so 50 books that all move make 500 events a second.
POLICY_RATE = 500  # events per second, paced
POLICY_SECONDS = 20.0  # per policy per round
POLICY_SCRAPE_INTERVAL = 1.0  # seconds between scrapes (Prometheus's default is 15-60 s)
# What bench.scrape_client sends: no Accept header (the text format), gzip.
SCRAPER_ACCEPT = ""
SCRAPER_ENCODING = "gzip"


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


class _Rig:  # pylint: disable=too-many-instance-attributes
    """Synced books for SYMBOLS symbols, the quotes job over them, and a /metrics server.

    Composed as `app.App` composes stream mode: a `StreamSource` (its
    connections never opened: the benchmark calls the reader's callback
    itself) whose changes wake the `Republisher`, a `QuotesJob` publishing
    `refresh_books`, and the exposition `build_exposition` makes.
    """

    def __init__(self) -> None:
        self.client = _SnapshotClient()
        self.pool = DaemonPool(2)
        self.republisher = Republisher()
        self.source = StreamSource(self.client, "ws://unused", LEVELS,  # type: ignore[arg-type]
                                   on_change=self.republisher.changed)
        self.books = self.source.local
        self.store = SnapshotStore()
        self.quotes = QuotesJob(self.source, self.pool, self.store, RankingConfig())
        names = list(self.client.mids)
        self.books.track(names)
        self.books.on_connect()  # a connection, subscribed:
        self.books.on_live()  # every book fetches its snapshot
        deadline = time.monotonic() + 10
        while self.synced_books() < SYMBOLS and time.monotonic() < deadline:
            time.sleep(0.05)
        tickers = tuple(Ticker24h(s, Decimal(1), Decimal(1), 1) for s in names[:5])
        self.store.publish(Snapshot(answers=Answers(
            symbols={s: SymbolInfo(s, s[:3], "USDT", "TRADING") for s in names},
            top_btc=tickers, top_usdt=tickers, notional={}, spread_symbols=tuple(names),
            spreads={}, spread_ratios={}, deltas={})))
        self.exposition = build_exposition(self.store.current, self.client.stats,
                                           self.source.view)
        self.server = ExporterServer(("127.0.0.1", 0), self.exposition, lambda: True, "bench")
        self.server.serve_in_thread()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def synced_books(self) -> int:
        """How many books follow the stream."""
        return sum(not isinstance(book, Exception)
                   for book in self.books.books(list(self.client.mids), 1).values())

    def on_message(self) -> Callable[[object, str], None]:
        """The callback the connector's reader thread calls with each text frame."""
        streams = [depth_stream(s) for s in self.client.mids]  # the rest is ignored
        return StreamSupervisor("ws://unused", streams, self.books.on_data).on_message

    def close(self) -> None:
        """Stop the server and the workers."""
        self.server.shutdown()
        self.server.server_close()
        self.pool.shutdown()
        self.source.close()


def app_publish(rig: _Rig) -> Callable[[], None]:
    """The publish as `App._publish` runs it: the book answers, then `published()`."""

    def publish() -> None:
        rig.quotes.refresh_books()
        rig.exposition.published()

    return publish


def eager_render_on_publish(publish: Callable[[], Snapshot],
                            exposition: Exposition) -> Callable[[], Snapshot]:
    """THE OLD EAGER POLICY, for comparison only: render + gzip the page after every publish.

    Before the redesign the exposition was a store subscriber that rendered
    the whole page and gzipped it on every publish, whether or not anyone
    scraped. Wrapping the publish with a render in the scraper's format and
    encoding does the same work at the same moment; the scrapes then find
    that rendering cached, as they found the old pre-rendered page.
    """

    def publish_and_render() -> Snapshot:
        snapshot = publish()
        exposition.render(SCRAPER_ACCEPT, SCRAPER_ENCODING, "")
        return snapshot

    return publish_and_render


def _counting(publish: Callable[[], object], count: list[int]) -> Callable[[], object]:
    def counted() -> object:
        count[0] += 1
        return publish()

    return counted


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
    thread = threading.Thread(target=rig.republisher.run,
                              args=(_counting(app_publish(rig), publishes), stop),
                              daemon=True)
    thread.start()
    scraper = start_scraper(rig.url, SCRAPE_INTERVAL)
    time.sleep(1.0)  # let it start; only scrapes that begin under load are kept
    on_message = rig.on_message()
    renders = rig.exposition.renders
    wall_started, started = time.time(), time.perf_counter()
    for text in messages:
        on_message(None, text)
    elapsed = time.perf_counter() - started
    wall_ended = time.time()
    renders = rig.exposition.renders - renders
    latencies = stop_scraper(scraper, wall_started, wall_ended)
    stop.set()
    thread.join(5)
    rig.close()
    gc.unfreeze()
    return {
        "events_per_second": events / elapsed,
        "latencies": latencies,
        "publishes": publishes[0],
        "renders": renders,
        "synced_books": rig.synced_books(),
        "resyncs": sum(rig.books.stats()[1].values()),
    }


def _paced_feed(on_message: Callable[[object, str], None], messages: list[str],
                rate: float) -> None:
    """Feed the messages at `rate` a second, as a market of that many events would."""
    started = time.perf_counter()
    for index, text in enumerate(messages):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        on_message(None, text)


def _policy(eager: bool, seconds: float, scrape_interval: float, seed: int) -> dict[str, float]:
    """One render policy under a paced feed: renders, CPU, publishes and scrapes per minute.

    `eager`: the old policy (`eager_render_on_publish`); else the exporter's
    own lazy `Exposition`. The feed runs at POLICY_RATE events/s for
    `seconds`, every 50 books moving; the exporter's CPU is this process's
    (every exporter thread: reader, publisher, HTTP server; the scraper is
    another process).
    """
    rig = _Rig()
    messages = _loaded(rig, round(POLICY_RATE * seconds), seed)
    stop = threading.Event()
    publishes = [0]
    publish = _counting(eager_render_on_publish(rig.quotes.refresh_books, rig.exposition)
                        if eager else app_publish(rig), publishes)
    thread = threading.Thread(target=rig.republisher.run, args=(publish, stop), daemon=True)
    thread.start()
    try:
        return _paced_run(rig, messages, publishes, scrape_interval)
    finally:
        stop.set()
        thread.join(5)
        rig.close()
        gc.unfreeze()


def _paced_run(rig: _Rig, messages: list[str], publishes: list[int],
               scrape_interval: float) -> dict[str, float]:
    """Scrape every `scrape_interval` s while the paced feed runs; the rates per minute."""
    scraper = start_scraper(rig.url, scrape_interval)
    time.sleep(1.0)  # let it start; only scrapes that begin during the feed count

    def now() -> tuple[float, ...]:
        return (rig.exposition.renders, publishes[0], time.time(), time.perf_counter(),
                time.process_time())

    before = now()
    _paced_feed(rig.on_message(), messages, POLICY_RATE)
    after = now()
    scrapes = len(stop_scraper(scraper, before[2], after[2]))
    renders, published, elapsed, cpu = (after[i] - before[i] for i in (0, 1, 3, 4))
    return {"renders_per_minute": renders * 60.0 / elapsed, "cpu_per_second": cpu / elapsed,
            "publishes_per_minute": published * 60.0 / elapsed,
            "scrapes_per_minute": scrapes * 60.0 / elapsed,
            "renders": renders, "scrapes": scrapes}


def _feed_only(events: int, seed: int) -> dict[str, float]:
    """The exporter's feed alone and the naive feed, on the same messages, back to back.

    Events/s of each, then the time one read of the top levels of all 50
    books takes in each (ms; the publisher does one such read per publish).
    """
    rig = _Rig()
    messages = _loaded(rig, events, seed)
    naive = NaiveBooks({s: rig.client.depth(s, LEVELS) for s in rig.client.mids})
    on_message = rig.on_message()
    figures = {}
    for side, feed in (("ours", lambda text: on_message(None, text)),
                       ("naive", naive.on_message)):
        started = time.perf_counter()
        for text in messages:
            feed(text)
        figures[side] = events / (time.perf_counter() - started)
    depth, names = RankingConfig().depth_levels, list(rig.client.mids)
    for side, read in (("ours_read", lambda: rig.books.books(names, depth)),
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


def _policies(rounds: int, seed: int) -> dict[str, float]:
    """Before (eager render per publish) and after (lazy) side by side, `rounds` times.

    The two alternate which goes first, so a drift of the machine's speed
    hits both alike; the ratios are taken within each round.
    """
    runs: dict[str, list[dict[str, float]]] = {"eager": [], "lazy": []}
    for index in range(rounds):
        order = ("eager", "lazy") if index % 2 == 0 else ("lazy", "eager")
        for name in order:
            runs[name].append(_policy(name == "eager", POLICY_SECONDS, POLICY_SCRAPE_INTERVAL,
                                      seed))
    figures = {"policy_rate": float(POLICY_RATE), "policy_seconds": POLICY_SECONDS,
               "policy_scrape_interval": POLICY_SCRAPE_INTERVAL}
    for name, one in runs.items():
        for key in one[0]:
            for stat, value in spread([run[key] for run in one]).items():
                figures[f"{name}_{key}_{stat}"] = value
    for key in ("renders_per_minute", "cpu_per_second"):
        figures[f"{key}_ratio"] = statistics.median(
            eager[key] / lazy[key] if lazy[key] else float("inf")
            for eager, lazy in zip(runs["eager"], runs["lazy"]))
    # Renders beyond the scrapes in any round; a scrape that began just
    # before the window and rendered just inside it makes one at most.
    figures["lazy_renders_beyond_scrapes_max"] = max(
        run["renders"] - run["scrapes"] for run in runs["lazy"])
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
    return _policies(rounds, seed) | {
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
        "renders": float(sum(one["renders"] for one in full)),
        "scrapes": float(len(latencies)),
        "scrape_p50_ms": percentile(latencies, 0.5) if latencies else float("nan"),
        "scrape_p99_ms": percentile(latencies, 0.99) if latencies else float("nan"),
        "scrape_max_ms": latencies[-1] if latencies else float("nan"),
    }


def main() -> None:
    """Print every figure of `run()`."""
    sys.setswitchinterval(STREAM_SWITCH_INTERVAL)  # as the exporter does in stream mode
    for name, value in run().items():
        print(f"{name:>36} {value:,.2f}")


if __name__ == "__main__":
    main()
