"""The fake Binance, talked to through binance-connector exactly as the exporter does.

If the fake drifts from the real API, every end-to-end test built on it proves
nothing, so this checks it against the recorded 2021 mainnet answers (key sets
and string formats) and against binance-api.md (weights, error codes, the
429 -> 418 escalation), and checks the traps the exporter must get right.
Every server listens on 127.0.0.1 only and is stopped by addCleanup.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from binance.error import ClientError, ServerError
from binance.spot import Spot

from fake_binance import BUILTIN_SYMBOLS, BinanceError, FakeBinance, Market

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "binance-spot-mainnet-2021-10-22"
PRICE = re.compile(r"^\d+\.\d{8}$")
SIGNED_PRICE = re.compile(r"^-?\d+\.\d{8}$")
PERCENT = re.compile(r"^-?\d+\.\d{3}$")
FIXED_NOW = 1_700_000_000.0
MINI_KEYS = ["symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume",
             "quoteVolume", "openTime", "closeTime", "firstId", "lastId", "count"]
TOP_BTC_BY_QUOTE_VOLUME = ["ETHBTC", "BNBBTC", "SOLBTC", "LINKBTC", "DOTBTC"]
TOP_BTC_BY_BASE_VOLUME = ["ADABTC", "DOGEBTC", "XRPBTC", "DOTBTC", "LINKBTC"]
TOP_USDT_BY_COUNT = ["SOLUSDT", "PEPEUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT"]
TOP_USDT_BY_QUOTE_VOLUME = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]


def fixture(name: str) -> Any:
    """A recorded mainnet answer."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def data(result: Any) -> Any:
    """The body of a show_limit_usage=True answer."""
    return result["data"]


def used(result: Any) -> int:
    """X-MBX-USED-WEIGHT-1M of a show_limit_usage=True answer."""
    return int(result["limit_usage"]["x-mbx-used-weight-1m"])


def ranked(tickers: list[dict], quote: str, info: dict, key: str) -> list[str]:
    """Top 5 TRADING symbols of `quote` by `key`, ties by name: what the exporter must do."""
    status = {s["symbol"]: (s["status"], s["quoteAsset"]) for s in info["symbols"]}
    chosen = [t for t in tickers if status[t["symbol"]] == ("TRADING", quote)]
    chosen.sort(key=lambda t: (-Decimal(str(t[key])), t["symbol"]))
    return [t["symbol"] for t in chosen[:5]]


class Clock:
    """A settable clock for the weight window and bans."""

    def __init__(self, now: float = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeCase(unittest.TestCase):
    """Starts fakes and clients that are cleaned up after each test."""

    def start_fake(self, market: Market | None = None, **kwargs: Any) -> FakeBinance:
        """A started fake (default market), stopped after the test."""
        fake = FakeBinance(market or Market(), **kwargs).start()
        self.addCleanup(fake.stop)
        return fake

    def client(self, fake: FakeBinance, timeout: float = 5) -> Spot:
        """A Spot client as the exporter builds it, its session closed after the test."""
        spot = Spot(base_url=fake.url, timeout=timeout, show_limit_usage=True)
        self.addCleanup(spot.session.close)
        return spot

    def assert_client_error(self, code: int | None, status: int, call: Any, *args: Any,
                            **kwargs: Any) -> ClientError:
        """`call` must raise ClientError with this HTTP status and Binance code."""
        with self.assertRaises(ClientError) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.status_code, status)
        self.assertEqual(caught.exception.error_code, code)
        return caught.exception


