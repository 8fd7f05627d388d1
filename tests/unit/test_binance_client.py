"""The Binance client wrapper: error mapping, weight budget, back-off gate.

These use a stand-in for binance-connector's `Spot` that raises exactly what
the connector raises (its own exception classes, `requests` exceptions,
KeyError), so each mapping is checked without a network; the end-to-end tests
check the same paths against the fake Binance over HTTP.
"""

import math
import unittest
from typing import Any, Callable

import requests
from binance.error import ClientError, ServerError
from binance.spot import Spot
from requests.structures import CaseInsensitiveDict

from binance_exporter.binance import budget, rest, session, weights
from binance_exporter.binance.rest import BinanceClient, BinanceError


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class StubSpot:
    """Answers every call with what `behaviour` returns or raises."""

    def __init__(self, behaviour: Callable[[str, dict], Any], **kwargs: Any) -> None:
        self.behaviour = behaviour
        self.kwargs = kwargs
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, name: str, **params: Any) -> Any:
        self.calls.append((name, params))
        return self.behaviour(name, params)

    def exchange_info(self):
        """Stand-in for Spot.exchange_info."""
        return self._answer("exchange_info")

    def ticker_24hr(self, **params):
        """Stand-in for Spot.ticker_24hr."""
        return self._answer("ticker_24hr", **params)

    def depth(self, symbol, **params):
        """Stand-in for Spot.depth."""
        return self._answer("depth", symbol=symbol, **params)

    def book_ticker(self, **params):
        """Stand-in for Spot.book_ticker."""
        return self._answer("book_ticker", **params)


def ok(data: Any, weight: int = 7) -> Callable[[str, dict], Any]:
    """Answer like Spot(show_limit_usage=True) does."""
    return lambda name, params: {"limit_usage": {"x-mbx-used-weight-1m": str(weight)},
                                 "data": data}


def raising(exc: BaseException) -> Callable[[str, dict], Any]:
    """Raise `exc` on every call."""
    def behave(name: str, params: dict) -> Any:
        raise exc
    return behave


def headers(**values: str) -> CaseInsensitiveDict:
    """Response headers as binance-connector hands them over."""
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in values.items()})


