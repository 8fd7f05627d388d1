"""Stream mode without a network: local books from synthetic events, supervisor logic."""

from __future__ import annotations

import json
import threading
import time
import unittest
from decimal import Decimal as D

import msgspec

from binance_exporter.binance import rest
from binance_exporter.binance.rest import BinanceError
from binance_exporter.binance.websocket import StreamFeed, StreamSupervisor, stream_type
from binance_exporter.jobs.pool import DaemonPool
from binance_exporter.config import RankingConfig
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.jobs.republisher import PUBLISH_INTERVAL, Republisher
from binance_exporter.model import SPREADS, SnapshotStore
from binance_exporter.sources.stream import StreamBooks, depth_stream
from tests.support import wait_until
from tests.unit.test_jobs import StubClient


def event(symbol: str, first: int, last: int, bids=(), asks=()) -> str:
    """A diff-depth event's JSON text, as Binance sends it."""
    return json.dumps({"e": "depthUpdate", "E": 1, "s": symbol, "U": first, "u": last,
                       "b": [list(level) for level in bids], "a": [list(level) for level in asks]})


class SnapshotClient:
    """Answers depth requests with a fixed snapshot (or an error)."""

    def __init__(self, snapshots: dict[str, dict]) -> None:
        self.snapshots = snapshots
        self.calls: list[str] = []
        self.fail: BinanceError | None = None

    def depth(self, symbol: str, _limit: int):
        """The snapshot of `symbol`."""
        self.calls.append(symbol)
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        return self.snapshots[symbol]


SNAPSHOT = {"lastUpdateId": 10, "bids": [["99", "1"], ["98", "2"]], "asks": [["101", "1"]]}


class StreamBooksTest(unittest.TestCase):
    """Syncing local books from events and REST snapshots."""

    def setUp(self) -> None:
        self.client = SnapshotClient({"BTCUSDT": SNAPSHOT})
        self.pool = DaemonPool(2)
        self.addCleanup(self.pool.shutdown)
        self.changed = threading.Event()
        self.books = StreamBooks(self.client, self.pool, 1000, on_change=self.changed.set)
        self.streams = self.books.track(["BTCUSDT"])

    def feed(self, data: str) -> None:
        """Deliver `data` on the tracked symbol's depth stream."""
        self.books.on_data(self.streams[0], data)

    def test_stream_names(self):
        self.assertEqual(self.streams, ["btcusdt@depth@100ms"])
        self.assertEqual(depth_stream("ETHBTC"), "ethbtc@depth@100ms")
        self.assertEqual(stream_type("btcusdt@depth@100ms"), "depth@100ms")

    def test_first_event_fetches_a_snapshot_and_syncs(self):
        self.assertEqual(synced(self.books, 10), {})
        self.feed(event("BTCUSDT", 9, 11, bids=[("99", "3")]))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        book = synced(self.books, 10)["BTCUSDT"]
        self.assertEqual(book.bids[0], (D("99"), D("3")))
        self.assertEqual(self.books.update_ids(), {"BTCUSDT": 11})
        self.assertEqual(self.client.calls, ["BTCUSDT"])
        self.assertTrue(self.changed.is_set())

    def test_gap_resyncs_and_counts(self):
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.feed(event("BTCUSDT", 14, 15))  # 12 and 13 are missing
        self.assertEqual(synced(self.books, 10), {})
        self.assertEqual(self.books.resyncs(), {"BTCUSDT": 1})
        self.client.snapshots["BTCUSDT"] = dict(SNAPSHOT, lastUpdateId=14)
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.assertEqual(self.books.update_ids(), {"BTCUSDT": 15})

    def test_failed_snapshot_is_retried(self):
        self.client.fail = BinanceError("down", kind=rest.SERVER)
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.assertEqual(self.client.calls, ["BTCUSDT", "BTCUSDT"])

    def test_reconnect_resets_synced_books(self):
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.books.on_connect()
        self.assertEqual(synced(self.books, 10), {})
        self.assertEqual(self.books.resyncs(), {"BTCUSDT": 1})

    def test_other_streams_and_malformed_events_are_ignored(self):
        self.books.on_data("btcusdt@bookTicker", '{"u": 1}')
        with self.assertLogs("binance_exporter.sources.stream", "WARNING"):
            self.feed('{"e": "depthUpdate"}')
        self.books.on_data(depth_stream("ETHBTC"), event("ETHBTC", 1, 2))  # not tracked
        self.assertEqual(self.client.calls, [])

    def test_untracked_symbols_are_dropped(self):
        self.books.track([])
        self.feed(event("BTCUSDT", 9, 11))
        self.assertEqual(self.client.calls, [])


