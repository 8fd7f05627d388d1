"""The payload parsers' rules, one test per rule.

Every refusal must be a PayloadError with one short line: the jobs catch
PayloadError (and BinanceError) only, so any other exception would end a
worker thread instead of failing one refresh.
"""

import json
import unittest
from decimal import Decimal as D
from pathlib import Path
from typing import Any, Callable

from binance_exporter.binance import payloads
from binance_exporter.binance.payloads import PayloadError, to_decimal

FIXTURES = (Path(__file__).resolve().parents[3] / "shared" / "fixtures"
            / "binance-spot-mainnet-2021-10-22")
DEPTH = {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
         "asks": [["4.00000200", "12.00000000"]]}
TICKER = {"symbol": "BNBBTC", "volume": "8913.30000000", "quoteVolume": "15.30000000",
          "count": 76}
BOOK_TICKER = {"symbol": "LTCBTC", "bidPrice": "4.00000000", "bidQty": "431.00000000",
               "askPrice": "4.00000200", "askQty": "9.00000000"}
AGG_TRADE = {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
             "T": 1498793709153, "m": True, "M": True}
SYMBOL = {"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC"}
WEIGHT = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
          "limit": 6000}


def depth(**changes: Any) -> dict:
    """The documented depth answer with `changes`."""
    return {**DEPTH, **changes}


def level(price: Any, qty: Any) -> dict:
    """A depth answer whose only bid is [price, qty]."""
    return depth(bids=[[price, qty]])


def exchange_info(rate_limits: Any) -> dict:
    """An exchangeInfo answer with one symbol and `rate_limits`."""
    return {"symbols": [SYMBOL], "rateLimits": rate_limits}


class ParseRuleCase(unittest.TestCase):
    """Assertions shared by the rule tests."""

    def assert_refused(self, parse: Callable[[Any], Any], *payloads_: Any) -> None:
        """Each payload raises PayloadError whose message is one line of at most 120 chars."""
        for payload in payloads_:
            with self.subTest(payload=repr(payload)[:80]):
                with self.assertRaises(PayloadError) as caught:
                    parse(payload)
                message = str(caught.exception)
                self.assertNotIn("\n", message)
                self.assertLessEqual(len(message), 120, message)


class DecimalRuleTest(ParseRuleCase):
    """`to_decimal` is the one place a price or quantity is checked."""

    def parse(self, value: Any) -> D:
        """to_decimal with a label."""
        return to_decimal(value, "x")

    def test_plain_decimal_strings_and_numbers_are_read_exactly(self):
        self.assertEqual(self.parse("60650.00000000"), D("60650.00000000"))
        self.assertEqual(self.parse("0"), D(0))
        self.assertEqual(self.parse(5), D(5))
        self.assertEqual(self.parse(0.1), D("0.1"))

    def test_1e400_is_refused_as_string_and_as_number(self):
        self.assert_refused(self.parse, "1e400", "1E400", float("1e400"), D("1e400"))

    def test_nan_and_infinity_are_refused(self):
        self.assert_refused(self.parse, "NaN", "nan", "sNaN", "Infinity", "-inf",
                            float("nan"), float("inf"), D("NaN"))

    def test_1e20_and_above_is_refused(self):
        self.assertEqual(self.parse("99999999999999999999.99"), D("99999999999999999999.99"))
        self.assert_refused(self.parse, "100000000000000000000", "100000000000000000000.0",
                            10**20, 1e20, "9" * 400)

    def test_negative_is_refused(self):
        self.assert_refused(self.parse, "-1", "-0.00000001", -1, -0.5)

    def test_text_that_is_not_a_plain_decimal_is_refused(self):
        self.assert_refused(self.parse, "", " 1", "1 ", "1_000", "+1", "1.", ".5",
                            "1e5", "0x10", "١٢", "1.2.3", "abc")

    def test_more_than_20_decimals_is_refused(self):
        self.assert_refused(self.parse, "0." + "1" * 21)

    def test_other_types_are_refused(self):
        self.assert_refused(self.parse, None, True, False, [], {}, b"1")

    def test_zero_is_refused_where_a_positive_price_is_needed(self):
        with self.assertRaises(PayloadError):
            to_decimal("0.00000000", "price", positive=True)


