"""Stream mode at market scale, part by part: best quotes, the ticker-backed rankings,
the snapshot tier, the shared connection-attempt budget and the feed's partial reconnects."""

from __future__ import annotations

import json
import threading
import unittest
from decimal import Decimal as D

from binance_exporter.binance import rest
from binance_exporter.binance.book_ticker_events import SEEDED, seed_events, to_top
from binance_exporter.binance.payloads import PayloadError
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceError
from binance_exporter.binance.stream_feed import StreamFeed
from binance_exporter.binance.traffic import StreamStats, Traffic
from binance_exporter.binance.websocket import ConnectionAttempts
from binance_exporter.config import (
    AnalyticsConfig,
    Config,
    RankingConfig,
    StreamConfig,
    planned_weight_per_minute,
    snapshot_limit,
)
from binance_exporter.jobs.analytics import AnalyticsJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.types import BookTop, OrderBook
from binance_exporter.model import SnapshotStore
from binance_exporter.sources.book_tickers import BookTickers, book_ticker_stream
from binance_exporter.sources.ticker_table import TICKER_STREAM, TickerTable
from tests.unit.test_jobs import StubClient


def quote(symbol: str, update_id: int, bid: str, ask: str) -> str:
    """One bookTicker event's JSON."""
    return json.dumps({"u": update_id, "s": symbol, "b": bid, "B": "1", "a": ask, "A": "2"})


def rest_quote(symbol: str, bid: str, ask: str) -> dict:
    """One entry of the all-symbols REST bookTicker answer."""
    return {"symbol": symbol, "bidPrice": bid, "bidQty": "3", "askPrice": ask, "askQty": "4"}


class BookTickersTest(unittest.TestCase):
    """Quotes are live only while their connection is; REST fills only the quiet ones."""

    def setUp(self) -> None:
        self.changes = 0
        self.quotes = BookTickers(on_change=self.changed)
        self.streams = self.quotes.track(["BTCUSDT", "ETHUSDT"])

    def changed(self) -> None:
        """Count the publisher's wake-ups."""
        self.changes += 1

    def top(self, symbol: str):
        """The read of one symbol."""
        return self.quotes.tops([symbol])[symbol]

    def test_stream_names_and_nothing_before_a_connection(self):
        self.assertEqual(self.streams, ["btcusdt@bookTicker", "ethusdt@bookTicker"])
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 1, "100", "101"))
        self.assertIsInstance(self.top("BTCUSDT"), NotSynced)  # no connection is open for it

    def test_a_push_is_read_exactly_and_an_older_one_is_ignored(self):
        self.quotes.on_connect(self.streams)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 5, "100.01", "100.02"))
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 4, "99", "105"))
        top = self.top("BTCUSDT")
        self.assertEqual(top, BookTop("BTCUSDT", D("100.01"), D("100.02")))
        self.assertEqual(self.quotes.counts(), (2, 1))

    def test_a_drop_takes_the_quotes_away_at_once(self):
        self.quotes.on_connect(self.streams)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 5, "100", "101"))
        self.quotes.on_disconnect([self.streams[0]])
        self.assertIsInstance(self.top("BTCUSDT"), NotSynced)
        # A message of the dropped connection still on its way is not taken.
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 6, "100", "101"))
        self.assertIsInstance(self.top("BTCUSDT"), NotSynced)
        self.assertEqual(self.quotes.counts(), (2, 0))

    def test_the_rest_fill_reaches_only_symbols_no_push_reached(self):
        self.quotes.on_connect(self.streams)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 5, "100", "101"))
        self.assertTrue(self.quotes.on_live(self.streams))
        waiting = self.quotes.waiting()
        self.assertEqual(waiting, {"ETHUSDT"})
        answer = seed_events([rest_quote("BTCUSDT", "1", "2"), rest_quote("ETHUSDT", "10", "11")])
        self.assertEqual(self.quotes.fill(answer, waiting), 1)
        self.assertEqual(self.top("BTCUSDT").bid_price, D(100))  # the push wins
        self.assertEqual(self.top("ETHUSDT").bid_price, D(10))
        # Any later push replaces the REST quote.
        self.quotes.on_data(self.streams[1], quote("ETHUSDT", 1, "10.5", "11"))
        self.assertEqual(self.top("ETHUSDT").bid_price, D("10.5"))

    def test_a_fill_asked_before_a_connection_was_live_does_not_reach_it(self):
        first, second = [self.streams[0]], [self.streams[1]]
        self.quotes.on_connect(self.streams)
        self.quotes.on_live(first)
        waiting = self.quotes.waiting()  # the request leaves now
        self.quotes.on_live(second)  # ETHUSDT is subscribed only after
        answer = seed_events([rest_quote("BTCUSDT", "1", "2"), rest_quote("ETHUSDT", "10", "11")])
        self.assertEqual(self.quotes.fill(answer, waiting), 1)
        self.assertIsInstance(self.top("ETHUSDT"), NotSynced)
        self.assertEqual(self.quotes.waiting(), {"ETHUSDT"})  # its own fill is still due

    def test_impossible_and_malformed_quotes(self):
        self.quotes.on_connect(self.streams)
        self.quotes.on_data(self.streams[0], '{"u": 1, "s": "BTCUSDT"}')  # malformed: ignored
        self.assertIsInstance(self.top("BTCUSDT"), NotSynced)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 2, "NaN", "1"))
        self.assertIsInstance(self.top("BTCUSDT"), PayloadError)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 3, "1", "1e5"))  # not plain text
        self.assertIsInstance(self.top("BTCUSDT"), PayloadError)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 4, "1", "2"))
        self.assertEqual(self.top("BTCUSDT"), BookTop("BTCUSDT", D(1), D(2)))
        with self.assertRaises(PayloadError):
            seed_events({"symbol": "BTCUSDT"})
        with self.assertRaises(PayloadError):
            seed_events([{"symbol": 5, "bidPrice": "1", "bidQty": "1", "askPrice": "1",
                          "askQty": "1"}])

    def test_untracked_symbols_leave(self):
        self.quotes.on_connect(self.streams)
        self.quotes.on_data(self.streams[0], quote("BTCUSDT", 1, "1", "2"))
        self.quotes.track(["ETHUSDT"])
        self.assertIsInstance(self.top("BTCUSDT"), NotSynced)
        self.assertEqual(self.quotes.counts(), (1, 0))

    def test_seeded_events_are_older_than_any_push(self):
        event = seed_events([rest_quote("BTCUSDT", "0", "2")])[0]
        self.assertEqual(event.update_id, SEEDED)
        self.assertLess(SEEDED, 0)
        self.assertEqual(to_top(event).bid_price, D(0))  # an empty side, as on REST
        self.assertEqual(book_ticker_stream("BTCUSDT"), "btcusdt@bookTicker")


