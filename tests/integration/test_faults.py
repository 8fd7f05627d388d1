"""What the exporter does when Binance misbehaves, proved over HTTP.

The exporter runs as a real process against the fake Binance; faults are
injected with `FakeBinance.inject()`, `pause()`/`resume()` and the `Market`
mutators, and the fake's request log (`RequestRecord`s with timestamps) says
what actually reached "Binance". Unit tests cover what cannot be timed
honestly here (see the references in each class docstring).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from fake_binance.market import Market
from fake_binance.server import FakeBinance, RequestRecord
from tests.support import (
    ROOT,
    Exporter,
    Samples,
    free_port,
    http_get,
    parse_samples,
    run_once,
    sample,
    wait_until,
)

EXCHANGE_INFO = "/api/v3/exchangeInfo"
DEPTH = "/api/v3/depth"
BOOK_TICKER = "/api/v3/ticker/bookTicker"
REQUESTS = "binance_api_requests_total"
# Rankings every 3 s, spreads every 1 s: 129 x 20 + 4 x 60 = 2820 weight a
# minute, inside the default plan (50 % of 6000) thanks to the cheap depth.
FAST_RANKINGS = ("--update-interval", "1", "--refresh-interval", "3", "--depth-levels", "50",
                 "--no-analytics")
# Spreads every 0.5 s, rankings every 4 s: 129 x 15 + 4 x 120 = 2415 a minute.
FAST_BOTH = ("--update-interval", "0.5", "--refresh-interval", "4", "--depth-levels", "50",
             "--no-analytics")
# Spreads every 0.5 s, rankings rarely: 229 + 4 x 120 = 709 a minute.
FAST_SPREADS = ("--update-interval", "0.5", "--refresh-interval", "60", "--no-analytics")
RETRY_CAP = 3.0  # the scheduler caps the rankings retry at the refresh interval (FAST_RANKINGS)


def ranked(samples: Samples, ranking: str) -> list[str]:
    """Symbols of one ranking ("trades" or "quote_volume") in rank order."""
    rows = [(value, dict(labels)["symbol"]) for (name, labels), value in samples.items()
            if name == "binance_top_symbol_rank" and dict(labels)["ranking"] == ranking]
    return [symbol for _rank, symbol in sorted(rows)]


def series(samples: Samples, name: str) -> dict[str, float]:
    """symbol -> value of a family labelled by symbol only."""
    return {dict(labels)["symbol"]: value for (metric, labels), value in samples.items()
            if metric == name and len(labels) == 1}


def market_spreads(market: Market, symbols: list[str]) -> dict[str, float]:
    """Best ask minus best bid per symbol, straight from the fake's data."""
    return {t["symbol"]: float(Decimal(t["askPrice"]) - Decimal(t["bidPrice"]))
            for t in market.book_ticker(symbols)}


def close_to(served: dict[str, float], expected: dict[str, float]) -> bool:
    """Same symbols and values equal to within float rounding."""
    return served.keys() == expected.keys() and all(
        abs(served[s] - expected[s]) <= 1e-9 * max(1.0, abs(expected[s])) for s in expected)


def bursts(times: list[float], gap: float = 0.3) -> int:
    """How many groups of requests `times` holds, a group ending at a pause over `gap` s."""
    ordered = sorted(times)
    return sum(1 for a, b in zip([None, *ordered], ordered) if a is None or b - a > gap)


def ready(exporter: Exporter, timeout: float = 10.0) -> Samples:
    """Wait for /-/ready, then for a page that shows the answers; return that page.

    /-/ready reads the snapshot store, /metrics the page rendered just after
    each publish, so for an instant after the first success the page can
    still be the one from before it.
    """
    exporter.wait_ready(timeout)
    return wait_until(lambda: (s := exporter.scrape()) and sample(s, "binance_up") == 1 and s,
                      timeout=3)


def log_lines(exporter: Exporter, level: str) -> list[str]:
    """The exporter's stderr lines logged at `level`."""
    return [line for line in exporter.output()[1].splitlines() if f" {level} " in line]


