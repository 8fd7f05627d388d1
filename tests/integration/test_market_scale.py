"""Stream mode at market scale, end to end: the exporter process on the fake Binance.

A market of 3,000 TRADING symbols with `--spread-symbols all` takes three
connections; the start-up weight is read from the fake's own request log.
Then the faults a whole-market client meets: a dropped connection, a storm of
closes while subscribing, duplicate and missing aggregate trade ids across a
reconnect, and `!ticker_1d@arr` pushes that never arrive. Every expected value
is worked out here from the fake market, never from the exporter's code.

The fake market moves only when a test moves it, so a connection may stay
quiet for as long as a test lasts; the silence watchdog
(`--stream-silence-timeout`) is set out of the way except where a silence is
what is tested, on a small market kept moving by a heartbeat.
"""

from __future__ import annotations

import math
import threading
import time
import unittest
from collections import Counter

from fake_binance.market import BUILTIN_SYMBOLS, Market
from fake_binance.server import FakeBinance, RequestRecord
from fake_binance.streams import MAX_INCOMING, MAX_STREAMS, FakeStreams
from tests.integration.test_faults import ranked
from tests.integration.test_scale import labelled, quotable
from tests.support import Exporter, Samples, sample, taker_totals, trades_counted, wait_until

SCALE = 3000  # TRADING symbols, about Binance's whole spot market
BUILTIN_TRADING = sum(1 for spec in BUILTIN_SYMBOLS if spec.status == "TRADING")
STREAM = ("--source", "stream", "--update-interval", "0.5")
QUIET_MARKET = 600.0  # seconds of silence taken as a lost connection: never, here
EXCHANGE_INFO, TICKER_24H = "/api/v3/exchangeInfo", "/api/v3/ticker/24hr"
DEPTH, BOOK_TICKER = "/api/v3/depth", "/api/v3/ticker/bookTicker"
# Binance's depth weight by the tier of `limit`: (highest limit, weight).
DEPTH_TIERS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def depth_weight(limit: int) -> int:
    """What Binance charges for one depth snapshot of `limit` levels."""
    return next(weight for bound, weight in DEPTH_TIERS if limit <= bound)


class StreamCase(unittest.TestCase):
    """The fake's REST API and streams over one market, and an exporter on them."""

    market: Market
    rest: FakeBinance
    streams: FakeStreams
    exporter: Exporter

    @classmethod
    def start(cls, market: Market, *args: str, silence: float = QUIET_MARKET) -> None:
        """Start the three on free loopback ports; they stop when the class is done."""
        cls.market = market
        cls.rest = FakeBinance(market).start()
        cls.addClassCleanup(cls.rest.stop)
        cls.streams = FakeStreams(market).start()
        cls.addClassCleanup(cls.streams.stop)
        cls.exporter = Exporter(cls.rest.url, *STREAM, "--stream-url", cls.streams.url,
                                "--stream-silence-timeout", str(silence), *args)
        cls.addClassCleanup(cls.exporter.close)


