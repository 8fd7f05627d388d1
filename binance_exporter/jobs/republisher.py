"""Stream mode: the answers about books come from local order books, not REST polls.

The rankings still come from REST (exchangeInfo and the 24 h tickers, once per
`--refresh-interval`); every depth and best quote comes from the local books
that `StreamBooks` keeps in sync from the diff-depth streams. `refresh_books`
republishes spreads, notionals and VWAP from them; `Republisher` runs it after
the books changed, at most every `PUBLISH_INTERVAL`, while the spreads job
still takes the deltas and prints the report every `--update-interval`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from decimal import Decimal
from typing import Callable

from binance_exporter.market.quotes import book_top
from binance_exporter.market.types import ExchangeInfo, OrderBook, Ticker24h
from binance_exporter.jobs.quotes import (
    SPREADS,
    NotSynced,
    Refresher,
    Settings,
    Spreads,
)
from binance_exporter.model import Snapshot, SnapshotStore
from binance_exporter.sources.stream import StreamBooks
from binance_exporter.market.vwap import vwap_price

PUBLISH_INTERVAL = 0.1  # seconds between publishes when a publish is quick
# A publish may take at most this share of the time, so that with many symbols
# the publisher slows down instead of starving the stream reader of the GIL.
PUBLISH_SHARE = 0.1


class Republisher:
    """Runs `refresh_books` after the books changed, at most every PUBLISH_INTERVAL.

    A publish that takes longer than PUBLISH_SHARE of that interval stretches
    the wait to keep its share: a 20 ms publish is followed by 180 ms.
    """

    def __init__(self) -> None:
        self._changed = threading.Event()

    def changed(self) -> None:
        """Called by the stream thread for every applied event.

        Between two publishes only the first event finds the flag down; the
        others cost one read instead of a trip through the Event's lock.
        """
        if not self._changed.is_set():
            self._changed.set()

    def run(self, refresher: StreamRefresher, stop: threading.Event) -> None:
        """Republish until `stop` is set (publisher thread)."""
        while not stop.is_set():
            if self._changed.wait(0.5):
                self._changed.clear()
                started = time.monotonic()
                refresher.refresh_books()
                took = time.monotonic() - started
                stop.wait(max(PUBLISH_INTERVAL, took * (1 - PUBLISH_SHARE) / PUBLISH_SHARE))


class StreamRefresher(Refresher):
    """A Refresher whose books and quotes are the local books."""

    def __init__(
        self,
        client,
        store: SnapshotStore,
        settings: Settings,
        books: StreamBooks,
        on_track: Callable[[list[str]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client, store, settings, clock=clock)
        self.books = books
        self.on_track = on_track
        # The synced books as read once at the start of a refresh_books run, so
        # one run copies each book once, not once per answer it feeds.
        self._view: dict[str, OrderBook] | None = None
        self._vwap_cache: dict[str, tuple[int, Decimal | None]] = {}  # symbol -> (u, vwap)

    def refresh_rankings(self) -> Snapshot:
        with self.lock:
            return super().refresh_rankings()

    def refresh_spreads(self) -> Snapshot:
        with self.lock:
            return super().refresh_spreads()

    def refresh_books(self) -> Snapshot:
        """Republish the book-derived answers from the local books; deltas stay as reported."""
        with self.lock:
            started = self._clock()
            previous = self.store.current()
            answers = previous.answers
            if answers is None:
                return previous
            self._view = self.books.synced_books(self.settings.depth_levels)
            try:
                btc = [t.symbol for t in answers.top_btc if t.symbol in answers.symbols]
                notional, vwaps, _error = self._collect_notional(self._submit_depths(btc), None)
                spreads = self._fetch_spreads(list(answers.spread_symbols))
                vwaps.update(self._spread_vwaps(answers.spread_symbols))
                unsynced = sorted(set(btc) - set(self._view))
            finally:
                self._view = None
            error = spreads.error or (
                NotSynced(f"order books not in sync: {', '.join(unsynced)}") if unsynced else None
            )
            updated = replace(
                answers,
                notional=notional,
                spreads=spreads.values,
                spread_ratios=spreads.ratios,
                deltas={s: d for s, d in answers.deltas.items() if s in spreads.values},
                **self._vwap_fields(vwaps),
            )
            # The books job is reported as `spreads`: it is what keeps them current.
            return self.publish(previous, updated, {SPREADS: (error, started)})

    # Where the books come from ---------------------------------------------

    def _rank(self) -> tuple[ExchangeInfo, list[Ticker24h], list[Ticker24h]]:
        info, top_btc, top_usdt = super()._rank()
        owns = self.settings.owns
        wanted = [t.symbol for t in top_btc if owns(t.symbol)]
        wanted += self._spread_symbols(info, top_usdt)
        self.on_track(list(dict.fromkeys(wanted)))
        return info, top_btc, top_usdt

    def _synced(self) -> dict[str, OrderBook]:
        if self._view is not None:
            return self._view
        return self.books.synced_books(self.settings.depth_levels)

    def _submit_depths(self, symbols: list[str]) -> dict[str, Future[object]]:
        books = self._synced()
        futures: dict[str, Future[object]] = {}
        for symbol in symbols:
            future: Future[object] = Future()
            if symbol in books:
                future.set_result(books[symbol])
            else:
                future.set_exception(NotSynced(f"{symbol}: local order book not in sync"))
            futures[symbol] = future
        return futures

    def _fetch_spreads(self, symbols: list[str]) -> Spreads:
        tops = {s: book_top(s, book) for s, book in self._synced().items()}
        spreads, missing = self.measure_spreads(symbols, tops)
        if missing:
            return replace(spreads, error=NotSynced(f"order books not in sync: "
                                                    f"{', '.join(missing)}"))
        return spreads

    def _spread_vwaps(self, symbols: tuple[str, ...]) -> dict[str, Decimal]:
        """VWAP mid of each synced spread book; recomputed only when the book moved."""
        books = self._synced()
        vwaps: dict[str, Decimal] = {}
        cache: dict[str, tuple[int, Decimal | None]] = {}
        for symbol in symbols:
            book = books.get(symbol)
            if book is None:
                continue
            cached = self._vwap_cache.get(symbol)
            if cached is not None and cached[0] == book.last_update_id:
                value = cached[1]
            else:
                value = vwap_price(book, self.settings.depth_levels)
            cache[symbol] = (book.last_update_id, value)
            if value is not None:
                vwaps[symbol] = value
        self._vwap_cache = cache
        return vwaps