def synced(books: StreamBooks, levels: int) -> dict:
    """The views of the books of ALL_SYMBOLS that are in sync."""
    return {s: b for s, b in books.books(ALL_SYMBOLS, levels).items()
            if not isinstance(b, Exception)}


ALL_SYMBOLS = ["ETHBTC", "BNBBTC", "ETHUSDT", "BTCUSDT"]


class LocalSource:
    """The stream source's reads over bare StreamBooks, remembering what was tracked."""

    free_books = True

    def __init__(self, books: StreamBooks) -> None:
        self.local = books
        self.tracked: list[list[str]] = []

    def track(self, symbols):
        """Record and follow."""
        self.tracked.append(list(symbols))
        self.local.track(list(symbols))

    def books(self, symbols, levels):
        """Local views."""
        return self.local.books(symbols, levels)

    def tops(self, symbols):
        """Local best quotes."""
        return self.local.tops(symbols)


class StreamQuotesTest(unittest.TestCase):
    """Answers from local books instead of REST depth and bookTicker."""

    def setUp(self) -> None:
        self.client = StubClient()
        snapshots = {name: {**book, "lastUpdateId": 5} for name, book in self.client.books.items()}
        snapshots["BTCUSDT"] = {"lastUpdateId": 5, "bids": [["100", "1"]], "asks": [["100.5", "2"]]}
        snapshots["ETHUSDT"] = {"lastUpdateId": 5, "bids": [["10", "1"]], "asks": [["10.01", "1"]]}
        self.pool = DaemonPool(2)
        self.addCleanup(self.pool.shutdown)
        self.books = StreamBooks(SnapshotClient(snapshots), self.pool, 1000)
        self.source = LocalSource(self.books)
        self.tracked = self.source.tracked
        store = SnapshotStore()
        config = RankingConfig(top_n=2)
        self.ranker = RankingsJob(self.client, self.pool, store, config)
        self.quotes = QuotesJob(self.source, self.pool, store, config)

    def refresh_rankings(self):
        """A rankings run and the reads it names, as the app composes them."""
        ranking = self.ranker.run()
        assert ranking is not None
        return self.quotes.with_ranking(ranking)

    def sync_all(self):
        """Sync every tracked book from its snapshot with one event each."""
        for symbol in self.tracked[-1]:
            self.books.on_data(depth_stream(symbol), event(symbol, 5, 6))
        wait_until(lambda: len(synced(self.books, 1)) == len(self.tracked[-1]), timeout=5)

    def test_not_ready_until_books_sync_then_no_rest_depth(self):
        snapshot = self.refresh_rankings()
        self.assertEqual(self.tracked, [["ETHBTC", "BNBBTC", "ETHUSDT", "BTCUSDT"]])
        self.assertFalse(snapshot.ready)
        self.assertEqual(snapshot.answers.spreads, {})
        self.sync_all()
        snapshot = self.quotes.refresh_books()
        self.assertTrue(snapshot.jobs[SPREADS].success)
        self.assertEqual(snapshot.answers.spreads, {"BTCUSDT": D("0.5"), "ETHUSDT": D("0.01")})
        # 0.05*10 + 0.04*5 = 0.7 from the snapshot, no REST depth call
        self.assertEqual(snapshot.answers.notional["ETHBTC"].bids, D("0.7"))
        self.assertNotIn("depth", [c[0].split()[0] for c in self.client.calls])
        self.assertNotIn("book_tickers", [c[0] for c in self.client.calls])
        # VWAP of BTCUSDT: (100 + 100.5) / 2
        self.assertEqual(snapshot.answers.vwap["BTCUSDT"], D("100.25"))
        self.assertEqual(snapshot.answers.vwap_averages[("BTCUSDT", "30s")], D("100.25"))

    def test_deltas_are_taken_at_the_report_not_at_each_book_update(self):
        self.refresh_rankings()
        self.sync_all()
        self.quotes.refresh_spreads()
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 7, 7, asks=[("100.2", "1")]))
        books_snapshot = self.quotes.refresh_books()
        self.assertEqual(books_snapshot.answers.spreads["BTCUSDT"], D("0.2"))
        self.assertEqual(books_snapshot.answers.deltas["BTCUSDT"], 0)
        reported = self.quotes.refresh_spreads()
        self.assertEqual(reported.answers.deltas["BTCUSDT"], D("0.3"))

    def test_out_of_sync_book_is_absent(self):
        self.refresh_rankings()
        self.sync_all()
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 50, 51))  # gap
        snapshot = self.quotes.refresh_books()
        self.assertNotIn("BTCUSDT", snapshot.answers.spreads)
        self.assertFalse(snapshot.jobs[SPREADS].success)