def run_cli(*args: str, timeout: float = 15.0) -> subprocess.CompletedProcess:
    """`python -m binance_exporter ARGS` to completion (bad-input cases)."""
    return subprocess.run([sys.executable, "-m", "binance_exporter", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


class FaultTestCase(unittest.TestCase):
    """A fake Binance (not ticking: tests move it) per test, and exporters on it."""

    def setUp(self) -> None:
        self.market = Market(seed=7)
        self.fake = FakeBinance(self.market).start()
        self.addCleanup(self.fake.stop)

    def exporter(self, *args: str, base_url: str | None = None) -> Exporter:
        """Start the exporter (on the fake unless `base_url`); stopped when the test ends."""
        exporter = Exporter(base_url or self.fake.url, *args)
        self.addCleanup(exporter.close)
        return exporter

    def since(self, started: float) -> list[RequestRecord]:
        """The fake's log from `started` (time.time) on."""
        return [r for r in self.fake.requests if r.time >= started]

    def assert_one_clean_line(self, result: subprocess.CompletedProcess, code: int,
                              text: str) -> None:
        """Exit `code` with exactly one stderr line containing `text`, no traceback."""
        self.assertEqual(result.returncode, code, result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn(text, result.stderr)
        self.assertNotIn("Traceback", result.stderr)


class UnreachableAtStartTest(FaultTestCase):
    """Row 1: Binance unreachable at start-up.

    The jitter itself (50-100 % of each step) is pinned by
    test_refresh.SchedulerTest.test_retry_delay_grows_and_is_capped; here the
    gaps between attempts must grow and stay under the cap.
    """

    def test_connection_refused_serves_up_0_backs_off_then_recovers_on_resume(self):
        self.fake.pause()
        exporter = self.exporter(*FAST_RANKINGS)
        exporter.wait_healthy()
        attempts: dict[int, float] = {}  # attempt number -> when the exporter showed it
        deadline = time.monotonic() + 8
        while len(attempts) < 4 and time.monotonic() < deadline:
            count = sample(exporter.scrape(), REQUESTS, endpoint=EXCHANGE_INFO, code="error")
            attempts.setdefault(int(count or 0), time.monotonic())
            time.sleep(0.02)
        samples = exporter.scrape()
        self.assertEqual(sample(samples, "binance_up"), 0)
        self.assertEqual(sample(samples, "binance_refresh_success", job="rankings"), 0)
        self.assertEqual(http_get(exporter.url + "/-/ready")[0], 503)
        self.assertIsNone(sample(samples, "binance_spread", symbol="BTCUSDT"))
        # After failure n the retry waits 50-100 % of min(cap, 2 ** (n - 1)) s.
        gaps = {n: attempts[n + 1] - seen for n, seen in attempts.items()
                if n and n + 1 in attempts}
        self.assertGreaterEqual(len(gaps), 2, attempts)
        for failures, gap in gaps.items():
            step = min(RETRY_CAP, 2.0 ** (failures - 1))
            self.assertGreaterEqual(gap, step / 2 - 0.1, (failures, gaps))
            self.assertLessEqual(gap, step + 0.3, (failures, gaps))

        resumed = time.time()
        self.fake.resume()
        samples = ready(exporter, timeout=RETRY_CAP + 3)
        self.assertLessEqual(time.time() - resumed, RETRY_CAP + 1.5)
        self.assertEqual(ranked(samples, "trades"),
                         ["SOLUSDT", "PEPEUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT"])
        self.assertNotIn("Traceback", exporter.output()[1])

    def test_dns_failure_serves_up_0(self):
        exporter = self.exporter(*FAST_SPREADS, base_url="http://nonexistent.invalid:1")
        exporter.wait_healthy()
        # Three failed attempts (the retries come after about 0.5-1 and 1-2 s).
        samples = wait_until(lambda: (s := exporter.scrape()) and (sample(
            s, REQUESTS, endpoint=EXCHANGE_INFO, code="error") or 0) >= 3 and s, timeout=6)
        self.assertEqual(sample(samples, "binance_up"), 0)
        self.assertEqual(sample(samples, "binance_refresh_success", job="rankings"), 0)
        self.assertEqual(http_get(exporter.url + "/-/ready")[0], 503)
        self.assertIsNone(exporter.process.poll())
        warnings = log_lines(exporter, "WARNING")
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("nonexistent.invalid", warnings[0])

    def test_once_dns_failure_is_one_line_exit_1(self):
        result = run_once("http://nonexistent.invalid:1", "--no-analytics")
        self.assert_one_clean_line(result, 1, "error: no complete answer")
        self.assertIn("nonexistent.invalid", result.stderr)


class FailedRequestsTest(FaultTestCase):
    """Row 2: 5xx, timeouts, resets, truncated and non-JSON answers.

    The error mapping of each failure is unit-tested in
    test_binance_client.ErrorMappingTest; here the whole path is exercised.
    """

    def test_each_failure_is_counted_logged_once_retried_and_recovered(self):
        # A 1 s timeout so that a 1.5 s "slow" answer is a timeout.
        exporter = self.exporter(*FAST_BOTH, "--timeout", "1")
        self.assert_self_observability(ready(exporter))
        cases = (  # fault, its options, the code label it is counted under
            ("status", {"status": 503}, "503"),
            ("slow", {"seconds": 1.5}, "error"),
            ("reset", {}, "error"),
            ("truncate", {}, "error"),
            # The body is not JSON, but the status line said 200.
            ("non_json", {}, "200"),
        )
        for kind, options, code in cases:
            with self.subTest(fault=kind):
                try:
                    self.check_failure_burst(exporter, kind, options, code)
                finally:
                    self.fake.clear_faults()

    def check_failure_burst(self, exporter: Exporter, kind: str, options: dict,
                            code: str) -> None:
        """Fail every bookTicker request with `kind` for three cycles, then stop."""
        before = exporter.scrape()
        self.assertEqual(sample(before, "binance_up"), 1)
        symbols = ranked(before, "trades")
        served = series(before, "binance_spread")
        counted = sample(before, REQUESTS, endpoint=BOOK_TICKER, code=code) or 0
        warnings = len(log_lines(exporter, "WARNING"))
        recoveries = exporter.output()[1].count("spreads refresh recovered")
        self.fake.inject(kind, BOOK_TICKER, count=0, **options)
        self.market.step(3)  # the market moves, but no fresh value can be read
        self.assertFalse(close_to(served, market_spreads(self.market, symbols)))
        # Three failed cycles, counted by the exporter (the fake logs a request
        # before the exporter has seen the failure).
        wait_until(lambda: sum(r.fault == kind for r in self.fake.requests) >= 3, timeout=8)
        during = wait_until(lambda: (s := exporter.scrape()) and (sample(
            s, REQUESTS, endpoint=BOOK_TICKER, code=code) or 0) - counted >= 3 and s, timeout=3)
        self.assertEqual(sample(during, "binance_up"), 0)
        self.assertEqual(sample(during, "binance_refresh_success", job="spreads"), 0)
        self.assertEqual(sample(during, "binance_refresh_success", job="rankings"), 1)
        self.assertTrue(close_to(series(during, "binance_spread"), served),
                        "the last good spreads must stay served")
        burst = log_lines(exporter, "WARNING")[warnings:]
        self.assertEqual(len(burst), 1, burst)
        self.assertIn("spreads refresh failed", burst[0])

        self.fake.clear_faults()
        expected = market_spreads(self.market, symbols)
        recovered = wait_until(lambda: (s := exporter.scrape()) and sample(s, "binance_up") == 1
                               and close_to(series(s, "binance_spread"), expected) and s,
                               timeout=4)
        self.assertEqual(sample(recovered, "binance_refresh_success", job="spreads"), 1)
        self.assertEqual(exporter.output()[1].count("spreads refresh recovered"), recoveries + 1)
        self.assertNotIn("Traceback", exporter.output()[1])

    def assert_self_observability(self, samples: Samples) -> None:
        """Every self-observability series is on the page."""
        for job in ("rankings", "spreads"):
            for name in ("binance_refresh_success", "binance_last_refresh_timestamp_seconds",
                         "binance_refresh_duration_seconds"):
                self.assertIsNotNone(sample(samples, name, job=job), (name, job))
        self.assertEqual(sample(samples, "binance_up"), 1)
        self.assertGreaterEqual(sample(samples, REQUESTS, endpoint=EXCHANGE_INFO, code="200"), 1)
        self.assertGreater(sample(samples, "binance_api_request_weight_used"), 0)
        self.assertEqual(sample(samples, "binance_api_request_weight_limit"), 6000)
        self.assertEqual(sample(samples, "binance_api_backoff_until_timestamp_seconds"), 0)

    def test_failed_rankings_keep_notional_and_are_retried_with_one_warning(self):
        exporter = self.exporter(*FAST_RANKINGS)
        before = ready(exporter)
        notional = {k: v for k, v in before.items() if k[0] == "binance_order_book_notional"}
        self.assertEqual(len(notional), 10)
        warnings = len(log_lines(exporter, "WARNING"))
        self.fake.inject("status", DEPTH, count=0, status=502)
        self.market.step(3)
        # Three failed rankings runs (five depth requests each): one on
        # schedule, then the retries.
        during = wait_until(lambda: (s := exporter.scrape()) and (sample(
            s, REQUESTS, endpoint=DEPTH, code="502") or 0) >= 15 and s, timeout=10)
        self.assertGreaterEqual(bursts([r.time for r in self.fake.requests
                                        if r.path == DEPTH and r.status == 502]), 3)
        self.assertEqual(sample(during, "binance_up"), 0)
        self.assertEqual(sample(during, "binance_refresh_success", job="rankings"), 0)
        self.assertEqual(sample(during, "binance_refresh_success", job="spreads"), 1)
        self.assertEqual({k: v for k, v in during.items() if k in notional}, notional)
        burst = log_lines(exporter, "WARNING")[warnings:]
        self.assertEqual(len(burst), 1, burst)
        self.assertIn("rankings refresh failed", burst[0])

        self.fake.clear_faults()
        moved = wait_until(lambda: (s := exporter.scrape()) and sample(s, "binance_up") == 1
                           and s, timeout=RETRY_CAP + 2)
        self.assertNotEqual({k: v for k, v in moved.items() if k in notional}, notional)


class RateLimitTest(FaultTestCase):
    """Rows 3 and 4: HTTP 429 and 418 with Retry-After.

    Without Retry-After the client waits 60 s:
    test_binance_client.BackoffTest.test_429_without_retry_after_waits_a_minute.
    """

    def answered(self, status: int) -> RequestRecord:
        """Wait for the injected `status` answer in the fake's log."""
        return wait_until(lambda: next((r for r in self.fake.requests if r.status == status),
                                       None), timeout=5)

    def check_silence(self, exporter: Exporter, status: int, retry_after: float) -> None:
        """Nothing reaches Binance until Retry-After has passed, then requests resume."""
        refused = self.answered(status)
        gauge = wait_until(lambda: sample(exporter.scrape(),
                                          "binance_api_backoff_until_timestamp_seconds"), 2)
        self.assertAlmostEqual(gauge, refused.time + retry_after, delta=0.5)
        # Requests of the same batch (a rankings run's depths) may arrive a few
        # ms after the refused one; anything later was sent after the answer.
        after = wait_until(lambda: self.since(refused.time + 0.1), timeout=retry_after + 3)
        self.assertGreaterEqual(min(r.time for r in after), refused.time + retry_after,
                                "a request left before Retry-After had passed")
        self.assertLess(min(r.time for r in after), refused.time + retry_after + 1.5)
        wait_until(lambda: sample(exporter.scrape(), "binance_up") == 1, timeout=3)
        samples = exporter.scrape()
        self.assertEqual(sample(samples, REQUESTS, endpoint=BOOK_TICKER, code=str(status)), 1)

    def busy_exporter(self) -> Exporter:
        """An exporter with a rankings run due every 2 s and spreads every 0.5 s."""
        exporter = self.exporter("--update-interval", "0.5", "--refresh-interval", "2",
                                 "--depth-levels", "50", "--weight-share", "1", "--no-analytics")
        ready(exporter)
        return exporter

    def test_429_silences_every_endpoint_until_retry_after(self):
        exporter = self.busy_exporter()
        self.fake.inject("status", BOOK_TICKER, count=1, status=429, retry_after=3)
        self.check_silence(exporter, 429, 3.0)
        self.assertEqual(log_lines(exporter, "ERROR"), [])

    def test_418_silences_until_retry_after_and_logs_one_error(self):
        exporter = self.busy_exporter()
        self.fake.inject("status", BOOK_TICKER, count=1, status=418, retry_after=2)
        self.check_silence(exporter, 418, 2.0)
        errors = log_lines(exporter, "ERROR")
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("BANNED", errors[0])


class WeightBudgetTest(FaultTestCase):
    """Row 5: request weight near the limit."""

    def test_slows_down_before_binance_would_answer_429(self):
        self.market.weight_limit = 400  # announced by exchangeInfo; the share is 200
        exporter = self.exporter(*FAST_RANKINGS)
        wait_until(lambda: "weight budget" in exporter.output()[1], timeout=12)
        time.sleep(1.5)  # keep scheduling against the spent budget
        samples = exporter.scrape()
        records = self.fake.requests
        self.assertEqual([r for r in records if r.status in (418, 429)], [])
        per_window: Counter[int] = Counter()
        for record in records:
            per_window[int(record.time // 60)] += record.weight
        self.assertLessEqual(max(per_window.values()), 0.5 * 400, per_window)
        self.assertEqual(sample(samples, "binance_api_request_weight_limit"), 400)
        self.assertLessEqual(sample(samples, "binance_api_request_weight_used"), 200)
        self.assertIsNone(exporter.process.poll())

    def test_cli_refuses_a_schedule_over_the_share(self):
        # 129 x 20 + 4 x 120 = 3060 > 50 % of 6000
        result = run_cli("--base-url", self.fake.url, "--update-interval", "0.5",
                         "--refresh-interval", "3", "--depth-levels", "50", "--no-analytics")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("plans 3060 request weight per minute, over 50%", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(self.fake.requests, [])


class BadSymbolTest(FaultTestCase):
    """Row 6: a ranked symbol delisted or halted."""

    def test_delisted_and_halted_symbols_leave_and_others_stay(self):
        exporter = self.exporter(*FAST_RANKINGS)
        samples = ready(exporter)
        usdt, btc = ranked(samples, "trades"), ranked(samples, "quote_volume")
        gone, halted = usdt[0], btc[0]
        self.market.delist(gone)
        self.market.set_status(halted, "HALT")
        self.market.step(3)
        # Spreads of the others keep coming although the symbols list names a
        # symbol that no longer exists (which fails a bookTicker list request).
        others = market_spreads(self.market, usdt[1:])
        samples = wait_until(lambda: (s := exporter.scrape()) and close_to(
            {k: v for k, v in series(s, "binance_spread").items() if k != gone}, others) and s,
                             timeout=3)
        self.assertEqual(sample(samples, "binance_refresh_success", job="spreads"), 1)
        self.assertIsNone(sample(samples, "binance_spread", symbol=gone))
        self.assertGreaterEqual(sample(samples, "binance_skipped_values_total", job="spreads",
                                       reason="invalid_symbol"), 1)
        # The next rankings run drops both from every family.
        samples = wait_until(lambda: (s := exporter.scrape()) and gone not in ranked(s, "trades")
                             and halted not in ranked(s, "quote_volume") and s, timeout=5)
        for name in ("binance_top_symbol_rank", "binance_ticker_24h_trades", "binance_spread",
                     "binance_ticker_24h_quote_volume", "binance_order_book_notional",
                     "binance_symbol_info", "binance_spread_delta"):
            symbols = {dict(labels).get("symbol") for n, labels in samples if n == name}
            self.assertNotIn(gone, symbols, name)
            self.assertNotIn(halted, symbols, name)
        self.assertEqual(len(ranked(samples, "trades")), 5)
        self.assertEqual(len(ranked(samples, "quote_volume")), 5)
        self.assertEqual(sample(samples, "binance_up"), 1)

    def test_symbol_delisted_between_exchange_info_and_depth_fails_alone(self):
        exporter = self.exporter(*FAST_RANKINGS)
        ready(exporter)
        self.fake.inject("invalid_symbol", DEPTH, count=1)
        samples = wait_until(lambda: (s := exporter.scrape()) and sample(
            s, "binance_skipped_values_total", job="rankings", reason="invalid_symbol") and s,
                             timeout=6)
        notional = {dict(labels)["symbol"] for n, labels in samples
                    if n == "binance_order_book_notional"}
        self.assertEqual(len(notional), 4)
        self.assertEqual(sample(samples, "binance_refresh_success", job="rankings"), 1)
        self.assertEqual(sample(samples, "binance_up"), 1)


class BadBookTest(FaultTestCase):
    """Row 7: empty, one-sided and crossed books and quotes."""

    def test_bad_books_are_skipped_and_counted_never_zero_or_negative(self):
        exporter = self.exporter(*FAST_RANKINGS)
        samples = ready(exporter)
        usdt, btc = ranked(samples, "trades"), ranked(samples, "quote_volume")
        self.market.set_book(btc[0], [], [])
        self.market.set_book(btc[1], [("0.009", "10")], [])
        self.market.set_book(btc[2], [("0.0024", "1")], [("0.0023", "1")])
        self.market.set_book(usdt[0], [("181", "1")], [("180", "1")])
        self.market.set_book(usdt[1], [], [])
        self.market.set_book(usdt[2], [], [("60000", "1")])
        skipped = [("rankings", "empty"), ("rankings", "one_sided"), ("rankings", "crossed"),
                   ("spreads", "crossed"), ("spreads", "empty"), ("spreads", "one_sided")]
        samples = wait_until(lambda: (s := exporter.scrape()) and all(sample(
            s, "binance_skipped_values_total", job=job, reason=reason) for job, reason in skipped)
                             and s, timeout=6)
        notional = {(dict(labels)["symbol"], dict(labels)["side"]): value
                    for (name, labels), value in samples.items()
                    if name == "binance_order_book_notional"}
        self.assertEqual(notional.pop((btc[1], "bid")), 0.09)
        self.assertEqual({symbol for symbol, _side in notional}, set(btc[3:]))
        self.assertTrue(all(value > 0 for value in notional.values()), notional)
        spreads = series(samples, "binance_spread")
        self.assertEqual(set(spreads), set(usdt[3:]))
        self.assertTrue(all(value > 0 for value in spreads.values()), spreads)
        self.assertEqual(set(series(samples, "binance_spread_ratio")), set(usdt[3:]))
        self.assertEqual(sample(samples, "binance_up"), 1)
        self.assertNotIn("Traceback", exporter.output()[1])


class ShutdownTest(FaultTestCase):
    """Row 8: SIGTERM / SIGINT while a request hangs.

    Without a hanging request: test_end_to_end.ServeTest.
    test_sigterm_and_sigint_stop_cleanly_within_2_s.
    """

    def test_signal_while_a_request_hangs_stops_within_2_s(self):
        exporters = {sig: self.exporter(*FAST_SPREADS, "--timeout", "30")
                     for sig in (signal.SIGTERM, signal.SIGINT)}
        for exporter in exporters.values():
            ready(exporter)
        self.fake.inject("slow", BOOK_TICKER, count=2, seconds=60)
        wait_until(lambda: not self.fake.pending_faults(), timeout=3)  # both are hanging
        started = time.monotonic()
        for sig, exporter in exporters.items():
            exporter.process.send_signal(sig)
        for sig, exporter in exporters.items():
            with self.subTest(signal=sig.name):
                try:
                    code = exporter.process.wait(max(0.1, started + 3 - time.monotonic()))
                except subprocess.TimeoutExpired:
                    exporter.process.kill()  # no need for close() to wait as well
                    self.fail(f"still running 3 s after {sig.name}")
                self.assertLess(time.monotonic() - started, 2.0)
                self.assertEqual(code, 0)
                self.assertNotIn("Traceback", exporter.output()[1])


class ConcurrentScrapeTest(FaultTestCase):
    """Row 9: many scrapes at once while the market moves and the exporter refreshes."""

    def test_every_scrape_is_quick_and_one_consistent_snapshot(self):
        # step -> symbol -> (spread, ratio), recorded as the market moves
        steps: list[dict[str, tuple[float, float]]] = []

        def record() -> None:
            tops = {}
            for top in self.market.book_ticker():
                bid, ask = Decimal(top["bidPrice"]), Decimal(top["askPrice"])
                if 0 < bid < ask:
                    tops[top["symbol"]] = (float(ask - bid), float((ask - bid) / ((ask + bid) / 2)))
            steps.append(tops)

        record()
        exporter = self.exporter("--update-interval", "0.5", "--refresh-interval", "2",
                                 "--depth-levels", "50", "--weight-share", "1", "--no-analytics")
        ready(exporter)
        stop = threading.Event()
        pages: list[tuple[float, int, str]] = []  # (seconds, status, body)

        def step_market() -> None:
            while not stop.wait(0.1):
                self.market.step()
                record()

        def scrape() -> None:
            while not stop.is_set():
                started = time.monotonic()
                status, _headers, body = http_get(exporter.url + "/metrics")
                pages.append((time.monotonic() - started, status, body.decode()))

        threads = [threading.Thread(target=step_market)]
        threads += [threading.Thread(target=scrape) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(5)

        self.assertGreater(len(pages), 50)
        self.assertGreater(len(steps), 20)
        latencies = sorted(seconds for seconds, _status, _body in pages)
        slow = [round(seconds, 3) for seconds in latencies if seconds >= 0.5]
        self.assertEqual(slow, [], f"{len(slow)} of {len(pages)} scrapes took 0.5 s or more "
                                   f"(median {latencies[len(latencies) // 2]:.3f} s)")
        self.assertEqual({status for _seconds, status, _body in pages}, {200})
        families = None
        # A page is rendered once per snapshot: check each distinct body once.
        for body in {body for _seconds, _status, body in pages}:
            names = {family.name for family in text_string_to_metric_families(body)}
            families = families or names
            self.assertEqual(names, families)
            samples = parse_samples(body)
            spreads = series(samples, "binance_spread")
            ratios = series(samples, "binance_spread_ratio")
            self.assertEqual(set(spreads), set(ranked(samples, "trades")))
            self.assertEqual(len(spreads), 5)
            self.assertTrue(any(self.one_step(spreads, ratios, tops) for tops in steps),
                            f"spreads {spreads} are from no single step of the market")

    @staticmethod
    def one_step(spreads: dict[str, float], ratios: dict[str, float],
                 tops: dict[str, tuple[float, float]]) -> bool:
        """True when every spread and ratio is the one the market had at this step."""
        return all(tops.get(symbol) == (value, ratios.get(symbol))
                   for symbol, value in spreads.items())


class BadInputTest(FaultTestCase):
    """Bad command lines: refused before anything starts."""

    def test_port_in_use_is_one_line_exit_1(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_cli("--base-url", self.fake.url, "--listen-address", "127.0.0.1",
                             "--port", str(port), "--no-analytics")
        self.assert_one_clean_line(result, 1, f"error: cannot listen on 127.0.0.1:{port}")

    def test_invalid_options_exit_2(self):
        cases = {
            ("--update-interval", "0"): "--update-interval",
            ("--update-interval", "-1"): "--update-interval",
            ("--refresh-interval", "0"): "--refresh-interval",
            ("--depth-levels", "0"): "--depth-levels",
            ("--depth-levels", "5001"): "--depth-levels",
            ("--base-url", "ftp://api.binance.com"): "--base-url",
            ("--base-url", "api.binance.com"): "--base-url",
        }
        port = str(free_port())
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(cases, pool.map(
                lambda args: run_cli("--base-url", self.fake.url, "--port", port, *args),
                cases)))
        for args, option in cases.items():
            with self.subTest(args=args):
                result = results[args]
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("Error: Invalid value for", result.stderr)
                self.assertIn(option, result.stderr)
                self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(self.fake.requests, [])


if __name__ == "__main__":
    unittest.main()