class ShapeTest(FakeCase):
    """Key sets, key order and string formats against the recorded answers."""

    def setUp(self) -> None:
        self.fake = self.start_fake()
        self.spot = self.client(self.fake)

    def test_ping_and_time(self):
        self.assertEqual(data(self.spot.ping()), {})
        answer = data(self.spot.time())
        self.assertEqual(list(answer), list(fixture("time.json")))
        self.assertIsInstance(answer["serverTime"], int)
        self.assertLess(abs(answer["serverTime"] / 1000 - time.time()), 5)

    def test_exchange_info_current_layout(self):
        answer = data(self.spot.exchange_info())
        recorded = fixture("exchange_info_BTCUSDT_ETHUSDT.json")
        self.assertEqual(list(answer), list(recorded))
        self.assertEqual(answer["rateLimits"], [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": 300000}])
        old_keys = set(recorded["symbols"][0])
        new_keys = {"otoAllowed", "opoAllowed", "allowTrailingStop", "cancelReplaceAllowed",
                    "amendAllowed", "pegInstructionsAllowed", "permissionSets",
                    "defaultSelfTradePreventionMode", "allowedSelfTradePreventionModes"}
        names = [s["symbol"] for s in answer["symbols"]]
        self.assertEqual(names, [spec.symbol for spec in BUILTIN_SYMBOLS])
        for info in answer["symbols"]:
            self.assertEqual(set(info), old_keys | new_keys, info["symbol"])
            self.assertEqual(info["permissions"], [])
            self.assertTrue(info["permissionSets"] and "SPOT" in info["permissionSets"][0])
            filters = {f["filterType"]: f for f in info["filters"]}
            self.assertLessEqual({"PRICE_FILTER", "LOT_SIZE", "NOTIONAL", "MARKET_LOT_SIZE",
                                  "ICEBERG_PARTS", "PERCENT_PRICE_BY_SIDE"}, set(filters))
            for key in ("minPrice", "maxPrice", "tickSize"):
                self.assertRegex(filters["PRICE_FILTER"][key], PRICE)
            self.assertRegex(filters["LOT_SIZE"]["stepSize"], PRICE)

    def test_exchange_info_symbol_and_symbols_and_permissions(self):
        one = data(self.spot.exchange_info(symbol="USDTTRY"))["symbols"]
        self.assertEqual([(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in one],
                         [("USDTTRY", "USDT", "TRY")])
        two = data(self.spot.exchange_info(symbols=["ETHFDUSD", "BTCTRY"]))["symbols"]
        self.assertEqual([(s["symbol"], s["quoteAsset"]) for s in two],
                         [("ETHFDUSD", "FDUSD"), ("BTCTRY", "TRY")])
        margin = data(self.spot.exchange_info(permissions=["MARGIN"]))["symbols"]
        self.assertTrue(margin)
        self.assertTrue(all(s["isMarginTradingAllowed"] for s in margin))
        self.assertNotIn("BTCTRY", [s["symbol"] for s in margin])

    def test_ticker_24hr_full_matches_recorded_keys_and_formats(self):
        recorded = fixture("ticker_24hr_BTCUSDT.json")
        answer = data(self.spot.ticker_24hr(symbol="BTCUSDT"))
        self.assertIsInstance(answer, dict)
        self.assertEqual(list(answer), list(recorded))
        for ticker in data(self.spot.ticker_24hr()):
            self.assertEqual(list(ticker), list(recorded))
            for key, value in ticker.items():
                if isinstance(recorded[key], str) and key != "symbol":
                    pattern = PERCENT if key == "priceChangePercent" else SIGNED_PRICE
                    self.assertRegex(value, pattern, (ticker["symbol"], key))
                elif key != "symbol":
                    self.assertIsInstance(value, int, key)
            self.assertEqual(ticker["closeTime"] - ticker["openTime"], 86_400_000)
            if ticker["count"]:
                self.assertEqual(ticker["lastId"] - ticker["firstId"] + 1, ticker["count"])
            else:
                self.assertEqual((ticker["firstId"], ticker["lastId"]), (-1, -1))

    def test_ticker_24hr_mini(self):
        answer = data(self.spot.ticker_24hr(symbols=["BTCUSDT", "ETHBTC"], type="MINI"))
        self.assertEqual([t["symbol"] for t in answer], ["BTCUSDT", "ETHBTC"])
        for ticker in answer:
            self.assertEqual(list(ticker), MINI_KEYS)
        full = data(self.spot.ticker_24hr(symbol="ETHBTC"))
        self.assertEqual({k: full[k] for k in MINI_KEYS if "Time" not in k},
                         {k: answer[1][k] for k in MINI_KEYS if "Time" not in k})

    def test_depth_matches_recorded_shape(self):
        recorded = fixture("depth_BTCUSDT_limit10.json")
        answer = data(self.spot.depth("BTCUSDT", limit=10))
        self.assertEqual(list(answer), list(recorded))
        self.assertIsInstance(answer["lastUpdateId"], int)
        self.assertEqual((len(answer["bids"]), len(answer["asks"])), (10, 10))
        for side in ("bids", "asks"):
            for level in answer[side]:
                self.assertEqual(len(level), 2)
                self.assertRegex(level[0], PRICE)
                self.assertRegex(level[1], PRICE)
        bids = [Decimal(p) for p, _ in answer["bids"]]
        asks = [Decimal(p) for p, _ in answer["asks"]]
        self.assertEqual(bids, sorted(bids, reverse=True))
        self.assertEqual(asks, sorted(asks))
        self.assertLess(bids[0], asks[0])

    def test_book_ticker_matches_recorded_keys(self):
        recorded = fixture("book_ticker_BTCUSDT.json")
        one = data(self.spot.book_ticker(symbol="BTCUSDT"))
        self.assertEqual(list(one), list(recorded))
        everything = data(self.spot.book_ticker())
        self.assertEqual(len(everything), len(BUILTIN_SYMBOLS))
        for top in everything:
            self.assertEqual(list(top), list(recorded))
            for key in ("bidPrice", "bidQty", "askPrice", "askQty"):
                self.assertRegex(top[key], PRICE)
        depth = data(self.spot.depth("BTCUSDT", limit=1))
        self.assertEqual([one["bidPrice"], one["bidQty"]], depth["bids"][0])
        self.assertEqual([one["askPrice"], one["askQty"]], depth["asks"][0])

    def test_non_ascii_symbol_round_trips(self):
        info = data(self.spot.exchange_info(symbol="这是测试币456"))["symbols"][0]
        self.assertEqual((info["baseAsset"], info["quoteAsset"]), ("这是测试币", "456"))
        self.assertEqual(data(self.spot.ticker_24hr(symbol="这是测试币456"))["symbol"],
                         "这是测试币456")
        self.assertEqual(len(data(self.spot.depth("这是测试币456", limit=5))["bids"]), 5)


class WeightTest(FakeCase):
    """Weights per endpoint and limit, and the X-MBX-USED-WEIGHT-1M header."""

    def setUp(self) -> None:
        self.fake = self.start_fake(Market(extra_symbols=120))
        self.spot = self.client(self.fake)

    def assert_weight(self, expected: int, call: Any, *args: Any, **kwargs: Any) -> None:
        """`call` costs `expected`, both in the header and in the request log."""
        before = self.fake.used_weight
        result = call(*args, **kwargs)
        self.assertEqual(used(result), before + expected, (call.__name__, args, kwargs))
        self.assertEqual(self.fake.requests[-1].weight, expected)

    def test_simple_endpoints(self):
        self.assert_weight(1, self.spot.ping)
        self.assert_weight(1, self.spot.time)
        self.assert_weight(20, self.spot.exchange_info)
        self.assert_weight(20, self.spot.exchange_info, symbol="BTCUSDT")

    def test_depth_weight_follows_requested_limit(self):
        self.assert_weight(5, self.spot.depth, "BTCUSDT")
        for limit, weight in ((1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50),
                              (1001, 250), (5000, 250), (6000, 250)):
            self.assert_weight(weight, self.spot.depth, "SOLBTC", limit=limit)

    def test_ticker_24hr_weight(self):
        names = self.fake.market.symbols(status="TRADING")
        self.assert_weight(2, self.spot.ticker_24hr, symbol="BTCUSDT")
        self.assert_weight(80, self.spot.ticker_24hr)
        self.assert_weight(80, self.spot.ticker_24hr, type="MINI")
        for count, weight in ((1, 2), (20, 2), (21, 40), (100, 40), (101, 80)):
            self.assert_weight(weight, self.spot.ticker_24hr, symbols=names[:count])

    def test_book_ticker_weight(self):
        self.assert_weight(2, self.spot.book_ticker, symbol="BTCUSDT")
        self.assert_weight(4, self.spot.book_ticker)
        self.assert_weight(4, self.spot.book_ticker, symbols=["BTCUSDT", "ETHBTC"])
        book_tickers = [r for r in self.fake.requests if r.path == "/api/v3/ticker/bookTicker"]
        self.assertEqual([r.weight for r in book_tickers], [2, 4, 4])

    def test_header_accumulates_and_errors_carry_it(self):
        self.assertEqual(used(self.spot.ping()), 1)
        self.assertEqual(used(self.spot.depth("BTCUSDT", limit=500)), 26)
        error = self.assert_client_error(-1121, 400, self.spot.depth, "NOPEUSDT")
        self.assertEqual(error.header["X-MBX-USED-WEIGHT-1M"], "31")
        self.assertEqual(self.fake.total_weight, 31)
        self.fake.reset_log()
        self.assertEqual((self.fake.total_weight, self.fake.requests), (0, []))
        self.assertEqual(used(self.spot.ping()), 32)  # the window is not reset

    def test_symbols_sent_as_compact_json_array(self):
        self.spot.ticker_24hr(symbols=["BTCUSDT", "ETHUSDT"], type="MINI")
        record = self.fake.requests[-1]
        self.assertEqual(record.params, {"symbols": '["BTCUSDT","ETHUSDT"]', "type": "MINI"})
        self.assertEqual((record.method, record.status), ("GET", 200))


class ErrorTest(FakeCase):
    """Binance's error codes, as binance-connector surfaces them."""

    def setUp(self) -> None:
        self.fake = self.start_fake()
        self.spot = self.client(self.fake)

    def test_unknown_symbol_everywhere(self):
        error = self.assert_client_error(-1121, 400, self.spot.depth, "NOPEUSDT")
        self.assertEqual(error.error_message, "Invalid symbol.")
        self.assert_client_error(-1121, 400, self.spot.ticker_24hr, symbol="btcusdt")
        self.assert_client_error(-1121, 400, self.spot.book_ticker,
                                 symbols=["BTCUSDT", "NOPEUSDT"])
        self.assert_client_error(-1121, 400, self.spot.exchange_info, symbol="NOPEUSDT")

    def test_bad_parameters(self):
        query = self.spot.query
        self.assert_client_error(-1102, 400, query, "/api/v3/depth")
        self.assert_client_error(-1128, 400, query, "/api/v3/ticker/24hr",
                                 {"symbol": "BTCUSDT", "symbols": '["ETHUSDT"]'})
        self.assert_client_error(-1135, 400, query, "/api/v3/ticker/bookTicker",
                                 {"symbols": "BTCUSDT"})
        self.assert_client_error(-1151, 400, self.spot.ticker_24hr,
                                 symbols=["BTCUSDT", "BTCUSDT"])
        self.assert_client_error(-1139, 400, self.spot.ticker_24hr, symbol="BTCUSDT",
                                 type="TINY")
        self.assert_client_error(-1100, 400, self.spot.depth, "BTCUSDT", limit="ten")
        self.assert_client_error(-1100, 400, self.spot.depth, "BTCUSDT", limit=-5)
        self.assert_client_error(-1130, 400, self.spot.depth, "BTCUSDT", limit=0)
        self.assert_client_error(-1101, 400, query,
                                 "/api/v3/depth?symbol=BTCUSDT&symbol=ETHUSDT")
        self.assert_client_error(-1105, 400, query, "/api/v3/depth?symbol=")
        self.assertEqual([r.status for r in self.fake.requests], [400] * 10)

    def test_symbol_status_filter(self):
        tickers = data(self.spot.ticker_24hr(symbolStatus="BREAK"))
        self.assertEqual(sorted(t["symbol"] for t in tickers), ["BTCDOWNUSDT", "LUNABTC"])
        self.assert_client_error(-1220, 400, self.spot.ticker_24hr, symbol="LUNABTC",
                                 symbolStatus="TRADING")
        self.assert_client_error(-1122, 400, self.spot.depth, "BTCUSDT", symbolStatus="OPEN")

    def test_unknown_path_is_404_html(self):
        error = self.assert_client_error(None, 404, self.spot.query, "/api/v3/nothing")
        self.assertIn("404", error.error_message)
        self.assertIn("X-MBX-USED-WEIGHT-1M", error.header)
        self.assertEqual(self.fake.requests, [])

    def test_delisted_symbol_disappears(self):
        self.fake.market.delist("XRPBTC")
        self.assert_client_error(-1121, 400, self.spot.depth, "XRPBTC")
        self.assert_client_error(-1121, 400, self.spot.exchange_info, symbol="XRPBTC")
        names = [s["symbol"] for s in data(self.spot.exchange_info())["symbols"]]
        self.assertNotIn("XRPBTC", names)
        self.assertNotIn("XRPBTC", [t["symbol"] for t in data(self.spot.book_ticker())])


class FaultTest(FakeCase):
    """Injected faults and what binance-connector turns them into."""

    def setUp(self) -> None:
        self.fake = self.start_fake()
        self.spot = self.client(self.fake)

    def test_429_and_418_with_retry_after(self):
        self.fake.inject("status", status=429, retry_after=7)
        error = self.assert_client_error(-1003, 429, self.spot.ping)
        self.assertEqual(error.header["Retry-After"], "7")
        self.assertIn("request weight per 1 MINUTE", error.error_message)
        self.fake.inject("status", status=418, retry_after=120)
        error = self.assert_client_error(-1003, 418, self.spot.ping)
        self.assertEqual(error.header.get("retry-after"), "120")
        self.assertIn("IP banned until", error.error_message)
        self.fake.inject("status", status=429)
        self.assertNotIn("Retry-After", self.assert_client_error(-1003, 429, self.spot.ping).header)
        self.assertEqual(data(self.spot.ping()), {})

    def test_5xx_is_server_error(self):
        self.fake.inject("status", path="/api/v3/depth", status=503, count=2)
        self.assertEqual(data(self.spot.ping()), {})  # other paths are untouched
        for _ in range(2):
            with self.assertRaises(ServerError) as caught:
                self.spot.depth("BTCUSDT")
            self.assertEqual(caught.exception.status_code, 503)
            self.assertIn("<html>", caught.exception.message)
        self.assertIn("bids", data(self.spot.depth("BTCUSDT")))
        self.assertEqual([r.fault for r in self.fake.requests], [None, "status", "status", None])

    def test_reset_and_truncate_are_transport_errors(self):
        self.fake.inject("reset")
        with self.assertRaises(requests.exceptions.ConnectionError):
            self.spot.ping()
        self.assertIsNone(self.fake.requests[-1].status)
        self.fake.inject("truncate", path="/api/v3/exchangeInfo")
        with self.assertRaises(requests.exceptions.RequestException):
            self.spot.exchange_info()
        self.assertIn("symbols", data(self.spot.exchange_info()))

    def test_json_without_code_and_non_json_and_invalid_symbol(self):
        self.fake.inject("json_without_code")
        with self.assertRaises(KeyError):
            self.spot.ping()
        self.fake.inject("non_json")
        body = data(self.spot.ticker_24hr(symbol="BTCUSDT"))
        self.assertIsInstance(body, str)
        self.assertIn("<html>", body)
        self.fake.inject("invalid_symbol", path="/api/v3/depth")
        self.assert_client_error(-1121, 400, self.spot.depth, "BTCUSDT")

    def test_slow_and_latency(self):
        impatient = self.client(self.fake, timeout=0.2)
        self.fake.inject("slow", seconds=1.0)
        with self.assertRaises(requests.exceptions.ReadTimeout):
            impatient.ping()
        self.fake.set_latency(0.1)
        started = time.monotonic()
        self.spot.ping()
        self.assertGreaterEqual(time.monotonic() - started, 0.1)

    def test_unlimited_fault_until_cleared(self):
        self.fake.inject("status", path="/api/v3/time", count=None, status=502)
        for _ in range(3):
            self.assertRaises(ServerError, self.spot.time)
        self.assertEqual(len(self.fake.pending_faults()), 1)
        self.fake.clear_faults()
        self.assertIn("serverTime", data(self.spot.time()))
        with self.assertRaises(ValueError):
            self.fake.inject("explode")
        with self.assertRaises(ValueError):
            self.fake.inject("reset", status=500)


class DepthTest(FakeCase):
    """Depth limits, thin books and books set by tests."""

    def setUp(self) -> None:
        self.fake = self.start_fake()
        self.spot = self.client(self.fake)

    def test_default_and_clamped_limits(self):
        default = data(self.spot.depth("BTCUSDT"))
        self.assertEqual((len(default["bids"]), len(default["asks"])), (100, 100))
        clamped = data(self.spot.depth("BTCUSDT", limit=6000))
        self.assertEqual((len(clamped["bids"]), len(clamped["asks"])), (5000, 5000))
        self.assertEqual(clamped["bids"][:100], default["bids"])
        three = data(self.spot.depth("ETHUSDT", limit=3))
        self.assertEqual((len(three["bids"]), len(three["asks"])), (3, 3))

    def test_thin_book_returns_fewer_levels(self):
        answer = data(self.spot.depth("SOLBTC", limit=5000))
        self.assertEqual((len(answer["bids"]), len(answer["asks"])), (120, 150))
        answer = data(self.spot.depth("THINUSDT", limit=100))
        self.assertEqual((answer["bids"], len(answer["asks"])), ([], 40))

    def test_book_matches_depth(self):
        bids, asks = self.fake.market.book("ETHBTC")
        answer = data(self.spot.depth("ETHBTC", limit=5000))
        self.assertEqual(answer["bids"], [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids])
        self.assertEqual(answer["asks"], [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks])
        self.assertIsInstance(bids[0][0], Decimal)

    def test_set_book_empty_one_sided_crossed(self):
        market = self.fake.market
        market.set_book("BNBUSDT", [], [])
        self.assertEqual(data(self.spot.book_ticker(symbol="BNBUSDT")),
                         {"symbol": "BNBUSDT", "bidPrice": "0.00000000", "bidQty": "0.00000000",
                          "askPrice": "0.00000000", "askQty": "0.00000000"})
        market.set_book("BNBUSDT", [("600.1", "2"), ("600.3", "1")], [])
        answer = data(self.spot.depth("BNBUSDT"))
        self.assertEqual(answer["bids"], [["600.30000000", "1.00000000"],
                                          ["600.10000000", "2.00000000"]])
        self.assertEqual(answer["asks"], [])
        market.set_book("BNBUSDT", [(Decimal("601"), 1)], [("599.5", "0.5")])
        top = data(self.spot.book_ticker(symbol="BNBUSDT"))
        self.assertGreater(Decimal(top["bidPrice"]), Decimal(top["askPrice"]))
        before = data(self.spot.depth("BNBUSDT"))
        market.step()
        after = data(self.spot.depth("BNBUSDT"))
        self.assertEqual((before["bids"], before["asks"]), (after["bids"], after["asks"]))
        self.assertGreater(after["lastUpdateId"], before["lastUpdateId"])
        market.reset_book("BNBUSDT")
        self.assertEqual(len(data(self.spot.depth("BNBUSDT"))["bids"]), 100)
        with self.assertRaises(ValueError):
            market.set_book("BNBUSDT", [("1.000000001", "1")], [])

    def test_break_symbol_has_no_book(self):
        answer = data(self.spot.depth("LUNABTC"))
        self.assertEqual((answer["bids"], answer["asks"]), ([], []))
        self.fake.market.set_status("BTCUSDT", "BREAK")
        top = data(self.spot.book_ticker(symbol="BTCUSDT"))
        self.assertEqual((top["bidPrice"], top["askQty"]), ("0.00000000", "0.00000000"))
        info = data(self.spot.exchange_info(symbol="BTCUSDT"))["symbols"][0]
        self.assertEqual(info["status"], "BREAK")


class MarketTest(unittest.TestCase):
    """The Market on its own: determinism, movement, traps, mutators."""

    @staticmethod
    def snapshot(market: Market) -> Any:
        """Every answer that should be deterministic."""
        return (market.ticker_24hr(), market.book_ticker(),
                [market.depth(name, 5000) for name in market.symbols()])

    def test_same_seed_same_answers(self):
        first = Market(seed=7, clock=lambda: FIXED_NOW)
        second = Market(seed=7, clock=lambda: FIXED_NOW)
        self.assertEqual(self.snapshot(first), self.snapshot(second))
        first.step(3)
        self.snapshot(second)  # querying in between must not change the outcome
        second.step()
        second.step(2)
        self.assertEqual(self.snapshot(first), self.snapshot(second))
        other = Market(seed=8, clock=lambda: FIXED_NOW)
        self.assertNotEqual(first.depth("BTCUSDT", 100), other.depth("BTCUSDT", 100))
        # The 24 h figures (and so the rankings) do not depend on the seed.
        self.assertEqual([(t["symbol"], t["quoteVolume"], t["count"]) for t in
                          Market(seed=8).ticker_24hr()],
                         [(t["symbol"], t["quoteVolume"], t["count"]) for t in
                          Market(seed=7).ticker_24hr()])

    def test_step_moves_books_spreads_and_stats(self):
        market = Market()
        spreads, update_ids, books = set(), [], []
        for _ in range(12):
            depth = market.depth("BTCUSDT", 20)
            spreads.add(Decimal(depth["asks"][0][0]) - Decimal(depth["bids"][0][0]))
            update_ids.append(depth["lastUpdateId"])
            books.append(depth["bids"])
            market.step()
        self.assertGreater(len(spreads), 1)
        self.assertTrue(all(spread > 0 for spread in spreads))
        self.assertEqual(update_ids, sorted(set(update_ids)))
        self.assertGreater(len({json.dumps(book) for book in books}), 10)
        self.assertEqual(market.steps, 12)
        before = Market().ticker_24hr(symbol="BTCUSDT")
        after = market.ticker_24hr(symbol="BTCUSDT")
        self.assertGreater(after["count"], before["count"])
        self.assertGreater(Decimal(after["quoteVolume"]), Decimal(before["quoteVolume"]))
        self.assertEqual(market.ticker_24hr(symbol="LUNABTC")["count"], 9_999_999)

    def test_set_ticker_and_status(self):
        market = Market()
        market.set_ticker("ETHBTC", volume="1.5", quote_volume=Decimal("0.075"), count=3)
        ticker = market.ticker_24hr(symbol="ETHBTC")
        self.assertEqual((ticker["volume"], ticker["quoteVolume"], ticker["count"]),
                         ("1.50000000", "0.07500000", 3))
        self.assertEqual(ticker["lastId"] - ticker["firstId"], 2)
        self.assertEqual(ticker["weightedAvgPrice"], "0.05000000")
        market.set_ticker("ETHBTC", count=0)
        ticker = market.ticker_24hr(symbol="ETHBTC")
        self.assertEqual((ticker["firstId"], ticker["lastId"]), (-1, -1))
        market.set_status("ETHBTC", "HALT")
        self.assertEqual(market.exchange_info(["ETHBTC"])["symbols"][0]["status"], "HALT")
        with self.assertRaises(ValueError):
            market.set_status("ETHBTC", "SLEEPING")
        market.weight_limit = 1200
        self.assertEqual(market.exchange_info()["rateLimits"][0]["limit"], 1200)

    def test_extra_symbols(self):
        market = Market(extra_symbols=3000)
        names = market.symbols()
        self.assertEqual(len(names), len(BUILTIN_SYMBOLS) + 3000)
        self.assertEqual(names[len(BUILTIN_SYMBOLS):][:4],
                         ["SYM0001USDT", "SYM0002BTC", "SYM0003FDUSD", "SYM0004USDT"])
        info = market.exchange_info(["SYM0002BTC"])["symbols"][0]
        self.assertEqual((info["baseAsset"], info["quoteAsset"]), ("SYM0002", "BTC"))
        tickers = market.ticker_24hr(mini=True)
        self.assertEqual(ranked(tickers, "BTC", market.exchange_info(), "quoteVolume"),
                         TOP_BTC_BY_QUOTE_VOLUME)
        self.assertEqual(ranked(tickers, "USDT", market.exchange_info(), "count"),
                         TOP_USDT_BY_COUNT)
        depth = market.depth("SYM2999BTC", 5000)
        self.assertTrue(50 <= len(depth["bids"]) < 300 and depth["bids"])

    def test_top_is_what_depth_1_has(self):
        market = Market(clock=lambda: FIXED_NOW)
        market.set_status("FTTUSDT", "BREAK")
        market.set_book("ETHBTC", [], [("0.05", "1")])
        market.step(3)
        for spec in BUILTIN_SYMBOLS:
            with self.subTest(symbol=spec.symbol):
                depth, top = market.depth(spec.symbol, 1), market.top(spec.symbol)
                bid = depth["bids"][0] if depth["bids"] else ["0.00000000"] * 2
                ask = depth["asks"][0] if depth["asks"] else ["0.00000000"] * 2
                self.assertEqual(tuple(top), (depth["lastUpdateId"], *bid, *ask))


class AggTradesTest(FakeCase):
    """GET /api/v3/aggTrades: shapes, weight, paging by id, the clamp, errors, the model."""

    KEYS = ["a", "p", "q", "f", "l", "T", "m", "M"]

    def setUp(self) -> None:
        self.clock = Clock()
        self.market = Market(clock=self.clock)
        self.fake = self.start_fake(self.market)
        self.spot = Spot(base_url=self.fake.url, timeout=5)
        self.addCleanup(self.spot.session.close)

    def step(self, n: int = 1) -> None:
        """Move the market n steps, one clock second apart."""
        for _ in range(n):
            self.clock.now += 1
            self.market.step()

    def assert_chained(self, trades: list[dict]) -> None:
        """Consecutive aggregate ids, each covering the trade ids after the previous one."""
        for before, after in zip(trades, trades[1:]):
            self.assertEqual(after["a"], before["a"] + 1)
            self.assertEqual(after["f"], before["l"] + 1)
            self.assertGreaterEqual(after["T"], before["T"])

    def test_shape_key_order_and_formats(self):
        recorded = fixture("trades_BTCUSDT.json")[0]  # /trades: the same number formats
        self.assertRegex(recorded["price"], PRICE)
        self.assertRegex(recorded["qty"], PRICE)
        self.step(3)
        for symbol in ("BTCUSDT", "PEPEUSDT", "这是测试币456"):
            answer = self.spot.agg_trades(symbol)
            self.assertTrue(answer, symbol)
            for trade in answer:
                self.assertEqual(list(trade), self.KEYS)
                self.assertRegex(trade["p"], PRICE)
                self.assertRegex(trade["q"], PRICE)
                for key in ("a", "f", "l", "T"):
                    self.assertIs(type(trade[key]), int, key)
                self.assertIs(type(trade["m"]), bool)
                self.assertIs(trade["M"], True)
                self.assertIn(trade["l"] - trade["f"] + 1, (1, 2, 3))
                self.assertGreater(Decimal(trade["q"]), 0)
            self.assert_chained(answer)
            self.assertEqual(answer[-1]["T"], int(self.clock.now * 1000))
        self.assertEqual(self.spot.agg_trades("BTCDOWNUSDT"), [])  # never traded

    def test_weight_is_4(self):
        spot = self.client(self.fake)
        for kwargs in ({}, {"limit": 1}, {"limit": 1000}, {"limit": 5000}, {"fromId": 1}):
            before = self.fake.used_weight
            self.assertEqual(used(spot.agg_trades("ETHBTC", **kwargs)), before + 4, kwargs)
        error = self.assert_client_error(-1121, 400, spot.agg_trades, "NOPEUSDT")
        self.assertEqual(error.header["X-MBX-USED-WEIGHT-1M"], "24")
        self.assertEqual([r.weight for r in self.fake.requests], [4] * 6)
        self.assertEqual(self.fake.total_weight, 24)

    def test_from_id_paging_has_no_duplicates_and_no_gaps(self):
        self.step(120)
        history = self.market.agg_trade_history("ETHUSDT")
        self.assertGreater(len(history), 300)
        self.assert_chained(history)
        pages, from_id = [], history[0]["a"]
        while True:
            page = self.spot.agg_trades("ETHUSDT", fromId=from_id, limit=97)
            self.assertLessEqual(len(page), 97)
            if not page:
                break
            pages.append(page)
            from_id = page[-1]["a"] + 1
        self.assertEqual([trade for page in pages for trade in page], history)
        self.assertEqual(len(pages), -(-len(history) // 97))
        middle = history[150]["a"]
        self.assertEqual(self.spot.agg_trades("ETHUSDT", fromId=middle, limit=3),
                         history[150:153])
        self.assertEqual(self.market.agg_trade_history("ETHUSDT", from_id=middle),
                         history[150:])
        # Older than anything kept: from the oldest trade on.
        self.assertEqual(self.spot.agg_trades("ETHUSDT", fromId=0, limit=5), history[:5])

    def test_without_from_id_the_most_recent_oldest_first(self):
        self.step(200)
        history = self.market.agg_trade_history("SOLUSDT")
        self.assertGreater(len(history), 500)
        self.assertEqual(self.spot.agg_trades("SOLUSDT"), history[-500:])
        self.assertEqual(self.spot.agg_trades("SOLUSDT", limit=7), history[-7:])
        self.assertEqual(self.spot.agg_trades("SOLUSDT", limit=1), history[-1:])
        self.step()
        newest = self.spot.agg_trades("SOLUSDT", limit=1)[0]
        self.assertGreater(newest["a"], history[-1]["a"])

    def test_limit_above_1000_is_cut_to_1000(self):
        self.step(400)
        history = self.market.agg_trade_history("BTCUSDT")
        self.assertGreater(len(history), 1000)
        for limit in (1000, 1001, 5000):
            self.assertEqual(self.spot.agg_trades("BTCUSDT", limit=limit), history[-1000:])
        page = self.spot.agg_trades("BTCUSDT", fromId=history[0]["a"], limit=2000)
        self.assertEqual(page, history[:1000])
        self.assertEqual(len(self.market.agg_trades("BTCUSDT", limit=10**6)), 1000)

    def test_time_range(self):
        self.step(6)
        history = self.market.agg_trade_history("BNBUSDT")
        start, end = int((FIXED_NOW + 2) * 1000), int((FIXED_NOW + 4) * 1000)
        inside = [t for t in history if start <= t["T"] <= end]
        self.assertTrue(inside)
        self.assertEqual(self.spot.agg_trades("BNBUSDT", startTime=start, endTime=end), inside)
        self.assertEqual(self.spot.agg_trades("BNBUSDT", startTime=start, limit=2),
                         [t for t in history if t["T"] >= start][:2])
        self.assertEqual(self.spot.agg_trades("BNBUSDT", endTime=end, limit=2),
                         [t for t in history if t["T"] <= end][-2:])
        self.assertEqual(self.spot.agg_trades("BNBUSDT", startTime=end, endTime=start), [])

    def test_errors(self):
        query = self.spot.query
        error = self.assert_client_error(-1121, 400, self.spot.agg_trades, "NOPEUSDT")
        self.assertEqual(error.error_message, "Invalid symbol.")
        self.assert_client_error(-1121, 400, self.spot.agg_trades, "btcusdt")
        self.assert_client_error(-1102, 400, query, "/api/v3/aggTrades")
        self.assert_client_error(-1102, 400, query, "/api/v3/aggTrades", {"limit": 5})
        self.assert_client_error(-1100, 400, self.spot.agg_trades, "BTCUSDT", fromId="x")
        self.assert_client_error(-1100, 400, self.spot.agg_trades, "BTCUSDT", limit=-5)
        self.assert_client_error(-1130, 400, self.spot.agg_trades, "BTCUSDT", limit=0)
        self.assert_client_error(-1128, 400, self.spot.agg_trades, "BTCUSDT", fromId=1,
                                 startTime=1)
        self.market.delist("ETHBTC")
        self.assert_client_error(-1121, 400, self.spot.agg_trades, "ETHBTC")
        with self.assertRaises(BinanceError):
            self.market.agg_trade_history("ETHBTC")

    def test_deterministic_whatever_is_queried(self):
        def run(seed: int, query: bool) -> list:
            market = Market(seed=seed, extra_symbols=5, clock=lambda: FIXED_NOW)
            for _ in range(4):
                if query:
                    market.agg_trades("XRPUSDT", limit=3)
                    market.agg_trade_history("ETHBTC")
                market.step()
            market.agg_trades("SYM0002BTC")  # an extra symbol's trades start here
            market.step(2)
            return [market.agg_trade_history(s) for s in ("ETHBTC", "XRPUSDT", "SYM0002BTC")]

        first = run(7, query=False)
        self.assertEqual(first, run(7, query=True))
        self.assertNotEqual(first, run(8, query=False))
        extra = first[2]
        self.assertTrue(2 <= len(extra) <= 15)  # its first step's trades plus two steps
        self.assert_chained(extra)

    def test_a_step_trades_at_its_best_bid_and_ask(self):
        sides = set()
        for _ in range(8):
            last = {s: self.market.agg_trade_history(s)[-1]["a"]
                    for s in ("BTCUSDT", "ETHBTC", "DOGEBTC", "THINUSDT", "FTTUSDT", "LUNABTC")}
            self.step()
            for symbol, last_id in last.items():
                new = self.spot.agg_trades(symbol, fromId=last_id + 1)
                if symbol in ("FTTUSDT", "LUNABTC"):  # HALT and BREAK: nothing trades
                    self.assertEqual(new, [], symbol)
                    continue
                self.assertTrue(1 <= len(new) <= 5, (symbol, new))
                self.assertEqual(new[0]["a"], last_id + 1)
                top = self.spot.book_ticker(symbol=symbol)
                for trade in new:
                    self.assertEqual(trade["p"], top["bidPrice"] if trade["m"]
                                     else top["askPrice"], (symbol, trade))
                    self.assertEqual(trade["T"], int(self.clock.now * 1000))
                    sides.add((symbol, trade["m"]))
        self.assertLessEqual({("BTCUSDT", True), ("BTCUSDT", False)}, sides)
        self.assertNotIn(("THINUSDT", True), sides)  # no bids: only taker buys
        self.market.set_book("ETHBTC", [("0.05000000", "1")], [("0.05002000", "2")])
        last_id = self.market.agg_trade_history("ETHBTC")[-1]["a"]
        self.step()
        new = self.market.agg_trade_history("ETHBTC", from_id=last_id + 1)
        self.assertTrue(new)
        for trade in new:
            self.assertEqual(trade["p"], "0.05000000" if trade["m"] else "0.05002000")

    def test_history_is_bounded_and_extras_are_lazy(self):
        market = Market(extra_symbols=3, clock=lambda: FIXED_NOW)
        market.trade_history_size = 40
        market.agg_trades("SYM0002BTC")
        market.step(30)
        for symbol in ("BTCUSDT", "SYM0002BTC"):
            history = market.agg_trade_history(symbol)
            self.assertEqual(len(history), 40, symbol)
            self.assert_chained(history)
            self.assertEqual(market.agg_trades(symbol, from_id=0, limit=2), history[:2])
            self.assertEqual(market.agg_trades(symbol, limit=1000), history)
        # Never asked for in 30 steps: its trades start now, with one step's worth.
        first = market.agg_trades("SYM0001USDT")
        self.assertTrue(1 <= len(first) <= 5)
        market.step()
        self.assertGreater(len(market.agg_trade_history("SYM0001USDT")), len(first))


class TrapTest(FakeCase):
    """The built-in symbols hold the traps they are meant to hold (seen over HTTP)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeBinance(Market()).start()
        cls.spot = Spot(base_url=cls.fake.url, timeout=5, show_limit_usage=True)
        cls.info = data(cls.spot.exchange_info())
        cls.tickers = data(cls.spot.ticker_24hr())
        cls.by_name = {t["symbol"]: t for t in cls.tickers}
        cls.assets = {s["symbol"]: s for s in cls.info["symbols"]}

    @classmethod
    def tearDownClass(cls) -> None:
        cls.spot.session.close()
        cls.fake.stop()

    def trading(self, quote: str) -> list[str]:
        """TRADING symbols quoted in `quote`, by exchangeInfo."""
        return [s for s, i in self.assets.items()
                if i["status"] == "TRADING" and i["quoteAsset"] == quote]

    def test_btc_rankings_differ_by_quote_and_base_volume(self):
        self.assertGreaterEqual(len(self.trading("BTC")), 8)
        by_quote = ranked(self.tickers, "BTC", self.info, "quoteVolume")
        by_base = ranked(self.tickers, "BTC", self.info, "volume")
        self.assertEqual(by_quote, TOP_BTC_BY_QUOTE_VOLUME)
        self.assertEqual(by_base, TOP_BTC_BY_BASE_VOLUME)
        self.assertNotEqual(set(by_quote), set(by_base))
        # DOTBTC and LTCBTC tie exactly; only the name puts DOTBTC in the top 5.
        self.assertEqual(self.by_name["DOTBTC"]["quoteVolume"],
                         self.by_name["LTCBTC"]["quoteVolume"])
        names = list(self.by_name)
        self.assertLess(names.index("LTCBTC"), names.index("DOTBTC"))

    def test_break_symbol_has_the_biggest_figures(self):
        luna = self.by_name["LUNABTC"]
        self.assertEqual(self.assets["LUNABTC"]["status"], "BREAK")
        for key in ("volume", "quoteVolume", "count"):
            others = [Decimal(str(t[key])) for t in self.tickers if t["symbol"] != "LUNABTC"
                      and self.assets[t["symbol"]]["quoteAsset"] == "BTC"]
            self.assertGreater(Decimal(str(luna[key])), max(others), key)
        self.assertGreater(luna["count"], max(t["count"] for t in self.tickers
                                              if t["symbol"] != "LUNABTC"))

    def test_leveraged_token_is_dead(self):
        info, ticker = self.assets["BTCDOWNUSDT"], self.by_name["BTCDOWNUSDT"]
        self.assertEqual((info["status"], info["baseAsset"], info["quoteAsset"]),
                         ("BREAK", "BTCDOWN", "USDT"))
        self.assertEqual((ticker["count"], ticker["firstId"], ticker["lastId"]), (0, -1, -1))
        for key in ("volume", "quoteVolume", "lastPrice", "bidPrice", "askPrice"):
            self.assertEqual(ticker[key], "0.00000000")

    def test_usdt_rankings_and_other_quotes(self):
        usdt = self.trading("USDT")
        self.assertGreaterEqual(len(usdt), 8)
        counts = [self.by_name[s]["count"] for s in usdt]
        self.assertEqual(len(counts), len(set(counts)))
        self.assertEqual(ranked(self.tickers, "USDT", self.info, "count"), TOP_USDT_BY_COUNT)
        self.assertEqual(ranked(self.tickers, "USDT", self.info, "quoteVolume"),
                         TOP_USDT_BY_QUOTE_VOLUME)
        self.assertEqual(self.assets["FTTUSDT"]["status"], "HALT")
        self.assertGreater(self.by_name["FTTUSDT"]["count"], max(counts))
        self.assertEqual((self.assets["USDTTRY"]["baseAsset"],
                          self.assets["USDTTRY"]["quoteAsset"]), ("USDT", "TRY"))
        self.assertEqual(self.assets["BTCTRY"]["quoteAsset"], "TRY")
        self.assertEqual(self.assets["ETHFDUSD"]["quoteAsset"], "FDUSD")
        for symbol in ("USDTTRY", "BTCTRY", "ETHFDUSD"):
            self.assertGreater(self.by_name[symbol]["count"], counts[-1])
        self.assertNotIn("THINUSDT", TOP_USDT_BY_COUNT + TOP_USDT_BY_QUOTE_VOLUME)
        self.assertEqual(data(self.spot.book_ticker(symbol="THINUSDT"))["bidPrice"], "0.00000000")

    def test_top_btc_books_one_shallow(self):
        depths = {s: data(self.spot.depth(s, limit=1000)) for s in TOP_BTC_BY_QUOTE_VOLUME}
        shallow = [s for s, d in depths.items() if len(d["bids"]) < 200 or len(d["asks"]) < 200]
        self.assertEqual(shallow, ["SOLBTC"])
        for symbol, depth in depths.items():
            if symbol != "SOLBTC":
                self.assertEqual((len(depth["bids"]), len(depth["asks"])), (1000, 1000))


class RateLimitTest(FakeCase):
    """REQUEST_WEIGHT: 429 with Retry-After, then 418 for not waiting."""

    def test_429_then_418_then_recovery(self):
        clock, market = Clock(1_000.0), Market()
        market.weight_limit = 100
        fake = self.start_fake(market, clock=clock)
        spot = self.client(fake)
        for expected in (20, 40, 60, 80, 100):
            self.assertEqual(used(spot.exchange_info()), expected)
        error = self.assert_client_error(-1003, 429, spot.exchange_info)
        self.assertEqual(error.header["Retry-After"], "20")  # the window ends at 1020
        self.assertEqual(error.header["X-MBX-USED-WEIGHT-1M"], "120")
        self.assertIn("current limit is 100 request weight per 1 MINUTE", error.error_message)
        clock.now += 5
        error = self.assert_client_error(-1003, 418, spot.ping)
        self.assertEqual(error.header["Retry-After"], "120")
        self.assertIn(f"IP banned until {int((1_005 + 120) * 1000)}", error.error_message)
        clock.now += 60  # a new window, but still banned
        error = self.assert_client_error(-1003, 418, spot.ping)
        self.assertEqual(error.header["Retry-After"], "60")
        self.assertEqual(error.header["X-MBX-USED-WEIGHT-1M"], "1")
        clock.now += 61
        self.assertEqual(data(spot.ping()), {})
        self.assertEqual([r.status for r in fake.requests][-4:], [429, 418, 418, 200])

    def test_waiting_out_a_short_window_avoids_the_ban(self):
        market = Market()
        market.weight_limit = 10
        fake = self.start_fake(market, window_seconds=0.5)
        spot = self.client(fake)
        time.sleep(0.5 - time.time() % 0.5 + 0.01)  # start at the beginning of a window
        self.assertEqual(used(spot.depth("BTCUSDT")), 5)
        self.assertEqual(used(spot.depth("BTCUSDT")), 10)
        self.assert_client_error(-1003, 429, spot.depth, "BTCUSDT")
        time.sleep(0.5 - time.time() % 0.5 + 0.01)  # wait for the next window, not longer
        self.assertEqual(used(spot.depth("BTCUSDT")), 5)
        fake.reset_limits()
        self.assertEqual(fake.used_weight, 0)


class LifecycleTest(FakeCase):
    """Keep-alive, pause/resume, stop, concurrency, the control API and the CLI."""

    def test_keep_alive_reuses_one_connection(self):
        fake = self.start_fake()
        spot = self.client(fake)
        for _ in range(5):
            spot.ping()
        spot.depth("BTCUSDT", limit=1000)
        self.assertEqual(fake.connections_accepted, 1)

    def test_pause_refuses_then_resume_accepts_on_same_port(self):
        fake = self.start_fake()
        spot = self.client(fake)
        port = fake.port
        self.assertEqual(data(spot.ping()), {})
        fake.pause()
        with self.assertRaises(requests.exceptions.ConnectionError):
            spot.ping()
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        fake.resume()
        self.assertEqual(fake.port, port)
        self.assertEqual(data(spot.ping()), {})

    def test_stop_is_prompt_with_open_keep_alive_connection(self):
        fake = self.start_fake()
        spot = self.client(fake)
        spot.ping()  # leaves an idle keep-alive connection open
        started = time.monotonic()
        fake.stop()
        self.assertLess(time.monotonic() - started, 1.0)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", fake.port), timeout=1).close()
        fake.stop()  # idempotent

    def test_concurrent_clients_while_the_market_steps(self):
        fake = self.start_fake()
        errors: list[BaseException] = []

        def worker() -> None:
            spot = Spot(base_url=fake.url, timeout=5)
            try:
                for _ in range(15):
                    depth = spot.depth("ETHUSDT", limit=50)
                    if Decimal(depth["bids"][0][0]) >= Decimal(depth["asks"][0][0]):
                        raise AssertionError("crossed book")
            except Exception as exc:  # pylint: disable=broad-exception-caught
                errors.append(exc)
            finally:
                spot.session.close()

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for _ in range(30):
            fake.market.step()
        for thread in threads:
            thread.join(10)
        self.assertEqual(errors, [])
        self.assertEqual(len(fake.requests), 90)

    def test_control_api(self):
        fake = self.start_fake()
        spot = self.client(fake)

        def control(path: str) -> Any:
            with urllib.request.urlopen(fake.url + path, timeout=5) as response:
                return json.loads(response.read())

        self.assertEqual(control("/fake/step?n=2"), {"steps": 2})
        control("/fake/fault?fault=status&path=/api/v3/depth&status=503&count=1")
        self.assertRaises(ServerError, spot.depth, "BTCUSDT")
        self.assertIn("bids", data(spot.depth("BTCUSDT")))
        control("/fake/fault?fault=status&status=429&retry_after=3&count=0")
        self.assertEqual(self.assert_client_error(-1003, 429, spot.ping).header["Retry-After"],
                         "3")
        self.assertEqual(control("/fake/clear"), {"faults": []})
        control("/fake/status?symbol=ETHBTC&status=HALT")
        self.assertEqual(fake.market.exchange_info(["ETHBTC"])["symbols"][0]["status"], "HALT")
        stats = control("/fake/stats")
        self.assertEqual((stats["steps"], stats["requests"]), (2, 3))
        self.assertEqual(stats["total_weight"], fake.total_weight)

    def test_command_line_runs_steps_and_exits_cleanly(self):
        for name, signum in (("SIGTERM", signal.SIGTERM), ("SIGINT", signal.SIGINT)):
            with self.subTest(signal=name):
                process = subprocess.Popen(  # pylint: disable=consider-using-with
                    [sys.executable, "-m", "fake_binance", "--port", "0", "--tick", "0.05"],
                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.addCleanup(process.kill)
                self.addCleanup(process.wait)
                line = process.stdout.readline()
                url = re.search(r"http://127\.0\.0\.1:\d+", line)
                self.assertIsNotNone(url, line)
                spot = Spot(base_url=url.group(0), timeout=5)
                self.addCleanup(spot.session.close)
                first = spot.depth("BTCUSDT", limit=5)["lastUpdateId"]
                time.sleep(0.15)
                self.assertGreater(spot.depth("BTCUSDT", limit=5)["lastUpdateId"], first)
                process.send_signal(signum)
                _, stderr = process.communicate(timeout=5)
                self.assertEqual(process.returncode, 0, stderr)
                self.assertNotIn("Traceback", stderr)


if __name__ == "__main__":
    unittest.main()
