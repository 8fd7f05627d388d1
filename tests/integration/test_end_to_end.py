"""The exporter as a real process against the fake Binance, answers checked independently.

Expected values are computed here from the fake market's own data with plain
Python, not with the exporter's functions, so a shared mistake cannot hide.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import unittest
from decimal import Decimal

from fake_binance.market import Market
from fake_binance.server import FakeBinance
from tests.support import ROOT, Exporter, free_port, http_get, run_once, sample, wait_until

# Fast enough for tests, inside the default weight plan (the exporter refuses
# schedules that plan over half of Binance's limit).
# These tests are about the four questions; the analytics have their own tests.
FAST = ("--update-interval", "0.5", "--refresh-interval", "10", "--no-analytics")
# Rankings every 3 s: within the plan only with a cheaper depth (limit 50, weight 5).
FAST_RANKINGS = ("--update-interval", "1", "--refresh-interval", "3", "--depth-levels", "50",
                 "--no-analytics")


def expected_answers(market: Market, top_n: int = 5, levels: int = 200,
                     field: str = "quoteVolume") -> dict:
    """The four answers, worked out from the market's raw data."""
    info = {s["symbol"]: s for s in market.exchange_info()["symbols"]}
    tickers = market.ticker_24hr()

    def ranked(quote: str, key) -> list[dict]:
        rows = [t for t in tickers if t["symbol"] in info
                and info[t["symbol"]]["status"] == "TRADING"
                and info[t["symbol"]]["quoteAsset"] == quote]
        return sorted(rows, key=lambda t: (-key(t), t["symbol"]))[:top_n]

    top_btc = ranked("BTC", lambda t: Decimal(t[field]))
    top_usdt = ranked("USDT", lambda t: t["count"])
    notional = {}
    for t in top_btc:
        bids, asks = market.book(t["symbol"])
        notional[t["symbol"]] = {
            "bids": float(sum((Decimal(p) * Decimal(q) for p, q in bids[:levels]), Decimal(0))),
            "asks": float(sum((Decimal(p) * Decimal(q) for p, q in asks[:levels]), Decimal(0))),
        }
    tops = market.book_ticker([t["symbol"] for t in top_usdt])
    spread = {b["symbol"]: float(Decimal(b["askPrice"]) - Decimal(b["bidPrice"])) for b in tops}
    # Every ranked symbol is quoted in BTC or USDT: BTC converts at BTCUSDT's mid.
    btc_usdt = market.book_ticker(["BTCUSDT"])[0]
    btc = (Decimal(btc_usdt["bidPrice"]) + Decimal(btc_usdt["askPrice"])) / 2
    notional_usdt = {}
    for t in top_btc:
        bids, asks = market.book(t["symbol"])
        notional_usdt[t["symbol"]] = {
            "bids": float(sum((Decimal(p) * Decimal(q) for p, q in bids[:levels]), Decimal(0))
                          * btc),
            "asks": float(sum((Decimal(p) * Decimal(q) for p, q in asks[:levels]), Decimal(0))
                          * btc),
        }
    return {
        "top_btc_by_volume": [{"symbol": t["symbol"], "quote_volume": float(t["quoteVolume"]),
                               "volume": float(t["volume"])} for t in top_btc],
        "top_usdt_by_trades": [{"symbol": t["symbol"], "trades": t["count"]} for t in top_usdt],
        "notional": notional,
        "reference_asset": "USDT",
        "reference_prices": {"BTC": float(btc), "USDT": 1.0},
        "notional_reference": notional_usdt,
        "spread": spread,
    }


class FakeTestCase(unittest.TestCase):
    """Starts a fake Binance (not ticking: tests move it) for each test."""

    def setUp(self) -> None:
        self.market = Market(seed=7)
        self.fake = FakeBinance(self.market).start()
        self.addCleanup(self.fake.stop)

    def exporter(self, *args: str, env: dict[str, str] | None = None) -> Exporter:
        """Start the exporter on the fake; stopped when the test ends."""
        exporter = Exporter(self.fake.url, *args, env=env)
        self.addCleanup(exporter.close)
        return exporter