def timed(name: str, volume: str, quote_volume: str, count: int, close_ms: int) -> dict:
    """A 24 h ticker entry with the time it describes."""
    return {"symbol": name, "volume": volume, "quoteVolume": quote_volume, "count": count,
            "closeTime": close_ms}


class TableClient(StubClient):
    """The stub client, its 24 h tickers with close times."""

    def tickers_24h(self):
        self._maybe_fail("tickers_24h")
        return [timed("ETHBTC", "100", "6", 10, 1000), timed("BNBBTC", "200", "4", 10, 1000),
                timed("BTCUSDT", "5", "300000", 900, 1000),
                timed("ETHUSDT", "50", "150000", 1000, 1000)]


class TableRankingsTest(unittest.TestCase):
    """In stream mode the rankings read the ticker table and ask REST only when due."""

    def setUp(self) -> None:
        self.client = TableClient()
        self.pool = DaemonPool(2)
        self.addCleanup(self.pool.shutdown)
        self.now = [0.0]
        self.table = TickerTable(clock=lambda: self.now[0])
        self.job = RankingsJob(self.client, self.pool, SnapshotStore(), RankingConfig(top_n=2),
                               clock=lambda: self.now[0], table=self.table, repair_every=600.0)

    def rest_calls(self) -> int:
        """How many 24 h ticker requests were made."""
        return sum(1 for what, _ in self.client.calls if what == "tickers_24h")

    def test_rest_at_start_then_the_table_then_the_repair(self):
        ranking = self.job.run()
        self.assertEqual([t.symbol for t in ranking.top_usdt], ["ETHUSDT", "BTCUSDT"])
        self.assertEqual(self.rest_calls(), 1)
        self.table.on_live([TICKER_STREAM])  # the stream comes up just after
        # A push moves BTCUSDT's trade count above ETHUSDT's: no request for it.
        push = [{"e": "1dTicker", "E": 2000, "s": "BTCUSDT", "v": "5", "q": "300000",
                 "n": 5000, "C": 2000, "O": 0, "F": 0, "L": 1, "o": "1", "h": "1", "l": "1",
                 "c": "1", "w": "1", "p": "0", "P": "0"}]
        self.table.on_data(TICKER_STREAM, json.dumps(push))
        self.now[0] = 60.0
        ranking = self.job.run()
        self.assertEqual([t.symbol for t in ranking.top_usdt], ["BTCUSDT", "ETHUSDT"])
        self.assertEqual(self.rest_calls(), 1)
        self.now[0] = 600.0  # the repair is due
        self.job.run()
        self.assertEqual(self.rest_calls(), 2)

    def test_a_lost_ticker_connection_asks_rest_at_the_next_run(self):
        self.job.run()
        self.table.on_live([TICKER_STREAM])
        self.table.on_disconnect([TICKER_STREAM])
        self.now[0] = 60.0
        self.table.on_live([TICKER_STREAM])  # back, but a minute of pushes may be lost
        self.job.run()
        self.assertEqual(self.rest_calls(), 2)
        self.assertTrue(self.table.complete)

    def test_without_the_ticker_stream_every_run_asks_rest(self):
        for now in (0.0, 60.0, 120.0):
            self.now[0] = now
            self.job.run()
        self.assertEqual(self.rest_calls(), 3)


