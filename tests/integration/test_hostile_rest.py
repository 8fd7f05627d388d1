"""The real BinanceClient against a hostile upstream (`tests.hostile`).

Each fault must give one BinanceError within the timeout and a small margin,
hold no more memory than the answer cap, close the back-off gate for the
right (capped) time, and leave the client working once the fault stops.
Back-off is checked on the client's injected clock; deadlines on real time,
since they are what is under test.
"""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
import unittest
from typing import Any, Callable

from binance_exporter.binance import rest, weights
from binance_exporter.binance.rest import BinanceClient, BinanceError
from fake_binance.market import Market
from tests import hostile

TIMEOUT = 0.5  # seconds: the client's whole-request deadline in these tests
MARGIN = 0.5  # seconds a refusal may take beyond the deadline
SMALL_CAP = 1024 * 1024  # bytes: the cap for the huge-body tests
HUGE = 50 * 1000 * 1000  # bytes of a huge body


def setUpModule() -> None:  # pylint: disable=invalid-name
    """urllib3 warns when a cut lands inside the headers; the test expects the cut."""
    logging.getLogger("urllib3.connection").setLevel(logging.ERROR)


def tearDownModule() -> None:  # pylint: disable=invalid-name
    """Put urllib3's logger back."""
    logging.getLogger("urllib3.connection").setLevel(logging.NOTSET)


class Clock:
    """A settable wall clock for the back-off gate."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class HostileCase(unittest.TestCase):
    """A hostile server, a client pointed at it, and timing helpers."""

    def setUp(self) -> None:
        self.server = hostile.HostileServer().start()
        self.addCleanup(self.server.stop)
        self.clock = Clock()

    def client(self, **kwargs: Any) -> BinanceClient:
        """A real client (real Spot, real HTTP) with the test deadline."""
        return BinanceClient(self.server.url, timeout=TIMEOUT, weight_share=1.0,
                             clock=self.clock, **kwargs)

    def fails(self, client: BinanceClient, kind: str,
              call: Callable[[BinanceClient], Any] = BinanceClient.exchange_info
              ) -> tuple[BinanceError, float]:
        """Call once; return the BinanceError of `kind` and the seconds it took."""
        started = time.monotonic()
        with self.assertRaises(BinanceError) as caught:
            call(client)
        elapsed = time.monotonic() - started
        self.assertEqual(caught.exception.kind, kind, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))
        return caught.exception, elapsed

    def recovers(self, client: BinanceClient) -> None:
        """Once the upstream behaves, the next call succeeds."""
        self.server.behaviour = hostile.answer({"symbols": []})
        self.assertEqual(client.exchange_info(), {"symbols": []})


class DeadlineTest(HostileCase):
    """Upstreams that drip: the whole request ends at its deadline."""

    def assert_deadline(self, behaviour: hostile.Behaviour) -> None:
        """`behaviour` gives one TRANSPORT error near the deadline; the client then recovers."""
        self.server.behaviour = behaviour
        client = self.client()
        error, elapsed = self.fails(client, rest.TRANSPORT)
        self.assertIn("deadline", str(error))
        self.assertLess(elapsed, TIMEOUT + MARGIN)
        self.assertGreaterEqual(elapsed, TIMEOUT * 0.9)
        self.assertEqual(client.stats().requests, {(weights.EXCHANGE_INFO, "error"): 1})
        self.recovers(client)

    def test_dripping_headers(self):
        self.assert_deadline(hostile.drip_head(0.02))

    def test_dripping_body(self):
        self.assert_deadline(hostile.drip_body(0.02))

    def test_slow_chunked_body(self):
        self.assert_deadline(hostile.slow_chunks(0.02))

    def test_silence_after_the_headers(self):
        self.assert_deadline(hostile.drip_body(60.0))


class SizeCapTest(HostileCase):
    """Huge answers: refused, and never held beyond the cap."""

    def assert_refused_within_cap(self, framing: str) -> None:
        """A 50 MB body is refused quickly, holding at most about the cap."""
        self.server.behaviour = hostile.huge_body(HUGE, framing)
        client = self.client(max_answer_bytes=SMALL_CAP)
        tracemalloc.start()
        try:
            error, elapsed = self.fails(client, rest.BAD_RESPONSE)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertIn("cap", str(error))
        self.assertLess(elapsed, TIMEOUT)
        self.assertLess(peak, 2 * SMALL_CAP)
        # The client hung up: the server stopped long before the 50 MB.
        self.assertTrue(self.server.log.wait_ended(1, 5.0))
        self.assertLess(self.server.log.bytes_sent, HUGE // 5)
        self.recovers(client)

    def test_declared_length_over_the_cap_is_refused_before_the_body(self):
        self.server.behaviour = hostile.huge_body(HUGE, "length")
        client = self.client()  # the default 24 MiB cap
        error, elapsed = self.fails(client, rest.BAD_RESPONSE)
        self.assertIn("Content-Length", str(error))
        self.assertLess(elapsed, TIMEOUT)

    def test_chunked_body_over_the_cap(self):
        self.assert_refused_within_cap("chunked")

    def test_body_without_length_over_the_cap(self):
        self.assert_refused_within_cap("close")

    def test_answer_the_size_of_a_real_exchange_info_fits_the_default_cap(self):
        body = Market(seed=1, extra_symbols=3000).exchange_info()
        self.assertGreater(len(json.dumps(body)), 5_000_000)
        self.server.behaviour = hostile.answer(body)
        client = BinanceClient(self.server.url, timeout=10.0, weight_share=1.0)
        self.assertEqual(len(client.exchange_info()["symbols"]), len(body["symbols"]))


class RedirectTest(HostileCase):
    """A redirect is refused, never followed."""

    def test_redirect_names_its_target_and_is_not_followed(self):
        with hostile.HostileServer() as elsewhere:
            self.server.behaviour = hostile.redirect(f"{elsewhere.url}/api/v3/exchangeInfo")
            client = self.client()
            error, _ = self.fails(client, rest.BAD_RESPONSE)
            self.assertEqual(error.status, 302)
            self.assertIn(elsewhere.url, str(error))
            self.assertEqual(elsewhere.log.count(), 0)  # the call has returned: no later visit
        self.assertEqual(client.stats().requests, {(weights.EXCHANGE_INFO, "302"): 1})
        self.recovers(client)


class RateLimitTest(HostileCase):
    """429/418 by status, whatever the body; Retry-After read defensively and capped."""

    def assert_backs_off(self, behaviour: hostile.Behaviour, status: int, wait: float) -> None:
        """One error of the status's kind, the gate closed `wait` s, then recovery."""
        self.server.behaviour = behaviour
        client = self.client()
        level = "ERROR" if status == 418 else "WARNING"
        with self.assertLogs(rest.LOG, level) as logs:
            error, _ = self.fails(client, rest.BANNED if status == 418 else rest.RATE_LIMITED)
        self.assertEqual(len(logs.output), 1)
        self.assertEqual(error.status, status)
        self.assertAlmostEqual(client.blocked_for(), wait)
        self.clock.now += wait - 0.5
        self.fails(client, rest.BACKING_OFF)
        self.assertEqual(self.server.log.count(), 1)  # the refused call never left
        self.clock.now += 0.5
        self.recovers(client)

    def test_429_with_code_and_retry_after(self):
        self.assert_backs_off(hostile.rate_limited(429, "7"), 429, 7.0)

    def test_429_without_code_is_recognised_by_status(self):
        self.assert_backs_off(hostile.rate_limited(429, "30", code=None), 429, 30.0)

    def test_429_with_a_text_body(self):
        self.assert_backs_off(hostile.rate_limited(429, "12", body=b"<html>slow down</html>"),
                              429, 12.0)

    def test_429_odd_retry_after_values(self):
        cases = [("1e10", 3600.0), ("inf", 3600.0), ("nan", 60.0), ("-5", 60.0),
                 ("soon", 60.0), (None, 60.0)]
        for value, wait in cases:
            with self.subTest(retry_after=value):
                self.clock.now += 10_000.0  # past any earlier back-off
                self.server.log = hostile.Log()
                self.assert_backs_off(hostile.rate_limited(429, value, code=None), 429, wait)

    def test_418_is_capped_at_three_days(self):
        self.assert_backs_off(hostile.rate_limited(418, "1e10"), 418, 3 * 86400.0)