class OnceTest(FakeTestCase):
    """--once: the four answers, their cost and their failure mode."""
    def test_json_answers_match_the_market(self):
        result = run_once(self.fake.url, "--output", "json", "--no-analytics")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), expected_answers(self.market))

    def test_traps_are_avoided(self):
        answers = json.loads(run_once(self.fake.url, "--output", "json", "--no-analytics").stdout)
        ranked = {r["symbol"] for r in answers["top_btc_by_volume"]}
        ranked |= {r["symbol"] for r in answers["top_usdt_by_trades"]}
        info = {s["symbol"]: s for s in self.market.exchange_info()["symbols"]}
        for name in ranked:
            self.assertEqual(info[name]["status"], "TRADING")
        self.assertTrue({r["symbol"] for r in answers["top_btc_by_volume"]}
                        <= set(self.market.symbols(status="TRADING", quote="BTC")))
        self.assertTrue({r["symbol"] for r in answers["top_usdt_by_trades"]}
                        <= set(self.market.symbols(status="TRADING", quote="USDT")))

    def test_base_volume_ranking_is_another_list(self):
        by_quote = json.loads(run_once(self.fake.url, "--output", "json", "--no-analytics").stdout)
        by_base = json.loads(run_once(self.fake.url, "--output", "json", "--no-analytics",
                                      "--volume-field", "volume").stdout)
        self.assertEqual(by_base, expected_answers(self.market, field="volume"))
        self.assertNotEqual(by_base["top_btc_by_volume"], by_quote["top_btc_by_volume"])

    def test_options_change_the_answers(self):
        result = run_once(self.fake.url, "--output", "json", "--top-n", "3",
                          "--depth-levels", "10", "--no-analytics")
        self.assertEqual(json.loads(result.stdout),
                         expected_answers(self.market, top_n=3, levels=10))

    def test_text_output(self):
        result = run_once(self.fake.url)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = expected_answers(self.market)
        first_btc = expected["top_btc_by_volume"][0]["symbol"]
        self.assertIn(f"1. {first_btc}", result.stdout)
        self.assertIn("Top 5 USDT-quoted symbols by 24h number of trades:", result.stdout)

    def test_start_up_weight_and_requests(self):
        self.fake.reset_log()
        run_once(self.fake.url, "--no-analytics")
        records = self.fake.requests
        self.assertEqual(self.fake.total_weight, 229)  # 20 + 80 + 5 x 25 + 4
        by_path: dict[str, list] = {}
        for record in records:
            by_path.setdefault(record.path, []).append(record)
        self.assertEqual(len(by_path["/api/v3/exchangeInfo"]), 1)
        self.assertEqual(len(by_path["/api/v3/ticker/24hr"]), 1)
        self.assertEqual(len(by_path["/api/v3/ticker/bookTicker"]), 1)
        self.assertEqual(by_path["/api/v3/ticker/bookTicker"][0].weight, 4)
        self.assertEqual([r.params["limit"] for r in by_path["/api/v3/depth"]], ["200"] * 5)

    def test_start_up_is_two_round_trips(self):
        # With 0.3 s per answer, sequential requests would take 8 x 0.3 s.
        self.fake.set_latency(0.3)
        started = time.monotonic()
        result = run_once(self.fake.url, "--no-analytics")
        elapsed = time.monotonic() - started
        self.assertEqual(result.returncode, 0, result.stderr)
        records = sorted(self.fake.requests, key=lambda r: r.time)
        first_round = {r.path for r in records[:2]}
        self.assertEqual(first_round, {"/api/v3/exchangeInfo", "/api/v3/ticker/24hr"})
        # every second-round request starts before any first-round answer + latency is over
        second = [r for r in records if r.path in ("/api/v3/depth", "/api/v3/ticker/bookTicker")]
        self.assertEqual(len(second), 6)
        self.assertLess(max(r.time for r in second) - min(r.time for r in second), 0.25)
        self.assertLess(elapsed, 8 * 0.3)

    def test_unreachable_binance_is_one_line_exit_1(self):
        result = run_once(f"http://127.0.0.1:{free_port()}")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn("error:", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


class ServeTest(FakeTestCase):
    """Serving mode: /metrics follows the market; endpoints; signals."""
    def test_gauges_match_once_answers_and_follow_the_market(self):
        exporter = self.exporter(*FAST)
        exporter.wait_ready()
        expected = expected_answers(self.market)
        samples = exporter.scrape()
        for position, row in enumerate(expected["top_btc_by_volume"], 1):
            self.assertEqual(sample(samples, "binance_top_symbol_rank", symbol=row["symbol"],
                                    quote_asset="BTC", ranking="quote_volume"), position)
            self.assertAlmostEqual(sample(samples, "binance_ticker_24h_quote_volume",
                                          symbol=row["symbol"]), row["quote_volume"])
            sides = expected["notional"][row["symbol"]]
            self.assertAlmostEqual(sample(samples, "binance_order_book_notional",
                                          symbol=row["symbol"], side="bid"), sides["bids"])
            self.assertAlmostEqual(sample(samples, "binance_order_book_notional",
                                          symbol=row["symbol"], side="ask"), sides["asks"])
        for position, row in enumerate(expected["top_usdt_by_trades"], 1):
            self.assertEqual(sample(samples, "binance_top_symbol_rank", symbol=row["symbol"],
                                    quote_asset="USDT", ranking="trades"), position)
            self.assertEqual(sample(samples, "binance_ticker_24h_trades", symbol=row["symbol"]),
                             row["trades"])
            self.assertAlmostEqual(sample(samples, "binance_spread", symbol=row["symbol"]),
                                   expected["spread"][row["symbol"]])
        self.assertEqual(sample(samples, "binance_up"), 1)
        self.assertEqual(sample(samples, "binance_exporter_build_info", version="0.1.0"), 1)

        # Move the market: spreads follow and the delta is the absolute change.
        before = expected["spread"]
        self.market.step(3)
        after = expected_answers(self.market)["spread"]
        changed = [s for s in after if after[s] != before[s]]
        self.assertTrue(changed, "the fake market should move the spreads")

        def followed():
            now = exporter.scrape()
            return now if all(
                abs(sample(now, "binance_spread", symbol=s) - after[s]) < 1e-12 for s in after
            ) else None

        samples = wait_until(followed, timeout=5)
        # The refresh right after the step saw the whole change; later ones see none,
        # so wait for a delta that matches the step (it holds for one refresh only).
        for symbol in changed:
            self.assertGreaterEqual(sample(samples, "binance_spread_delta", symbol=symbol), 0)
        stdout = wait_until(lambda: exporter.output()[0] if "delta=" in exporter.output()[0]
                            else None, timeout=5)
        self.assertIn("Top 5 BTC-quoted symbols", stdout)

    def test_delta_equals_the_absolute_change(self):
        exporter = self.exporter("--update-interval", "1", "--refresh-interval", "60",
                                 "--no-analytics")
        exporter.wait_ready()
        before = expected_answers(self.market)["spread"]
        self.market.step(2)
        after = expected_answers(self.market)["spread"]
        symbol = next(s for s in after if after[s] != before[s])
        def moved():
            now = exporter.scrape()
            value = sample(now, "binance_spread", symbol=symbol)
            return now if abs(value - after[symbol]) < 1e-12 else None

        samples = wait_until(moved, timeout=5)
        self.assertAlmostEqual(sample(samples, "binance_spread_delta", symbol=symbol),
                               abs(after[symbol] - before[symbol]))

    def test_one_spread_refresh_is_one_request_of_weight_4(self):
        exporter = self.exporter("--update-interval", "0.5", "--refresh-interval", "60",
                                 "--no-analytics")
        exporter.wait_ready()
        self.fake.reset_log()
        time.sleep(1.6)
        records = self.fake.requests
        self.assertGreaterEqual(len(records), 2)
        self.assertTrue(all(r.path == "/api/v3/ticker/bookTicker" and r.weight == 4
                            for r in records), records)
        self.assertTrue(all("symbols" in r.params for r in records))

    def test_symbol_leaving_the_ranking_loses_its_series(self):
        exporter = self.exporter(*FAST_RANKINGS)
        exporter.wait_ready()
        first = expected_answers(self.market)["top_usdt_by_trades"][0]["symbol"]
        self.assertIsNotNone(sample(exporter.scrape(), "binance_spread", symbol=first))
        self.market.set_ticker(first, count=1)
        wait_until(lambda: sample(exporter.scrape(), "binance_spread", symbol=first) is None,
                   timeout=5)
        samples = exporter.scrape()
        self.assertIsNone(sample(samples, "binance_top_symbol_rank", symbol=first,
                                 quote_asset="USDT", ranking="trades"))
        self.assertIsNone(sample(samples, "binance_spread_delta", symbol=first))

    def test_endpoints(self):
        exporter = self.exporter(*FAST)
        exporter.wait_ready()
        status, headers, body = http_get(exporter.url + "/")
        self.assertEqual(status, 200)
        self.assertIn(b'href="/metrics"', body)
        self.assertEqual(http_get(exporter.url + "/nope")[0], 404)
        self.assertEqual(http_get(exporter.url + "/-/healthy")[0], 200)
        status, headers, body = http_get(exporter.url + "/metrics",
                                         headers={"Accept-Encoding": "gzip"})
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertEqual(body[:2], b"\x1f\x8b")
        status, headers, _ = http_get(exporter.url + "/metrics")
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))

    def test_not_ready_before_the_first_refresh(self):
        self.fake.pause()
        exporter = self.exporter(*FAST)
        exporter.wait_healthy()
        self.assertEqual(http_get(exporter.url + "/-/ready")[0], 503)
        self.assertEqual(sample(exporter.scrape(), "binance_up"), 0)

    def test_environment_variables_configure_it(self):
        exporter = self.exporter(*FAST, env={"BINANCE_EXPORTER_TOP_N": "2"})
        exporter.wait_ready()
        samples = exporter.scrape()
        ranks = [k for k in samples if k[0] == "binance_top_symbol_rank"]
        self.assertEqual(len(ranks), 4)

    def test_sigterm_and_sigint_stop_cleanly_within_2_s(self):
        for sig in ("SIGTERM", "SIGINT"):
            with self.subTest(signal=sig):
                exporter = self.exporter(*FAST)
                exporter.wait_ready()
                started = time.monotonic()
                exporter.process.send_signal(getattr(__import__("signal"), sig))
                code = exporter.process.wait(5)
                self.assertLess(time.monotonic() - started, 2.0)
                self.assertEqual(code, 0)
                self.assertNotIn("Traceback", exporter.output()[1])



# The package's modules that only stream mode needs.
STREAM_ONLY = (
    "binance_exporter.binance.depth_events",
    "binance_exporter.binance.recorder",
    "binance_exporter.binance.stream_feed",
    "binance_exporter.binance.websocket",
    "binance_exporter.jobs.republisher",
    "binance_exporter.sources.snapshot_schedule",
    "binance_exporter.sources.stream",
)


class ImportsTest(unittest.TestCase):
    """The REST mode does not load what only the stream mode needs."""

    def test_the_cli_loads_no_stream_code(self):
        code = ("import sys, binance_exporter.cli; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'websocket' "
                f"or m in {STREAM_ONLY!r}))")
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, check=True)
        self.assertEqual(result.stdout.strip(), "[]")


if __name__ == "__main__":
    unittest.main()
