"""Stream-mode trade flow without a network: aggTrade events, gaps filled from a stand-in REST."""

from __future__ import annotations

import json
import unittest
from concurrent.futures import Future
from decimal import Decimal as D
from typing import Any, Callable
from unittest import mock

from binance_exporter.binance.errors import RATE_LIMITED, SERVER, BinanceError
from binance_exporter.binance.payloads import parse_agg_trade
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.trades import TradeFlow
from binance_exporter.model import TradeTotals
from binance_exporter.sources import stream_trades
from binance_exporter.sources.stream_trades import (
    RETRY_FLOOR,
    StreamTrades,
    agg_trade_stream,
)

SYMBOL = "BTCUSDT"
STREAM = "btcusdt@aggTrade"


def agg(trade_id: int) -> dict[str, Any]:
    """Aggregate trade `trade_id` as REST returns it; sides, sizes and prices vary by id."""
    return {"a": trade_id, "p": f"{100 + trade_id % 17}.{trade_id % 100:02d}",
            "q": f"{trade_id % 5 + 1}.5", "f": 3 * trade_id, "l": 3 * trade_id + trade_id % 3,
            "T": 1_700_000_000_000 + trade_id, "m": trade_id % 2 == 0, "M": True}


def event(trade_id: int, symbol: str = SYMBOL) -> str:
    """The `<symbol>@aggTrade` event of trade `trade_id`, as the stream sends it."""
    return json.dumps({"e": "aggTrade", "E": 1_700_000_000_001 + trade_id, "s": symbol,
                       **agg(trade_id)})


def expected(ids) -> TradeTotals:
    """What the counters read after a TradeFlow was fed exactly `ids`."""
    flow = TradeFlow(SYMBOL)
    flow.apply(parse_agg_trade(agg(i)) for i in ids)
    return TradeTotals(by_side=flow.by_side(), last_price=flow.last_price)


class Market:
    """A stand-in REST client: trades 1..`upto` exist; answers aggTrades like Binance."""

    def __init__(self, upto: int) -> None:
        self.upto = upto
        self.calls: list[dict[str, int]] = []
        self.failures: dict[int, Exception] = {}  # raised by call number n (from 1)
        self.bad: set[int] = set()  # call numbers answered with something not an array

    def agg_trades(self, symbol: str, **params: int) -> Any:
        """Up to `limit` trades from `fromId` (inclusive)."""
        assert symbol == SYMBOL
        self.calls.append(params)
        if (failure := self.failures.get(len(self.calls))) is not None:
            raise failure
        if len(self.calls) in self.bad:
            return {"code": 0}
        first = params["fromId"]
        return [agg(i) for i in range(first, min(self.upto, first + params["limit"] - 1) + 1)]

    def from_ids(self) -> list[int]:
        """The `fromId` of every call so far."""
        return [call["fromId"] for call in self.calls]


