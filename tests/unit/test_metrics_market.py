"""MarketCollector: the answers as rankings, notional, spreads and VWAP."""

import unittest
from decimal import Decimal as D

from prometheus_client import CollectorRegistry

from binance_exporter.market.types import SymbolInfo, Ticker24h
from binance_exporter.metrics.market import MarketCollector
from binance_exporter.model import Answers, SideNotional, Snapshot
from tests.support import registry_with

ANSWERS = Answers(
    symbols={
        "ETHBTC": SymbolInfo("ETHBTC", "ETH", "BTC", "TRADING"),
        "BTCUSDT": SymbolInfo("BTCUSDT", "BTC", "USDT", "TRADING"),
    },
    # XRPBTC is ranked but belongs to another shard: it has no series here.
    top_btc=(Ticker24h("XRPBTC", D(1), D(9), 3), Ticker24h("ETHBTC", D(10), D("123.5"), 7)),
    top_usdt=(Ticker24h("BTCUSDT", D(1), D(2), 4242),),
    notional={"BTCUSDT": SideNotional(D("1000.5"), None)},
    spread_symbols=("BTCUSDT",),
    spreads={"BTCUSDT": D("0.01")},
    spread_ratios={"BTCUSDT": D("0.0000002")},
    deltas={},
    vwap={"BTCUSDT": D("50000.5")},
    vwap_averages={("BTCUSDT", "30s"): D("50000.1")},
)


def registry_of(snapshot: Snapshot) -> CollectorRegistry:
    """A registry holding only a MarketCollector that reads `snapshot`."""
    return registry_with(MarketCollector(lambda: snapshot))


class MarketCollectorTest(unittest.TestCase):
    """What the answers look like as metrics."""

    def setUp(self):
        self.registry = registry_of(Snapshot(answers=ANSWERS))

    def test_symbol_info(self):
        labels = {"symbol": "ETHBTC", "base_asset": "ETH", "quote_asset": "BTC",
                  "status": "TRADING"}
        self.assertEqual(self.registry.get_sample_value("binance_symbol_info", labels), 1)

    def test_rankings_count_other_shards_symbols(self):
        rank = self.registry.get_sample_value(
            "binance_top_symbol_rank",
            {"symbol": "ETHBTC", "quote_asset": "BTC", "ranking": "quote_volume"},
        )
        self.assertEqual(rank, 2)
        self.assertIsNone(
            self.registry.get_sample_value("binance_ticker_24h_quote_volume", {"symbol": "XRPBTC"})
        )
        self.assertEqual(self.registry.get_sample_value(
            "binance_ticker_24h_quote_volume", {"symbol": "ETHBTC"}), 123.5)
        self.assertEqual(self.registry.get_sample_value(
            "binance_top_symbol_rank",
            {"symbol": "BTCUSDT", "quote_asset": "USDT", "ranking": "trades"}), 1)
        self.assertEqual(
            self.registry.get_sample_value("binance_ticker_24h_trades", {"symbol": "BTCUSDT"}), 4242
        )

    def test_a_skipped_side_has_no_notional(self):
        self.assertEqual(self.registry.get_sample_value(
            "binance_order_book_notional", {"symbol": "BTCUSDT", "side": "bid"}), 1000.5)
        self.assertIsNone(self.registry.get_sample_value(
            "binance_order_book_notional", {"symbol": "BTCUSDT", "side": "ask"}))

    def test_spreads_with_delta_zero_on_the_first_refresh(self):
        symbol = {"symbol": "BTCUSDT"}
        self.assertEqual(self.registry.get_sample_value("binance_spread", symbol), 0.01)
        self.assertEqual(self.registry.get_sample_value("binance_spread_ratio", symbol), 2e-07)
        self.assertEqual(self.registry.get_sample_value("binance_spread_delta", symbol), 0)

    def test_vwap_and_its_averages(self):
        self.assertEqual(
            self.registry.get_sample_value("binance_vwap_price", {"symbol": "BTCUSDT"}), 50000.5
        )
        self.assertEqual(self.registry.get_sample_value(
            "binance_vwap_price_average", {"symbol": "BTCUSDT", "window": "30s"}), 50000.1)

    def test_no_family_before_the_first_answers(self):
        self.assertEqual(list(registry_of(Snapshot()).collect()), [])


if __name__ == "__main__":
    unittest.main()