class SnapshotTierTest(unittest.TestCase):
    """Each local book starts from the cheapest tier covering what it must answer."""

    def test_tiers(self):
        stream = StreamConfig()
        cases = [
            (Config(stream=stream), 500),  # 200 + 50 and the analytics' 500
            (Config(stream=stream, analytics=None), 500),  # 250 -> the 500 tier
            (Config(stream=stream, analytics=None, ranking=RankingConfig(depth_levels=50)), 100),
            (Config(stream=stream, analytics=AnalyticsConfig(depth_limit=600)), 1000),
            (Config(stream=stream, analytics=None, ranking=RankingConfig(depth_levels=900)),
             5000),
            (Config(stream=StreamConfig(snapshot_limit=42)), 42),
        ]
        for config, limit in cases:
            with self.subTest(limit=limit):
                self.assertEqual(snapshot_limit(config), limit)

    def test_stream_mode_plans_only_the_repair(self):
        # exchangeInfo + 24 h tickers every 10 runs of 60 s: 100 weight per 10 minutes.
        self.assertEqual(planned_weight_per_minute(Config(stream=StreamConfig())), 10.0)
        self.assertGreater(planned_weight_per_minute(Config()), 800)


class AttemptsTest(unittest.TestCase):
    """Connection attempts of all connections together stay within the budget."""

    def test_an_attempt_past_the_limit_waits_for_the_window(self):
        now = [0.0]
        stop = threading.Event()
        waits: list[float] = []

        class Clockwork(threading.Event):
            """Moves the clock instead of sleeping."""

            def wait(self, timeout=None):
                waits.append(timeout)
                now[0] += timeout
                return False

        attempts = ConnectionAttempts(limit=3, window=300.0, clock=lambda: now[0])
        for _ in range(3):
            self.assertTrue(attempts.wait_turn(stop))
        self.assertEqual(waits, [])
        now[0] = 10.0
        self.assertTrue(attempts.wait_turn(Clockwork()))
        self.assertEqual(waits, [290.0])  # until the first attempt left the window
        stop.set()
        self.assertFalse(ConnectionAttempts(limit=0).wait_turn(stop))


