"""Conversion to the reference currency, with hand-checked rates and what is left out."""

import unittest
from decimal import Decimal as D
from decimal import localcontext

from binance_exporter.config import AnalyticsConfig
from binance_exporter.jobs.analytics import AnalyticsJob
from binance_exporter.jobs.reference import ReferencePrices
from binance_exporter.market import conversion
from binance_exporter.market.conversion import Leg
from binance_exporter.market.fills import simulate_fill
from binance_exporter.market.numbers import CONTEXT
from binance_exporter.market.types import BookTop, ExchangeInfo, OrderBook, SymbolInfo
from binance_exporter.model import SideNotional, SnapshotStore

SYMBOLS = {s.symbol: s for s in (
    SymbolInfo("BTCUSDT", "BTC", "USDT", "TRADING"),
    SymbolInfo("ETHBTC", "ETH", "BTC", "TRADING"),
    SymbolInfo("USDTTRY", "USDT", "TRY", "TRADING"),
    SymbolInfo("BTCUSDC", "BTC", "USDC", "TRADING"),
    SymbolInfo("ETHFDUSD", "ETH", "FDUSD", "TRADING"),
    SymbolInfo("BTCEUR", "BTC", "EUR", "BREAK"),  # not trading: converts nothing
)}


def top(symbol: str, bid: str, ask: str) -> BookTop:
    """Best quotes with a quantity of 1 on each side."""
    return BookTop(symbol, D(bid), D(ask))


TOPS = {
    "BTCUSDT": top("BTCUSDT", "60000", "60002"),  # mid 60001
    "USDTTRY": top("USDTTRY", "34.4", "34.6"),  # mid 34.5
    "BTCUSDC": top("BTCUSDC", "60000", "60010"),  # mid 60005
}


class RouteTest(unittest.TestCase):
    """Which books convert each asset to USDT."""

    def test_routes_direct_inverse_one_hop_and_none(self):
        routes = conversion.find_routes(SYMBOLS, ["USDT", "BTC", "TRY", "USDC", "FDUSD", "EUR"],
                                        "USDT")
        self.assertEqual(routes, {
            "USDT": (),
            "BTC": (Leg("BTCUSDT", inverse=False),),
            "TRY": (Leg("USDTTRY", inverse=True),),
            # USDC -> BTC through BTCUSDC (USDC is its quote), then BTC -> USDT.
            "USDC": (Leg("BTCUSDC", inverse=True), Leg("BTCUSDT", inverse=False)),
        })  # FDUSD trades only against ETH; EUR's only book is not trading
        self.assertEqual(conversion.route_symbols(routes.values()),
                         ["BTCUSDT", "USDTTRY", "BTCUSDC"])

    def test_no_hop_when_the_reference_is_the_hub(self):
        routes = conversion.find_routes(SYMBOLS, ["ETH", "USDC", "TRY"], "BTC")
        self.assertEqual(routes, {"ETH": (Leg("ETHBTC", inverse=False),),
                                  "USDC": (Leg("BTCUSDC", inverse=True),)})