class DepthRuleTest(ParseRuleCase):
    """`GET /api/v3/depth`."""

    def test_documented_example(self):
        book = payloads.parse_depth(DEPTH, "BNBBTC")
        self.assertEqual(book.last_update_id, 1027024)
        self.assertEqual(book.bids, ((D("4.00000000"), D("431.00000000")),))

    def test_negative_quantity_is_refused(self):
        self.assert_refused(payloads.parse_depth, level("4", "-431"))

    def test_zero_or_negative_price_is_refused(self):
        self.assert_refused(payloads.parse_depth, level("0", "1"), level("-4", "1"))

    def test_1e400_price_is_refused(self):
        self.assert_refused(payloads.parse_depth, level("1e400", "1"), level(1e400, "1"))

    def test_last_update_id_must_be_a_64_bit_integer(self):
        self.assert_refused(
            payloads.parse_depth,
            depth(lastUpdateId="x"), depth(lastUpdateId="1027024"),
            depth(lastUpdateId=1e400), depth(lastUpdateId=1027024.0),
            depth(lastUpdateId=2**63), depth(lastUpdateId=10**400), depth(lastUpdateId=-1),
        )

    def test_bool_as_id_is_refused(self):
        self.assert_refused(payloads.parse_depth, depth(lastUpdateId=True))

    def test_a_level_must_be_a_pair(self):
        self.assert_refused(payloads.parse_depth, depth(bids=[["4"]]),
                            depth(bids=[["4", "1", "2"]]), depth(bids=["41"]),
                            depth(bids=[{"4": "1"}]), depth(asks=None))

    def test_missing_fields_and_wrong_shapes_are_refused(self):
        self.assert_refused(payloads.parse_depth, [], None, {"bids": [], "asks": []},
                            depth(bids="x"))


class TickerRuleTest(ParseRuleCase):
    """The all-symbols `GET /api/v3/ticker/24hr`."""

    def test_documented_example(self):
        parsed = payloads.parse_tickers_24h([TICKER])["BNBBTC"]
        self.assertEqual((parsed.volume, parsed.quote_volume, parsed.trades),
                         (D("8913.30000000"), D("15.30000000"), 76))

    def test_400_digit_count_is_refused(self):
        self.assert_refused(payloads.parse_tickers_24h, [{**TICKER, "count": 10**400}])

    def test_count_of_1e400_or_a_float_or_a_string_is_refused(self):
        self.assert_refused(payloads.parse_tickers_24h, [{**TICKER, "count": 1e400}],
                            [{**TICKER, "count": 76.0}], [{**TICKER, "count": "76"}],
                            [{**TICKER, "count": True}], [{**TICKER, "count": -1}])

    def test_volumes_follow_the_decimal_rules(self):
        self.assert_refused(payloads.parse_tickers_24h, [{**TICKER, "volume": "-1"}],
                            [{**TICKER, "quoteVolume": "inf"}], [{**TICKER, "volume": "1e20"}])

    def test_symbol_must_be_a_short_non_empty_string(self):
        self.assert_refused(payloads.parse_tickers_24h, [{**TICKER, "symbol": 5}],
                            [{**TICKER, "symbol": ""}], [{**TICKER, "symbol": "A" * 101}],
                            [{**TICKER, "symbol": None}])

    def test_entries_must_be_objects(self):
        self.assert_refused(payloads.parse_tickers_24h, {"symbol": "A"}, ["x"], [5],
                            [{"symbol": "A"}])


class BookTickerRuleTest(ParseRuleCase):
    """`GET /api/v3/ticker/bookTicker`."""

    def test_documented_example_alone_and_in_an_array(self):
        for payload in (BOOK_TICKER, [BOOK_TICKER]):
            self.assertEqual(payloads.parse_book_tickers(payload)["LTCBTC"].ask_price,
                             D(BOOK_TICKER["askPrice"]))

    def test_zero_price_is_an_empty_side(self):
        empty_bids = {**BOOK_TICKER, "bidPrice": "0.00000000", "bidQty": "0.00000000"}
        self.assertEqual(payloads.parse_book_tickers([empty_bids])["LTCBTC"].bid_price, D(0))

    def test_negative_price_is_refused(self):
        # The quantities are not read: no answer uses them.
        self.assert_refused(payloads.parse_book_tickers, [{**BOOK_TICKER, "bidPrice": "-4"}],
                            [{**BOOK_TICKER, "askPrice": "-9"}])

    def test_nan_price_is_refused(self):
        self.assert_refused(payloads.parse_book_tickers, [{**BOOK_TICKER, "askPrice": "NaN"}])

    def test_wrong_shapes_are_refused(self):
        self.assert_refused(payloads.parse_book_tickers, 5, "x", [None], [{"symbol": "A"}])