class ClientTestCase(unittest.TestCase):
    """A client over stub Spots and a settable clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.spots: list[StubSpot] = []
    def make(self, behaviour, **kwargs) -> BinanceClient:
        """A client whose Spots behave as `behaviour` says."""

        def factory(**spot_kwargs):
            spot = StubSpot(behaviour, **spot_kwargs)
            self.spots.append(spot)
            return spot

        return BinanceClient("http://127.0.0.1:1", timeout=3.0, clock=self.clock,
                             spot_factory=factory, **kwargs)


class SuccessTest(ClientTestCase):
    """Successful calls."""
    def test_returns_data_and_records_weight_and_counts(self):
        client = self.make(ok({"symbols": []}, weight=42))
        self.assertEqual(client.exchange_info(), {"symbols": []})
        stats = client.stats()
        self.assertEqual(stats.weight_used, 42)
        self.assertEqual(stats.requests, {(weights.EXCHANGE_INFO, "200"): 1})

    def test_spot_gets_timeout_and_usage_headers(self):
        client = self.make(ok([]))
        client.tickers_24h()
        self.assertEqual(self.spots[0].kwargs,
                         {"base_url": "http://127.0.0.1:1", "timeout": 3.0,
                          "show_limit_usage": True})
        self.assertEqual(self.spots[0].calls, [("ticker_24hr", {"type": "MINI"})])

    def test_book_tickers_with_and_without_symbols(self):
        client = self.make(ok([]))
        client.book_tickers(["A", "B"])
        client.book_tickers(None)
        self.assertEqual(self.spots[0].calls, [("book_ticker", {"symbols": ["A", "B"]}),
                                               ("book_ticker", {"symbols": None})])

    def test_depth_passes_limit(self):
        client = self.make(ok({}))
        client.depth("ETHBTC", 200)
        self.assertEqual(self.spots[0].calls, [("depth", {"symbol": "ETHBTC", "limit": 200})])

    def test_weights(self):
        limits = (1, 100, 101, 500, 501, 1000, 1001, 5000)
        self.assertEqual([weights.depth_weight(n) for n in limits],
                         [5, 5, 25, 25, 50, 50, 250, 250])


class ErrorMappingTest(ClientTestCase):
    """Every connector failure becomes one BinanceError kind."""
    def assert_error(self, behaviour, kind: str, code_label: str, **attrs) -> BinanceError:
        """Call depth() and check the error and the request counter."""
        client = self.make(behaviour)
        with self.assertRaises(BinanceError) as caught:
            client.depth("ETHBTC", 200)
        self.assertEqual(caught.exception.kind, kind)
        for name, value in attrs.items():
            self.assertEqual(getattr(caught.exception, name), value)
        self.assertEqual(client.stats().requests, {(weights.DEPTH, code_label): 1})
        return caught.exception

    def test_invalid_symbol(self):
        error = self.assert_error(
            raising(ClientError(400, -1121, "Invalid symbol.", headers(), None)),
            rest.CLIENT, "400", status=400, code=-1121)
        self.assertTrue(error.invalid_symbol)

    def test_server_error(self):
        self.assert_error(raising(ServerError(503, "<html>down</html>")), rest.SERVER, "503",
                          status=503)

    def test_transport_errors(self):
        for exc in (requests.exceptions.ConnectionError("refused"),
                    requests.exceptions.ReadTimeout("slow"),
                    requests.exceptions.ChunkedEncodingError("truncated")):
            with self.subTest(exc=type(exc).__name__):
                self.assert_error(raising(exc), rest.TRANSPORT, "error")

    def test_4xx_body_without_code(self):
        self.assert_error(raising(KeyError("code")), rest.BAD_RESPONSE, "error")

    def test_non_json_body(self):
        client = self.make(ok("<html>maintenance</html>"))
        with self.assertRaises(BinanceError) as caught:
            client.depth("ETHBTC", 200)
        self.assertEqual(caught.exception.kind, rest.BAD_RESPONSE)

    def test_error_status_from_the_session_whatever_the_body(self):
        self.assert_error(
            raising(session.ErrorAnswer(status=403, code=None, message='{"error": "waf"}',
                                        headers=headers())),
            rest.CLIENT, "403", status=403, code=None)
        self.assert_error(
            raising(session.ErrorAnswer(status=502, code=None, message="<html>", headers=None)),
            rest.SERVER, "502", status=502)

    def test_redirect_is_a_bad_response_naming_its_target(self):
        error = self.assert_error(
            raising(session.RedirectRefused("HTTP 302 redirect to http://elsewhere/ not followed",
                                            status=302, location="http://elsewhere/")),
            rest.BAD_RESPONSE, "302", status=302)
        self.assertIn("http://elsewhere/", str(error))

    def test_answer_over_the_cap_is_a_bad_response(self):
        self.assert_error(raising(session.AnswerTooLarge("answer is over the 10-byte cap")),
                          rest.BAD_RESPONSE, "error")

    def test_deadline_is_a_transport_failure(self):
        error = self.assert_error(raising(session.DeadlineExceeded("no complete answer")),
                                  rest.TRANSPORT, "error")
        self.assertNotIn("\n", str(error))

    def test_deeply_nested_answer_is_a_bad_response(self):
        self.assert_error(raising(RecursionError("maximum recursion depth exceeded")),
                          rest.BAD_RESPONSE, "error")

    def test_unexpected_wrapper_shape(self):
        client = self.make(lambda name, params: ["not", "wrapped"])
        with self.assertRaises(BinanceError) as caught:
            client.depth("ETHBTC", 200)
        self.assertEqual(caught.exception.kind, rest.BAD_RESPONSE)


class BackoffTest(ClientTestCase):
    """429/418 handling."""

    def setUp(self) -> None:
        super().setUp()
        self.logged: list[str] = []  # log lines of the last rate_limited() call
    def rate_limited(self, status: int, retry_after: str | None) -> BinanceClient:
        """A client that has just been answered `status`."""
        # A low weight header: a 429 can also come from another limiter, and
        # this test is about the back-off gate, not the weight budget.
        values = {"X-MBX-USED-WEIGHT-1M": "100"}
        if retry_after is not None:
            values["Retry-After"] = retry_after
        error = ClientError(status, -1003, "Too much request weight used", headers(**values), None)
        client = self.make(raising(error))
        with self.assertRaises(BinanceError) as caught, self.assertLogs(rest.LOG) as logs:
            client.depth("ETHBTC", 200)
        self.assertEqual(caught.exception.kind, rest.BANNED if status == 418 else rest.RATE_LIMITED)
        self.logged = logs.output
        return client

    def test_429_honours_retry_after_and_sends_nothing_until_then(self):
        client = self.rate_limited(429, "7")
        self.assertAlmostEqual(client.blocked_for(), 7.0)
        self.assertEqual(client.stats().backoff_until, self.clock.now + 7)
        self.clock.now += 6.9
        with self.assertRaises(BinanceError) as caught:
            client.depth("ETHBTC", 200)
        self.assertEqual(caught.exception.kind, rest.BACKING_OFF)
        self.assertTrue(caught.exception.local)
        self.assertEqual(len(self.spots[0].calls), 1)  # the refused call never left
        self.clock.now += 0.2
        with self.assertRaises(BinanceError), self.assertLogs(rest.LOG, "WARNING"):
            client.depth("ETHBTC", 200)
        self.assertEqual(len(self.spots[0].calls), 2)

    def test_429_without_retry_after_waits_a_minute(self):
        client = self.rate_limited(429, None)
        self.assertAlmostEqual(client.blocked_for(), rest.DEFAULT_RATE_LIMIT_BACKOFF)

    def test_418_honours_retry_after_and_logs_loudly(self):
        client = self.rate_limited(418, "120")
        self.assertAlmostEqual(client.blocked_for(), 120.0)
        self.assertEqual(len(self.logged), 1)
        self.assertTrue(self.logged[0].startswith("ERROR:"), self.logged)
        self.assertIn("BANNED", self.logged[0])
        self.assertIn("1970-01-12T13:49:00Z", self.logged[0])  # when the ban ends

    def test_429_logs_one_warning_with_the_end_of_the_wait(self):
        self.rate_limited(429, "7")
        self.assertEqual(len(self.logged), 1)
        self.assertTrue(self.logged[0].startswith("WARNING:"), self.logged)
        self.assertIn("7 s, until 1970-01-12T13:47:07Z", self.logged[0])

    def test_huge_or_infinite_retry_after_is_capped(self):
        for status, value, cap in ((429, "1e10", 3600.0), (429, "inf", 3600.0),
                                   (418, "1e10", 3 * 86400.0), (418, "Infinity", 3 * 86400.0)):
            with self.subTest(status=status, value=value):
                client = self.rate_limited(status, value)
                self.assertAlmostEqual(client.blocked_for(), cap)

    def test_429_without_a_binance_code_is_recognised_by_its_status(self):
        error = session.ErrorAnswer(status=429, code=None, message="rate limited",
                                    headers=headers(Retry_After="30"))
        client = self.make(raising(error))
        with self.assertRaises(BinanceError) as caught, self.assertLogs(rest.LOG, "WARNING"):
            client.depth("ETHBTC", 200)
        self.assertEqual((caught.exception.kind, caught.exception.status),
                         (rest.RATE_LIMITED, 429))
        self.assertAlmostEqual(client.blocked_for(), 30.0)
        self.assertEqual(client.stats().requests, {(weights.DEPTH, "429"): 1})

    def test_unreadable_retry_after_counts_as_missing(self):
        client = self.rate_limited(429, "soon")
        self.assertAlmostEqual(client.blocked_for(), rest.DEFAULT_RATE_LIMIT_BACKOFF)


class RateLimitWaitTest(unittest.TestCase):
    """Reading Retry-After defensively."""

    def test_each_kind_of_value(self):
        default = rest.DEFAULT_RATE_LIMIT_BACKOFF
        cases = [
            ("7", 7.0), (" 7 ", 7.0), ("2.5", 2.5), (None, default), ("soon", default),
            ("", default), ("-5", default), ("nan", default), ("NaN", default),
            ("0", rest.MIN_RATE_LIMIT_BACKOFF), ("inf", rest.MAX_RATE_LIMITED_BACKOFF),
            ("1e10", rest.MAX_RATE_LIMITED_BACKOFF), ("9" * 400, rest.MAX_RATE_LIMITED_BACKOFF),
            ("Wed, 21 Oct 2015 07:28:00 GMT", default),
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                self.assertEqual(rest.rate_limit_wait(429, value), expected)

    def test_a_ban_is_capped_at_three_days_not_one_hour(self):
        self.assertEqual(rest.rate_limit_wait(418, "1e10"), 3 * 86400.0)
        self.assertEqual(rest.rate_limit_wait(418, "7200"), 7200.0)
        self.assertEqual(rest.rate_limit_wait(429, "7200"), 3600.0)
        self.assertTrue(math.isfinite(rest.rate_limit_wait(418, "-inf")))


class SessionInstallTest(unittest.TestCase):
    """A real Spot sends through the bounded session."""

    def test_spot_gets_a_bounded_session_with_its_headers(self):
        made: list[Spot] = []

        class OfflineSpot(Spot):
            """A real Spot whose depth() answers without the network."""

            def depth(self, symbol: str, **kwargs: Any) -> Any:
                """Stand-in for Spot.depth."""
                return {"data": {"symbol": symbol, **kwargs}}

        def factory(**kwargs: Any) -> Spot:
            made.append(OfflineSpot(**kwargs))
            return made[-1]

        client = BinanceClient("http://127.0.0.1:1", timeout=2.5, spot_factory=factory,
                               max_answer_bytes=1000)
        client.depth("ETHBTC", 5)
        bounded = made[0].session
        self.assertIsInstance(bounded, session.BoundedSession)
        self.assertEqual((bounded.timeout, bounded.max_bytes), (2.5, 1000))
        self.assertIn("binance-connector-python", bounded.headers["User-Agent"])


class BudgetTest(ClientTestCase):
    """The weight budget."""
    def test_refuses_before_exceeding_the_share_of_the_limit(self):
        client = self.make(ok({}, weight=2990), weight_share=0.5)
        client.depth("A", 100)  # header: 2990 used of 6000
        with self.assertRaises(BinanceError) as caught:
            client.depth("A", 200)  # 2990 + 25 > 3000
        self.assertEqual(caught.exception.kind, rest.BUDGET)
        self.assertGreater(caught.exception.retry_after, 0)
        client.depth("A", 100)  # 2990 + 5 still fits
        self.assertEqual(len(self.spots[0].calls), 2)

    def test_budget_follows_the_announced_limit(self):
        client = self.make(ok({}, weight=500), weight_share=0.5)
        client.set_weight_limit(1000)
        client.depth("A", 100)
        with self.assertRaises(BinanceError):
            client.depth("A", 100)
        client.set_weight_limit(None)  # ignored
        self.assertEqual(client.stats().weight_limit, 1000)

    def test_budget_resets_with_the_minute(self):
        client = self.make(ok({}, weight=2999), weight_share=0.5)
        client.depth("A", 1)
        with self.assertRaises(BinanceError):
            client.depth("A", 1)
        self.clock.now += 60
        self.assertEqual(client.stats().weight_used, 0)
        client.depth("A", 1)

    def test_a_limit_too_low_for_one_refresh_is_floored_and_logged_once(self):
        client = self.make(ok({}, weight=0), weight_share=0.5)
        floor = math.ceil(rest.MIN_REFRESH_WEIGHT / 0.5)
        self.assertEqual(client.weight_floor, floor)
        with self.assertLogs(budget.LOG, "WARNING") as logs:
            client.set_weight_limit(10)
            client.set_weight_limit(10)
            client.set_weight_limit(1)
        self.assertEqual(len(logs.output), 1)
        self.assertIn("limit of 10", logs.output[0])
        self.assertEqual(client.stats().weight_limit, floor)
        client.exchange_info()  # the refresh that can bring a sane limit still leaves
        client.set_weight_limit(1200)
        self.assertEqual(client.stats().weight_limit, 1200)

    def test_the_floor_follows_the_refresh_weight_given(self):
        client = self.make(ok({}), weight_share=0.25, refresh_weight=500)
        with self.assertLogs(budget.LOG, "WARNING"):
            client.set_weight_limit(1999)
        self.assertEqual(client.stats().weight_limit, 2000)

    def test_values_that_are_not_limits_change_nothing(self):
        client = self.make(ok({}))
        for value in (None, True, 0, -5, 6000.0, "6000"):
            client.set_weight_limit(value)  # type: ignore[arg-type]
        self.assertEqual(client.stats().weight_limit, weights.DEFAULT_WEIGHT_LIMIT)

    def test_weight_is_reserved_before_the_answer(self):
        # A request without a weight header still counts its own weight.
        client = self.make(lambda name, params: {"data": {}})
        client.depth("A", 1000)
        self.assertEqual(client.stats().weight_used, 50)


if __name__ == "__main__":
    unittest.main()
