"""The /metrics page: format negotiation, name[] filter, gzip, and when it renders."""

import gzip
import os
import unittest
from decimal import Decimal as D

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from binance_exporter.binance.rest import ApiStats
from binance_exporter.market.types import SymbolInfo, Ticker24h
from binance_exporter.metrics.api import ApiCollector
from binance_exporter.metrics.exposition import Exposition, build_exposition
from binance_exporter.model import Answers, JobState, SideNotional, Snapshot, StreamView
from tests.support import wait_until

# What Prometheus sends when it prefers OpenMetrics.
OPENMETRICS = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;" \
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
STATS = ApiStats({("/api/v3/depth", "200"): 5}, 12, 6000, 0.0)
VIEW = StreamView(True, 0, {"depth@100ms": 10}, 1700000001.0, {"BTCUSDT": 99}, {})


def snapshot(spread: str = "0.01") -> Snapshot:
    """A ready snapshot with one tracked symbol whose spread is `spread`."""
    return Snapshot(
        answers=Answers(
            symbols={"BTCUSDT": SymbolInfo("BTCUSDT", "BTC", "USDT", "TRADING")},
            top_btc=(),
            top_usdt=(Ticker24h("BTCUSDT", D(1), D(2), 4242),),
            notional={"BTCUSDT": SideNotional(D("1000.5"), D("900"))},
            spread_symbols=("BTCUSDT",),
            spreads={"BTCUSDT": D(spread)},
            spread_ratios={"BTCUSDT": D("0.0000002")},
            deltas={},
        ),
        jobs={"rankings": JobState(True, 1.0, 0.1), "spreads": JobState(True, 1.0, 0.1)},
        skipped={("spreads", "crossed"): 2},
    )


class Published:
    """Stands for the snapshot store: `current` is what the exposition reads."""

    def __init__(self, value: Snapshot) -> None:
        self.value = value

    def current(self) -> Snapshot:
        """The snapshot in force."""
        return self.value


