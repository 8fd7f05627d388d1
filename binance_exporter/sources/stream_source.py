"""Stream mode's source of books, best quotes, trades and 24 h tickers.

It owns every part of stream mode that reaches Binance: the supervised
connections (`StreamFeed`), the local depth books (`StreamBooks`), the best
quotes of any number of symbols (`BookTickers`), trade flow from aggTrade
streams (`StreamTrades`), the 24 h ticker table (`TickerTable`), the REST
worker pool they share, and the `--record` file, opened first so a path
that cannot be written raises OSError before anything starts.

A stream stays on the connection that carries it (`StreamFeed`): a new
ranking unsubscribes the few depth and trade streams it drops and subscribes
those it adds, and reconnects nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Sequence

import msgspec

from binance_exporter.binance.backoff import retry_delay
from binance_exporter.binance.book_ticker_events import seed_events
from binance_exporter.binance.payloads import PayloadError
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.recorder import Recorder
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.binance.stream_feed import StreamFeed
from binance_exporter.market.types import BookTop, OrderBook
from binance_exporter.model import StreamView, TradeTotals
from binance_exporter.sources.book_tickers import BookTickers
from binance_exporter.sources.stream import StreamBooks
from binance_exporter.sources.stream_trades import StreamTrades
from binance_exporter.sources.ticker_table import TICKER_STREAM, TickerTable

LOG = logging.getLogger(__name__)
# Seconds without a new acknowledgement before the REST fill of best quotes:
# more than the gap between SUBSCRIBEs, so the connections that come up
# together, batch after batch, share one request.
FILL_QUIET = 1.0


class StreamSource:  # pylint: disable=too-many-instance-attributes
    """A `BookSource` and `TradeSource` reading what the market streams keep current."""

    free_books = True

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        client: BinanceClient,
        url: str,
        snapshot_limit: int,
        on_change: Callable[[], None],
        record: str | None = None,
        snapshot_weight_per_minute: float = math.inf,
        follow_trades: bool = True,
        silence: float = 10.0,
    ) -> None:
        self.recorder = Recorder(record) if record is not None else None
        recorder = self.recorder
        self.client = client
        self.pool = DaemonPool(4, name="stream-rest")
        self.local = StreamBooks(client, self.pool, snapshot_limit, on_change=on_change,
                                 on_depth=recorder.snapshot if recorder else None,
                                 snapshot_weight_per_minute=snapshot_weight_per_minute)
        self.quotes = BookTickers(on_change)
        # Gap fills page up to 20 aggTrades answers per symbol: on their own
        # workers, so that they never hold back a snapshot or a quote fill
        # (none when trades are not followed: there is never a fill).
        self.trade_pool = DaemonPool(2, name="trade-gaps") if follow_trades else self.pool
        self.trades = StreamTrades(client, self.trade_pool)
        self.tickers = TickerTable()
        self.follow_trades = follow_trades
        self._fill_lock = threading.Lock()
        self._fill_planned = False  # a REST fill of best quotes is on its way
        self._live_at = 0.0  # monotonic time of the latest acknowledgement
        self._stopped = threading.Event()
        self._handlers: dict[str, Callable[[str, msgspec.Raw], None]] = {}
        self.connections = StreamFeed(url, self._on_data, self._on_connect, watchdog=silence,
                                      on_raw=recorder.message if recorder else None,
                                      on_disconnect=self._on_disconnect, on_live=self._on_live)

    # Following ---------------------------------------------------------------

    def track(self, books: Sequence[str], tops: Sequence[str]) -> None:
        """Local books for `books`, best quotes for `tops`, trades for `books` if followed."""
        books = list(dict.fromkeys(books))
        depth = self.local.track(books)
        quotes = self.quotes.track(sorted(set(tops)))
        trades = self.trades.track(books if self.follow_trades else [])
        # Who handles each stream, worked out here once rather than per message.
        handlers: dict[str, Callable[[str, msgspec.Raw], None]] = {TICKER_STREAM:
                                                                    self.tickers.on_data}
        for streams, handler in ((quotes, self.quotes.on_data), (depth, self.local.on_data),
                                 (trades, self.trades.on_data)):
            handlers.update(dict.fromkeys(streams, handler))
        self._handlers = handlers
        self.connections.track([TICKER_STREAM, *quotes, *depth, *trades])

    # Connection events (stream threads) ---------------------------------------

    def _on_data(self, stream: str, data: msgspec.Raw) -> None:
        handler = self._handlers.get(stream)
        if handler is not None:
            handler(stream, data)

    def _on_connect(self, streams: list[str]) -> None:
        """A connection for `streams` opens: each part starts over what it carries."""
        for part in (self.local, self.quotes, self.trades, self.tickers):
            part.on_connect(streams)

    def _on_disconnect(self, streams: list[str]) -> None:
        """The connection for `streams` is lost: nothing it carried is live any more."""
        for part in (self.local, self.quotes, self.trades, self.tickers):
            part.on_disconnect(streams)

    def _on_live(self, streams: list[str]) -> None:
        """A SUBSCRIBE is acknowledged: its streams' snapshots and fills may start."""
        for part in (self.local, self.trades, self.tickers):
            part.on_live(streams)
        with self._fill_lock:
            self._live_at = time.monotonic()
            if not self.quotes.on_live(streams) or self._fill_planned:
                return
            self._fill_planned = True
        try:
            self.pool.submit(self._fill)
        except RuntimeError:  # the pool is shut down: the exporter is stopping
            pass

    def _fill(self) -> None:
        """One all-symbols REST bookTicker for the quotes no push has given yet (pool).

        The symbols it may fill are those waiting when the request leaves; a
        connection live from then on plans a fill of its own.
        """
        failures = 0
        while not self._stopped.wait(retry_delay(failures) if failures else 0.0):
            with self._fill_lock:
                quiet = self._live_at + FILL_QUIET - time.monotonic()
                if quiet <= 0:
                    self._fill_planned = False
                waiting = self.quotes.waiting()
            if quiet > 0:  # more acknowledgements are arriving: wait for them
                if self._stopped.wait(quiet):
                    return
                continue
            try:
                filled = self.quotes.fill(seed_events(self.client.book_tickers(None)), waiting)
            except (BinanceError, PayloadError) as exc:
                failures += 1
                LOG.warning("best quotes not filled from REST (%s); trying again", exc)
                with self._fill_lock:
                    if self._fill_planned:
                        return  # a newer fill is planned: it takes these symbols too
                    self._fill_planned = True
                continue
            LOG.info("best quotes of %d quiet symbols filled from REST", filled)
            return

    # Reading -------------------------------------------------------------------

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """The top `levels` of each local book."""
        return self.local.books(symbols, levels)

    def depths(self, symbols: Sequence[str], limit: int) -> dict[str, OrderBook | Exception]:
        """Up to `limit` levels of each local book."""
        return self.local.depths(symbols, limit)

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """Best quotes of each symbol, from its bookTicker stream."""
        return self.quotes.tops(symbols)

    def flows(self, symbols: Sequence[str]) -> dict[str, TradeTotals | Exception]:
        """Trade flow of each symbol from its aggTrade stream."""
        return self.trades.flows(symbols)

    def view(self) -> StreamView:
        """What the stream metrics show, read live."""
        stats = self.connections.stats()
        wanted, live = self.quotes.counts()
        return StreamView(stats.connected, stats.reconnects, stats.messages, stats.last_message,
                          *self.local.stats(),
                          quotes_wanted=wanted, quotes_live=live,
                          ticker_repairs=self.tickers.repairs(),
                          trade_gap_fills=self.trades.gap_fills(),
                          trades_missed=self.trades.missed())

    def close(self) -> None:
        """Close the connections, the REST workers and the recording."""
        self._stopped.set()
        self.trades.stop()
        self.connections.stop()
        self.local.schedule.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.trade_pool.shutdown(wait=False, cancel_futures=True)
        if self.recorder is not None:
            self.recorder.close()