class ManualPool:
    """A pool stand-in that runs submitted work only when the test says so."""

    def __init__(self) -> None:
        self.queue: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue `function(*args)`."""
        self.queue.append((function, args))
        future: Future[Any] = Future()
        return future

    def run(self) -> int:
        """Run the queued work, and what it queues in turn; returns how many ran."""
        ran = 0
        while self.queue:
            function, args = self.queue.pop(0)
            function(*args)
            ran += 1
        return ran


class Planned:
    """One call planned by `ManualLater`."""

    def __init__(self, delay: float, action: Callable[[], None]) -> None:
        self.delay = delay
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        """Call it off."""
        self.cancelled = True


class ManualLater:
    """Plans calls instead of starting timers; the test makes them due."""

    def __init__(self) -> None:
        self.planned: list[Planned] = []

    def __call__(self, delay: float, action: Callable[[], None]) -> Planned:
        self.planned.append(Planned(delay, action))
        return self.planned[-1]

    def pending(self) -> list[Planned]:
        """Planned calls not yet made nor called off."""
        return [p for p in self.planned if not p.cancelled]

    def fire(self) -> int:
        """Make every pending call due now; returns how many."""
        due = self.pending()
        self.planned = []
        for planned in due:
            planned.action()
        return len(due)


class Fixture(unittest.TestCase):
    """A StreamTrades following SYMBOL on a stand-in market, pool and timer."""

    def setUp(self) -> None:
        self.market = Market(upto=100)
        self.pool = ManualPool()
        self.later = ManualLater()
        self.trades = self.make(20)

    def make(self, max_pages: int) -> StreamTrades:
        """A StreamTrades on the stand-ins, following SYMBOL."""
        trades = StreamTrades(self.market, self.pool, max_pages, later=self.later)
        self.assertEqual(trades.track([SYMBOL]), [STREAM])
        return trades

    def feed(self, *ids: int) -> None:
        """Deliver the events of `ids`, in that order."""
        for trade_id in ids:
            self.trades.on_data(STREAM, event(trade_id))

    def reconnect(self, streams: list[str] | None = None) -> None:
        """The connection drops, comes back and is live again (`streams`; None: all)."""
        self.trades.on_disconnect(streams)
        self.trades.on_connect(streams)
        self.trades.on_live(streams)

    def flow(self) -> TradeTotals | Exception:
        """What `flows` reads for SYMBOL."""
        return self.trades.flows([SYMBOL])[SYMBOL]


class CountingTest(Fixture):
    """Events counted once each, from the first one on."""

    def test_stream_names(self):
        self.assertEqual(agg_trade_stream("ETHBTC"), "ethbtc@aggTrade")
        self.assertEqual(self.trades.track([SYMBOL, "ETHBTC"]), [STREAM, "ethbtc@aggTrade"])

    def test_first_event_sets_the_baseline_and_is_counted(self):
        self.assertIsInstance(self.flow(), NotSynced)
        self.feed(50)
        self.assertEqual(self.flow(), expected([50]))
        self.assertEqual(self.trades.flows([SYMBOL])[SYMBOL].last_price, D("116.50"))
        self.assertEqual(self.market.calls, [])
        self.assertEqual(self.trades.missed(), {SYMBOL: 0})

    def test_duplicates_are_counted_once(self):
        self.feed(50, 51, 51, 50, 52, 52, 53)
        self.assertEqual(self.flow(), expected(range(50, 54)))
        self.assertEqual(self.market.calls, [])
        self.assertEqual(self.pool.queue, [])

    def test_malformed_events_are_ignored(self):
        self.feed(10)
        bad = ["not json", "[1]", json.dumps({"e": "trade", "s": SYMBOL, **agg(11)}),
               json.dumps({"e": "aggTrade", "s": SYMBOL, "a": 11}),
               json.dumps({"e": "aggTrade", "s": SYMBOL, **agg(11), "p": "-1"}),
               json.dumps({"e": "aggTrade", "s": SYMBOL, **agg(11), "a": "11"}),
               json.dumps({"e": "aggTrade", **agg(11)})]
        for data in bad:
            with self.subTest(data=data), self.assertLogs(stream_trades.LOG, "WARNING"):
                self.trades.on_data(STREAM, data)
        self.assertEqual(self.flow(), expected([10]))
        self.assertEqual(self.pool.queue, [])
        self.trades.on_data(STREAM, event(11).encode())
        self.assertEqual(self.flow(), expected([10, 11]))

    def test_other_streams_and_untracked_symbols_are_ignored(self):
        self.trades.on_data("btcusdt@depth@100ms", event(10))
        self.trades.on_data(STREAM, event(10, symbol="ETHUSDT"))
        self.assertIsInstance(self.flow(), NotSynced)
        self.assertEqual(self.trades.missed(), {})

    def test_symbols_no_longer_tracked_are_forgotten(self):
        self.feed(10, 20)
        self.assertEqual(len(self.pool.queue), 1)
        self.assertEqual(self.trades.track(["ETHBTC"]), ["ethbtc@aggTrade"])
        self.pool.run()  # the fill of a forgotten symbol does nothing
        self.assertEqual(self.market.calls, [])
        self.assertEqual(self.trades.gap_fills(), {})
        self.trades.track([SYMBOL])
        self.assertIsInstance(self.flow(), NotSynced)


class GapFillTest(Fixture):
    """Missing ids filled from REST, or given up on and counted."""

    def test_missing_ids_are_filled_from_rest_with_exact_counts(self):
        self.market.upto = 5000
        self.feed(100, 2500, 2501)
        self.assertIsInstance(self.flow(), NotSynced)
        self.assertEqual(self.pool.run(), 1)
        # Pages from 101 until one reaches the first buffered event (2500).
        self.assertEqual(self.market.from_ids(), [101, 1101, 2101])
        self.assertEqual(self.flow(), expected(range(100, 3101)))
        self.feed(*range(2502, 3106))  # the stream repeats what the last page held
        self.assertEqual(self.flow(), expected(range(100, 3106)))
        self.assertEqual(self.trades.gap_fills(), {SYMBOL: 1})
        self.assertEqual(self.trades.missed(), {SYMBOL: 0})
        self.assertEqual(len(self.market.calls), 3)

    def test_not_synced_while_a_fill_is_under_way(self):
        self.market.upto = 96
        self.feed(90, 95)
        self.feed(96)
        self.assertIsInstance(self.flow(), NotSynced)
        self.assertEqual(len(self.pool.queue), 1)  # one fill, however many events wait
        self.assertEqual(self.market.calls, [])
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [91])
        self.assertEqual(self.flow(), expected(range(90, 97)))

    def test_a_gap_inside_the_buffer_is_filled_too(self):
        self.market.upto = 1103
        self.feed(101, 1100, 1101, 1103)  # the stream skipped 1102 as well
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [102])
        self.assertIsInstance(self.flow(), NotSynced)
        self.assertEqual(len(self.later.pending()), 1)
        self.assertGreaterEqual(self.later.pending()[0].delay, RETRY_FLOOR)
        self.later.fire()
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [102, 1102])
        self.assertEqual(self.flow(), expected(range(101, 1104)))
        self.assertEqual(self.trades.missed(), {SYMBOL: 0})

    def test_max_pages_exceeded_is_counted_in_missed(self):
        self.trades = self.make(2)
        self.market.upto = 6000
        with self.assertLogs(stream_trades.LOG, "WARNING") as logs:
            self.feed(1, 5001)
            self.pool.run()
        self.assertEqual(len(logs.output), 1)
        self.assertIn("2999 trades given up on", logs.output[0])
        self.assertEqual(self.market.from_ids(), [2, 1002])
        self.assertEqual(self.trades.missed(), {SYMBOL: 2999})
        self.assertEqual(self.flow(), expected([*range(1, 2002), 5001]))
        self.feed(5002)
        self.assertEqual(self.flow(), expected([*range(1, 2002), 5001, 5002]))
        self.assertEqual(self.pool.queue, [])

    def test_a_buffer_past_its_bound_is_given_up_on(self):
        self.market.failures = {1: BinanceError("down", kind=SERVER)}
        with mock.patch.object(stream_trades, "MAX_BUFFERED", 3), \
                self.assertLogs(stream_trades.LOG, "WARNING") as logs:
            self.feed(10, 20)
            self.pool.run()
            self.feed(21, 23, 24)
        self.assertIn("10 trades given up on", logs.output[-1])
        self.assertEqual(self.flow(), expected([10, 20, 21, 23, 24]))
        self.assertEqual(self.trades.missed(), {SYMBOL: 10})
        self.assertEqual(self.later.pending(), [])  # the retry was called off


class ReconnectTest(Fixture):
    """A new connection: nothing counted twice, nothing lost."""

    def test_reconnect_with_overlapping_ids_counts_each_trade_once(self):
        self.feed(*range(80, 91))
        self.trades.on_disconnect([STREAM])
        self.assertIsInstance(self.flow(), NotSynced)
        self.market.upto = 95
        self.trades.on_connect([STREAM])
        self.trades.on_live([STREAM])
        self.pool.run()  # the fill on connect: a short page, so complete up to now
        self.assertEqual(self.market.from_ids(), [91])
        self.assertEqual(self.flow(), expected(range(80, 96)))
        self.feed(*range(85, 100))  # the new connection overlaps what was counted
        self.assertEqual(self.flow(), expected(range(80, 100)))
        self.assertEqual(len(self.market.calls), 1)

    def test_reconnect_with_missing_ids_fills_the_gap(self):
        self.feed(*range(80, 91))
        self.reconnect()
        self.market.upto = 131
        self.feed(130, 131)  # before the connect fill ran: they wait for it
        self.assertIsInstance(self.flow(), NotSynced)
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [91])
        self.assertEqual(self.flow(), expected(range(80, 132)))
        self.feed(132)
        self.assertEqual(self.flow(), expected(range(80, 133)))

    def test_first_event_after_a_reconnect_without_a_gap_needs_no_rest(self):
        self.feed(80, 81)
        self.reconnect([STREAM])
        self.feed(81, 82)
        self.assertEqual(self.flow(), expected(range(80, 83)))
        self.pool.run()  # the connect fill was called off
        self.assertEqual(self.market.calls, [])

    def test_a_gap_found_after_the_connect_fill_is_filled_in_turn(self):
        self.feed(80)
        self.reconnect([STREAM])
        self.market.upto = 85
        self.pool.run()
        self.assertEqual(self.flow(), expected(range(80, 86)))
        self.market.upto = 90  # trades before the subscription took effect
        self.feed(89, 90)
        self.assertIsInstance(self.flow(), NotSynced)
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [81, 86])
        self.assertEqual(self.flow(), expected(range(80, 91)))

    def test_a_connect_fill_out_of_pages_waits_for_the_next_event(self):
        self.trades = self.make(2)
        self.feed(1)
        self.reconnect()
        self.market.upto = 5000
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [2, 1002])
        self.assertIsInstance(self.flow(), NotSynced)  # more trades wait at REST
        with self.assertLogs(stream_trades.LOG, "WARNING"):
            self.feed(5001)
            self.pool.run()
        self.assertEqual(self.market.from_ids(), [2, 1002, 2002, 3002])
        self.assertEqual(self.flow(), expected([*range(1, 4002), 5001]))
        self.assertEqual(self.trades.missed(), {SYMBOL: 999})

    def test_a_symbol_that_never_traded_counts_from_its_subscription(self):
        self.trades.on_connect()
        self.assertIsInstance(self.flow(), NotSynced)  # not subscribed yet
        self.trades.on_live()
        self.assertEqual(self.pool.queue, [])  # no id to fill from
        self.assertEqual(self.flow(), expected([]))  # no trade since it was subscribed
        self.feed(7)
        self.assertEqual(self.flow(), expected([7]))
        self.trades.on_disconnect()
        self.assertIsInstance(self.flow(), NotSynced)


class FailureTest(Fixture):
    """REST failures retried later; a stopping exporter starts nothing."""

    def test_rest_failure_is_retried_after_retry_after(self):
        self.market.upto = 300
        self.market.failures = {1: BinanceError("429", kind=RATE_LIMITED, status=429,
                                                retry_after=7.0)}
        with self.assertLogs(stream_trades.LOG, "WARNING"):
            self.feed(100, 200)
            self.pool.run()
        self.assertEqual([p.delay for p in self.later.pending()], [7.0])
        self.assertIsInstance(self.flow(), NotSynced)
        self.feed(201, 202)  # events keep waiting meanwhile
        self.assertEqual(self.pool.queue, [])
        self.assertEqual(self.later.fire(), 1)
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [101, 101])
        self.assertEqual(self.flow(), expected(range(100, 301)))

    def test_failures_without_retry_after_back_off_and_keep_pages_fetched(self):
        self.market.upto = 3000
        self.market.failures = {2: BinanceError("503", kind=SERVER, status=503)}
        with self.assertLogs(stream_trades.LOG, "WARNING"):
            self.feed(1, 2500)
            self.pool.run()  # the first page arrives, the second fails
        self.assertIsInstance(self.flow(), NotSynced)
        self.assertEqual(len(self.later.pending()), 1)
        self.assertGreaterEqual(self.later.pending()[0].delay, RETRY_FLOOR)
        self.later.fire()
        self.pool.run()
        self.assertEqual(self.market.from_ids(), [2, 1002, 1002, 2002])
        self.assertEqual(self.flow(), expected(range(1, 3001)))

    def test_a_malformed_page_is_retried(self):
        self.market.bad = {1}
        with self.assertLogs(stream_trades.LOG, "WARNING") as logs:
            self.feed(10, 20)
            self.pool.run()
        self.assertIn("expected an array", logs.output[0])
        self.later.fire()
        self.pool.run()
        self.assertEqual(self.flow(), expected(range(10, 101)))

    def test_a_stopped_pool_or_stop_ends_the_fills(self):
        pool = DaemonPool(1)
        pool.shutdown()
        self.trades = StreamTrades(self.market, pool, later=self.later)
        self.trades.track([SYMBOL])
        self.feed(10, 20)  # no RuntimeError: the exporter is stopping
        self.assertIsInstance(self.flow(), NotSynced)
        self.trades = self.make(20)
        self.market.failures = {1: BinanceError("down", kind=SERVER)}
        with self.assertLogs(stream_trades.LOG, "WARNING"):
            self.feed(10, 20)
            self.pool.run()
        self.trades.stop()
        self.assertEqual(self.later.pending(), [])
        self.trades.on_connect()
        self.trades.on_live()
        self.pool.run()
        self.assertEqual(len(self.market.calls), 1)


class RealPoolTest(unittest.TestCase):
    """A fill on the real DaemonPool's worker thread, waited for through its future."""

    def test_fill_on_a_worker_thread(self):
        real = DaemonPool(2)
        self.addCleanup(real.shutdown)
        futures: list[Future[Any]] = []

        class Recording:
            """Submits to the real pool and keeps the futures."""

            def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
                """Submit and remember."""
                futures.append(real.submit(function, *args))
                return futures[-1]

        market = Market(upto=1500)
        trades = StreamTrades(market, Recording())  # type: ignore[arg-type]
        trades.track([SYMBOL])
        trades.on_data(STREAM, event(1))
        trades.on_data(STREAM, event(1400))
        self.assertEqual(len(futures), 1)
        futures[0].result(timeout=10)
        self.assertEqual(trades.flows([SYMBOL])[SYMBOL], expected(range(1, 1501)))
        self.assertEqual(market.from_ids(), [2, 1002])


if __name__ == "__main__":
    unittest.main()
