"""Stream mode at market scale: every symbol's best quotes, what they cost, how fast they go.

`python -m bench.market_scale` (also run by `python -m bench`) rewrites the
last section of docs/benchmarks.md, which says what each figure is. Three
cases, each `--rounds` times, over the fake market with 3,000 extra symbols
and `--spread-symbols all`: the exporter process against `FakeBinance` and
`FakeStreams` (start-up, a forced reconnect, the steady state); then, in
processes of their own (`--case`), stream mode's parts composed as `app.App`
composes them, with connections that open no socket, fed bookTicker
messages as fast as they go (throughput, and a profile) and paced at 50,000
a second (lag, scrapes, memory).
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import functools
import gc
import gzip
import http.client
import json
import logging
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from bench import report, request_log
from bench.probes import Child, get, percentile, rss_mb, start_scraper, stop_scraper
from bench.report import Row, say, spread
from binance_exporter.app import STREAM_SWITCH_INTERVAL, freeze_start_up
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.binance.stream_feed import StreamFeed
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.config import SPREADS_ALL, RankingConfig, rankings_weight
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.jobs.republisher import Republisher
from binance_exporter.metrics.exposition import MAX_LAG, build_exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.model import SnapshotStore
from binance_exporter.sources.book_tickers import book_ticker_stream
from binance_exporter.sources.stream_source import StreamSource
from fake_binance import FakeBinance, Market
from fake_binance.streams import FakeStreams
from tests.support import ROOT, parse_samples

EXTRA_SYMBOLS = 3000
SEED = 7
ROUNDS = 3
# Case 1: the exporter process.
STEP_INTERVAL = 1.0  # seconds between market moves
POLL = 0.05  # seconds between status scrapes while waiting
SETTLE = 2.0  # seconds after all is live that still count as start-up (a late resync)
SHORT_ROUND = 33.0  # seconds from spawn: past the second analytics run (30 s)
LONG_ROUND = 65.0  # the last round: past the second rankings run (60 s)
START_WEIGHT_GOAL = 20 + 80 + 10 * 25 + 4  # exchangeInfo, 24 h tickers, 10 snapshots, one fill
START_SECONDS_GOAL = 10.0
CONNECTIONS_GOAL = 3
# After a reconnect: a snapshot per book, one fill, an aggTrades page per analytics symbol.
RECONNECT_FLOOR = 10 * 25 + 4 + 10 * 4
BOOKS = 10  # local books at the defaults: the top 5 BTC and the top 5 USDT symbols
DEPTH = "/api/v3/depth"
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TICKERS = "/api/v3/ticker/24hr"
STATUS = ("binance_up", "binance_stream_book_ticker_symbols",
          "binance_stream_book_ticker_symbols_live", "binance_order_book_update_id",
          "binance_order_book_resyncs_total", "binance_stream_connected",
          "binance_stream_reconnects_total", "binance_stream_messages_total")
# Cases 2 and 3: the exporter's parts in one process.
SNAPSHOT_LIMIT = 500  # what the defaults choose (`config.snapshot_limit`): weight 25
VARIANTS = 4  # market states each symbol's messages take their quotes from
FEED_MESSAGES = 600_000
PROFILE_MESSAGES = 100_000
FEED_SCRAPE_INTERVAL = 0.05  # seconds, as in the stream case: every snapshot is rendered
FEED_GOAL = 150_000
LAG_RATE = 50_000  # messages per second, paced
LAG_SECONDS = 10.0
CHUNK = 50  # messages between looks at the clock (1 ms at 50,000/s)
STAMP_EVERY = 500  # every 500th message is the stamped symbol's: 100 stamps a second
STAMPED = "BTCUSDT"
STAMP_TICK = Decimal("0.01")  # the stamped spread is stamp x tick
WATCH_INTERVAL = 0.02  # seconds between the watcher's scrapes
LAG_GOAL_MS = 250.0
SCRAPE_GOAL_MS = 10.0
RSS_GOAL_MB = 100.0
PROFILE_LINES = 8
SECTION = "## Stream mode at market scale"


# --------------------------------------------------------------------------- case 1

@dataclass
class _Watch:
    """What the polls of one exporter have seen, in seconds since spawn."""

    child: Child
    up: float | None = None  # first poll with binance_up 1
    last: dict = field(default_factory=dict)
    ups: list[bool] = field(default_factory=list)  # binance_up 1 in each poll

    def poll(self) -> dict[tuple[str, tuple], float]:
        """One scrape of the STATUS samples (`name[]`: cheap); notes the first `binance_up 1`."""
        query = "&".join(f"name[]={name}" for name in STATUS)
        samples = parse_samples(get(f"{self.child.url}/metrics?{query}")[1].decode())
        self.ups.append(samples.get(("binance_up", ())) == 1)
        if self.up is None and self.ups[-1]:
            self.up = time.monotonic() - self.child.spawned
        self.last = samples
        return samples

    def all_live(self, samples: dict[tuple[str, tuple], float],
                 reconnects: float = 0.0) -> bool:
        """Every quote live, every book synced, every connection up (after `reconnects`)."""
        wanted = samples.get(("binance_stream_book_ticker_symbols", ()), 0)
        return (0 < wanted == samples.get(("binance_stream_book_ticker_symbols_live", ()))
                and sum(name == "binance_order_book_update_id" for name, _ in samples) == BOOKS
                and samples.get(("binance_stream_connected", ())) == 1
                and samples.get(("binance_stream_reconnects_total", ()), 0) >= reconnects)

    def wait(self, condition: Callable[[dict], bool] | None, until: float) -> float:
        """Poll until `condition` holds (RuntimeError at monotonic time `until`), or with
        none every 0.5 s until `until`; the wall time the deciding poll was sent."""
        while time.monotonic() < until:
            sent = time.time()
            try:
                samples = self.poll()
            except OSError:
                samples = {}  # not serving yet
            if condition is not None and condition(samples):
                return sent
            if self.child.process.poll() is not None:
                raise RuntimeError(f"the exporter exited:\n{self.child.log()}")
            time.sleep(POLL if condition else min(0.5, max(0.0, until - time.monotonic())))
        if condition is not None:
            raise RuntimeError(f"not live in time; last status {self.last}\n"
                               f"{self.child.log()[-3000:]}")
        return time.time()


def _snapshots(records: list) -> Counter[str]:
    """Depth requests per symbol."""
    return Counter(r.params.get("symbol", "") for r in records if r.path == DEPTH)


def _by_path(records: list) -> Counter[str]:
    """Weight by endpoint, named by the last part of its path."""
    return Counter({path: sum(r.weight for r in records if r.path.endswith("/" + path))
                    for path in {r.path.rsplit("/", 1)[-1] for r in records}})


def _grown(before: dict, after: dict, name: str, label: str) -> dict[str, float]:
    """How much each series of `name` grew, by its `label`."""
    return {dict(labels)[label]: value - before.get((sample, labels), 0)
            for (sample, labels), value in after.items() if sample == name}


def _per_connect(figures: dict[str, Any], phase: str, before: dict,
                 after: dict) -> dict[str, int]:
    """Each book's snapshots in `phase`, less those of its resyncs that were neither the
    drop of a book in sync (`before`) nor a logged gap: the books that thinned out."""
    resyncs = _grown(before, after, "binance_order_book_resyncs_total", "symbol")
    dropped = _grown({}, before, "binance_order_book_update_id", "symbol")
    return {book: count - round(resyncs.get(book, 0)) + (book in dropped)
            + figures[f"{phase}_gaps"][book]
            for book, count in figures[f"{phase}_snapshots"].items()}


def _restarts(log: str) -> Counter[str]:
    """Books started over after a gap or a crossed book, as the exporter logs them."""
    return Counter(re.findall(r"(\S+): \w+ in the depth stream; resynchronising", log))


def _move(market: Market, stop: threading.Event) -> None:
    """Step the market every STEP_INTERVAL until `stop`."""
    while not stop.wait(STEP_INTERVAL):
        market.step()


def _start_round(index: int, seconds: float) -> dict[str, Any]:
    """One exporter from spawn to `seconds`: start-up, a forced reconnect, steady state."""
    market = Market(seed=SEED, extra_symbols=EXTRA_SYMBOLS)
    rest = FakeBinance(market).start()
    streams = FakeStreams(market).start()
    stop = threading.Event()
    threading.Thread(target=_move, args=(market, stop), daemon=True).start()
    child = Child("binance_exporter", "--base-url", rest.url, "--source", "stream",
                  "--stream-url", streams.url, "--spread-symbols", "all",
                  "--listen-address", "127.0.0.1", "--log-level", "info")
    watch = _Watch(child)
    try:
        live = watch.wait(watch.all_live, time.monotonic() + 60)
        figures: dict[str, Any] = {"to_live": live - child.spawned_wall,
                                   "connections": streams.connections_accepted}
        end = watch.wait(None, time.monotonic() + SETTLE)  # then a poll: no resync missed
        start = request_log.between(rest.requests, 0, end)
        mark = len(child.log())
        figures |= {"start_weight": request_log.weight(start), "start_paths": _by_path(start),
                    "start_snapshots": _snapshots(start), "start_gaps": _restarts(child.log()),
                    "quotes": watch.last[("binance_stream_book_ticker_symbols", ())]}
        figures["start_connect"] = _per_connect(figures, "start", {}, watch.poll())
        before = watch.poll()
        reconnects = before[("binance_stream_reconnects_total", ())]
        dropped = time.time()
        figures["dropped"] = streams.drop_connections()
        back = watch.wait(lambda s: watch.all_live(s, reconnects + figures["dropped"]),
                          time.monotonic() + 60)
        figures["reconnect_to_live"] = back - dropped
        end = watch.wait(None, time.monotonic() + SETTLE)
        again = request_log.between(rest.requests, dropped, end)
        figures |= {"reconnect_weight": request_log.weight(again),
                    "reconnect_paths": _by_path(again),
                    "reconnect_snapshots": _snapshots(again),
                    "reconnect_gaps": _restarts(child.log()[mark:]),
                    "reconnect_connections": streams.connections_accepted
                    - figures["connections"]}
        figures["reconnect_connect"] = _per_connect(figures, "reconnect", before, watch.poll())
        figures |= _steady(watch, rest, child.spawned + seconds)
        figures["up"] = watch.up
        figures["rss_mb"] = rss_mb(child.pid)
        say(f"  round {index + 1}: live {figures['to_live']:.1f} s, up {watch.up or -1:.1f} s,"
             f" weight {figures['start_weight']}, reconnect {figures['reconnect_weight']}, "
             f"steady {figures['steady_per_minute']:.0f}/min")
        return figures
    finally:
        stop.set()
        child.stop()
        streams.stop()
        rest.stop()


def _steady(watch: _Watch, rest: FakeBinance, until: float) -> dict[str, Any]:
    """Weight, snapshots, resyncs and messages from now until monotonic time `until`."""
    child = watch.child
    before, polls = watch.poll(), len(watch.ups)
    mark = len(child.log())
    began, began_wall = time.monotonic(), time.time()
    watch.wait(None, until)
    after = watch.poll()
    elapsed = time.monotonic() - began
    window = request_log.between(rest.requests, began_wall, time.time())
    by_book = _grown(before, after, "binance_order_book_resyncs_total", "symbol")
    resyncs = round(sum(by_book.values()))
    # The snapshots those resyncs asked for, and the rankings' REST repairs:
    # anything else is neither.
    explained = sum([r.weight for r in window if r.path == DEPTH][:resyncs]) + sum(
        r.weight for r in window if r.path in (EXCHANGE_INFO, TICKERS))
    weight = request_log.weight(window)
    return {"steady_seconds": elapsed, "steady_per_minute": weight * 60.0 / elapsed,
            "steady_other_per_minute": (weight - explained) * 60.0 / elapsed,
            "steady_repairs": sum(1 for r in window if r.path == TICKERS),
            "steady_paths": _by_path(window), "steady_by_book": by_book,
            "steady_resyncs": resyncs, "steady_gaps": sum(_restarts(child.log()[mark:]).values()),
            "steady_up": statistics.mean(watch.ups[polls:]),
            "steady_messages": _grown(before, after, "binance_stream_messages_total",
                                      "stream_type")}


def _summed(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> dict[str, float]:
    """The dicts (or Counters) under `key` of every run, added up, times `scale`."""
    total: Counter[str] = Counter()
    for one in runs:
        total.update(one[key])
    return {name: value * scale for name, value in total.items()}


def measure_start(rounds: int) -> dict[str, Any]:
    """`rounds` exporters one after the other; the last runs past the second rankings run."""
    runs = [_start_round(i, LONG_ROUND if i == rounds - 1 else SHORT_ROUND)
            for i in range(rounds)]
    figures: dict[str, Any] = {key: spread([one[key] for one in runs]) for key in (
        "to_live", "start_weight", "connections", "reconnect_to_live", "reconnect_weight",
        "reconnect_connections", "steady_per_minute", "steady_other_per_minute", "steady_up",
        "rss_mb")}
    ups = [one["up"] for one in runs if one["up"] is not None]
    seconds = sum(one["steady_seconds"] for one in runs)
    figures |= {"rounds": rounds, "quotes": runs[0]["quotes"], "up": spread(ups) if ups else None,
                "up_missing": len(runs) - len(ups), "steady_seconds": seconds,
                "steady_by_book": _summed(runs, "steady_by_book"),
                "steady_paths_per_minute": _summed(runs, "steady_paths", 60.0 / seconds)}
    for phase in ("start", "reconnect"):
        figures[f"{phase}_paths"] = _summed(runs, f"{phase}_paths", 1.0 / rounds)
        connect = [(count, book) for one in runs for book, count in one[f"{phase}_connect"].items()]
        figures[f"{phase}_connect"] = max(connect)[0]
        figures[f"{phase}_most"] = sorted({book for count, book in connect
                                           if count == max(connect)[0]})
        figures[f"{phase}_snapshots"] = spread([count for one in runs
                                                 for count in one[f"{phase}_snapshots"].values()])
        figures[f"{phase}_gaps"] = spread([len(one[f"{phase}_gaps"]) for one in runs])
    for key in ("steady_resyncs", "steady_gaps", "steady_repairs"):
        figures[key] = sum(one[key] for one in runs)
    figures["steady_messages_per_second"] = {kind: count / seconds for kind, count in _summed(
        runs, "steady_messages").items()}
    return figures


# --------------------------------------------------------------------------- cases 2 and 3

class _Loopback:
    """The connector's stream client without a socket: each (UN)SUBSCRIBE is acknowledged
    at once, and `routes` learns which reader callback each stream's messages go to."""

    def __init__(self, routes: dict[str, Callable[[object, str], None]], *,
                 on_message: Callable[[object, str], None], **_: Any) -> None:
        self.routes, self.on_message = routes, on_message
        self.socket_manager = self.ws = self  # is_alive(), ws.abort()

    def subscribe(self, streams: list[str], id: int,  # pylint: disable=redefined-builtin
                  route: bool = True) -> None:
        """Route `streams` here (or nowhere); Binance's reply."""
        for stream in streams:
            self.routes[stream] = self.on_message if route else self.routes.get(stream)
        self.on_message(None, json.dumps({"result": None, "id": id}))

    def unsubscribe(self, streams: list[str], id: int) -> None:  # pylint: disable=redefined-builtin
        """No more messages of `streams` from here."""
        self.subscribe(streams, id, route=False)

    @staticmethod
    def is_alive() -> bool:
        """Always up."""
        return True

    def stop(self) -> None:
        """Nothing to close."""

    abort = stop


