"""The reference currency end to end: converted order sizes, rates, and what they cost."""

from __future__ import annotations

import json
import unittest
from decimal import Decimal, localcontext

from tests.integration.test_analytics_end_to_end import walk
from tests.integration.test_end_to_end import FakeTestCase
from tests.support import run_once, sample, wait_until

BOOK_TICKER = "/api/v3/ticker/bookTicker"
# The default order sizes on the default 500-level snapshots, two ranked symbols a list.
FILLS = ("--top-n", "2", "--update-interval", "1", "--refresh-interval", "30",
         "--analytics-interval", "3")


def resting(levels, keep) -> Decimal:
    """Σ price x quantity of the levels whose price `keep` accepts."""
    return sum((Decimal(p) * Decimal(q) for p, q in levels if keep(Decimal(p))), Decimal(0))


class ReferenceEndToEndTest(FakeTestCase):
    """USDT amounts on every book, from the mids the one bookTicker read brings."""

    def mid(self, symbol: str) -> Decimal:
        """The fake market's own mid of `symbol` (the market does not move by itself)."""
        top = self.market.book_ticker([symbol])[0]
        return (Decimal(top["bidPrice"]) + Decimal(top["askPrice"])) / 2

    def test_btc_book_fills_the_default_usdt_sizes(self):
        exporter = self.exporter(*FILLS)
        exporter.wait_ready()
        symbol = "ETHBTC"  # first BTC-quoted symbol by quote volume

        def served():
            now = exporter.scrape()
            found = sample(now, "binance_fill_levels", symbol=symbol, side="buy",
                           notional="100000")
            return now if found is not None else None

        samples = wait_until(served, timeout=15)
        btc = self.mid("BTCUSDT")
        self.assertEqual(sample(samples, "binance_reference_price", asset="BTC"), float(btc))
        self.assertEqual(sample(samples, "binance_reference_price", asset="USDT"), 1)
        depth = self.market.depth(symbol, 500)
        mid = (Decimal(depth["bids"][0][0]) + Decimal(depth["asks"][0][0])) / 2
        for side, levels in (("buy", depth["asks"]), ("sell", depth["bids"])):
            for usdt in ("1000", "10000", "100000"):
                with localcontext() as context:
                    context.prec = 60
                    expected = walk(levels, Decimal(usdt) / btc)  # the size in BTC
                self.assertIsNotNone(expected, (side, usdt))
                average, used = expected
                key = {"symbol": symbol, "side": side, "notional": usdt}
                self.assertAlmostEqual(sample(samples, "binance_fill_average_price", **key),
                                       float(average), places=12)
                self.assertEqual(used, sample(samples, "binance_fill_levels", **key))
                slippage = sample(samples, "binance_fill_slippage_ratio", **key)
                self.assertAlmostEqual(float(abs(average - mid) / mid), slippage, places=12)
        # 0.1 % of the mid on the bid side, and the top 200 bids, both in USDT.
        self.assertAlmostEqual(
            sample(samples, "binance_order_book_depth_notional_reference", symbol=symbol,
                   side="bid", band="0.001"),
            float(resting(depth["bids"], lambda price: price >= mid * Decimal("0.999")) * btc),
            places=6)
        self.assertAlmostEqual(
            sample(samples, "binance_order_book_notional_reference", symbol=symbol, side="bid"),
            float(resting(self.market.book(symbol)[0][:200], lambda _price: True) * btc),
            places=6)

    def test_conversion_books_ride_in_the_one_bookticker_request(self):
        # BTCUSDT is not among these spreads: the BTC books' notionals need it anyway.
        exporter = self.exporter("--update-interval", "0.5", "--refresh-interval", "60",
                                 "--no-analytics", "--spread-symbols", "SOLUSDT,PEPEUSDT")
        exporter.wait_ready()
        self.fake.reset_log()
        refreshes = wait_until(lambda: len(self.fake.requests) >= 3 and self.fake.requests,
                               timeout=10)
        for record in refreshes:
            self.assertEqual((record.path, record.weight), (BOOK_TICKER, 4), record)
            self.assertEqual(json.loads(record.params["symbols"]),
                             ["SOLUSDT", "PEPEUSDT", "BTCUSDT"])
        samples = exporter.scrape()
        self.assertEqual(sample(samples, "binance_reference_price", asset="BTC"),
                         float(self.mid("BTCUSDT")))
        self.assertIsNone(sample(samples, "binance_spread", symbol="BTCUSDT"))

    def test_inverse_one_hop_and_missing_conversions(self):
        exporter = self.exporter(*FILLS, "--analytics-depth-limit", "100",
                                 "--depth-bands", "0.0001",
                                 "--symbols", "BTCTRY,BTCUSDC,ETHFDUSD")
        exporter.wait_ready()

        def served():
            now = exporter.scrape()
            found = sample(now, "binance_fill_levels", symbol="BTCUSDC", side="buy",
                           notional="1000")
            return now if found is not None else None

        samples = wait_until(served, timeout=15)
        with localcontext() as context:
            context.prec = 60
            try_rate = 1 / self.mid("USDTTRY")  # USDTTRY quotes TRY: its inverse
            usdc_rate = self.mid("BTCUSDT") / self.mid("BTCUSDC")  # through BTC
        self.assertAlmostEqual(sample(samples, "binance_reference_price", asset="TRY"),
                               float(try_rate), places=15)
        self.assertAlmostEqual(sample(samples, "binance_reference_price", asset="USDC"),
                               float(usdc_rate), places=15)
        for symbol in ("BTCTRY", "BTCUSDC"):
            self.assertIsNotNone(sample(samples, "binance_fill_levels", symbol=symbol,
                                        side="buy", notional="1000"), symbol)
        # FDUSD trades only against ETH here: no rate, no fills, no converted depth.
        self.assertIsNone(sample(samples, "binance_reference_price", asset="FDUSD"))
        self.assertIsNone(sample(samples, "binance_fill_levels", symbol="ETHFDUSD",
                                 side="buy", notional="1000"))
        bands = {name for (name, labels) in samples if ("symbol", "ETHFDUSD") in labels}
        self.assertIn("binance_order_book_depth_notional", bands)  # in FDUSD, it stays
        self.assertNotIn("binance_order_book_depth_notional_reference", bands)
        self.assertGreater(sample(samples, "binance_skipped_values_total", job="analytics",
                                  reason="no_reference_price"), 0)

    def test_once_shows_reference_and_quote_amounts(self):
        result = run_once(self.fake.url, "--output", "json", "--top-n", "2")
        self.assertEqual(result.returncode, 0, result.stderr)
        document = json.loads(result.stdout)
        btc = self.mid("BTCUSDT")
        order = document["fills"]["ETHBTC"]["buy"]["1000"]
        self.assertAlmostEqual(order["quote_notional"], float(Decimal(1000) / btc), places=15)
        self.assertAlmostEqual(sum(level["notional"] for level in order["levels"]),
                               order["quote_notional"], places=12)
        self.assertEqual(document["reference_prices"]["BTC"], float(btc))
        self.assertIn("bid 0.02", document["depth_reference"]["ETHBTC"])
        text = run_once(self.fake.url, "--top-n", "2").stdout
        self.assertIn("ETHBTC         buy      1000 USDT = ", text)
        self.assertIn(f"Reference prices (USDT per unit): BTC={btc.normalize():f}", text)


if __name__ == "__main__":
    unittest.main()
