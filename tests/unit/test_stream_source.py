"""Stream mode without a network: local books from synthetic events, supervisor logic."""

from __future__ import annotations

import json
import threading
import unittest
from decimal import Decimal as D

from binance_exporter.binance import rest
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceError
from binance_exporter.binance.traffic import stream_type
from binance_exporter.config import RankingConfig
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.types import OrderBook
from binance_exporter.model import SPREADS, SnapshotStore
from binance_exporter.sources.snapshot_schedule import SnapshotSchedule
from binance_exporter.sources.stream import StreamBooks, depth_stream
from tests.local_books import LocalBooksSource
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
        self.limits: list[int] = []
        self.fail: BinanceError | None = None

    def depth(self, symbol: str, limit: int):
        """The snapshot of `symbol`."""
        self.calls.append(symbol)
        self.limits.append(limit)
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
        self.addCleanup(self.books.schedule.stop)
        self.streams = self.books.track(["BTCUSDT"])
        self.books.on_connect()  # subscribing: events buffer, no snapshot yet

    def feed(self, data: str) -> None:
        """Deliver `data` on the tracked symbol's depth stream."""
        self.books.on_data(self.streams[0], data)

    def test_stream_names(self):
        self.assertEqual(self.streams, ["btcusdt@depth@100ms"])
        self.assertEqual(depth_stream("ETHBTC"), "ethbtc@depth@100ms")
        self.assertEqual(stream_type("btcusdt@depth@100ms"), "depth@100ms")

    def test_a_snapshot_waits_for_the_subscription_then_syncs(self):
        self.feed(event("BTCUSDT", 9, 11, bids=[("99", "3")]))
        self.assertEqual(synced(self.books, 10), {})
        self.assertEqual(self.books.schedule.pending(), {})  # not before every SUBSCRIBE is acked
        self.books.on_live()
        wait_until(lambda: synced(self.books, 10), timeout=5)
        book = synced(self.books, 10)["BTCUSDT"]
        self.assertEqual(book.bids[0], (D("99"), D("3")))
        self.assertEqual(self.books.stats()[0], {"BTCUSDT": 11})
        self.assertEqual(self.client.calls, ["BTCUSDT"])
        self.assertTrue(self.changed.is_set())

    def test_gap_resyncs_and_counts(self):
        self.books.on_live()
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.feed(event("BTCUSDT", 14, 15))  # 12 and 13 are missing
        self.assertEqual(synced(self.books, 10), {})
        self.assertEqual(self.books.stats()[1], {"BTCUSDT": 1})
        self.client.snapshots["BTCUSDT"] = dict(SNAPSHOT, lastUpdateId=14)
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.assertEqual(self.books.stats()[0], {"BTCUSDT": 15})

    def test_failed_snapshot_is_retried(self):
        self.client.fail = BinanceError("down", kind=rest.SERVER)
        self.books.on_live()
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.assertEqual(self.client.calls, ["BTCUSDT", "BTCUSDT"])

    def test_reconnect_resets_synced_books(self):
        self.books.on_live()
        self.feed(event("BTCUSDT", 9, 11))
        wait_until(lambda: synced(self.books, 10), timeout=5)
        self.books.on_connect()
        self.assertEqual(synced(self.books, 10), {})
        self.assertEqual(self.books.stats()[1], {"BTCUSDT": 1})

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


