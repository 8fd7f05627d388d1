"""Analytics served by the exporter process, checked against the fake market's own data."""

from __future__ import annotations

import json
import unittest
from decimal import Decimal

from tests.support import run_once, sample, taker_totals, trades_counted, wait_until
from tests.integration.test_end_to_end import FakeTestCase

# Rankings rarely, analytics often; 2 ranked symbols each keep the plan small.
ANALYTICS_FAST = ("--top-n", "2", "--update-interval", "1", "--refresh-interval", "30",
                  "--analytics-interval", "1", "--analytics-depth-limit", "100")


def walk(levels: list[list[str]], notional: Decimal) -> tuple[Decimal, int] | None:
    """Average price and levels used of a market order of `notional`; None if unfilled."""
    left, qty, used = notional, Decimal(0), 0
    for price_text, qty_text in levels:
        price, available = Decimal(price_text), Decimal(qty_text)
        used += 1
        if price * available >= left:
            qty += left / price
            return notional / qty, used
        left -= price * available
        qty += available
    return None


class AnalyticsEndToEndTest(FakeTestCase):
    """Fills, depth bands, trade flow and --symbols, end to end."""

    def test_fills_and_bands_match_an_independent_walk(self):  # pylint: disable=too-many-locals
        exporter = self.exporter(*ANALYTICS_FAST)
        exporter.wait_ready()
        symbol = "SOLUSDT"  # first by trades in the fake market

        def served():
            now = exporter.scrape()
            value = sample(now, "binance_fill_average_price", symbol=symbol, side="buy",
                           notional="1000")
            return now if value is not None else None

        samples = wait_until(served, timeout=10)
        depth = self.market.depth(symbol, 100)
        best_bid, best_ask = Decimal(depth["bids"][0][0]), Decimal(depth["asks"][0][0])
        mid = (best_bid + best_ask) / 2
        for side, levels in (("buy", depth["asks"]), ("sell", depth["bids"])):
            for notional in ("1000", "10000"):
                expected = walk(levels, Decimal(notional))
                self.assertIsNotNone(expected)
                average, used = expected
                key = {"symbol": symbol, "side": side, "notional": notional}
                self.assertAlmostEqual(sample(samples, "binance_fill_average_price", **key),
                                       float(average), places=6)
                self.assertEqual(sample(samples, "binance_fill_levels", **key), used)
                self.assertAlmostEqual(sample(samples, "binance_fill_slippage_ratio", **key),
                                       float(abs(average - mid) / mid), places=12)
        band = Decimal("0.001")
        bids = sum((Decimal(p) * Decimal(q) for p, q in depth["bids"]
                    if Decimal(p) >= mid * (1 - band)), Decimal(0))
        asks = sum((Decimal(p) * Decimal(q) for p, q in depth["asks"]
                    if Decimal(p) <= mid * (1 + band)), Decimal(0))
        self.assertAlmostEqual(sample(samples, "binance_order_book_depth_notional",
                                      symbol=symbol, side="bid", band="0.001"), float(bids))
        self.assertAlmostEqual(sample(samples, "binance_order_book_depth_notional",
                                      symbol=symbol, side="ask", band="0.001"), float(asks))
        # 100 levels do not reach 2 % from the mid of this deep book: left out, counted.
        self.assertIsNone(sample(samples, "binance_order_book_depth_notional", symbol=symbol,
                                 side="bid", band="0.02"))
        self.assertGreater(sample(samples, "binance_skipped_values_total", job="analytics",
                                  reason="beyond_snapshot"), 0)
        self.assertEqual(sample(samples, "binance_refresh_success", job="analytics"), 1)

    def test_trade_counters_follow_the_trades_exactly(self):
        exporter = self.exporter(*ANALYTICS_FAST)
        exporter.wait_ready()
        symbol = "SOLUSDT"
        history = self.market.agg_trade_history(symbol)
        start_id = history[-1]["a"]  # counting starts with the latest trade
        wait_until(lambda: sample(exporter.scrape(), "binance_last_trade_price",
                                  symbol=symbol), timeout=10)
        self.market.step(5)
        trades = [t for t in self.market.agg_trade_history(symbol) if t["a"] >= start_id]
        expected = taker_totals(trades)

        def counted():
            now = exporter.scrape()
            return now if trades_counted(now, symbol, expected) else None

        samples = wait_until(counted, timeout=10)  # trades and volumes, both sides
        self.assertEqual(sample(samples, "binance_last_trade_price", symbol=symbol),
                         float(trades[-1]["p"]))

    def test_once_prints_the_fill_splits(self):
        result = run_once(self.fake.url, "--output", "json", "--top-n", "2",
                          "--analytics-depth-limit", "100")
        self.assertEqual(result.returncode, 0, result.stderr)
        fills = json.loads(result.stdout)["fills"]
        order = fills["SOLUSDT"]["buy"]["1000"]
        self.assertAlmostEqual(sum(level["notional"] for level in order["levels"]), 1000)
        depth = self.market.depth("SOLUSDT", 100)
        self.assertEqual(order["levels"][0]["price"], float(depth["asks"][0][0]))

    def test_unknown_symbol_is_refused_with_exit_2(self):
        result = run_once(self.fake.url, "--symbols", "NOSUCHCOIN")
        self.assertEqual(result.returncode, 2)
        self.assertIn("NOSUCHCOIN", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1)
        exporter = self.exporter("--symbols", "NOSUCHCOIN")
        self.assertEqual(exporter.process.wait(10), 2)

    def test_extra_symbols_get_analytics(self):
        exporter = self.exporter(*ANALYTICS_FAST, "--analytics-interval", "2",
                                 "--symbols", "BTCTRY")
        exporter.wait_ready()
        wait_until(lambda: sample(exporter.scrape(), "binance_fill_levels", symbol="BTCTRY",
                                  side="buy", notional="1000"), timeout=10)


if __name__ == "__main__":
    unittest.main()
