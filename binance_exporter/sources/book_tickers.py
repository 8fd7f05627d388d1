"""Best quotes of any number of symbols from `<symbol>@bookTicker` streams.

A bookTicker stream needs no snapshot: every change of a symbol's best bid or
ask is pushed whole. So the whole market's spreads cost no request weight,
except one all-symbols REST `ticker/bookTicker` (weight 4) when connections
come up: a quiet symbol may push nothing for minutes, and the REST answer,
asked for once every SUBSCRIBE is acknowledged, is its quote until it moves
(any later change is pushed, and a push always wins over the REST quote).

Freshness is strict: a symbol has a quote only while the connection carrying
its stream is up. When that connection drops or goes silent, its symbols'
quotes are gone at once, and come back with the first push or the REST fill
after the reconnect.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import msgspec

from binance_exporter.binance.book_ticker_events import (
    BookTickerEvent,
    decode_book_ticker,
    to_top,
)
from binance_exporter.binance.payloads import PayloadError
from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.types import BookTop
from binance_exporter.sources.base import followed_among

LOG = logging.getLogger(__name__)
BOOK_TICKER = "bookTicker"
SUFFIX = "@" + BOOK_TICKER


def book_ticker_stream(symbol: str) -> str:
    """The bookTicker stream name of `symbol` (stream names are lower case)."""
    return symbol.lower() + SUFFIX


class BookTickers:
    """The latest bookTicker event of each followed symbol, while its connection is up."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.on_change = on_change
        self._lock = threading.Lock()
        self._wanted: frozenset[str] = frozenset()
        self._open: set[str] = set()  # followed, and their connection subscribing or live
        self._latest: dict[str, BookTickerEvent] = {}
        self._to_fill: set[str] = set()  # live, waiting for the REST fill
        # Each top and the event it was built from: built again only when that
        # changed. Two dicts: a pair of them would be an object the collector tracks.
        self._tops: dict[str, BookTop | PayloadError] = {}
        self._top_events: dict[str, BookTickerEvent] = {}

    def track(self, symbols: Sequence[str]) -> list[str]:
        """Follow exactly `symbols`; returns their stream names."""
        with self._lock:
            self._wanted = frozenset(symbols)
            for gone in set(self._latest) - self._wanted:
                del self._latest[gone]
                self._tops.pop(gone, None)
                self._top_events.pop(gone, None)
            self._open &= self._wanted
        return [book_ticker_stream(s) for s in symbols]

    # Connections (supervisor threads) -----------------------------------------

    def on_connect(self, streams: Sequence[str]) -> None:
        """A connection for `streams` opens (before subscribing): its quotes start over."""
        with self._lock:
            symbols = self._symbols_of(streams)
            self._open.update(symbols)
            self._forget(symbols)

    def on_disconnect(self, streams: Sequence[str]) -> None:
        """The connection carrying `streams` is lost: its quotes are not live any more."""
        with self._lock:
            symbols = self._symbols_of(streams)
            self._open.difference_update(symbols)
            self._forget(symbols)
        self.on_change()

    def on_live(self, streams: Sequence[str]) -> bool:
        """Every SUBSCRIBE of the connection is acknowledged; True when a REST fill is due."""
        with self._lock:
            symbols = self._symbols_of(streams)
            self._to_fill.update(s for s in symbols if s in self._open and s not in self._latest)
            return bool(self._to_fill)

    def _symbols_of(self, streams: Sequence[str]) -> list[str]:
        """The followed symbols whose bookTicker streams are among `streams` (under the lock)."""
        return followed_among(streams, self._wanted, book_ticker_stream)

    def _forget(self, symbols: list[str]) -> None:
        """Drop the quotes of `symbols` (under the lock)."""
        for symbol in symbols:
            self._latest.pop(symbol, None)
            self._to_fill.discard(symbol)

    # Quotes -------------------------------------------------------------------

    def on_data(self, stream: str, data: bytes | str | msgspec.Raw) -> None:
        """One bookTicker message (stream reader thread)."""
        try:
            event = decode_book_ticker(data)
        except PayloadError as exc:
            LOG.warning("ignored a malformed bookTicker event on %s: %s", stream, exc)
            return
        symbol = event.symbol
        with self._lock:
            if symbol not in self._open:  # `_open` holds only followed symbols
                return  # a connection being torn down, or a symbol followed no more
            latest = self._latest.get(symbol)
            if latest is not None and event.update_id < latest.update_id:
                return
            self._latest[symbol] = event
            self._to_fill.discard(symbol)
        self.on_change()

    def waiting(self) -> frozenset[str]:
        """The symbols live but without a quote yet: a REST answer asked for now may fill them."""
        with self._lock:
            return frozenset(self._to_fill)

    def fill(self, events: list[BookTickerEvent], among: frozenset[str]) -> int:
        """REST quotes for the symbols of `among` still waiting; returns how many were filled.

        `among` is what `waiting()` said before the request left: a symbol
        that went live later was not yet subscribed when Binance answered.
        """
        filled = 0
        with self._lock:
            for event in events:
                if event.symbol in among and event.symbol in self._to_fill:
                    self._latest[event.symbol] = event
                    filled += 1
            self._to_fill.difference_update(among)
        if filled:
            self.on_change()
        return filled

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """Best quotes of each symbol, NotSynced where none is live."""
        answers: dict[str, BookTop | Exception] = {}
        with self._lock:
            for symbol in symbols:
                event = self._latest.get(symbol)
                if event is None:
                    answers[symbol] = NotSynced(f"{symbol}: no live best quotes")
                    continue
                if self._top_events.get(symbol) is not event:
                    self._tops[symbol] = self._top(event)
                    self._top_events[symbol] = event
                answers[symbol] = self._tops[symbol]
        return answers

    @staticmethod
    def _top(event: BookTickerEvent) -> BookTop | PayloadError:
        try:
            return to_top(event)
        except PayloadError as exc:
            LOG.warning("ignored impossible best quotes: %s", exc)
            return exc

    def counts(self) -> tuple[int, int]:
        """(symbols followed, symbols with live quotes)."""
        with self._lock:
            return len(self._wanted), sum(1 for s in self._latest if s in self._wanted)
