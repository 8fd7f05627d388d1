"""The rankings and quotes jobs on canned answers: partial failures, skips, deltas, schedule."""

import threading
import unittest
from decimal import Decimal as D
from decimal import localcontext
from typing import Any

from binance_exporter.binance import rest
from binance_exporter.binance.backoff import retry_delay
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceError
from binance_exporter.config import (
    Config,
    RankingConfig,
    planned_weight_per_minute,
    rankings_weight,
)
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.jobs.scheduler import Jobs, Scheduler
from binance_exporter.market.numbers import CONTEXT
from binance_exporter.model import (
    ANALYTICS,
    RANKINGS,
    SPREADS,
    SideNotional,
    Snapshot,
    SnapshotStore,
)
from binance_exporter.sources.rest import RestSource


def symbol(name: str, base: str, quote: str, status: str = "TRADING") -> dict:
    """An exchangeInfo symbol entry."""
    return {"symbol": name, "status": status, "baseAsset": base, "quoteAsset": quote}


EXCHANGE_INFO = {
    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                    "limit": 6000}],
    "symbols": [
        symbol("ETHBTC", "ETH", "BTC"),
        symbol("BNBBTC", "BNB", "BTC"),
        symbol("BTCUSDT", "BTC", "USDT"),
        symbol("ETHUSDT", "ETH", "USDT"),
        symbol("OLDUSDT", "OLD", "USDT", "BREAK"),
    ],
}


def mini(name: str, volume: str, quote_volume: str, count: int) -> dict:
    """A MINI 24 h ticker entry."""
    return {"symbol": name, "volume": volume, "quoteVolume": quote_volume, "count": count}


TICKERS = [
    mini("ETHBTC", "100", "6", 10),
    mini("BNBBTC", "200", "4", 10),
    mini("BTCUSDT", "5", "300000", 900),
    mini("ETHUSDT", "50", "150000", 1000),
    mini("OLDUSDT", "1", "1", 99999),
]


def top(name: str, bid: str, ask: str) -> dict:
    """A bookTicker entry."""
    return {"symbol": name, "bidPrice": bid, "bidQty": "1", "askPrice": ask, "askQty": "1"}


class StubClient:
    """Duck-types BinanceClient with answers set per test."""

    def __init__(self) -> None:
        self.books: dict[str, Any] = {
            "ETHBTC": {"lastUpdateId": 1, "bids": [["0.05", "10"], ["0.04", "5"]],
                       "asks": [["0.06", "10"]]},
            "BNBBTC": {"lastUpdateId": 1, "bids": [["0.01", "100"]], "asks": [["0.02", "1"]]},
        }
        self.tops = {"BTCUSDT": top("BTCUSDT", "100.00", "100.10"),
                     "ETHUSDT": top("ETHUSDT", "10.00", "10.01")}
        self.failures: dict[str, BinanceError] = {}
        self.calls: list[tuple[str, Any]] = []
        self.limit: int | None = None
        self.lock = threading.Lock()

    def _maybe_fail(self, what: str) -> None:
        with self.lock:
            self.calls.append((what, None))
        if what in self.failures:
            raise self.failures[what]

    def exchange_info(self):
        """Canned exchangeInfo."""
        self._maybe_fail("exchange_info")
        return EXCHANGE_INFO

    def tickers_24h(self):
        """Canned 24 h tickers."""
        self._maybe_fail("tickers_24h")
        return TICKERS

    def depth(self, name: str, _limit: int):
        """Canned depth of one symbol."""
        self._maybe_fail(f"depth {name}")
        return self.books[name]

    def book_tickers(self, symbols):
        """Canned bookTicker; an unknown symbol in a list fails the call, as on Binance."""
        self._maybe_fail("book_tickers all" if symbols is None else "book_tickers")
        if symbols is None:
            return list(self.tops.values())
        missing = [s for s in symbols if s not in self.tops]
        if missing:
            raise BinanceError("invalid", kind=rest.CLIENT, status=400, code=-1121)
        return [self.tops[s] for s in symbols]

    def set_weight_limit(self, limit):
        """Remember the announced limit."""
        self.limit = limit

    @staticmethod
    def blocked_for() -> float:
        """Never backing off."""
        return 0.0


def server_error() -> BinanceError:
    """A 5xx as the client reports it."""
    return BinanceError("HTTP 503", kind=rest.SERVER, status=503)


class RefreshTestCase(unittest.TestCase):
    """The rankings and quotes jobs over the stub client, REST source."""
    def setUp(self) -> None:
        self.client = StubClient()
        self.store = SnapshotStore()
        config = RankingConfig(top_n=2, depth_levels=200)
        pool = DaemonPool(4)
        self.addCleanup(pool.shutdown)
        self.ranker = RankingsJob(self.client, pool, self.store, config)
        self.quotes = QuotesJob(RestSource(self.client, pool), pool, self.store, config)
        self.jobs = Jobs(rankings=self.rankings, spreads=self.quotes.refresh_spreads,
                         answered=lambda: self.store.current().answers is not None,
                         blocked_for=self.client.blocked_for)

    def rankings(self):
        """A rankings run and the reads it names, as the app composes them."""
        ranking = self.ranker.run()
        return self.store.current() if ranking is None else self.quotes.with_ranking(ranking)


