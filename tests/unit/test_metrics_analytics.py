"""AnalyticsCollector: simulated fills, depth bands and taker flow."""

import unittest
from decimal import Decimal as D

from prometheus_client import CollectorRegistry

from binance_exporter.market.fills import Fill
from binance_exporter.market.trades import SideTotals
from binance_exporter.metrics.analytics import AnalyticsCollector
from binance_exporter.model import Analytics, BookAnalytics, Snapshot, TradeTotals
from tests.support import registry_with

COMPLETE = Fill(D(1000), D(1000), D("0.02"), D("50001"), D("0.00002"), 2, D(0), ())
PARTIAL = Fill(D("1E+6"), D(500), D("0.01"), D("50010"), D("0.0002"), 9, D("999500"), ())
NO_MID = Fill(D(100), D(100), D("0.002"), D("50000"), None, 1, D(0), ())

ANALYTICS = Analytics(
    books={"BTCUSDT": BookAnalytics(
        fills={("buy", D(1000)): COMPLETE, ("sell", D("1E+6")): PARTIAL, ("sell", D(100)): NO_MID},
        bands={("bid", D("0.02")): D("12345.6")},
    )},
    trades={
        "BTCUSDT": TradeTotals({"buy": SideTotals(3, 2, D("0.5"), D("25000"))}, D("50000")),
        "ETHBTC": TradeTotals({}, None),
    },
)


def registry_of(snapshot: Snapshot) -> CollectorRegistry:
    """A registry holding only an AnalyticsCollector that reads `snapshot`."""
    return registry_with(AnalyticsCollector(lambda: snapshot))


class AnalyticsCollectorTest(unittest.TestCase):
    """What the analytics look like as metrics."""

    def setUp(self):
        self.registry = registry_of(Snapshot(analytics=ANALYTICS))

    def fill(self, name: str, side: str, notional: str) -> float | None:
        """One fill sample of BTCUSDT."""
        labels = {"symbol": "BTCUSDT", "side": side, "notional": notional}
        return self.registry.get_sample_value(name, labels)

    def test_a_complete_fill_has_a_price_and_a_slippage(self):
        self.assertEqual(self.fill("binance_fill_average_price", "buy", "1000"), 50001)
        self.assertEqual(self.fill("binance_fill_slippage_ratio", "buy", "1000"), 2e-05)
        self.assertEqual(self.fill("binance_fill_levels", "buy", "1000"), 2)
        self.assertIsNone(self.fill("binance_fill_unfilled_notional", "buy", "1000"))

    def test_an_order_larger_than_the_book_has_only_levels_and_unfilled(self):
        # The label is plain digits: 1E+6 is written 1000000.
        self.assertEqual(self.fill("binance_fill_unfilled_notional", "sell", "1000000"), 999500)
        self.assertEqual(self.fill("binance_fill_levels", "sell", "1000000"), 9)
        self.assertIsNone(self.fill("binance_fill_average_price", "sell", "1000000"))

    def test_no_slippage_without_a_mid(self):
        self.assertEqual(self.fill("binance_fill_average_price", "sell", "100"), 50000)
        self.assertIsNone(self.fill("binance_fill_slippage_ratio", "sell", "100"))

    def test_depth_band(self):
        self.assertEqual(self.registry.get_sample_value(
            "binance_order_book_depth_notional",
            {"symbol": "BTCUSDT", "side": "bid", "band": "0.02"}), 12345.6)

    def test_trade_flow(self):
        buy = {"symbol": "BTCUSDT", "taker_side": "buy"}
        self.assertEqual(self.registry.get_sample_value("binance_trades_total", buy), 3)
        self.assertEqual(self.registry.get_sample_value("binance_traded_base_volume_total", buy),
                         0.5)
        self.assertEqual(self.registry.get_sample_value("binance_traded_quote_volume_total", buy),
                         25000)
        self.assertEqual(
            self.registry.get_sample_value("binance_last_trade_price", {"symbol": "BTCUSDT"}), 50000
        )
        self.assertIsNone(
            self.registry.get_sample_value("binance_last_trade_price", {"symbol": "ETHBTC"})
        )

    def test_no_family_without_analytics(self):
        self.assertEqual(list(registry_of(Snapshot()).collect()), [])


if __name__ == "__main__":
    unittest.main()
