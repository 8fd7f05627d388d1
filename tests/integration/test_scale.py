"""Scale: `--spread-symbols all` on thousands of symbols, `--shard`, symbol lists, quote filters.

The exporter runs as a real process against the fake Binance; the expected
symbol sets are worked out here from the fake market's own data.
"""

from __future__ import annotations

import json
import time
import unittest
from decimal import Decimal

from click.testing import CliRunner

from binance_exporter.cli import main
from binance_exporter.config import Config, RankingConfig, planned_weight_per_minute
from binance_exporter.config import rankings_weight
from fake_binance.market import Market
from fake_binance.server import FakeBinance
from tests.support import Exporter, Samples, wait_until

BOOK_TICKER = "/api/v3/ticker/bookTicker"
DEPTH = "/api/v3/depth"
QUIET = ("--no-analytics", "--refresh-interval", "600")


def labelled(samples: Samples, name: str, label: str = "symbol") -> list[str]:
    """The `label` values of every series of `name` (a list, so duplicates show)."""
    return [dict(labels)[label] for (sample_name, labels) in samples if sample_name == name]


def answered(exporter: Exporter) -> Samples:
    """A scrape that carries the answers.

    /-/ready can say 200 a moment before the page with the answers is
    rendered (the store swaps the snapshot, then renders), so wait for them.
    """
    return wait_until(lambda: (samples := exporter.scrape())
                      and labelled(samples, "binance_spread") and samples, 10)


def quotable(market: Market, symbols: set[str]) -> set[str]:
    """Those of `symbols` whose best bid and ask make a spread (both sides, not crossed)."""
    return {top["symbol"] for top in market.book_ticker()
            if top["symbol"] in symbols
            and 0 < Decimal(top["bidPrice"]) < Decimal(top["askPrice"])}


class ScaleTestCase(unittest.TestCase):
    """A fake Binance over a market with `EXTRA` synthetic symbols, shared by the class."""

    EXTRA = 300

    @classmethod
    def setUpClass(cls) -> None:
        cls.market = Market(seed=7, extra_symbols=cls.EXTRA)
        cls.fake = FakeBinance(cls.market).start()
        cls.trading = set(cls.market.symbols("TRADING"))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()

    def setUp(self) -> None:
        # Every test starts with a fresh weight window and log, whatever ran before.
        self.fake.reset_limits()
        self.fake.reset_log()

    def start(self, *args: str) -> Exporter:
        """An exporter on the fake, stopped when the test ends."""
        exporter = Exporter(self.fake.url, *args)
        self.addCleanup(exporter.close)
        return exporter