class FeedPartsTest(unittest.TestCase):
    """A changed stream list moves as few streams as it can, and reconnects nothing."""

    def test_streams_stay_where_they_are(self):
        started: list["Part"] = []

        class Subs:
            """The stand-in connection's subscriptions."""

            def __init__(self, streams: list[str]) -> None:
                self.streams = list(streams)
                self.updates = 0

            def target(self) -> list[str]:
                """What it carries."""
                return list(self.streams)

            def update(self, streams: list[str]) -> None:
                """Carry these from now on."""
                self.streams = list(streams)
                self.updates += 1

        class Part:
            """A stand-in supervisor."""

            def __init__(self, _url, streams, *_args, **_kwargs) -> None:
                self.subscriptions = Subs(streams)
                self.stopped = False

            def start(self) -> None:
                """Note the connection."""
                started.append(self)

            def stop(self) -> None:
                """Note the close."""
                self.stopped = True

            def stats(self) -> StreamStats:
                """Always connected."""
                return StreamStats(True, 0, {}, None)

        feed = StreamFeed("ws://x", lambda s, d: None, lambda s: None, supervisor_factory=Part)
        quotes = [book_ticker_stream(f"S{i}USDT") for i in range(1100)]
        feed.track(quotes + ["ethbtc@depth@100ms"])
        self.assertEqual([len(p.subscriptions.streams) for p in started], [1024, 77])
        feed.track(quotes + ["bnbbtc@depth@100ms"])  # a new ranking: one stream out, one in
        self.assertEqual(len(started), 2)
        self.assertEqual(started[1].subscriptions.streams[-1], "bnbbtc@depth@100ms")
        self.assertEqual([p.subscriptions.updates for p in started], [0, 1])
        feed.track(quotes[:1000])  # the second connection is left with nothing: it closes
        self.assertTrue(started[1].stopped)
        self.assertEqual(len(started[0].subscriptions.streams), 1000)
        feed.track(quotes[:1000] + [f"x{i}@bookTicker" for i in range(30)])
        self.assertEqual(len(started), 3)  # 24 fit in the first, 6 open a new one
        self.assertEqual(len(started[2].subscriptions.streams), 6)
        self.assertTrue(feed.stats().connected)


class ReplyTest(unittest.TestCase):
    """Only `{"result": null}` acknowledges a SUBSCRIBE; an error reply never does."""

    def test_refusals_and_odd_replies_are_not_acknowledgements(self):
        traffic = Traffic()
        traffic.subscribing({1: ["a@bookTicker"], 2: ["b@bookTicker"]})
        for reply in ('{"error": {"code": 2, "msg": "Invalid request"}, "id": 1}',
                      '{"code": 4, "msg": "Too many subscriptions", "id": 1}',
                      '{"id": 1}', '{"result": ["x"], "id": 1}', 'not json'):
            with self.subTest(reply=reply):
                self.assertEqual(traffic.control(reply, "ws://x"), [])
                self.assertTrue(traffic.unacknowledged)
        # Each acknowledgement names its own streams; live once none is pending.
        self.assertEqual(traffic.control('{"result": null, "id": 1}', "ws://x"), ["a@bookTicker"])
        self.assertFalse(traffic.live)
        self.assertEqual(traffic.control('{"result": null, "id": 2}', "ws://x"), ["b@bookTicker"])
        self.assertTrue(traffic.live)
        # More streams on the live connection: not live until they are acknowledged too.
        traffic.expect({3: ["c@bookTicker"], 4: []})
        self.assertFalse(traffic.live)
        self.assertEqual(traffic.control('{"result": null, "id": 4}', "ws://x"), [])
        self.assertEqual(traffic.control('{"result": null, "id": 3}', "ws://x"), ["c@bookTicker"])
        self.assertTrue(traffic.live)


class StaleAnalyticsTest(unittest.TestCase):
    """A book out of sync takes its fills and bands off the page; a failed request keeps them."""

    def test_out_of_sync_books_leave_and_failed_requests_keep(self):
        book = OrderBook(1, bids=((D("99"), D(10)),), asks=((D("101"), D(10)),))
        reads: list[dict] = [{"AAAUSDT": book, "BBBUSDT": book},
                             {"AAAUSDT": NotSynced("resyncing"),
                              "BBBUSDT": BinanceError("timeout", kind=rest.TRANSPORT)}]

        class Source:
            """Answers each read with the next of `reads`."""

            def depths(self, symbols, _limit):
                """The next read."""
                del symbols
                return reads.pop(0)

        class Trades:
            """No trade flow in this test."""

            def flows(self, symbols):
                """Nothing for anyone."""
                del symbols
                return {}

        store = SnapshotStore(("rankings", "spreads", "analytics"))
        config = AnalyticsConfig(fill_notionals=(D(100),), depth_bands=(D("0.05"),),
                                 extra_symbols=("AAAUSDT", "BBBUSDT"), depth_limit=10)
        job = AnalyticsJob(Source(), Trades(), store, config,  # type: ignore[arg-type]
                           lambda _s: True)
        first = job.refresh().analytics
        self.assertEqual(set(first.books), {"AAAUSDT", "BBBUSDT"})
        second = job.refresh()
        self.assertEqual(set(second.analytics.books), {"BBBUSDT"})  # AAAUSDT is known wrong
        self.assertIs(second.analytics.books["BBBUSDT"], first.books["BBBUSDT"])
        self.assertFalse(second.jobs["analytics"].success)