class ConnectionTest(unittest.TestCase):
    """A dropped connection takes its books out of service at once; one snapshot per connect."""

    def setUp(self) -> None:
        self.client = SnapshotClient({"BTCUSDT": SNAPSHOT, "ETHBTC": SNAPSHOT})
        self.pool = DaemonPool(2)
        self.addCleanup(self.pool.shutdown)
        self.changed = threading.Event()
        self.books = StreamBooks(self.client, self.pool, 1000, on_change=self.changed.set)
        self.addCleanup(self.books.schedule.stop)
        self.streams = self.books.track(["BTCUSDT", "ETHBTC"])
        self.books.on_connect()

    def sync(self, symbol: str) -> None:
        """Subscribed, an event, then its snapshot: the book follows the stream."""
        self.books.on_live([depth_stream(symbol)])
        self.books.on_data(depth_stream(symbol), event(symbol, 9, 11))
        wait_until(lambda: symbol in synced(self.books, 1), timeout=5)

    def test_a_drop_unsyncs_only_that_connections_books_at_once(self):
        self.sync("BTCUSDT")
        self.sync("ETHBTC")
        self.changed.clear()
        self.books.on_disconnect([depth_stream("BTCUSDT")])
        self.assertTrue(self.changed.is_set())  # the publisher republishes now
        self.assertEqual(set(synced(self.books, 1)), {"ETHBTC"})
        self.assertIsInstance(self.books.depths(["BTCUSDT"], 1)["BTCUSDT"], NotSynced)
        self.assertEqual(self.books.stats()[1], {"BTCUSDT": 1})

    def test_a_snapshot_asked_for_a_lost_connection_is_dropped(self):
        self.books.on_live([depth_stream("BTCUSDT")])
        self.assertIn("BTCUSDT", self.books.schedule.pending())
        self.books.on_disconnect([depth_stream("BTCUSDT")])
        self.assertEqual(self.books.schedule.pending(), {})  # the planned fetch is forgotten
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 9, 11))  # a late event
        self.books.snapshots._fetch("BTCUSDT", 1)  # pylint: disable=protected-access
        self.assertEqual(synced(self.books, 1), {})  # no book without its connection
        self.assertEqual(self.client.calls, [])

    def test_a_failed_snapshot_is_not_retried_for_a_lost_connection(self):
        self.client.fail = BinanceError("down", kind=rest.SERVER)
        epoch = self.books._epoch_of("BTCUSDT")  # pylint: disable=protected-access
        self.books.on_disconnect([depth_stream("BTCUSDT")])
        self.books.snapshots._again("BTCUSDT", epoch, 0.0)  # pylint: disable=protected-access
        self.assertEqual(self.books.schedule.pending(), {})
        self.books.on_connect([depth_stream("BTCUSDT")])
        self.books.snapshots._fetch("BTCUSDT", epoch)  # pylint: disable=protected-access
        self.assertEqual(self.client.calls, [])  # planned for the lost connection

    def test_a_book_that_runs_out_of_levels_starts_over_one_tier_deeper(self):
        self.client.snapshots["BTCUSDT"] = {"lastUpdateId": 10, "bids": [["99", "1"]],
                                            "asks": [["101", "1"]]}
        self.books.snapshots.limit = 1  # so that the one-level snapshot is cut on both sides
        self.sync("BTCUSDT")
        self.assertEqual(self.client.limits, [1])
        # The best bid leaves: the book vouches for no bid now, and 1 level is asked for.
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 12, 12, bids=[("99", "0")]))
        read = self.books.books(["BTCUSDT"], 1)["BTCUSDT"]
        self.assertIsInstance(read, NotSynced)
        self.assertEqual(self.books.stats()[1], {"BTCUSDT": 1})
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 13, 13))
        wait_until(lambda: len(self.client.limits) == 2, timeout=5)
        self.assertEqual(self.client.limits, [1, 100])  # the next tier up
        self.assertEqual(self.books.snapshots.limit_of("ETHBTC"), 1)  # the others stay

    def test_an_analytics_read_starts_over_a_book_down_to_three_quarters(self):
        self.client.snapshots["BTCUSDT"] = {
            "lastUpdateId": 10, "bids": [[str(99 - i), "1"] for i in range(4)],
            "asks": [[str(101 + i), "1"] for i in range(4)]}
        self.books.snapshots.limit = 4  # both sides cut at 4 levels
        self.sync("BTCUSDT")
        self.assertIsInstance(self.books.depths(["BTCUSDT"], 4)["BTCUSDT"], OrderBook)
        # One bid leaves: 3 of 4 known is still three quarters.
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 12, 12, bids=[("99", "0")]))
        self.assertEqual(len(self.books.depths(["BTCUSDT"], 4)["BTCUSDT"].bids), 3)
        # A second: 2 of 4 is not, and the book starts over.
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 13, 13, bids=[("98", "0")]))
        self.assertIsInstance(self.books.depths(["BTCUSDT"], 4)["BTCUSDT"], NotSynced)
        self.assertEqual(self.books.stats()[1], {"BTCUSDT": 1})

    def test_one_snapshot_per_book_per_connect(self):
        # Events that arrive before the subscriptions are acknowledged, or
        # before the planned snapshot, do not ask for another.
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 9, 11))
        self.books.on_live()
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 12, 12))
        wait_until(lambda: set(synced(self.books, 1)) == {"BTCUSDT", "ETHBTC"}, timeout=5)
        self.assertEqual(sorted(self.client.calls), ["BTCUSDT", "ETHBTC"])


