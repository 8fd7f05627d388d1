"""Stream mode end to end: the exporter process on the fake REST API and fake streams."""

from __future__ import annotations

import time
import unittest
from decimal import Decimal
from pathlib import Path

from fake_binance.market import Market
from fake_binance.server import FakeBinance
from fake_binance.streams import FakeStreams
from tests.support import Exporter, sample, wait_until

# The fake's BTCUSDT mid walks about $30 a step while its levels are $0.02
# apart, so a book started from 500 levels leaves what that snapshot covered
# within a step and is rightly started over; 5000 levels cover the walk.
STREAM = ("--source", "stream", "--no-analytics", "--update-interval", "0.5",
          "--refresh-interval", "30", "--stream-snapshot-limit", "5000")


class StreamModeTest(unittest.TestCase):
    """Local books follow the market through the streams and survive faults."""

    def setUp(self) -> None:
        self.market = Market(seed=7)
        self.rest = FakeBinance(self.market).start()
        self.addCleanup(self.rest.stop)
        self.streams = FakeStreams(self.market, ping_interval=5).start()
        self.addCleanup(self.streams.stop)
        self.exporter = Exporter(self.rest.url, *STREAM, "--stream-url", self.streams.url)
        self.addCleanup(self.exporter.close)
        self.exporter.wait_ready(timeout=15)

    def expected_spreads(self) -> dict[str, float]:
        """Spreads of the ranked USDT symbols, from the market's own books."""
        samples = self.exporter.scrape()
        # The ranked USDT symbols: their spreads may be out of service just now.
        symbols = [dict(labels)["symbol"] for (name, labels) in samples
                   if name == "binance_top_symbol_rank" and dict(labels)["ranking"] == "trades"]
        self.assertEqual(len(symbols), 5)
        spreads = {}
        for symbol in symbols:
            bids, asks = self.market.book(symbol)
            spreads[symbol] = float(Decimal(asks[0][0]) - Decimal(bids[0][0]))
        return spreads

    def follows(self, timeout: float = 3.0) -> dict:
        """Wait until every served spread equals the market's; return the scrape."""
        expected = self.expected_spreads()

        def matched():
            now = self.exporter.scrape()
            ok = all(abs((sample(now, "binance_spread", symbol=s) or -1) - v) < 1e-12
                     for s, v in expected.items())
            return now if ok else None

        return wait_until(matched, timeout=timeout)

    def test_values_follow_the_market_at_no_rest_cost(self):
        samples = self.follows()
        self.assertEqual(sample(samples, "binance_stream_connected"), 1)
        self.assertEqual(sample(samples, "binance_up"), 1)
        self.rest.reset_log()
        for _ in range(3):
            self.market.step()
            self.streams.flush()  # the fake has sent the diffs
            # How fast is `make bench`'s business (timed tests are flaky under
            # coverage); this proves the values follow without any REST call.
            self.follows(timeout=10.0)
        paths = {r.path for r in self.rest.requests}
        self.assertNotIn("/api/v3/ticker/bookTicker", paths)
        self.assertNotIn("/api/v3/depth", paths)
        bids, asks = self.market.book("ETHBTC")
        notional = sum((p * q for p, q in bids[:200]), Decimal(0))

        def book_followed():
            # The spreads come from bookTicker streams; the book's diff event
            # may land a moment after them.
            now = self.exporter.scrape()
            value = sample(now, "binance_order_book_notional", symbol="ETHBTC", side="bid")
            return now if value is not None and abs(value - float(notional)) < 1e-9 else None

        samples = wait_until(book_followed, timeout=5)
        self.assertAlmostEqual(sample(samples, "binance_order_book_notional", symbol="ETHBTC",
                                      side="bid"), float(notional))
        vwap_bid = notional / sum((q for _p, q in bids[:200]), Decimal(0))
        vwap_ask = (sum((p * q for p, q in asks[:200]), Decimal(0))
                    / sum((q for _p, q in asks[:200]), Decimal(0)))
        self.assertAlmostEqual(sample(samples, "binance_vwap_price", symbol="ETHBTC"),
                               float((vwap_bid + vwap_ask) / 2))
        self.assertIsNotNone(sample(samples, "binance_vwap_price_average", symbol="ETHBTC",
                                    window="30s"))
        self.assertGreater(sample(samples, "binance_stream_messages_total",
                                  stream_type="depth@100ms"), 0)
        self.assertEqual(sample(samples, "binance_order_book_update_id", symbol="ETHBTC"),
                         self.market.depth("ETHBTC", 1)["lastUpdateId"])

    def test_dropped_connection_reconnects_and_recovers(self):
        self.follows()
        self.streams.drop_connections()
        wait_until(lambda: (sample(self.exporter.scrape(), "binance_stream_reconnects_total")
                            or 0) >= 1, timeout=10)
        self.market.step()
        samples = self.follows(timeout=10)
        self.assertEqual(sample(samples, "binance_stream_connected"), 1)

    def test_a_drop_takes_the_spreads_out_of_service_at_once(self):
        self.follows()
        self.streams.drop_connections()

        def down():
            now = self.exporter.scrape()
            return now if sample(now, "binance_up") == 0 else None

        # Well before the 30 s silence watchdog: the lost connection is noticed.
        samples = wait_until(down, timeout=5)
        self.assertEqual(sample(samples, "binance_refresh_success", job="spreads"), 0)
        self.market.step()
        self.follows(timeout=10)

    def test_a_reconnect_storm_backs_off_and_leaks_nothing(self):
        self.follows()
        threads = len(list(Path(f"/proc/{self.exporter.process.pid}/task").iterdir()))
        storm_end = time.monotonic() + 8
        while time.monotonic() < storm_end:  # accept, then close at once, for 8 s
            self.streams.close_connections()
            time.sleep(0.1)
        accepted = self.streams.connections_accepted
        samples = self.exporter.scrape()
        self.assertEqual(sample(samples, "binance_up"), 0)
        self.assertEqual(sample(samples, "binance_stream_connected"), 0)
        # Back-off: 1, 2, 4 s... between attempts, not one attempt a second.
        self.assertLessEqual(sample(samples, "binance_stream_reconnects_total"), 5)
        self.market.step()
        self.follows(timeout=40)
        self.assertLessEqual(self.streams.connections_accepted - accepted, 2)
        now = len(list(Path(f"/proc/{self.exporter.process.pid}/task").iterdir()))
        self.assertLessEqual(now, threads + 2, "threads leak across reconnects")

    def test_gap_in_update_ids_resyncs_the_book(self):
        self.follows()
        self.streams.skip_next_event("BTCUSDT")
        self.market.step()  # this step's event is lost...
        self.streams.flush()
        self.market.step()  # ...and the next one shows the gap
        self.streams.flush()
        wait_until(lambda: (sample(self.exporter.scrape(), "binance_order_book_resyncs_total",
                                   symbol="BTCUSDT") or 0) >= 1, timeout=10)
        self.market.step()
        self.follows(timeout=10)


if __name__ == "__main__":
    unittest.main()