@dataclass
class _Messages:
    """Combined-stream bookTicker messages for every symbol, made from a few templates."""

    heads: dict[str, str]  # symbol -> text up to the update id
    tails: dict[str, list[str]]  # symbol -> text after the update id, one per market state
    quotes: dict[str, list[tuple[str, str]]]  # symbol -> (bid, ask), one per market state

    def text(self, symbol: str, update_id: int, variant: int) -> str:
        """One message of `symbol`."""
        return f"{self.heads[symbol]}{update_id}{self.tails[symbol][variant]}"


def _templates(client: BinanceClient, symbols: list[str], rng: random.Random) -> _Messages:
    """Quotes from VARIANTS successive states of the fake market, each with quantities of
    its own."""
    states = []
    for _ in range(VARIANTS):
        get(client.base_url + "/fake/step")
        states.append({t["symbol"]: t for t in client.book_tickers(None)})
    messages = _Messages({}, {}, {})
    for symbol in symbols:
        name = json.dumps(symbol, ensure_ascii=False)
        messages.heads[symbol] = f'{{"stream":"{book_ticker_stream(symbol)}","data":{{"u":'
        messages.quotes[symbol] = [(state[symbol]["bidPrice"], state[symbol]["askPrice"])
                                   for state in states]
        messages.tails[symbol] = [
            f',"s":{name},"b":"{bid}","B":"{rng.uniform(0.01, 50):.8f}",'
            f'"a":"{ask}","A":"{rng.uniform(0.01, 50):.8f}"}}}}'
            for bid, ask in messages.quotes[symbol]]
    return messages