class Heartbeat:
    """Moves one symbol's 24 h trade count every 0.2 s in a thread, so the connection
    carrying `!ticker_1d@arr` gets a push every second, as from a live market."""

    def __init__(self, market: Market, symbol: str) -> None:
        self.market = market
        self.symbol = symbol
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Start beating; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and wait for the thread."""
        self._stop.set()
        self._thread.join(5)

    def _beat(self) -> None:
        count = self.market.ticker_24hr(symbol=self.symbol)["count"]
        while not self._stop.wait(0.2):
            count += 1
            self.market.set_ticker(self.symbol, count=count)


class WholeMarketTest(StreamCase):
    """3,000 spreads from bookTicker streams; the connections dropped and stormed."""

    trading: set[str]
    at_start: Samples  # the first scrape with everything live
    startup: list[RequestRecord]  # the REST requests until then
    accepted: int
    subscribed: list[list[str]]

    @classmethod
    def setUpClass(cls) -> None:
        market = Market(seed=7, extra_symbols=SCALE - BUILTIN_TRADING)
        # A repair run (every 10 refresh intervals) would add to the start-up weight.
        cls.start(market, "--spread-symbols", "all", "--no-analytics",
                  "--refresh-interval", "60")
        cls.trading = set(market.symbols("TRADING"))
        # The bound on the start-up: a minute from the process to every spread live.
        cls.exporter.wait_ready(timeout=30)
        cls.at_start = cls.all_live(timeout=30)
        cls.startup = cls.rest.requests
        cls.accepted = cls.streams.connections_accepted
        cls.subscribed = cls.streams.subscriptions()

    @classmethod
    def all_live(cls, timeout: float) -> Samples:
        """Wait until every quote, book and job is live again; return that scrape."""
        def live():
            now = cls.exporter.scrape()
            # Top 5 BTC symbols by volume, top 5 USDT symbols by trades: each a book.
            books = set(labelled(now, "binance_top_symbol_rank"))
            ok = (sample(now, "binance_up") == 1
                  and sample(now, "binance_stream_connected") == 1
                  and sample(now, "binance_stream_book_ticker_symbols_live") == len(cls.trading)
                  and len(books) == 10
                  and books <= set(labelled(now, "binance_order_book_update_id")))
            return now if ok else None

        return wait_until(live, timeout=timeout, interval=0.2)

    def setUp(self) -> None:
        # Each test starts from a whole market live, whatever ran before.
        self.all_live(timeout=60)

    def test_every_spread_is_live_at_a_known_start_up_weight(self):
        samples = self.at_start
        self.assertEqual(len(self.trading), SCALE)
        self.assertEqual(sample(samples, "binance_stream_book_ticker_symbols"), SCALE)
        self.assertEqual(sample(samples, "binance_stream_book_ticker_symbols_live"), SCALE)
        spreads = labelled(samples, "binance_spread")
        self.assertEqual(len(spreads), len(set(spreads)))
        # THINUSDT has no bids: followed and live, but no spread.
        self.assertEqual(set(spreads), quotable(self.market, self.trading))
        self.assertEqual(len(spreads), SCALE - 1)

        depth_books = set(labelled(samples, "binance_top_symbol_rank"))
        paths = Counter(record.path for record in self.startup)
        self.assertEqual(dict(paths), {EXCHANGE_INFO: 1, TICKER_24H: 1, BOOK_TICKER: 1,
                                       DEPTH: len(depth_books)})
        for record in self.startup:
            if record.path in (TICKER_24H, BOOK_TICKER):  # the whole market in one request
                self.assertNotIn("symbol", record.params)
                self.assertNotIn("symbols", record.params)
        depths = [record for record in self.startup if record.path == DEPTH]
        books = [record.params["symbol"] for record in depths]
        self.assertEqual(sorted(books), sorted(depth_books), "one snapshot per depth book")
        self.assertFalse(set(books) & (self.trading - depth_books),
                         "a depth snapshot for a symbol that is only a spread symbol")
        limits = {int(record.params["limit"]) for record in depths}
        self.assertEqual(len(limits), 1, limits)
        limit = limits.pop()
        self.assertTrue(all(record.weight == depth_weight(limit) for record in depths))
        self.assertEqual(sum(record.weight for record in self.startup),
                         20 + 80 + len(depth_books) * depth_weight(limit) + 4)

        wanted = {"!ticker_1d@arr"} | {s.lower() + "@bookTicker" for s in self.trading} \
            | {s.lower() + "@depth@100ms" for s in depth_books}
        streams = [stream for part in self.subscribed for stream in part]
        self.assertEqual(len(streams), len(set(streams)), "a stream on two connections")
        self.assertEqual(set(streams), wanted)
        self.assertTrue(all(len(part) <= MAX_STREAMS for part in self.subscribed))
        self.assertEqual(math.ceil(len(wanted) / MAX_STREAMS), 3)
        self.assertEqual(self.accepted, 3)
        self.assertEqual(len(self.subscribed), 3)

    def test_a_dropped_connection_is_out_of_service_at_once_and_recovers(self):
        reconnects = sample(self.exporter.scrape(), "binance_stream_reconnects_total")
        self.assertEqual(self.streams.drop_connections(), 3)

        def out_of_service():
            now = self.exporter.scrape()
            gone = (sample(now, "binance_up") == 0
                    and sample(now, "binance_stream_book_ticker_symbols_live") == 0
                    and not labelled(now, "binance_spread")
                    and not labelled(now, "binance_order_book_notional")
                    and not labelled(now, "binance_order_book_update_id"))
            return now if gone else None

        # Far sooner than the 30 s silence watchdog: the loss itself is noticed.
        down = wait_until(out_of_service, timeout=3)
        self.assertEqual(sample(down, "binance_refresh_success", job="spreads"), 0)
        self.assertEqual(sample(down, "binance_stream_book_ticker_symbols"), SCALE)
        samples = self.all_live(timeout=30)
        self.assertEqual(set(labelled(samples, "binance_spread")),
                         quotable(self.market, self.trading))
        self.assertGreaterEqual(sample(samples, "binance_stream_reconnects_total"),
                                reconnects + 3)
        self.assertEqual(self.streams.connections_open, 3)

    def test_a_subscribe_storm_stays_within_five_messages_a_second(self):
        accepted = self.streams.connections_accepted
        storm_end = time.monotonic() + 5
        while time.monotonic() < storm_end:  # close every connection, again and again
            self.streams.close_connections()
            time.sleep(0.1)
        stormed = self.streams.connections_accepted - accepted
        self.assertGreaterEqual(stormed, 3, "no connection came back during the storm")
        # The fake closes (1008 "Too many requests") a connection the moment it
        # counts a 6th frame within 1 s, and this peak is what it counted:
        # during the storm, then while every connection subscribes again.
        self.assertLessEqual(self.streams.max_incoming_per_second(), MAX_INCOMING)
        self.all_live(timeout=45)
        self.assertLessEqual(self.streams.max_incoming_per_second(), MAX_INCOMING)
        self.assertEqual(self.streams.connections_refused, 0)
        self.assertEqual(self.streams.connections_open, 3)


class SilenceTest(StreamCase):
    """A connection gone silent is out of service once the watchdog says so, then back."""

    SILENCE = 3.0  # --stream-silence-timeout, seconds

    @classmethod
    def setUpClass(cls) -> None:
        market = Market(seed=7)
        # BTCTRY is in no ranking: its pushes change nothing the tests look at.
        heartbeat = Heartbeat(market, "BTCTRY").start()
        cls.addClassCleanup(heartbeat.stop)
        cls.start(market, "--no-analytics", "--refresh-interval", "60", silence=cls.SILENCE)

    def live(self) -> Samples:
        """Wait until the quotes, books and jobs are live; return that scrape."""
        def live():
            now = self.exporter.scrape()
            wanted = sample(now, "binance_stream_book_ticker_symbols")
            ok = (sample(now, "binance_up") == 1
                  and sample(now, "binance_stream_connected") == 1
                  and wanted and sample(now, "binance_stream_book_ticker_symbols_live") == wanted
                  and len(labelled(now, "binance_spread")) == 5
                  and len(labelled(now, "binance_order_book_update_id")) == 10)
            return now if ok else None

        return wait_until(live, timeout=20)

    def test_a_silent_connection_is_out_of_service_until_data_flows_again(self):
        self.exporter.wait_ready(timeout=15)
        spreads = set(labelled(self.live(), "binance_spread"))

        def steady():
            now = self.exporter.scrape()
            pushes = sample(now, "binance_stream_messages_total", stream_type="arr") or 0
            return now if pushes > self.SILENCE + 1 else None

        # Pushes arrive every second: for longer than the timeout, nothing was lost.
        before = wait_until(steady, timeout=15)
        self.assertEqual(sample(before, "binance_stream_reconnects_total"), 0)
        self.streams.silence(self.SILENCE + 1)
        silenced = time.monotonic()

        def out_of_service():
            now = self.exporter.scrape()
            gone = (sample(now, "binance_up") == 0
                    and sample(now, "binance_stream_book_ticker_symbols_live") == 0
                    and not labelled(now, "binance_spread")
                    and not labelled(now, "binance_order_book_update_id"))
            return now if gone else None

        down = wait_until(out_of_service, timeout=self.SILENCE + 2, interval=0.02)
        self.assertGreaterEqual(time.monotonic() - silenced, self.SILENCE - 1.5,
                                "out of service before the silence was long enough")
        self.assertEqual(sample(down, "binance_refresh_success", job="spreads"), 0)
        after = self.live()
        self.assertEqual(set(labelled(after, "binance_spread")), spreads)
        self.assertGreaterEqual(sample(after, "binance_stream_reconnects_total"),
                                sample(before, "binance_stream_reconnects_total") + 1)


class TradeFlowTest(StreamCase):
    """aggTrade counters stay exact through duplicates, missing ids and a reconnect."""

    SYMBOL = "SOLUSDT"  # first of the USDT symbols by trades: ranked, so followed

    @classmethod
    def setUpClass(cls) -> None:
        cls.start(Market(seed=7), "--refresh-interval", "60", "--analytics-interval", "1")

    def connected(self, reconnects: float = 0) -> None:
        """Wait until every SUBSCRIBE is acknowledged after `reconnects` reconnects."""
        def subscribed():
            now = self.exporter.scrape()
            return (sample(now, "binance_stream_connected") == 1
                    and (sample(now, "binance_stream_reconnects_total") or 0) >= reconnects)

        wait_until(subscribed, timeout=20)

    def step(self, count: int = 1) -> None:
        """Move the market `count` times, each step's events on the wire before the next."""
        for _ in range(count):
            self.market.step()
            self.streams.flush()

    def test_each_trade_is_counted_once_across_duplicates_gaps_and_a_reconnect(self):
        symbol = self.SYMBOL
        self.exporter.wait_ready(timeout=15)
        self.connected()
        # Subscribed before any step: the first event, the counters' start, is
        # the first trade of the next step.
        first = self.market.agg_trade_history(symbol)[-1]["a"] + 1
        self.step()
        wait_until(lambda: sample(self.exporter.scrape(), "binance_trades_total",
                                  symbol=symbol, taker_side="buy") is not None, timeout=10)
        self.streams.duplicate_next_agg_trade(symbol)
        self.step()
        self.streams.skip_next_agg_trade(symbol)
        self.step(2)
        self.assertEqual(self.streams.drop_connections(), 1)
        self.step(3)  # traded while the connection is down
        self.connected(reconnects=1)
        self.streams.duplicate_next_agg_trade(symbol)
        self.streams.skip_next_agg_trade(symbol)
        self.step(3)

        history = self.market.agg_trade_history(symbol, first)
        self.assertEqual(history[0]["a"], first)
        expected = taker_totals(history)

        def counted():
            now = self.exporter.scrape()
            return now if trades_counted(now, symbol, expected) else None

        try:
            samples = wait_until(counted, timeout=15)
        except AssertionError:
            now = self.exporter.scrape()
            served = {side: sample(now, "binance_trades_total", symbol=symbol, taker_side=side)
                      for side in expected}
            self.fail(f"trades counted {served}, the fake's history says "
                      f"{ {side: totals[0] for side, totals in expected.items()} }")
        self.assertEqual(sample(samples, "binance_last_trade_price", symbol=symbol),
                         float(history[-1]["p"]))
        # The skipped ids and the reconnect were each filled from REST, none given up on.
        self.assertGreaterEqual(
            sample(samples, "binance_stream_trade_gap_fills_total", symbol=symbol), 2)
        self.assertEqual(sample(samples, "binance_stream_trades_missed_total", symbol=symbol), 0)


