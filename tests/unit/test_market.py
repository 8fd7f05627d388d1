"""Pure market maths with hand-checked numbers, and the parsers on real 2021 answers."""

import json
import random
import unittest
from decimal import Decimal as D, localcontext
from pathlib import Path

from binance_exporter.binance import payloads, weights
from binance_exporter.binance.payloads import PayloadError
from binance_exporter.market import quotes, rankings, types
from binance_exporter.market.numbers import CONTEXT
from binance_exporter.market.types import BookTop, SymbolInfo, Ticker24h

FIXTURES = (Path(__file__).resolve().parents[3] / "shared" / "fixtures"
            / "binance-spot-mainnet-2021-10-22")


def fixture(name: str):
    """A recorded Binance answer, parsed."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def info(symbol: str, base: str, quote: str, status: str = "TRADING") -> SymbolInfo:
    """A SymbolInfo."""
    return SymbolInfo(symbol=symbol, base_asset=base, quote_asset=quote, status=status)


def ticker(symbol: str, volume: str, quote_volume: str, trades: int) -> Ticker24h:
    """A Ticker24h from strings."""
    return Ticker24h(symbol=symbol, volume=D(volume), quote_volume=D(quote_volume), trades=trades)


SYMBOLS = {
    s.symbol: s
    for s in (
        info("ETHBTC", "ETH", "BTC"),
        info("BNBBTC", "BNB", "BTC"),
        info("DOGEBTC", "DOGE", "BTC"),
        info("XRPBTC", "XRP", "BTC"),
        info("LUNABTC", "LUNA", "BTC", status="BREAK"),
        info("BTCUSDT", "BTC", "USDT"),
        info("ETHUSDT", "ETH", "USDT"),
        info("BTCDOWNUSDT", "BTCDOWN", "USDT", status="BREAK"),
        info("USDTTRY", "USDT", "TRY"),
        info("BTCTRY", "BTC", "TRY"),
        info("PEPEUSDT", "PEPE", "USDT"),
    )
}
TICKERS = {
    t.symbol: t
    for t in (
        ticker("ETHBTC", "1000", "60", 500),
        ticker("BNBBTC", "2000", "20", 400),
        ticker("DOGEBTC", "9000000", "15", 300),
        ticker("XRPBTC", "500000", "20", 200),  # ties BNBBTC on quote volume
        ticker("LUNABTC", "99999999", "99999", 99999),  # largest, but not TRADING
        ticker("BTCUSDT", "50000", "3000000000", 4100000),
        ticker("ETHUSDT", "90000", "200000000", 5000000),
        ticker("BTCDOWNUSDT", "0", "0", 9999999),
        ticker("USDTTRY", "1", "1", 8888888),
        ticker("BTCTRY", "1", "1", 7777777),
        ticker("PEPEUSDT", "9e12", "1000000", 300),
        ticker("NOTLISTED", "1", "1", 1),  # in the tickers but not in exchangeInfo
    )
}


class RankingTest(unittest.TestCase):
    """Rankings."""
    def test_btc_ranking_uses_quote_asset_status_and_breaks_ties_by_name(self):
        top = rankings.top_by_volume(SYMBOLS, TICKERS, "BTC", types.QUOTE_VOLUME, 5)
        # 60 > 20 = 20 (BNB before XRP by name) > 15; LUNABTC is BREAK.
        self.assertEqual([t.symbol for t in top], ["ETHBTC", "BNBBTC", "XRPBTC", "DOGEBTC"])

    def test_btc_ranking_by_base_volume_differs(self):
        top = rankings.top_by_volume(SYMBOLS, TICKERS, "BTC", types.BASE_VOLUME, 2)
        self.assertEqual([t.symbol for t in top], ["DOGEBTC", "XRPBTC"])

    def test_usdt_ranking_by_trades_ignores_spelling_and_non_trading(self):
        top = rankings.top_by_trades(SYMBOLS, TICKERS, "USDT", 5)
        # BTCDOWNUSDT (BREAK), USDTTRY (quote TRY) and BTCTRY are never USDT-ranked.
        self.assertEqual([t.symbol for t in top], ["ETHUSDT", "BTCUSDT", "PEPEUSDT"])

    def test_unknown_volume_field_is_refused(self):
        with self.assertRaises(ValueError):
            rankings.top_by_volume(SYMBOLS, TICKERS, "BTC", "priceChange", 5)

    def test_count_limits_the_list(self):
        top = rankings.top_by_trades(SYMBOLS, TICKERS, "USDT", 1)
        self.assertEqual([t.symbol for t in top], ["ETHUSDT"])


class NotionalTest(unittest.TestCase):
    """Notional and the depth limit."""
    LEVELS = [(D("10.5"), D("2")), (D("10"), D("1.25")), (D("9.75"), D("4"))]

    def test_sums_price_times_quantity_exactly(self):
        # 21 + 12.5 + 39 = 72.5
        self.assertEqual(quotes.side_notional(self.LEVELS, 200), D("72.5"))

    def test_only_the_first_levels_count(self):
        self.assertEqual(quotes.side_notional(self.LEVELS, 2), D("33.5"))

    def test_empty_side_is_zero(self):
        self.assertEqual(quotes.side_notional([], 200), D(0))

    def test_decimal_sum_has_no_float_residue(self):
        levels = [(D("0.1"), D("1"))] * 3
        self.assertEqual(quotes.side_notional(levels, 200), D("0.3"))

    def test_depth_limit_covers_levels_at_least_weight(self):
        self.assertEqual(weights.depth_limit_for(200), 200)
        self.assertEqual(weights.depth_limit_for(5000), 5000)
        self.assertEqual(weights.depth_limit_for(9000), 5000)
        self.assertEqual(weights.depth_limit_for(0), 1)


class SpreadTest(unittest.TestCase):
    """Spreads and deltas."""
    @staticmethod
    def top(bid: str, ask: str) -> BookTop:
        """A best bid/ask pair."""
        return BookTop("X", D(bid), D(ask))

    def test_spread_is_exact(self):
        self.assertEqual(quotes.spread_and_ratio(self.top("60650.00", "60650.01"))[0],
                         D("0.01"))

    def test_ratio_is_spread_over_mid(self):
        # spread 2, mid 100
        self.assertEqual(quotes.spread_and_ratio(self.top("99", "101")), (D("2"), D("0.02")))

    def test_ratio_is_the_spread_over_the_mid_to_the_last_digit(self):
        rng = random.Random(5)
        for _ in range(2000):
            bid = D(rng.randrange(1, 10**12)).scaleb(-rng.randrange(0, 9))
            ask = bid + D(rng.randrange(1, 10**6)).scaleb(-rng.randrange(0, 9))
            with localcontext(CONTEXT):
                expected = (ask - bid) / ((ask + bid) / 2)
            self.assertEqual(quotes.spread_and_ratio(self.top(str(bid), str(ask)))[1], expected)

    def test_ratio_rounds_at_the_policy_precision_only(self):
        # spread 1, mid 1.5: a true division, rounded at the 60th digit as CONTEXT says
        with localcontext(CONTEXT):
            expected = D(1) / (D(3) / 2)
        ratio = quotes.spread_and_ratio(self.top("1", "2"))[1]
        self.assertEqual(ratio, expected)
        self.assertEqual(len(ratio.as_tuple().digits), 60)

    def test_empty_one_sided_crossed_and_locked_have_no_spread(self):
        self.assertEqual(quotes.quote_problem(D(0), D(0)), quotes.EMPTY)
        self.assertEqual(quotes.quote_problem(D(0), D(5)), quotes.ONE_SIDED)
        self.assertEqual(quotes.quote_problem(D(5), D(0)), quotes.ONE_SIDED)
        self.assertEqual(quotes.quote_problem(D(6), D(5)), quotes.CROSSED)
        self.assertEqual(quotes.quote_problem(D(5), D(5)), quotes.CROSSED)
        self.assertEqual(quotes.spread_and_ratio(self.top("6", "5")), quotes.CROSSED)
        self.assertEqual(quotes.spread_and_ratio(self.top("0", "5")), quotes.ONE_SIDED)

    def test_deltas_are_absolute_and_zero_for_new_symbols(self):
        previous = {"A": D("0.03"), "B": D("0.01")}
        current = {"A": D("0.01"), "B": D("0.04"), "C": D("0.5")}
        self.assertEqual(
            quotes.spread_deltas(previous, current),
            {"A": D("0.02"), "B": D("0.03"), "C": D(0)},
        )

    def test_first_deltas_are_zero(self):
        self.assertEqual(quotes.spread_deltas({}, {"A": D("1")}), {"A": D(0)})


class RecordedAnswersTest(unittest.TestCase):
    """The parsers on real Binance answers recorded in October 2021."""

    def test_exchange_info(self):
        parsed = payloads.parse_exchange_info(fixture("exchange_info_BTCUSDT_ETHUSDT.json"))
        self.assertEqual(parsed.symbols["BTCUSDT"], info("BTCUSDT", "BTC", "USDT"))
        self.assertEqual(parsed.symbols["ETHUSDT"].quote_asset, "USDT")
        self.assertEqual(parsed.weight_limit, 1200)  # the 2021 limit; 6000 today

    def test_ticker_24h(self):
        parsed = payloads.parse_tickers_24h([fixture("ticker_24hr_BTCUSDT.json")])
        self.assertEqual(
            parsed["BTCUSDT"],
            ticker("BTCUSDT", "53076.84650000", "3289695271.67717710", 1580643),
        )

    def test_depth(self):
        book = payloads.parse_depth(fixture("depth_BTCUSDT_limit10.json"), "BTCUSDT")
        self.assertEqual(book.last_update_id, 14527958487)
        self.assertEqual(len(book.bids), 10)
        self.assertEqual(book.bids[0], (D("60650.00000000"), D("0.00213000")))
        self.assertGreater(book.bids[0][0], book.bids[1][0])
        self.assertLess(book.asks[0][0], book.asks[1][0])
        # 60650.00 x 0.00213 + 60648.08 x 0.06346, computed by hand
        self.assertEqual(quotes.side_notional(book.bids, 2), D("129.1845" ) + D("3848.7271568"))

    def test_book_ticker(self):
        tops = payloads.parse_book_tickers(fixture("book_ticker_BTCUSDT.json"))
        self.assertEqual(quotes.spread_and_ratio(tops["BTCUSDT"])[0], D("0.01"))


class MalformedPayloadTest(unittest.TestCase):
    """Parsers refuse what the API does not send."""
    def test_each_parser_refuses_wrong_shapes(self):
        cases = [
            (payloads.parse_exchange_info, {"symbols": "x"}),
            (payloads.parse_exchange_info, {"symbols": [{"symbol": "A"}]}),
            (payloads.parse_tickers_24h, {"symbol": "A"}),
            (payloads.parse_tickers_24h, [{"symbol": "A", "volume": "x", "quoteVolume": "1",
                                         "count": 1}]),
            (payloads.parse_depth, []),
            (payloads.parse_depth, {"lastUpdateId": 1, "bids": [["1"]], "asks": []}),
            (payloads.parse_depth, {"lastUpdateId": 1, "bids": "x", "asks": []}),
            (payloads.parse_depth, {"bids": [], "asks": []}),
            (payloads.parse_book_tickers, [{"symbol": "A", "bidPrice": "NaN", "bidQty": "1",
                                          "askPrice": "1", "askQty": "1"}]),
            (payloads.parse_book_tickers, [{"symbol": "A"}]),
        ]
        for parser, payload in cases:
            with self.subTest(parser=parser.__name__, payload=payload):
                with self.assertRaises(PayloadError):
                    parser(payload)


if __name__ == "__main__":
    unittest.main()