class _Rig:  # pylint: disable=too-many-instance-attributes
    """Stream mode's parts over the whole market, with connections that open no socket.

    Composed as `app.App` composes stream mode: a `StreamSource` whose
    changes wake the `Republisher`, the rankings and quotes jobs
    (`--spread-symbols all`), and the exposition and `ExporterServer` on a
    loopback port. The connections are the real `StreamFeed` and
    `StreamSupervisor`s; only the connector's client under them is `_Loopback`.
    """

    def __init__(self, rest_url: str) -> None:
        config = RankingConfig(spread_symbols=SPREADS_ALL)
        self.client = BinanceClient(rest_url, timeout=10.0,
                                    refresh_weight=rankings_weight(config))
        self.pool = DaemonPool(8)
        self.store = SnapshotStore()
        self.republisher = Republisher()
        # No silence ends a connection here: the feed may pause between the cases' steps.
        self.source = StreamSource(self.client, "ws://unused", SNAPSHOT_LIMIT,
                                   on_change=self.republisher.changed, follow_trades=False,
                                   silence=3600.0)
        self.routes: dict[str, Callable[[object, str], None]] = {}
        feed = self.source.connections  # the same, over `_Loopback` clients
        self.source.connections = StreamFeed(
            feed.url, feed.on_data, watchdog=feed.watchdog, **feed.callbacks,
            supervisor_factory=functools.partial(
                StreamSupervisor, client_factory=functools.partial(_Loopback, self.routes)))
        self.quotes = QuotesJob(self.source, self.pool, self.store, config)
        ranking = RankingsJob(self.client, self.pool, self.store, config).run()
        if ranking is None:
            raise RuntimeError(f"the rankings run failed: {self.store.current().jobs}")
        self.symbols = list(ranking.spread_symbols)
        self.quotes.with_ranking(ranking)
        freeze_start_up()  # as `App._publish` does after the first answers
        self._wait_live()
        self.messages = _templates(self.client, self.symbols, random.Random(SEED))
        gc.freeze()  # the benchmark's own templates: no exporter holds them
        # The page and its server, as `App.server` makes them.
        self.exposition = build_exposition(self.store.current, self.client.stats,
                                           self.source.view)
        self.server = ExporterServer(("127.0.0.1", 0), self.exposition, lambda: True, "bench")
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}/metrics"
        self.server.serve_in_thread()
        self.publishes: list[tuple[float, float]] = []  # monotonic start and end of each
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        gc.collect()

    def _wait_live(self, timeout: float = 30.0) -> None:
        """Until every quote is live (the REST fill) and every book synced."""
        deadline = time.monotonic() + timeout
        while (view := self.source.view()).quotes_live < view.quotes_wanted or len(
                view.update_ids) < BOOKS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not live within {timeout} s: {view}")
            time.sleep(0.05)
        self.quotes.refresh_books()

    def reader(self, symbol: str) -> Callable[[object, str], None]:
        """The reader callback of the connection carrying `symbol`'s best quotes."""
        return self.routes[book_ticker_stream(symbol)]

    def start_publisher(self) -> None:
        """The `Republisher` loop, as the exporter runs it, timing each publish."""

        def publish() -> None:  # as `App._publish`
            started = time.monotonic()
            self.quotes.refresh_books()
            self.publishes.append((started, time.monotonic()))
            self.exposition.published()

        self._publisher = threading.Thread(target=self.republisher.run,
                                           args=(publish, self._stop), daemon=True)
        self._publisher.start()

    def stop_publisher(self) -> None:
        """Stop the `Republisher` loop."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(5)

    def close(self) -> None:
        """Stop the publisher, the server and the workers."""
        self.stop_publisher()
        self.server.shutdown()
        self.server.server_close()
        self.pool.shutdown()
        self.source.close()


Encoded = tuple[list[Callable[[object, str], None]], list[str]]


def _encoded(rig: _Rig, count: int, first_id: int, seed: int) -> tuple[Encoded, dict]:
    """`count` messages, every symbol in turn (shuffled), and their reader callbacks, in
    two lists (no container per message for the collector to walk); and the spread each
    symbol's last message leaves."""
    symbols = list(rig.symbols)
    random.Random(seed).shuffle(symbols)
    readers = [rig.reader(s) for s in symbols]
    messages = rig.messages
    encoded: Encoded = ([], [])
    last: dict[str, int] = {}
    for index in range(count):
        turn, slot = divmod(index, len(symbols))
        symbol = symbols[slot]
        variant = (turn + slot) % VARIANTS
        encoded[0].append(readers[slot])
        encoded[1].append(messages.text(symbol, first_id + index, variant))
        last[symbol] = variant
    quotes = {s: [Decimal(p) for p in messages.quotes[s][v]] for s, v in last.items()}
    # A symbol whose quotes make no spread (an empty side, a crossed book) has none to check.
    spreads = {s: ask - bid for s, (bid, ask) in quotes.items() if 0 < bid < ask}
    return encoded, spreads