class RankingsTest(RefreshTestCase):
    """The rankings job (all four questions)."""
    def test_answers_all_questions(self):
        snapshot = self.rankings()
        answers = snapshot.answers
        self.assertTrue(snapshot.ready and snapshot.up)
        self.assertEqual([t.symbol for t in answers.top_btc], ["ETHBTC", "BNBBTC"])
        self.assertEqual([t.symbol for t in answers.top_usdt], ["ETHUSDT", "BTCUSDT"])
        # 0.05*10 + 0.04*5 = 0.7 ; asks 0.06*10 = 0.6
        self.assertEqual(answers.notional["ETHBTC"], SideNotional(D("0.7"), D("0.6")))
        self.assertEqual(answers.spreads, {"BTCUSDT": D("0.10"), "ETHUSDT": D("0.01")})
        self.assertEqual(answers.deltas, {"BTCUSDT": 0, "ETHUSDT": 0})
        self.assertEqual(set(answers.symbols), {"ETHBTC", "BNBBTC", "BTCUSDT", "ETHUSDT"})
        self.assertEqual(self.client.limit, 6000)

    def test_vwap_mid_from_the_depth_snapshots(self):
        answers = self.rankings().answers
        # bids: (0.05 x 10 + 0.04 x 5) / 15 = 0.7 / 15; asks: 0.06
        with localcontext(CONTEXT):
            expected = (D("0.7") / 15 + D("0.06")) / 2
        self.assertEqual(answers.vwap["ETHBTC"], expected)
        self.assertEqual(answers.vwap_averages[("ETHBTC", "1m")], expected)
        self.assertNotIn("BTCUSDT", answers.vwap)  # no depth is read for spread symbols

    def test_failed_first_round_keeps_previous_answers(self):
        first = self.rankings()
        self.client.failures["tickers_24h"] = server_error()
        second = self.rankings()
        self.assertIs(second.answers, first.answers)
        self.assertFalse(second.jobs[RANKINGS].success)
        self.assertEqual(second.jobs[RANKINGS].last_success, first.jobs[RANKINGS].last_success)
        self.assertFalse(second.up)
        self.assertTrue(second.ready)
        self.assertIn("HTTP 503", second.jobs[RANKINGS].error)

    def test_failure_before_any_success_is_not_ready(self):
        self.client.failures["exchange_info"] = server_error()
        snapshot = self.rankings()
        self.assertIsNone(snapshot.answers)
        self.assertFalse(snapshot.ready)

    def test_delisted_symbol_is_dropped_not_fatal(self):
        self.client.failures["depth BNBBTC"] = BinanceError("x", kind=rest.CLIENT, code=-1121)
        snapshot = self.rankings()
        self.assertTrue(snapshot.jobs[RANKINGS].success)
        self.assertIn("ETHBTC", snapshot.answers.notional)
        self.assertNotIn("BNBBTC", snapshot.answers.notional)
        self.assertEqual(snapshot.skipped[(RANKINGS, "invalid_symbol")], 1)

    def test_transient_depth_failure_keeps_previous_value_and_fails_job(self):
        first = self.rankings()
        self.client.failures["depth ETHBTC"] = server_error()
        self.client.books["BNBBTC"] = {"lastUpdateId": 2, "bids": [["0.01", "1"]], "asks": []}
        second = self.rankings()
        self.assertFalse(second.jobs[RANKINGS].success)
        self.assertEqual(second.answers.notional["ETHBTC"], first.answers.notional["ETHBTC"])
        # the one-sided book: bids kept, asks skipped (not 0) and counted
        self.assertEqual(second.answers.notional["BNBBTC"], SideNotional(D("0.01"), None))
        self.assertEqual(second.skipped[(RANKINGS, "one_sided")], 1)

    def test_empty_and_crossed_books_are_skipped(self):
        self.client.books["ETHBTC"] = {"lastUpdateId": 2, "bids": [], "asks": []}
        self.client.books["BNBBTC"] = {"lastUpdateId": 2, "bids": [["3", "1"]],
                                       "asks": [["2", "1"]]}
        snapshot = self.rankings()
        self.assertEqual(snapshot.answers.notional, {})
        self.assertEqual(snapshot.skipped[(RANKINGS, "empty")], 1)
        self.assertEqual(snapshot.skipped[(RANKINGS, "crossed")], 1)

    def test_malformed_depth_counts_as_failure(self):
        self.client.books["ETHBTC"] = {"bids": []}
        snapshot = self.rankings()
        self.assertFalse(snapshot.jobs[RANKINGS].success)
        self.assertNotIn("ETHBTC", snapshot.answers.notional)


