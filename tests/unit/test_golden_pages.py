"""Golden /metrics pages: real recorded answers in, the whole page out, byte for byte.

REST mode reads the recorded real Binance answers in ../shared/fixtures through
the real client (a stand-in for binance-connector's `Spot` returns them), then
the rankings, quotes and analytics jobs. Stream mode replays a `--record`
file made against the fake market (tests/golden/stream-recording.jsonl.gz)
through the stream supervisor's message callback into the local books, with
the ranking given. Clocks are fixed, so every value on the page is
reproducible; the process, platform and GC families, which describe the test
process itself, are left out of the comparison.

To update the pages after a deliberate change, run
`make golden` (UPDATE_GOLDEN=1 on this module) and review the diff.
"""

from __future__ import annotations

import gzip
import json
import os
import unittest
from collections import defaultdict, deque
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import ApiStats, BinanceClient
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.config import AnalyticsConfig, RankingConfig
from binance_exporter.jobs.analytics import AnalyticsJob
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import Ranking, RankingsJob
from binance_exporter.market.types import ExchangeInfo, SymbolInfo, Ticker24h
from binance_exporter.metrics.exposition import build_exposition
from binance_exporter.model import JOBS, SnapshotStore, StreamView
from binance_exporter.sources.rest import RestSource
from binance_exporter.sources.rest_trades import RestTrades
from binance_exporter.sources.stream import StreamBooks
from tests.local_books import LocalBooksSource
from tests.support import wait_until

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FIXTURES = (Path(__file__).resolve().parents[3] / "shared" / "fixtures"
            / "binance-spot-mainnet-2021-10-22")
NOW = 1634944401.0  # closeTime of the recorded 24 h ticker
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
OWN_PROCESS = ("process_", "python_")  # families about the test process, not the exporter