def _feed(encoded: Encoded) -> float:
    """Hand every message to its reader callback; seconds taken."""
    started = time.perf_counter()
    for on_message, text in zip(*encoded):
        on_message(None, text)
    return time.perf_counter() - started


def _applied(rig: _Rig, spreads: dict[str, Decimal]) -> int:
    """How many symbols' published spreads are those of their last message."""
    rig.quotes.refresh_books()
    published = rig.store.current().answers
    assert published is not None
    return sum(1 for s, value in spreads.items() if published.spreads.get(s) == value)


def _profiled(call: Callable[[], object], per: int, lines: int) -> list[dict[str, Any]]:
    """`call` under cProfile: the top functions by own time, in µs per `per` (a message)."""
    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)
    # The feeding loop itself is the benchmark's: in the total, not in the list.
    return [{"function": _where(key), "share": value[2] / total, "us": value[2] / per * 1e6,
             "total": total / per * 1e6}
            for key, value in ranked if key[2] != _feed.__name__][:lines]


def _profiles(rig: _Rig) -> dict[str, list[dict[str, Any]]]:
    """A feed (the publisher running), then one publish and one render of every symbol."""
    encoded, _ = _encoded(rig, PROFILE_MESSAGES, 10**9, SEED + 1)
    profiles = {"feed": _profiled(lambda: _feed(encoded), PROFILE_MESSAGES, PROFILE_LINES)}
    rig.stop_publisher()
    _feed(_encoded(rig, len(rig.symbols), 2 * 10**9, SEED + 2)[0])  # every quote is new
    profiles["publish"] = _profiled(rig.quotes.refresh_books, 1, PROFILE_LINES // 2)
    time.sleep(MAX_LAG + 0.1)  # no page to hand out while the next renders: this one renders
    profiles["render"] = _profiled(lambda: rig.exposition.render("", "gzip", ""), 1,
                                   PROFILE_LINES // 2)
    return profiles


def _where(key: tuple[str, int, str]) -> str:
    """`path:line function`, the path within the repository or the installed package."""
    filename, line, name = key
    if filename == "~":
        return name  # a built-in: `<method 'decode' of 'msgspec.json.Decoder' objects>`
    path = Path(filename).resolve().as_posix()
    for root in (ROOT.as_posix() + "/", "/site-packages/"):
        path = path.split(root, 1)[-1]
    return f"{path}:{line} {name}"


def _publish_ms(rig: _Rig, first: int) -> float:
    """Median ms of the publishes from the `first`-th on."""
    return statistics.median([end - start for start, end in rig.publishes[first:]]
                             or [0.0]) * 1000


def feed_case(rest_url: str, profile: bool) -> dict[str, Any]:
    """Case 2, one round: messages per second with the publisher and a scraper running."""
    rig = _Rig(rest_url)
    try:
        encoded, spreads = _encoded(rig, FEED_MESSAGES, 1, SEED)
        rig.start_publisher()
        scraper = start_scraper(rig.url, FEED_SCRAPE_INTERVAL)
        time.sleep(1.5)  # the scraper is up and the page rendered once
        renders, publishes = rig.exposition.renders, len(rig.publishes)
        wall = time.time()
        elapsed = _feed(encoded)
        latencies = stop_scraper(scraper, wall, time.time())
        figures = {"per_second": FEED_MESSAGES / elapsed, "symbols": len(rig.symbols),
                   "publishes": len(rig.publishes) - publishes, "scrapes": len(latencies),
                   "publish_ms": _publish_ms(rig, publishes),
                   "renders": rig.exposition.renders - renders,
                   "applied": _applied(rig, spreads), "checked": len(spreads)}
        del encoded
        if profile:
            figures["profile"] = _profiles(rig)
        return figures
    finally:
        rig.close()


def _paced(rig: _Rig, seconds: float, rate: float) -> tuple[list[tuple[float, int]], float]:
    """Feed at `rate` a second for `seconds`, every STAMP_EVERY-th message STAMPED's with
    its spread stamped; (monotonic time handed, stamp) of each, and the rate reached."""
    others = [s for s in rig.symbols if s != STAMPED]
    random.Random(SEED).shuffle(others)
    readers = [rig.reader(s) for s in others]
    stamped = rig.reader(STAMPED)
    bid, head = Decimal(rig.messages.quotes[STAMPED][0][0]), rig.messages.heads[STAMPED]
    handed: list[tuple[float, int]] = []
    index = 0
    started = time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        if (due := started + index / rate) > now:
            time.sleep(due - now)
        for index in range(index, index + CHUNK):
            if index % STAMP_EVERY:
                turn, slot = divmod(index, len(others))
                readers[slot](None, rig.messages.text(others[slot], 1 + index,
                                                      (turn + slot) % VARIANTS))
                continue
            stamp = index // STAMP_EVERY + 1  # the spread, in cents
            text = (f'{head}{10**9 + index},"s":"{STAMPED}","b":"{bid}","B":"1.00000000",'
                    f'"a":"{bid + stamp * STAMP_TICK:.8f}","A":"1.00000000"}}}}')
            handed.append((time.monotonic(), stamp))
            stamped(None, text)
        index += 1
    return handed, index / (time.monotonic() - started)


def lag_case(rest_url: str) -> dict[str, Any]:
    """Case 3, one round: the paced feed, a watcher scraping, lag and RSS."""
    rig = _Rig(rest_url)
    try:
        rig.start_publisher()
        watcher = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "bench.market_scale", "--watch", rig.url],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)
        renders, publishes = rig.exposition.renders, len(rig.publishes)
        began = time.monotonic()
        handed, rate = _paced(rig, LAG_SECONDS, LAG_RATE)
        ended = time.monotonic()
        rss = rss_mb(os.getpid())
        time.sleep(1.5)  # the last stamps reach the page
        watcher.send_signal(2)
        seen = json.loads(watcher.communicate(timeout=30)[0])
        during = [(sent, done) for sent, done, _ in seen if began <= sent <= ended]
        return {"rate": rate, "rss_mb": rss, "hwm_mb": rss_mb(os.getpid(), "VmHWM"),
                "lags_ms": _lags(handed, [(done, stamp) for _, done, stamp in seen]),
                "published_ms": _lags(handed, _published(handed, rig.publishes[publishes:])),
                "scrape_ms": [(done - sent) * 1000 for sent, done in during],
                "publishes": len(rig.publishes) - publishes,
                "publish_ms": _publish_ms(rig, publishes),
                "renders": rig.exposition.renders - renders}
    finally:
        rig.close()