class ChosenBodyTest(HostileCase):
    """Bodies Binance would never send."""

    def test_each_body_is_one_error(self):
        cases = [
            (hostile.answer(b"[" * 100_000), rest.BAD_RESPONSE),
            (hostile.answer(b"<html>maintenance</html>"), rest.BAD_RESPONSE),
            (hostile.answer(b"\xff\xfe{}"), rest.BAD_RESPONSE),
            (hostile.answer({"error": "waf"}, status=403), rest.CLIENT),
            (hostile.answer({"code": -1121, "msg": "Invalid symbol."}, status=400), rest.CLIENT),
            (hostile.answer(b"", status=503), rest.SERVER),
        ]
        client = self.client()
        for behaviour, kind in cases:
            with self.subTest(kind=kind):
                self.server.behaviour = behaviour
                self.fails(client, kind)
        self.recovers(client)


if __name__ == "__main__":
    unittest.main()


class SlimExchangeInfoTest(HostileCase):
    """exchangeInfo comes back with only the fields the exporter reads."""

    def test_filters_and_permissions_are_never_decoded(self):
        symbol = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC",
                  "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER"}] * 50,
                  "permissions": ["SPOT"] * 50}
        self.server.behaviour = hostile.answer({"timezone": "UTC", "symbols": [symbol],
                                                "rateLimits": []})
        answer = self.client().exchange_info()
        self.assertEqual(answer, {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING",
                                               "baseAsset": "BTC", "quoteAsset": "USDT"}],
                                  "rateLimits": []})