class AggTradeRuleTest(ParseRuleCase):
    """`GET /api/v3/aggTrades` and the aggTrade stream event."""

    def parse(self, changes: dict) -> Any:
        """Parse the documented trade with `changes`."""
        return payloads.parse_agg_trades([{**AGG_TRADE, **changes}])

    def test_ids_and_times_must_be_64_bit_integers(self):
        for name in ("a", "f", "l", "T"):
            with self.subTest(field=name):
                self.assert_refused(self.parse, {name: 2**63}, {name: 1e400}, {name: "1"},
                                    {name: True}, {name: -5})

    def test_price_and_quantity_follow_the_decimal_rules(self):
        self.assert_refused(self.parse, {"p": "0"}, {"p": "1e400"}, {"q": "-1"},
                            {"q": "Infinity"})

    def test_the_ids_must_be_in_order(self):
        self.assert_refused(self.parse, {"l": AGG_TRADE["f"] - 1})


class ExchangeInfoRuleTest(ParseRuleCase):
    """`GET /api/v3/exchangeInfo`."""

    def test_weight_limit_is_the_one_minute_request_weight(self):
        parsed = payloads.parse_exchange_info(exchange_info([WEIGHT]))
        self.assertEqual(parsed.weight_limit, 6000)
        self.assertEqual(parsed.symbols["ETHBTC"].quote_asset, "BTC")

    def test_rate_limits_that_are_not_a_list_are_ignored(self):
        for rate_limits in (5, "x", {"limit": 6000}, None, True):
            with self.subTest(rate_limits=rate_limits):
                parsed = payloads.parse_exchange_info(exchange_info(rate_limits))
                self.assertIsNone(parsed.weight_limit)
                self.assertIn("ETHBTC", parsed.symbols)

    def test_rate_limit_entries_that_are_not_objects_are_skipped(self):
        parsed = payloads.parse_exchange_info(exchange_info([5, "x", None, [WEIGHT], WEIGHT]))
        self.assertEqual(parsed.weight_limit, 6000)

    def test_limits_that_are_not_positive_64_bit_integers_are_skipped(self):
        for limit in ("6000", 6000.0, 1e400, True, 0, -6000, 2**63, None):
            with self.subTest(limit=limit):
                parsed = payloads.parse_exchange_info(exchange_info([{**WEIGHT, "limit": limit}]))
                self.assertIsNone(parsed.weight_limit)

    def test_symbol_entries_must_hold_names(self):
        self.assert_refused(
            payloads.parse_exchange_info,
            {"symbols": "x"}, {"symbols": [5]}, {"symbols": [{"symbol": "A"}]},
            {"symbols": [{**SYMBOL, "baseAsset": None}]}, {"symbols": [{**SYMBOL, "status": 1}]},
        )


if __name__ == "__main__":
    unittest.main()


class DecodeExchangeInfoTest(unittest.TestCase):
    """exchangeInfo decoded keeping only the fields the exporter reads."""

    def test_the_slim_decoding_parses_like_the_whole_answer(self):
        body = (FIXTURES / "exchange_info_BTCUSDT_ETHUSDT.json").read_bytes()
        slim = payloads.decode_exchange_info(body)
        self.assertEqual(set(slim["symbols"][0]), {"symbol", "status", "baseAsset", "quoteAsset"})
        self.assertEqual(payloads.parse_exchange_info(slim),
                         payloads.parse_exchange_info(json.loads(body)))

    def test_an_answer_of_another_shape_is_decoded_whole_and_refused_by_the_parser(self):
        for body in (b'{"symbols": 5}', b'{"symbols": [7]}', b"[]"):
            with self.subTest(body=body):
                self.assertEqual(payloads.decode_exchange_info(body), json.loads(body))
                with self.assertRaises(payloads.PayloadError):
                    payloads.parse_exchange_info(payloads.decode_exchange_info(body))