def _lags(handed: list[tuple[float, int]], shown: list[tuple[float, int]]) -> list[float]:
    """For each (time, stamp) handed, ms until the first (time, stamp) shown that has it
    or a later stamp; the stamps handed last may never be shown, and are left out."""
    shown = sorted(shown)
    lags, first = [], 0
    for when, stamp in handed:
        while first < len(shown) and (shown[first][0] < when or shown[first][1] < stamp):
            first += 1
        if first == len(shown):
            break
        lags.append((shown[first][0] - when) * 1000)
    return lags


def _published(handed: list[tuple[float, int]],
               publishes: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(end, last stamp handed before it began) of each publish."""
    times = [when for when, _ in handed]
    return [(end, handed[index - 1][1] if (index := bisect.bisect(times, start)) else 0)
            for start, end in publishes]


def watch_page(url: str) -> list[tuple[float, float, int]]:
    """Scrape (gzip) every WATCH_INTERVAL until SIGINT: (sent, done, stamp) of each, in
    `time.monotonic()`, one clock for every process on the machine."""
    host, port = url.split("/")[2].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    pattern = re.compile(rb'\nbinance_spread\{symbol="' + STAMPED.encode() + rb'"\} (\S+)')
    seen = []
    try:
        while True:
            sent = time.monotonic()
            connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            body = connection.getresponse().read()
            done = time.monotonic()
            match = pattern.search(gzip.decompress(body))
            stamp = round(Decimal(match.group(1).decode()) / STAMP_TICK) if match else 0
            seen.append((sent, done, stamp))
            time.sleep(WATCH_INTERVAL)
    except KeyboardInterrupt:
        pass
    return seen


def _case(name: str, rest: FakeBinance, profile: bool = False) -> dict[str, Any]:
    """Run one round of case `name` in a process of its own, against `rest`; its figures."""
    rest.reset_limits()
    command = [sys.executable, "-m", "bench.market_scale", "--case", name, "--rest", rest.url]
    result = subprocess.run(command + (["--profile"] if profile else []), cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_feed(rounds: int, rest: FakeBinance) -> dict[str, Any]:
    """Case 2, `rounds` processes; the first also profiles a feed."""
    runs = [_case("feed", rest, profile=i == 0) for i in range(rounds)]
    for one in runs:
        say(f"  feed: {one['per_second']:,.0f} messages/s, {one['publishes']} publishes of "
             f"{one['publish_ms']:.0f} ms, {one['applied']}/{one['symbols']} applied")
    return {"per_second": spread([one["per_second"] for one in runs]),
            "publish_ms": spread([one["publish_ms"] for one in runs]),
            "profile": runs[0]["profile"], "symbols": runs[0]["symbols"],
            "applied_min": min(one["applied"] for one in runs),
            "checked": min(one["checked"] for one in runs)}


def measure_lag(rounds: int, rest: FakeBinance) -> dict[str, Any]:
    """Case 3, `rounds` processes; percentiles per round and pooled."""
    runs = [_case("lag", rest) for _ in range(rounds)]
    for one in runs:
        say(f"  lag: p50 {percentile(one['lags_ms'], 0.5):.0f} ms, p99 "
             f"{percentile(one['lags_ms'], 0.99):.0f} ms; scrape p99 "
             f"{percentile(one['scrape_ms'], 0.99):.1f} ms; {one['rate']:,.0f}/s; RSS "
             f"{one['rss_mb']:.0f} MB; {one['publishes']} publishes, {one['renders']} renders")
    figures = {f"{name}_p{share * 100:.0f}": spread([percentile(one[key], share)
                                                     for one in runs])
               for name, key in (("lag", "lags_ms"), ("published", "published_ms"),
                                 ("scrape", "scrape_ms")) for share in (0.5, 0.99)}
    figures |= {key: spread([one[key] for one in runs])
                for key in ("rate", "rss_mb", "hwm_mb", "publish_ms")}
    return figures | {"stamps": sum(len(one["lags_ms"]) for one in runs),
                      "scrapes": sum(len(one["scrape_ms"]) for one in runs)}


# --------------------------------------------------------------------------- all of it

def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Every case, `rounds` rounds each; the figures `rows` and `section` read."""
    say(f"market scale: start-up, reconnect and steady state, {rounds} exporter runs ...")
    start = measure_start(rounds)
    # The rig's REST answers: a fake in this process, which is idle meanwhile.
    with FakeBinance(Market(seed=SEED, extra_symbols=EXTRA_SYMBOLS)) as rest:
        say(f"market scale: bookTicker throughput, {rounds} rounds ...")
        feed = measure_feed(rounds, rest)
        say(f"market scale: lag at {LAG_RATE:,} messages/s, {rounds} rounds ...")
        lag = measure_lag(rounds, rest)
    return {"start": start, "feed": feed, "lag": lag}


def _ranged(rounds: dict[str, float], decimals: int = 0, unit: str = "") -> str:
    """`median (min–max) unit` of a `spread` of rounds."""
    low, mid, high = (f"{rounds[k]:,.{decimals}f}" for k in ("min", "median", "max"))
    return f"{mid} ({low}–{high}){' ' + unit if unit else ''}"


def _endpoints(counts: dict[str, float]) -> str:
    """`depth 400, bookTicker 8`: the larger first, none of the zeros."""
    return ", ".join(f"{name} {count:,.0f}" for name, count in
                     sorted(counts.items(), key=lambda item: -item[1]) if count)


def rows(figures: dict[str, Any]) -> list[Row]:
    """The table: medians of the rounds, their ranges in the figure names."""
    return _start_rows(figures["start"]) + _stream_rows(figures["feed"], figures["lag"])


def _start_rows(start: dict[str, Any]) -> list[Row]:
    up = start["up"]
    missing = f"; not within {start['up_missing']} rounds" if start["up_missing"] else ""
    minutes = start["steady_seconds"] / 60.0
    resyncs = start["steady_resyncs"]
    return [
        Row(f"start: spawn -> every best quote and book live ({start['quotes']:,.0f} "
            f"symbols; range {_ranged(start['to_live'], 1)} s)", start["to_live"]["median"],
            "s", goal=f"<= {START_SECONDS_GOAL:.0f} s",
            met=start["to_live"]["median"] <= START_SECONDS_GOAL),
        Row(f"start: spawn -> binance_up 1 (range {_ranged(up, 1) if up else '—'} s{missing})",
            up["median"] if up else float("nan"), "s", goal=f"<= {START_SECONDS_GOAL:.0f} s",
            met=bool(up) and not missing and up["median"] <= START_SECONDS_GOAL),
        Row(f"start: request weight until all live + {SETTLE:g} s (range "
            f"{_ranged(start['start_weight'])}; {_endpoints(start['start_paths'])})",
            start["start_weight"]["median"], "", floor=START_WEIGHT_GOAL,
            goal=f"= {START_WEIGHT_GOAL}", met=start["start_weight"]["max"] == START_WEIGHT_GOAL,
            decimals=0),
        _snapshot_row("start", start),
        Row("start: stream connections (and again after the drop: "
            f"{start['reconnect_connections']['max']:.0f})", start["connections"]["max"], "",
            floor=CONNECTIONS_GOAL, goal=f"= {CONNECTIONS_GOAL}", decimals=0,
            met=start["connections"]["max"] == start["reconnect_connections"]["max"]
            == CONNECTIONS_GOAL),
        Row(f"reconnect: all connections dropped -> all live again (range "
            f"{_ranged(start['reconnect_to_live'], 1)} s)", start["reconnect_to_live"]["median"],
            "s", decimals=1),
        Row(f"reconnect: request weight until all live + {SETTLE:g} s (range "
            f"{_ranged(start['reconnect_weight'])}; {_endpoints(start['reconnect_paths'])})",
            start["reconnect_weight"]["median"], "", floor=RECONNECT_FLOOR, decimals=0),
        _snapshot_row("reconnect", start),
        Row(f"steady: request weight per minute besides resync snapshots and ranking "
            f"repairs ({minutes:.1f} min; repairs of 100: {start['steady_repairs']}; all weight:"
            f" {_ranged(start['steady_per_minute'])}/min, "
            f"{_endpoints(start['steady_paths_per_minute'])})",
            start["steady_other_per_minute"]["max"], "/min", goal="= 0 (repairs only)",
            met=start["steady_other_per_minute"]["max"] == 0, decimals=0),
        Row(f"steady: local book resyncs per minute ({start['steady_gaps']} of {resyncs} after a "
            "gap or a crossed book, the others thinned out; by book: "
            f"{_endpoints(start['steady_by_book'])})", resyncs / minutes, "/min", decimals=1),
        Row(f"steady: share of polls with binance_up 1 (range {_ranged(start['steady_up'], 2)})",
            start["steady_up"]["median"], "", decimals=2),
        Row(f"exporter RSS at the end of each round (range {_ranged(start['rss_mb'], 1)} MB)",
            start["rss_mb"]["median"], "MB", goal=f"< {RSS_GOAL_MB:.0f} MB",
            met=start["rss_mb"]["max"] < RSS_GOAL_MB),
    ]


def _snapshot_row(phase: str, start: dict[str, Any]) -> Row:
    counts, most = start[f"{phase}_snapshots"], start[f"{phase}_most"]
    most = ", ".join(most) if len(most) < 4 else f"{len(most)} books"
    return Row(f"{phase}: depth snapshots per book for the connect, most (in "
               f"{most}; all: {_ranged(counts)} a book, less those of "
               f"books thinned out; books with a gap at their first event: "
               f"{_ranged(start[f'{phase}_gaps'])} of {BOOKS})", start[f"{phase}_connect"], "",
               floor=1, goal="= 1", met=start[f"{phase}_connect"] == 1, decimals=0)


def _stream_rows(feed: dict[str, Any], lag: dict[str, Any]) -> list[Row]:
    checked = ("every symbol's last quote published" if feed["applied_min"] == feed["checked"]
               else f"only {feed['applied_min']} of {feed['checked']} last quotes published!")
    return [
        Row(f"bookTicker messages/s on one core, {feed['symbols']:,} symbols, publisher and "
            f"scraper on (range {_ranged(feed['per_second'])}/s; {checked})",
            feed["per_second"]["median"], "/s", goal=f">= {FEED_GOAL:,}",
            met=feed["per_second"]["median"] >= FEED_GOAL
            and feed["applied_min"] == feed["checked"], decimals=0),
        Row(f"one publish of every spread during the feed (refresh_books; range "
            f"{_ranged(feed['publish_ms'])} ms)", feed["publish_ms"]["median"], "ms", decimals=0),
        Row(f"wire -> /metrics lag p50 at {LAG_RATE:,}/s ({lag['stamps']:,} stamps; range "
            f"{_ranged(lag['lag_p50'])} ms)", lag["lag_p50"]["median"], "ms", decimals=0),
        Row(f"wire -> /metrics lag p99 (range {_ranged(lag['lag_p99'])} ms)",
            lag["lag_p99"]["median"], "ms", goal=f"< {LAG_GOAL_MS:.0f} ms",
            met=lag["lag_p99"]["median"] < LAG_GOAL_MS, decimals=0),
        Row(f"of that, until a publish has it: p99 (p50 {_ranged(lag['published_p50'])} ms; "
            f"range {_ranged(lag['published_p99'])} ms)", lag["published_p99"]["median"], "ms",
            decimals=0),
        Row(f"/metrics p99 during that load ({lag['scrapes']:,} gzip scrapes; range "
            f"{_ranged(lag['scrape_p99'], 1)} ms)", lag["scrape_p99"]["median"], "ms",
            goal=f"< {SCRAPE_GOAL_MS:.0f} ms", met=lag["scrape_p99"]["median"] < SCRAPE_GOAL_MS,
            decimals=1),
        Row(f"process RSS at the end of that load (range {_ranged(lag['rss_mb'], 1)} MB)",
            lag["rss_mb"]["median"], "MB", goal=f"< {RSS_GOAL_MB:.0f} MB",
            met=lag["rss_mb"]["max"] < RSS_GOAL_MB),
    ]


def where_the_time_goes(figures: dict[str, Any]) -> str:
    """The profiles of the first throughput round as a Markdown list."""
    lines = []
    for name, label, unit in (("feed", "A feed, per message", "µs"),
                              ("publish", "One publish of every spread (`refresh_books`)", "ms"),
                              ("render", "One render of the page (gzip)", "ms")):
        scale = 1.0 if unit == "µs" else 1e-3
        entries = figures["feed"]["profile"][name]
        lines.append(f"- {label}, {entries[0]['total'] * scale:.2f} {unit} in all under the "
                     "profiler:")
        lines += [f"  - {entry['share']:.0%} `{entry['function']}` "
                  f"({entry['us'] * scale:.2f} {unit})" for entry in entries]
    return "\n".join(lines)


def section(figures: dict[str, Any], machine: str, command: str) -> str:
    """The Markdown section of docs/benchmarks.md for these figures."""
    table = rows(figures)
    start, lag = figures["start"], figures["lag"]
    return SECTION_TEXT.format(
        date=machine.rsplit(", ", 1)[-1], command=command, machine=machine,
        table=report.markdown_table(table), profile=where_the_time_goes(figures),
        missed="\n".join(f"- {row.figure}: {row.cells()[1]} against {row.goal}"
                         for row in report.missed(table)) or "- none",
        rounds=start["rounds"], symbols=f"{start['quotes']:,.0f}",
        messages_in=_endpoints({kind: round(rate) for kind, rate in
                                start["steady_messages_per_second"].items()}),
        publish=_ranged(lag["publish_ms"]), rate=_ranged(lag["rate"]),
        hwm=_ranged(lag["hwm_mb"], 1))


SECTION_TEXT = f"""\
{SECTION}

{{date}}, `{{command}}`; `python -m bench.market_scale` reruns this section
alone, in about 3½ minutes.

Machine: {{machine}}

{{table}}

Goals missed in this run:

{{missed}}

### Where the time goes

cProfile in the first throughput round; times under the profiler are a few
times the real ones, the shares are what to read.

{{profile}}

### What each figure is

- **Start, reconnect, steady** ({{rounds}} exporter processes in turn, at
  the defaults with `--source stream --spread-symbols all`, against
  `FakeBinance` and `FakeStreams` over {EXTRA_SYMBOLS:,} extra symbols and the
  built-in ones: {{symbols}} TRADING, moving every {STEP_INTERVAL:g} s). All
  live (polled every {POLL * 1000:g} ms): every best quote live, {BOOKS} local
  books in sync, `binance_stream_connected` 1; `binance_up` is watched to
  the end of each round ({SHORT_ROUND:g} s, the last {LONG_ROUND:g} s). Weight: the
  fake's request log from spawn, or from `FakeStreams.drop_connections()`,
  until all is live plus {SETTLE:g} s. "Steady" is the rest of each round; its
  ranking repair follows the forced reconnect, which lost the ticker
  stream's connection. Messages received, per second: {{messages_in}}.
- **Why.** A book vouches only for the price range its 500-level snapshot
  covered, and starts over when fewer than 200 levels are left in it on a
  side; the fake's BTCUSDT mid walks out of that range within a few steps,
  so that book starts over every few seconds (25 weight each; not counted
  against the connect). While it does, the spreads job fails, and so does
  an analytics run: `binance_up` is 0. The first analytics run also comes
  before any aggTrade event; the next is due 30 s later. A connection's
  aggTrades fills start when it opens, before it subscribes, so its first
  events show a second gap; connections up more than half a second after
  the first get a bookTicker fill of their own.
- **Throughput** (processes of their own, with the exporter's 0.5 ms GIL
  switch interval): `RankingsJob` and `QuotesJob` with `--spread-symbols
  all` on a `FakeBinance`, a `StreamSource` whose connections subscribe
  through a client without a socket, the `Republisher` publishing, the
  exposition and `ExporterServer` on loopback, a scraper in its own process
  (gzip, every {FEED_SCRAPE_INTERVAL * 1000:g} ms: every snapshot is rendered).
  {FEED_MESSAGES:,} combined-stream bookTicker messages, each symbol in turn
  with quotes from {VARIANTS} states of the fake market, encoded beforehand,
  go in one thread to the reader callback of the connection that carries
  their stream (`StreamSupervisor.on_message` -> `StreamSource` routing ->
  `BookTickers.on_data`); then every published spread is checked.
- **Lag** (the same rig): the feed paced at {LAG_RATE:,} messages/s for
  {LAG_SECONDS:g} s (reached: {{rate}}/s); every {STAMP_EVERY}th message is
  {STAMPED}'s, its spread a sequence number of cents; a watcher process
  scrapes the page (gzip) every {WATCH_INTERVAL * 1000:g} ms. A stamp's lag runs from
  handing it over until a finished scrape shows it or a later one (one
  monotonic clock for both processes); "until a publish has it" ends with
  the first publish begun after it. A publish measures the symbols whose
  quotes changed ({{publish}} ms), and asks for the page of a scraper seen
  within 1 s, rendered aside (only changed lines are written); the next
  publish starts 100 ms later, or once the publisher's CPU time is a fifth.
  RSS: the exporter's parts and the feed's templates (VmHWM {{hwm}} MB).
"""


def write_section(path: Path, text: str) -> None:
    """Put `text` in place of the section in `path` (from its heading to the next `## `)."""
    before, found, after = path.read_text(encoding="utf-8").partition(SECTION)
    rest = after.find("\n## ") if found else -1
    after = "\n" + after[rest + 1:] if rest >= 0 else ""
    path.write_text((before if found else before.rstrip("\n") + "\n\n") + text + after,
                    encoding="utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.market_scale",
                                     description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"of each case ({ROUNDS})")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="Markdown file whose market-scale section to rewrite")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--case", choices=("feed", "lag"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rest", help=argparse.SUPPRESS)
    parser.add_argument("--watch", metavar="URL", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run every case, print the table, rewrite the section of docs/benchmarks.md."""
    args = _parser().parse_args(argv)
    if args.watch or args.case:
        sys.setswitchinterval(STREAM_SWITCH_INTERVAL)  # as the exporter does in stream mode
        # Before every quote is live the jobs fail, as they should; no need to say so.
        logging.getLogger("binance_exporter").setLevel(logging.ERROR)
        print(json.dumps(watch_page(args.watch) if args.watch else feed_case(
            args.rest, args.profile) if args.case == "feed" else lag_case(args.rest)))
        return 0
    started = time.monotonic()
    figures = run(args.rounds)
    machine = report.machine()
    command = "python -m bench.market_scale" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{report.text_table(rows(figures))}\n\nwhere the time goes:\n"
          f"{where_the_time_goes(figures)}\n\nmachine: {machine}; took "
          f"{time.monotonic() - started:.0f} s; `{command}`")
    for row in report.missed(rows(figures)):
        print(f"MISSED: {row.figure}: {row.cells()[1]} against {row.goal}")
    if not args.no_write:
        write_section(args.output, section(figures, machine, command))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