class SnapshotScheduleTest(unittest.TestCase):
    """Snapshots are paced within a weight budget per minute."""

    def test_a_storm_waits_for_the_next_window(self):
        now = [1000.0]
        submitted: list[str] = []
        two = threading.Event()

        def submit(symbol: str) -> None:
            submitted.append(symbol)
            if len(submitted) == 2:
                two.set()

        schedule = SnapshotSchedule(submit, weight=lambda _symbol: 50, weight_per_minute=100,
                                    clock=lambda: now[0])
        self.addCleanup(schedule.stop)
        for symbol in ("A", "B", "C", "D"):
            schedule.schedule(symbol)
        self.assertTrue(two.wait(5))
        # The other two are planned for the start of the next window, not sent.
        wait_until(lambda: len(schedule.pending()) == 2
                   and set(schedule.pending().values()) == {1060.0}, timeout=5)
        self.assertEqual(len(submitted), 2)

    def test_cancel_and_earliest_due_time(self):
        schedule = SnapshotSchedule(lambda symbol: None, weight=lambda _symbol: 5,
                                    clock=lambda: 0.0)
        schedule.stop()  # nothing is submitted; only the plan is checked
        self.assertEqual(schedule.pending(), {})
        live = SnapshotSchedule(lambda symbol: None, weight=lambda _symbol: 5,
                                clock=lambda: -100.0)
        self.addCleanup(live.stop)
        live.schedule("A", 500.0)
        live.schedule("A", 200.0)
        live.schedule("B", 300.0)
        self.assertEqual(live.pending(), {"A": 100.0, "B": 200.0})
        live.cancel(["A"])
        self.assertEqual(live.pending(), {"B": 200.0})


def synced(books: StreamBooks, levels: int) -> dict:
    """The views of the books of ALL_SYMBOLS that are in sync."""
    return {s: b for s, b in books.books(ALL_SYMBOLS, levels).items()
            if not isinstance(b, Exception)}


ALL_SYMBOLS = ["ETHBTC", "BNBBTC", "ETHUSDT", "BTCUSDT"]


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
        self.source = LocalBooksSource(self.books)
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

    def test_one_book_out_of_sync_does_not_freeze_the_others_deltas(self):
        self.refresh_rankings()
        self.sync_all()
        self.quotes.refresh_spreads()
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 7, 7, asks=[("100.2", "1")]))
        self.books.on_data(depth_stream("ETHUSDT"), event("ETHUSDT", 50, 51))  # a gap
        reported = self.quotes.refresh_spreads()
        self.assertFalse(reported.jobs[SPREADS].success)
        self.assertNotIn("ETHUSDT", reported.answers.spreads)
        self.assertEqual(reported.answers.deltas["BTCUSDT"], D("0.3"))  # 0.5 -> 0.2, not frozen

    def test_out_of_sync_book_is_absent(self):
        self.refresh_rankings()
        self.sync_all()
        self.books.on_data(depth_stream("BTCUSDT"), event("BTCUSDT", 50, 51))  # gap
        snapshot = self.quotes.refresh_books()
        self.assertNotIn("BTCUSDT", snapshot.answers.spreads)
        self.assertFalse(snapshot.jobs[SPREADS].success)


if __name__ == "__main__":
    unittest.main()