class SpreadsTest(RefreshTestCase):
    """The spreads job."""
    def test_needs_rankings_first(self):
        with self.assertRaises(RuntimeError):
            self.quotes.refresh_spreads()

    def test_deltas_follow_the_market(self):
        self.rankings()
        self.client.tops["BTCUSDT"] = top("BTCUSDT", "100.00", "100.25")
        snapshot = self.quotes.refresh_spreads()
        self.assertEqual(snapshot.answers.spreads["BTCUSDT"], D("0.25"))
        self.assertEqual(snapshot.answers.deltas["BTCUSDT"], D("0.15"))
        self.assertEqual(snapshot.answers.deltas["ETHUSDT"], 0)
        self.client.tops["BTCUSDT"] = top("BTCUSDT", "100.00", "100.05")
        snapshot = self.quotes.refresh_spreads()
        self.assertEqual(snapshot.answers.deltas["BTCUSDT"], D("0.20"))

    def test_one_request_per_refresh(self):
        self.rankings()
        self.client.calls.clear()
        self.quotes.refresh_spreads()
        self.assertEqual(self.client.calls, [("book_tickers", None)])

    def test_failure_keeps_values_and_marks_job(self):
        first = self.rankings()
        self.client.failures["book_tickers"] = server_error()
        snapshot = self.quotes.refresh_spreads()
        self.assertFalse(snapshot.jobs[SPREADS].success)
        self.assertTrue(snapshot.jobs[RANKINGS].success)
        self.assertFalse(snapshot.up)
        self.assertEqual(snapshot.answers.spreads, first.answers.spreads)
        self.assertEqual(snapshot.answers.deltas, first.answers.deltas)

    def test_vanished_symbol_falls_back_to_all_symbols_request(self):
        self.rankings()
        del self.client.tops["ETHUSDT"]
        self.client.calls.clear()
        snapshot = self.quotes.refresh_spreads()
        self.assertEqual([c[0] for c in self.client.calls], ["book_tickers", "book_tickers all"])
        self.assertEqual(set(snapshot.answers.spreads), {"BTCUSDT"})
        self.assertTrue(snapshot.jobs[SPREADS].success)
        self.assertEqual(snapshot.skipped[(SPREADS, "invalid_symbol")], 1)

    def test_crossed_quote_is_skipped_not_negative(self):
        self.rankings()
        self.client.tops["BTCUSDT"] = top("BTCUSDT", "101", "100")
        snapshot = self.quotes.refresh_spreads()
        self.assertNotIn("BTCUSDT", snapshot.answers.spreads)
        self.assertEqual(snapshot.skipped[(SPREADS, "crossed")], 1)


class PlanTest(unittest.TestCase):
    """Request-weight planning."""
    def test_default_start_up_weight(self):
        # exchangeInfo 20 + 24hr all 80 + 5 depths at limit 200 (25 each) + bookTicker 4
        self.assertEqual(rankings_weight(RankingConfig()), 229)

    def test_planned_weight_per_minute(self):
        # one rankings run and six spread runs a minute: 229 + 6 x 4
        self.assertEqual(planned_weight_per_minute(Config(analytics=None)), 253)


class SchedulerTest(RefreshTestCase):
    """The job schedule."""
    def test_retry_delay_grows_and_is_capped(self):
        self.assertEqual(retry_delay(1, 30, rng=lambda: 1.0), 1.0)
        self.assertEqual(retry_delay(3, 30, rng=lambda: 1.0), 4.0)
        self.assertEqual(retry_delay(3, 30, rng=lambda: 0.0), 2.0)
        self.assertEqual(retry_delay(20, 30, rng=lambda: 1.0), 30.0)

    def test_runs_rankings_then_spreads_until_stopped(self):
        stop = threading.Event()
        seen: list[str] = []

        def on_spreads(_snapshot):
            seen.append("spreads")
            if seen.count("spreads") >= 3:
                stop.set()

        scheduler = Scheduler(self.jobs, update_interval=0.01, refresh_interval=60,
                              on_rankings=lambda s: seen.append("rankings"),
                              on_spreads=on_spreads)
        thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
        thread.start()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertEqual(seen, ["rankings", "spreads", "spreads", "spreads"])

    def test_failed_rankings_are_retried(self):
        self.client.failures["exchange_info"] = server_error()
        stop = threading.Event()
        scheduler = Scheduler(self.jobs, update_interval=0.01, refresh_interval=0.02,
                              on_rankings=lambda s: stop.set())
        thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
        thread.start()
        threading.Timer(0.05, self.client.failures.clear).start()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        attempts = [c for c in self.client.calls if c[0] == "exchange_info"]
        self.assertGreaterEqual(len(attempts), 2)
        self.assertTrue(self.store.current().ready)

    def test_a_failed_free_analytics_run_is_tried_again_soon(self):
        stop = threading.Event()
        runs: list[bool] = []

        def analytics() -> Snapshot:
            runs.append(True)
            if len(runs) >= 3:
                stop.set()
            return self.store.record({ANALYTICS: (RuntimeError("resyncing"), 0.0)})

        # A minute's interval: only the retry can run it three times.
        scheduler = Scheduler(self.jobs, update_interval=60, refresh_interval=60,
                              analytics=(analytics, 60.0), analytics_retry=0.01)
        thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
        thread.start()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertEqual(len(runs), 3)

if __name__ == "__main__":
    unittest.main()