class TickerRepairTest(StreamCase):
    """Missed `!ticker_1d@arr` pushes: the periodic REST answer puts the rankings right."""

    REFRESH = 1.0  # seconds between rankings runs: the REST repair every 10 of them

    @classmethod
    def setUpClass(cls) -> None:
        cls.start(Market(seed=7), "--no-analytics", "--refresh-interval", str(cls.REFRESH))

    def rest_ranking(self) -> list[str]:
        """The top 5 USDT symbols by trades, from the REST answers of the fake."""
        info = {s["symbol"]: s for s in self.market.exchange_info()["symbols"]}
        tickers = [t for t in self.market.ticker_24hr()
                   if info[t["symbol"]]["status"] == "TRADING"
                   and info[t["symbol"]]["quoteAsset"] == "USDT"]
        tickers.sort(key=lambda t: (-t["count"], t["symbol"]))
        return [t["symbol"] for t in tickers[:5]]

    def fresh_repair(self) -> None:
        """Wait until the latest REST 24 h answer is under 2 s old: the next one is 10
        runs away, and every entry it finds different is then older than 3 s."""
        def fresh():
            asked = [r.time for r in self.rest.requests if r.path == TICKER_24H]
            return asked and time.time() - asked[-1] < 2

        wait_until(fresh, timeout=15 * self.REFRESH)

    def test_missed_pushes_are_repaired_from_rest(self):
        self.exporter.wait_ready(timeout=15)
        before = wait_until(lambda: (now := self.exporter.scrape())
                            and sample(now, "binance_stream_connected") == 1 and now, 15)
        old = ranked(before, "trades")
        self.assertEqual(old, self.rest_ranking())
        repairs = sample(before, "binance_stream_ticker_repairs_total")
        self.assertEqual(repairs, 0, "the start-up answer repaired nothing")
        self.fresh_repair()
        # Two symbols climb to the top, but their pushes are lost; a third one's
        # push arrives and shows when the other two would have arrived.
        stale = {"ADAUSDT": 3_000_000, "LINKUSDT": 2_500_000}
        for symbol in stale:
            self.streams.drop_ticker_pushes(symbol)
        pushed = old[0]
        count = self.market.ticker_24hr(symbol=pushed)["count"] + 100_000
        for symbol, trades in {pushed: count, **stale}.items():
            self.market.set_ticker(symbol, count=trades)
        seen = wait_until(lambda: (now := self.exporter.scrape())
                          and sample(now, "binance_ticker_24h_trades", symbol=pushed) == count
                          and now, timeout=5)
        self.assertEqual(sample(seen, "binance_stream_ticker_repairs_total"), repairs,
                         "repaired before the pushes could be missed")
        self.assertEqual(ranked(seen, "trades"), old, "a lost push reached the rankings")

        def repaired():
            now = self.exporter.scrape()
            done = sample(now, "binance_stream_ticker_repairs_total") != repairs \
                and ranked(now, "trades") == self.rest_ranking()
            return now if done else None

        after = wait_until(repaired, timeout=15 * self.REFRESH)
        self.assertEqual(sample(after, "binance_stream_ticker_repairs_total"), repairs + len(stale))
        self.assertEqual(ranked(after, "trades")[:3], [*stale, pushed])
        for symbol, trades in stale.items():
            self.assertEqual(sample(after, "binance_ticker_24h_trades", symbol=symbol), trades)


if __name__ == "__main__":
    unittest.main()