class RateTest(unittest.TestCase):
    """Rates from the mids: reference units per unit of the asset."""

    routes = conversion.find_routes(SYMBOLS, ["USDT", "BTC", "TRY", "USDC", "FDUSD"], "USDT")

    def test_direct_pair_is_its_mid(self):
        self.assertEqual(conversion.route_rate(self.routes["BTC"], TOPS), D(60001))

    def test_inverse_pair_is_one_over_its_mid(self):
        rate = conversion.route_rate(self.routes["TRY"], TOPS)
        # 1 / 34.5 = 0.0289855072463768115942028985507246376811594202898550724637681...
        self.assertEqual(rate, D("0.0289855072463768115942028985507246376811594202898550724637681"))
        self.assertAlmostEqual(conversion.to_reference(D("34.5"), rate), D(1), delta=D("1e-55"))

    def test_one_hop_via_btc(self):
        rate = conversion.route_rate(self.routes["USDC"], TOPS)
        # 60001 / 60005 = 0.99993333888842596450295808682609782518123489709190900758270...
        with localcontext(CONTEXT):
            self.assertEqual(rate, D(1) / D(60005) * D(60001))
        self.assertEqual(rate.quantize(D("1e-12")), D("0.999933338888"))

    def test_reference_itself_is_one(self):
        self.assertEqual(conversion.route_rate(self.routes["USDT"], {}), D(1))

    def test_missing_path_has_no_rate(self):
        self.assertNotIn("FDUSD", conversion.rates(self.routes, TOPS))

    def test_crossed_empty_or_unread_converting_book_gives_no_rate(self):
        for bad in (top("BTCUSDT", "60002", "60001"), top("BTCUSDT", "0", "0"),
                    top("BTCUSDT", "60000", "0"), RuntimeError("not in sync")):
            tops = {**TOPS, "BTCUSDT": bad}
            rates = conversion.rates(self.routes, tops)
            # BTC and USDC both go through BTCUSDT; TRY does not.
            self.assertEqual(sorted(rates), ["TRY", "USDT"], bad)
        self.assertEqual(sorted(conversion.rates(self.routes, {})), ["USDT"])

    def test_amounts_both_ways(self):
        self.assertEqual(conversion.to_reference(D("0.5"), D(60001)), D("30000.5"))
        # 1000 / 60001 to 60 significant digits
        self.assertEqual(conversion.from_reference(D(1000), D(60001)),
                         D("0.0166663888935184413593106781553640772653789103514941417643039"))


class ReferencePricesTest(unittest.TestCase):
    """The quotes job's part: whose books ride along, notionals converted or counted."""

    def setUp(self):
        self.store = SnapshotStore()
        self.prices = ReferencePrices("USDT", self.store, also=("USDTTRY",))
        self.prices.plan(ExchangeInfo(SYMBOLS, 6000), ["ETHBTC", "ETHFDUSD", "GONEUSDT"])

    def test_plan_names_the_converting_books(self):
        self.assertEqual(self.prices.quote_assets,
                         {"ETHBTC": "BTC", "ETHFDUSD": "FDUSD", "USDTTRY": "TRY"})
        self.assertEqual(sorted(self.prices.symbols), ["BTCUSDT", "USDTTRY"])

    def test_notionals_converted_or_left_out_and_counted(self):
        rates = self.prices.rates(TOPS)
        self.assertEqual(rates["BTC"], D(60001))
        converted = self.prices.notional({"ETHBTC": SideNotional(D(2), None),
                                          "ETHFDUSD": SideNotional(D(5), D(6))}, rates, "spreads")
        self.assertEqual(converted, {"ETHBTC": SideNotional(D(120002), None)})
        self.assertEqual(self.store.current().skipped, {})
        self.store.record({})
        self.assertEqual(self.store.current().skipped, {("spreads", "no_reference_price"): 2})


class ConvertedFillTest(unittest.TestCase):
    """The analytics job sizes each order in USDT and walks the BTC book with it."""

    def test_btc_book_fills_the_converted_size(self):
        store = SnapshotStore()
        config = AnalyticsConfig(fill_notionals=(D(1000),), depth_bands=(D("0.01"),),
                                 depth_limit=10)
        job = AnalyticsJob(None, None, store, config, lambda _s: True)  # type: ignore[arg-type]
        book = OrderBook(1, bids=((D("0.05"), D(10)),), asks=((D("0.051"), D(1)),
                                                               (D("0.052"), D(10))))
        analytics = job._book(book, D(60001))  # pylint: disable=protected-access
        # 0.0166663... BTC: less than the first ask level holds
        size = D("0.0166663888935184413593106781553640772653789103514941417643039")
        expected = simulate_fill(book.asks, size, D("0.0505"))
        self.assertEqual(analytics.fills[("buy", D(1000))], expected)
        self.assertEqual(expected.levels_used, 1)
        self.assertEqual(analytics.bands_reference[("bid", D("0.01"))], D("0.5") * D(60001))
        unconverted = job._book(book, None)  # pylint: disable=protected-access
        self.assertEqual((unconverted.fills, unconverted.bands_reference), ({}, {}))
        self.assertEqual(unconverted.bands[("ask", D("0.01"))], D("0.051"))
        store.record({})
        # Two fills and two converted bands left out.
        self.assertEqual(store.current().skipped[("analytics", "no_reference_price")], 4)


if __name__ == "__main__":
    unittest.main()