class TimedRefresher:
    """Stands in for the quotes job: records when each publish started."""

    def __init__(self, takes: float) -> None:
        self.takes = takes
        self.started: list[float] = []

    def refresh_books(self) -> None:
        """A publish that lasts `takes` seconds."""
        self.started.append(time.monotonic())
        time.sleep(self.takes)


class RepublisherTest(unittest.TestCase):
    """Publishes follow changes, never more often than the interval and the share allow."""

    def run_for(self, refresher: TimedRefresher, seconds: float, changing: bool) -> None:
        """Run a Republisher for `seconds`, with the books changing all along or never."""
        republisher = Republisher()
        stop = threading.Event()
        thread = threading.Thread(target=republisher.run, args=(refresher.refresh_books, stop),
                                  daemon=True)
        thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if changing:
                republisher.changed()
            time.sleep(0.005)
        stop.set()
        thread.join(5)
        self.assertFalse(thread.is_alive())

    def test_nothing_changed_nothing_published(self):
        refresher = TimedRefresher(0)
        self.run_for(refresher, 0.3, changing=False)
        self.assertEqual(refresher.started, [])

    def test_quick_publishes_are_spaced_by_the_interval(self):
        refresher = TimedRefresher(0)
        self.run_for(refresher, 0.5, changing=True)
        self.assertGreaterEqual(len(refresher.started), 1)
        gaps = [b - a for a, b in zip(refresher.started, refresher.started[1:])]
        self.assertTrue(all(gap >= PUBLISH_INTERVAL * 0.99 for gap in gaps), gaps)

    def test_slow_publishes_keep_their_share(self):
        refresher = TimedRefresher(0.05)  # 50 ms each: then 450 ms of rest
        self.run_for(refresher, 1.0, changing=True)
        gaps = [b - a for a, b in zip(refresher.started, refresher.started[1:])]
        self.assertGreaterEqual(len(refresher.started), 1)
        self.assertTrue(all(gap >= 0.5 * 0.99 for gap in gaps), gaps)