def fixture(name: str) -> Any:
    """One recorded real answer."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def exporter_lines(page: bytes) -> str:
    """The page without the families that describe the process that rendered it."""
    kept = []
    for line in page.decode().splitlines(keepends=True):
        words = line.split(" ", 3)
        name = words[2] if line.startswith("# ") and len(words) > 2 else line
        if not name.startswith(OWN_PROCESS):
            kept.append(line)
    return "".join(kept)


class GoldenTestCase(unittest.TestCase):
    """Compares a page with its golden file, or rewrites the file with UPDATE_GOLDEN=1."""

    def assert_golden(self, name: str, page: bytes) -> None:
        """`page` (less the process families) equals tests/golden/`name` byte for byte."""
        path = GOLDEN / name
        text = exporter_lines(page)
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(text, encoding="utf-8")
        self.assertEqual(text, path.read_text(encoding="utf-8"), f"{name} changed; see "
                         "this module's docstring to update it after a deliberate change")


class FixtureSpot:
    """binance-connector's Spot, answering from the recorded real answers.

    No X-MBX-USED-WEIGHT-1M header: the weight the page shows is then the
    client's own count of what it sent, whatever order the parallel requests
    took.
    """

    def __init__(self, **_settings: Any) -> None:
        pass

    def _answer(self, data: Any) -> dict[str, Any]:
        return {"data": data, "limit_usage": {}}

    def exchange_info(self) -> dict[str, Any]:
        """The recorded exchangeInfo (BTCUSDT, ETHUSDT)."""
        return self._answer(fixture("exchange_info_BTCUSDT_ETHUSDT.json"))

    def ticker_24hr(self, **_params: Any) -> dict[str, Any]:
        """The recorded BTCUSDT 24 h ticker, as the one entry of an all-symbols answer."""
        return self._answer([fixture("ticker_24hr_BTCUSDT.json")])

    def depth(self, _symbol: str, **_params: Any) -> dict[str, Any]:
        """The recorded 10-level BTCUSDT book."""
        return self._answer(fixture("depth_BTCUSDT_limit10.json"))

    def book_ticker(self, **_params: Any) -> dict[str, Any]:
        """The recorded BTCUSDT best quotes."""
        return self._answer([fixture("book_ticker_BTCUSDT.json")])

    def agg_trades(self, _symbol: str, **_params: Any) -> dict[str, Any]:
        """No aggregate trades were recorded: an empty page."""
        return self._answer([])


class RestPageTest(GoldenTestCase):
    """The page REST mode serves after one rankings run and one analytics run."""

    def test_rest_pages(self):
        client = BinanceClient("https://api.binance.com", timeout=10, clock=lambda: NOW,
                               spot_factory=FixtureSpot)
        store = SnapshotStore(JOBS + ("analytics",), clock=lambda: NOW)
        pool = DaemonPool(4)
        self.addCleanup(pool.shutdown)
        # BTCUSDT is the one ranked symbol with a recorded ticker: rank the
        # USDT-quoted symbols in both lists so its book is read for the notional.
        config = RankingConfig(top_n=2, depth_levels=10, btc_quote="USDT")
        ranking = RankingsJob(client, pool, store, config, clock=lambda: NOW).run()
        assert ranking is not None
        source = RestSource(client, pool)
        QuotesJob(source, pool, store, config, clock=lambda: NOW).with_ranking(ranking)
        analytics = AnalyticsConfig(fill_notionals=(Decimal(1000),),
                                    depth_bands=(Decimal("0.0001"), Decimal("0.001")),
                                    extra_symbols=("BTCUSDT",), depth_limit=100)
        AnalyticsJob(source, RestTrades(client, pool), store, analytics, config.owns,
                     clock=lambda: NOW).refresh()
        exposition = build_exposition(store.current, client.stats)
        self.assert_golden("rest.prom", exposition.render("", "", "")[0])
        self.assert_golden("rest.openmetrics", exposition.render(OPENMETRICS, "", "")[0])


class InlinePool:
    """Runs each task at once on the caller's thread: a replay in recorded order."""

    @staticmethod
    def submit(function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `function(*args)` now."""
        future: Future[Any] = Future()
        try:
            future.set_result(function(*args))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            future.set_exception(exc)  # as a pool thread would keep it
        return future


class RecordedDepth:
    """Answers each depth request with the next answer recorded for that symbol."""

    def __init__(self, answers: dict[str, deque[Any]]) -> None:
        self.answers = answers

    def depth(self, symbol: str, _limit: int) -> Any:
        """The next recorded depth answer of `symbol`."""
        return self.answers[symbol].popleft()


def ticker(symbol: str, trades: int) -> Ticker24h:
    """A ranked symbol's 24 h figures (the recording carries no tickers)."""
    return Ticker24h(symbol, Decimal(1000), Decimal(trades) / 10, trades)


class StreamPageTest(GoldenTestCase):
    """The page stream mode serves after the recorded frames, ranking given."""

    def replay(self) -> tuple[StreamBooks, StreamSupervisor]:
        """The recording fed through the supervisor's callback into fresh local books."""
        lines = [json.loads(line) for line in
                 gzip.decompress((GOLDEN / "stream-recording.jsonl.gz").read_bytes()).splitlines()]
        answers: dict[str, deque[Any]] = defaultdict(deque)
        for line in lines:
            if "depth" in line:
                answers[line["depth"]].append(line["answer"])
        books = StreamBooks(RecordedDepth(answers), InlinePool(), 100)  # type: ignore[arg-type]
        self.addCleanup(books.schedule.stop)
        received = [NOW]
        streams = books.track(sorted(answers))
        supervisor = StreamSupervisor("ws://127.0.0.1:9", streams, books.on_data,
                                      wall_clock=lambda: received[0])
        books.on_connect(streams)  # the recorded session's connection, subscribed
        books.on_live(streams)
        last_ids: dict[str, int] = {}
        for line in lines:
            if "m" in line and '"result"' not in line["m"]:  # data, not the SUBSCRIBE reply
                received[0] = line["t"]
                supervisor.on_message(None, line["m"])
                data = json.loads(line["m"]).get("data", {})
                if "s" in data:
                    last_ids[data["s"]] = data["u"]
        # Each book's snapshot is fetched on the snapshot schedule's thread.
        wait_until(lambda: books.stats()[0] == last_ids, timeout=10)
        return books, supervisor

    def test_stream_page(self):
        books, supervisor = self.replay()
        symbols = sorted(books.stats()[0])
        btc = [s for s in symbols if s.endswith("BTC")]
        usdt = [s for s in symbols if s.endswith("USDT")]
        ranking = Ranking(
            info=ExchangeInfo({s: SymbolInfo(s, s[:-4] if s in usdt else s[:-3],
                                             "USDT" if s in usdt else "BTC", "TRADING")
                               for s in symbols}, 6000),
            top_btc=tuple(ticker(s, 10) for s in btc),
            top_usdt=tuple(ticker(s, 100 - i) for i, s in enumerate(usdt)),
            spread_symbols=tuple(usdt),
            started=NOW,
        )
        store = SnapshotStore(clock=lambda: NOW)
        config = RankingConfig(top_n=2, depth_levels=20)
        quotes = QuotesJob(LocalBooksSource(books, follow=False), InlinePool(), store, config,  # type: ignore[arg-type]
                           clock=lambda: NOW)
        quotes.with_ranking(ranking)
        quotes.refresh_books()

        def view() -> StreamView:
            stats = supervisor.stats()
            return StreamView(True, stats.reconnects, stats.messages, stats.last_message,
                              *books.stats())

        api = ApiStats(requests={}, weight_used=None, weight_limit=6000, backoff_until=0.0)
        exposition = build_exposition(store.current, lambda: api, view)
        self.assertTrue(store.current().up)
        self.assert_golden("stream.prom", exposition.render("", "", "")[0])


if __name__ == "__main__":
    unittest.main()