def samples(families) -> dict:
    """Every sample of parsed families, keyed by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


class NegotiationTest(unittest.TestCase):
    """Formats and filtering through prometheus_client's own helpers."""

    def setUp(self):
        current = snapshot()
        self.exposition = build_exposition(lambda: current, lambda: STATS, lambda: VIEW)

    def test_text_format_by_default(self):
        body, headers = self.exposition.render("", "", "")
        self.assertEqual(headers, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
        found = samples(parse_text(body.decode()))
        self.assertEqual(found[("binance_spread", (("symbol", "BTCUSDT"),))], 0.01)
        self.assertEqual(found[("binance_api_requests_total",
                                (("code", "200"), ("endpoint", "/api/v3/depth")))], 5)
        self.assertEqual(found[("binance_order_book_update_id", (("symbol", "BTCUSDT"),))], 99)
        self.assertNotIn(b"# EOF", body)

    def test_openmetrics_when_asked(self):
        body, headers = self.exposition.render(OPENMETRICS, "", "")
        self.assertTrue(headers["Content-Type"].startswith("application/openmetrics-text"))
        self.assertTrue(body.endswith(b"\n# EOF\n"))
        self.assertEqual(body.count(b"# EOF"), 1)
        found = samples(parse_openmetrics(body.decode()))  # strict: raises on a bad document
        self.assertEqual(found[("binance_spread", (("symbol", "BTCUSDT"),))], 0.01)
        self.assertEqual(found[("binance_stream_connected", ())], 1)
        self.assertEqual(found[("binance_skipped_values_total",
                                (("job", "spreads"), ("reason", "crossed")))], 2)

    @unittest.skipUnless(os.path.exists("/proc/self/stat"), "process metrics need /proc")
    def test_process_metrics(self):
        for accept in ("", OPENMETRICS):
            body, _ = self.exposition.render(accept, "", "")
            self.assertIn(b"\nprocess_resident_memory_bytes ", body)
            self.assertIn(b"\nprocess_cpu_seconds_total ", body)

    def test_name_filter_keeps_only_the_named_family(self):
        for accept in ("", OPENMETRICS):
            body, _ = self.exposition.render(accept, "", "name[]=binance_spread")
            families = list(parse_openmetrics(body.decode()) if accept
                            else parse_text(body.decode()))
            self.assertEqual([family.name for family in families], ["binance_spread"])

    def test_name_filter_reaches_live_and_process_families(self):
        query = "name[]=binance_stream_connected&name%5B%5D=process_cpu_seconds_total"
        body, _ = self.exposition.render("", "", query)
        names = {family.name for family in parse_text(body.decode())}
        expected = {"binance_stream_connected"}
        if os.path.exists("/proc/self/stat"):
            expected.add("process_cpu_seconds")
        self.assertEqual(names, expected)

    def test_gzip_when_accepted(self):
        for accept in ("", OPENMETRICS):
            for _ in range(2):  # the second scrape continues the cached compressor
                body, headers = self.exposition.render(accept, "deflate, gzip;q=0.9", "")
                self.assertEqual(headers["Content-Encoding"], "gzip")
                page = gzip.decompress(body).decode()
                families = parse_openmetrics(page) if accept else parse_text(page)
                self.assertIn(("binance_spread", (("symbol", "BTCUSDT"),)), samples(families))

    def test_no_gzip_unless_accepted(self):
        _, headers = self.exposition.render("", "br", "")
        self.assertNotIn("Content-Encoding", headers)


class LagTest(unittest.TestCase):
    """A scraper back within max_lag gets its last page while the next one renders aside."""

    def setUp(self):
        self.published = Published(snapshot("0.1"))
        self.now = [100.0]
        live = CollectorRegistry()
        live.register(ApiCollector(lambda: STATS))
        self.exposition = Exposition(self.published.current, live, max_lag=1.0,
                                     clock=lambda: self.now[0])

    def spread_served(self) -> bytes:
        """The spread line of the page a plain scrape gets now."""
        body, _ = self.exposition.render("", "", "")
        return next(line for line in body.splitlines() if line.startswith(b"binance_spread{"))

    def test_a_quick_scrape_waits_for_no_render(self):
        self.assertIn(b" 0.1", self.spread_served())
        self.published.value = snapshot("0.5")
        self.now[0] += 0.5
        self.assertIn(b" 0.1", self.spread_served())  # the page of 0.5 s ago, at once
        wait_until(lambda: self.exposition.renders == 2, timeout=5)  # rendered aside
        self.assertIn(b" 0.5", self.spread_served())
        self.assertEqual(self.exposition.renders, 2)  # never more renders than scrapes

    def test_a_publish_renders_the_page_of_a_frequent_scraper(self):
        self.spread_served()
        self.spread_served()  # served from the cache: a scraper that comes often
        self.published.value = snapshot("0.5")
        self.exposition.published()
        wait_until(lambda: self.exposition.renders == 2, timeout=5)  # asked by no scrape
        self.now[0] += 0.1
        self.assertIn(b" 0.5", self.spread_served())
        self.assertEqual(self.exposition.renders, 2)

    def test_publishes_render_no_more_pages_than_are_scraped(self):
        # A scrape every 0.5 s, a publish every 0.1 s: a publish asks for a render
        # only of a page taken since it was rendered.
        asks: list = []
        self.exposition._ask = lambda *ask: asks.append(ask)  # pylint: disable=protected-access
        from_publishes = scrapes = 0
        for step in range(1, 21):
            self.now[0] += 0.1
            self.published.value = snapshot(f"0.{step:02d}")
            asks.clear()
            self.exposition.published()
            from_publishes += len(asks)
            for key, encoder in asks:  # as the background thread would, at once
                self.exposition._page(key, encoder)  # pylint: disable=protected-access
            if step % 5 == 0:
                self.spread_served()
                scrapes += 1
        self.assertGreater(from_publishes, 0)
        self.assertLessEqual(from_publishes, scrapes)

    def test_a_publish_renders_nothing_for_a_scraper_gone_quiet(self):
        self.spread_served()
        self.spread_served()
        self.now[0] += 1.5  # longer ago than max_lag
        self.published.value = snapshot("0.5")
        self.exposition.published()
        self.assertIsNone(self.exposition._refresher)  # pylint: disable=protected-access
        self.assertEqual(self.exposition.renders, 1)

    def test_a_scraper_back_later_gets_a_page_rendered_for_it(self):
        self.spread_served()
        self.published.value = snapshot("0.5")
        self.now[0] += 1.5
        self.assertIn(b" 0.5", self.spread_served())
        self.assertEqual(self.exposition.renders, 2)


class CacheTest(unittest.TestCase):
    """The snapshot part renders once per snapshot and format, and only on a scrape."""

    def setUp(self):
        self.published = Published(snapshot())
        # A live part without process metrics, so two scrapes give the same bytes.
        live = CollectorRegistry()
        self.stats = [STATS]
        live.register(ApiCollector(lambda: self.stats[0]))
        # No lag allowed: every scrape gets a page rendered for what is current.
        self.exposition = Exposition(self.published.current, live, max_lag=0.0)

    def test_no_scrape_no_render(self):
        for spread in ("0.01", "0.02", "0.03"):
            self.published.value = snapshot(spread)
        self.assertEqual(self.exposition.renders, 0)

    def test_one_render_per_snapshot_and_format(self):
        for _ in range(5):
            self.exposition.render("", "", "")
            self.exposition.render("", "gzip", "")
        self.assertEqual(self.exposition.renders, 1)
        for _ in range(5):
            self.exposition.render(OPENMETRICS, "gzip", "")
        self.assertEqual(self.exposition.renders, 2)

    def test_a_new_snapshot_object_renders_once_more(self):
        self.exposition.render("", "", "")
        self.published.value = snapshot("0.01")  # equal values, but a new publish
        self.exposition.render("", "", "")
        self.exposition.render("", "", "")
        self.assertEqual(self.exposition.renders, 2)

    def test_a_new_snapshot_is_what_the_next_scrape_shows(self):
        self.exposition.render("", "gzip", "")
        self.published.value = snapshot("0.5")
        for encoding in ("", "gzip"):
            body, _ = self.exposition.render("", encoding, "")
            page = gzip.decompress(body) if encoding else body
            self.assertIn(b'binance_spread{symbol="BTCUSDT"} 0.5\n', page)

    def test_the_live_part_is_fresh_on_every_scrape(self):
        self.exposition.render("", "", "")
        self.stats[0] = ApiStats({}, 99, 6000, 0.0)
        for encoding in ("", "gzip"):
            body, _ = self.exposition.render("", encoding, "")
            page = gzip.decompress(body) if encoding else body
            self.assertIn(b"binance_api_request_weight_used 99.0\n", page)
        self.assertEqual(self.exposition.renders, 1)

    def test_gzip_holds_exactly_the_plain_page(self):
        for accept in ("", OPENMETRICS):
            plain, _ = self.exposition.render(accept, "", "")
            for _ in range(3):
                zipped, _ = self.exposition.render(accept, "gzip", "")
                self.assertEqual(gzip.decompress(zipped), plain)

    def test_filtered_scrapes_leave_the_cache_alone(self):
        self.exposition.render("", "", "name[]=binance_spread")
        self.assertEqual(self.exposition.renders, 0)


if __name__ == "__main__":
    unittest.main()