class FakeManager:
    """Stands in for the connector's socket manager thread."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        """Whether the reader thread runs."""
        return self.alive


class FakeClient:
    """Stands in for SpotWebsocketStreamClient: records, and lets tests push messages."""

    instances: list["FakeClient"] = []
    refuse = 0

    def __init__(self, **kwargs) -> None:
        if FakeClient.refuse:
            FakeClient.refuse -= 1
            raise ConnectionRefusedError("refused")
        self.kwargs = kwargs
        self.subscribed: list[list[str]] = []
        self.socket_manager = FakeManager()
        self.stopped = False
        FakeClient.instances.append(self)

    def subscribe(self, streams, id=None):  # pylint: disable=redefined-builtin
        """Record a SUBSCRIBE."""
        self.subscribed.append(list(streams))
        del id

    def stop(self):
        """Record the stop."""
        self.stopped = True

    def push(self, message: dict) -> None:
        """Deliver a message as the reader thread would."""
        self.kwargs["on_message"](self.socket_manager, json.dumps(message))


class SupervisorTest(unittest.TestCase):
    """Reconnection logic against a stand-in client."""

    def setUp(self) -> None:
        FakeClient.instances = []
        FakeClient.refuse = 0
        self.data: list[tuple[str, object]] = []
        self.connects = 0

    def supervisor(self, watchdog: float = 5.0) -> StreamSupervisor:
        """A started supervisor over FakeClient, stopped at cleanup."""
        def on_connect():
            self.connects += 1

        supervisor = StreamSupervisor("ws://127.0.0.1:1", ["btcusdt@depth@100ms"],
                                      lambda s, d: self.data.append((s, msgspec.json.decode(d))),
                                      on_connect,
                                      watchdog=watchdog, client_factory=FakeClient)
        supervisor.start()
        self.addCleanup(supervisor.stop)
        return supervisor

    def test_subscribes_and_delivers_combined_messages(self):
        supervisor = self.supervisor()
        wait_until(lambda: FakeClient.instances, timeout=5)
        client = FakeClient.instances[0]
        self.assertEqual(client.subscribed, [["btcusdt@depth@100ms"]])
        self.assertTrue(client.kwargs["is_combined"])
        client.push({"result": None, "id": 1})
        client.push({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate"}})
        self.assertEqual(self.data, [("btcusdt@depth@100ms", {"e": "depthUpdate"})])
        stats = supervisor.stats()
        self.assertTrue(stats.connected)
        self.assertEqual(stats.messages, {"depth@100ms": 1})
        self.assertEqual(self.connects, 1)

    def test_reconnects_when_the_reader_dies(self):
        supervisor = self.supervisor()
        wait_until(lambda: FakeClient.instances, timeout=5)
        FakeClient.instances[0].socket_manager.alive = False
        wait_until(lambda: len(FakeClient.instances) == 2, timeout=5)
        self.assertTrue(FakeClient.instances[0].stopped)
        wait_until(lambda: supervisor.stats().reconnects == 1, timeout=5)
        self.assertEqual(self.connects, 2)

    def test_reconnects_on_error_close_silence_and_shutdown_notice(self):
        supervisor = self.supervisor(watchdog=0.5)
        wait_until(lambda: FakeClient.instances, timeout=5)
        FakeClient.instances[0].kwargs["on_error"](None, OSError("reset"))
        wait_until(lambda: len(FakeClient.instances) == 2, timeout=5)
        FakeClient.instances[1].kwargs["on_close"](None)
        wait_until(lambda: len(FakeClient.instances) == 3, timeout=5)
        FakeClient.instances[2].push({"stream": "!serverShutdown",
                                      "data": {"e": "serverShutdown", "E": 1}})
        wait_until(lambda: len(FakeClient.instances) == 4, timeout=5)
        # silence: no message for longer than the watchdog
        wait_until(lambda: len(FakeClient.instances) == 5, timeout=5)
        self.assertGreaterEqual(supervisor.stats().reconnects, 4)

    def test_stopping_is_not_reported_as_a_lost_connection(self):
        supervisor = self.supervisor()
        wait_until(lambda: supervisor.stats().connected, timeout=5)
        with self.assertNoLogs("binance_exporter.binance.websocket", "WARNING"):
            supervisor.stop()
        self.assertTrue(FakeClient.instances[0].stopped)

    def test_refused_connections_are_retried(self):
        FakeClient.refuse = 1
        with self.assertLogs("binance_exporter.binance.websocket", "WARNING"):
            self.supervisor()
            wait_until(lambda: FakeClient.instances, timeout=5)

    def test_handler_errors_do_not_cost_the_connection(self):
        supervisor = StreamSupervisor("ws://x", ["a@depth"], lambda s, d: 1 / 0,
                                      client_factory=FakeClient)
        supervisor.start()
        self.addCleanup(supervisor.stop)
        wait_until(lambda: FakeClient.instances, timeout=5)
        with self.assertLogs("binance_exporter.binance.websocket", "ERROR"):
            FakeClient.instances[0].push({"stream": "a@depth", "data": {}})
        time.sleep(0.3)
        self.assertEqual(len(FakeClient.instances), 1)

    def test_too_many_streams_for_one_connection(self):
        with self.assertRaises(ValueError):
            StreamSupervisor("ws://x", ["s"] * 1025, lambda s, d: None)


class FeedTest(unittest.TestCase):
    """Connections follow the tracked set, 1024 streams each."""

    def setUp(self) -> None:
        FakeClient.instances = []
        FakeClient.refuse = 0

    def test_splits_and_only_reconnects_on_change(self):
        def factory(*args, **kwargs):
            return StreamSupervisor(*args, client_factory=FakeClient, **kwargs)

        feed = StreamFeed("ws://x", lambda s, d: None, lambda: None, supervisor_factory=factory)
        self.addCleanup(feed.stop)
        streams = [f"s{i}@depth@100ms" for i in range(1500)]
        feed.track(streams)
        wait_until(lambda: sum(len(s) for c in FakeClient.instances for s in c.subscribed)
                   == 1500, timeout=5)
        per_connection = [sum(len(s) for s in c.subscribed) for c in FakeClient.instances]
        self.assertEqual(sorted(per_connection), [476, 1024])
        self.assertTrue(all(len(s) <= 200 for c in FakeClient.instances for s in c.subscribed))
        self.assertEqual(sum(len(s) for c in FakeClient.instances for s in c.subscribed), 1500)
        feed.track(list(reversed(streams)))  # same set: nothing happens
        time.sleep(0.2)
        self.assertEqual(len(FakeClient.instances), 2)
        FakeClient.instances[0].push({"stream": "s1@depth@100ms", "data": {}})
        feed.track(streams[:10])
        wait_until(lambda: len(FakeClient.instances) == 3, timeout=5)
        stats = feed.stats()
        self.assertEqual(stats.messages, {"depth@100ms": 1})  # kept from the old connection
        wait_until(lambda: feed.stats().connected, timeout=5)


if __name__ == "__main__":
    unittest.main()