class ShardTest(ScaleTestCase):
    """Three exporters with `--shard i/3` split the market: every symbol exactly once."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        exporters = [Exporter(cls.fake.url, "--spread-symbols", "all", "--shard", f"{i}/3",
                              *QUIET) for i in range(3)]
        whole = Exporter(cls.fake.url, "--spread-symbols", "all", *QUIET)
        try:
            for exporter in (*exporters, whole):
                exporter.wait_ready(20)
            cls.shards = [answered(exporter) for exporter in exporters]
            cls.whole = answered(whole)
        finally:
            for exporter in (*exporters, whole):
                exporter.close()
        cls.requests = cls.fake.requests

    def test_spreads_cover_every_trading_symbol_exactly_once(self):
        per_shard = [labelled(samples, "binance_spread") for samples in self.shards]
        union = [symbol for symbols in per_shard for symbol in symbols]
        self.assertEqual(len(union), len(set(union)), "a symbol is in two shards")
        self.assertEqual(set(union), quotable(self.market, self.trading))
        self.assertTrue(all(len(symbols) > 50 for symbols in per_shard), "a shard is empty")

    def test_watched_symbols_are_every_trading_symbol_exactly_once(self):
        # binance_symbol_info lists what each shard tracks, quote problems included.
        union = [s for samples in self.shards for s in labelled(samples, "binance_symbol_info")]
        self.assertEqual(len(union), len(set(union)))
        self.assertEqual(set(union), self.trading)

    def test_ranked_series_appear_once_across_shards(self):
        def ranks(samples: Samples) -> list[tuple]:
            return [(labels, value) for (name, labels), value in samples.items()
                    if name == "binance_top_symbol_rank"]

        union = [series for samples in self.shards for series in ranks(samples)]
        self.assertEqual(len(union), 10)
        self.assertEqual(sorted(union), sorted(ranks(self.whole)))

    def test_order_books_are_read_by_one_shard_each(self):
        union = [s for samples in self.shards
                 for s in labelled(samples, "binance_order_book_notional")]
        self.assertEqual(sorted(union), sorted(labelled(self.whole,
                                                        "binance_order_book_notional")))
        # Each of the 5 ranked books is fetched once by the shards, once by the whole.
        depths = [r.params["symbol"] for r in self.requests if r.path == DEPTH]
        self.assertEqual(len(depths), 10)
        self.assertEqual(len(set(depths)), 5)


class SpreadSymbolsTest(ScaleTestCase):
    """--spread-symbols with a list, and --quote-assets filtering `all`."""

    def test_a_list_watches_exactly_those_symbols(self):
        exporter = self.start("--spread-symbols", "BTCUSDT,ETHBTC", *QUIET)
        exporter.wait_ready()
        self.assertEqual(sorted(labelled(answered(exporter), "binance_spread")),
                         ["BTCUSDT", "ETHBTC"])
        tops = [r for r in self.fake.requests if r.path == BOOK_TICKER]
        self.assertEqual(len(tops), 1)
        self.assertEqual(sorted(json.loads(tops[0].params["symbols"])), ["BTCUSDT", "ETHBTC"])

    def test_quote_assets_filter_all(self):
        exporter = self.start("--spread-symbols", "all", "--quote-assets", "usdt, FDUSD", *QUIET)
        exporter.wait_ready()
        watched = {s for s in self.trading
                   if self.market.exchange_info([s])["symbols"][0]["quoteAsset"]
                   in ("USDT", "FDUSD")}
        spreads = labelled(answered(exporter), "binance_spread")
        self.assertEqual(len(spreads), len(set(spreads)))
        self.assertEqual(set(spreads), quotable(self.market, watched))
        self.assertGreater(len(spreads), 150)


class WholeMarketTest(ScaleTestCase):
    """--spread-symbols all on about 3000 symbols: still one request of weight 4 per refresh."""

    EXTRA = 3000

    def test_one_book_ticker_request_of_weight_4_per_spread_refresh(self):
        exporter = self.start("--spread-symbols", "all", "--update-interval", "0.4", *QUIET)
        exporter.wait_ready(20)
        ready = time.time()
        time.sleep(1.5)
        spreads = labelled(answered(exporter), "binance_spread")
        self.assertEqual(set(spreads), quotable(self.market, self.trading))
        self.assertGreater(len(spreads), 3000)
        tops = [r for r in self.fake.requests if r.path == BOOK_TICKER]
        after = [r for r in tops if r.time > ready]
        self.assertGreaterEqual(len(after), 2, "no spread refresh ran")
        self.assertEqual({r.weight for r in tops}, {4})
        # One request per refresh: the two requests of one refresh (a retry, a
        # split list) would follow each other within milliseconds.
        gaps = [b.time - a.time for a, b in zip(after, after[1:])]
        self.assertTrue(all(gap > 0.05 for gap in gaps), gaps)

    def test_the_plan_does_not_depend_on_the_number_of_symbols(self):
        for mode in ("top", "all", "list"):
            config = Config(ranking=RankingConfig(spread_symbols=mode), analytics=None)
            self.assertEqual(planned_weight_per_minute(config), 229 + 24)
        self.assertEqual(rankings_weight(RankingConfig()), 229)
        self.assertEqual(rankings_weight(RankingConfig(depth_levels=50)), 129)


class ShardOptionTest(unittest.TestCase):
    """--shard and --spread-symbols are checked before anything starts."""

    def test_bad_values_are_refused(self):
        for args in (["--shard", "3/3"], ["--shard", "1"], ["--shard", "0/0"],
                     ["--spread-symbols", " , "]):
            result = CliRunner().invoke(main, [*args, "--once"])
            self.assertEqual(result.exit_code, 2, (args, result.output))


if __name__ == "__main__":
    unittest.main()
