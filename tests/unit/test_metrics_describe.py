"""Every collector names its families without collecting, and collects only those."""

import unittest
from decimal import Decimal as D

from prometheus_client import CollectorRegistry

from binance_exporter.binance.rest import ApiStats
from binance_exporter.market.fills import Fill
from binance_exporter.market.trades import SideTotals
from binance_exporter.market.types import SymbolInfo, Ticker24h
from binance_exporter.metrics.analytics import AnalyticsCollector
from binance_exporter.metrics.api import ApiCollector
from binance_exporter.metrics.exporter import ExporterCollector
from binance_exporter.metrics.market import MarketCollector
from binance_exporter.metrics.stream import StreamCollector
from binance_exporter.model import (
    Analytics,
    Answers,
    BookAnalytics,
    JobState,
    SideNotional,
    Snapshot,
    StreamView,
    TradeTotals,
)

FULL = Snapshot(
    answers=Answers(
        symbols={"BTCUSDT": SymbolInfo("BTCUSDT", "BTC", "USDT", "TRADING")},
        top_btc=(),
        top_usdt=(Ticker24h("BTCUSDT", D(1), D(2), 4242),),
        notional={"BTCUSDT": SideNotional(D(1), D(2))},
        spread_symbols=("BTCUSDT",),
        spreads={"BTCUSDT": D("0.01")},
        spread_ratios={"BTCUSDT": D("0.0000002")},
        deltas={"BTCUSDT": D("0.001")},
        vwap={"BTCUSDT": D(5)},
        vwap_averages={("BTCUSDT", "1m"): D(5)},
    ),
    jobs={"rankings": JobState(True, 1.0, 0.1)},
    skipped={("spreads", "crossed"): 1},
    analytics=Analytics(
        books={"BTCUSDT": BookAnalytics(
            fills={("buy", D(1)): Fill(D(1), D(1), D(1), D(1), D(0), 1, D(0), ())},
            bands={("bid", D("0.02")): D(1)},
        )},
        trades={"BTCUSDT": TradeTotals({"buy": SideTotals(1, 1, D(1), D(1))}, D(1))},
    ),
)


def unread():
    """Stands for a source the registry must not read while registering."""
    raise AssertionError("describe() read its source")


class DescribeTest(unittest.TestCase):
    """describe() against collect() for every collector, on values that fill every family."""

    def check(self, make, source):
        """`make(unread)` registers by describe alone; `make(source)` collects its names."""
        registry = CollectorRegistry(auto_describe=True)
        registry.register(make(unread))
        described = [family.name for family in make(unread).describe()]
        self.assertTrue(all(not family.samples for family in make(unread).describe()))
        collected = [family.name for family in make(source).collect()]
        self.assertEqual(collected, described)

    def test_exporter(self):
        self.check(ExporterCollector, lambda: FULL)

    def test_api(self):
        self.check(ApiCollector, lambda: ApiStats({("/api/v3/depth", "200"): 1}, 1, 6000, 0.0))

    def test_stream(self):
        self.check(StreamCollector, lambda: StreamView(True, 0, {"bookTicker": 1}, 1.0, {}, {}))

    def test_market(self):
        self.check(MarketCollector, lambda: FULL)

    def test_analytics(self):
        self.check(AnalyticsCollector, lambda: FULL)

    def test_collectors_share_no_name(self):
        registry = CollectorRegistry(auto_describe=True)
        for make in (ExporterCollector, ApiCollector, StreamCollector, MarketCollector,
                     AnalyticsCollector):
            registry.register(make(unread))  # raises DuplicateTimeseries on a clash


if __name__ == "__main__":
    unittest.main()
