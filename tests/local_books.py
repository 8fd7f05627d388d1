"""A stream-mode BookSource over bare `StreamBooks`, for tests that feed the books by hand.

Best quotes come from the books' own tops (stream mode proper reads them
from bookTicker streams), so a test of depth events alone can check spreads.
"""

from __future__ import annotations

from typing import Sequence

from binance_exporter.market.numbers import ZERO
from binance_exporter.market.types import BookTop, OrderBook
from binance_exporter.sources.stream import StreamBooks


class LocalBooksSource:
    """Reads `StreamBooks`; remembers what it was asked to track."""

    free_books = True

    def __init__(self, books: StreamBooks, follow: bool = True) -> None:
        self.local = books
        self.follow = follow  # False: the test decides which books exist
        self.tracked: list[list[str]] = []

    def track(self, books: Sequence[str], tops: Sequence[str]) -> None:
        """Record, and keep a book for every symbol named, its connection up at once."""
        symbols = list(dict.fromkeys([*books, *tops]))
        self.tracked.append(symbols)
        if self.follow:
            streams = self.local.track(symbols)
            self.local.on_connect(streams)
            self.local.on_live(streams)

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """Local views."""
        return self.local.books(symbols, levels)

    def depths(self, symbols: Sequence[str], limit: int) -> dict[str, OrderBook | Exception]:
        """Local views, as deep as known."""
        return self.local.depths(symbols, limit)

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """The best level of each local book."""
        tops: dict[str, BookTop | Exception] = {}
        for symbol, view in self.local.depths(symbols, 1).items():
            # An empty side as price 0, as bookTicker gives it.
            tops[symbol] = view if isinstance(view, Exception) else BookTop(
                symbol, view.bids[0][0] if view.bids else ZERO,
                view.asks[0][0] if view.asks else ZERO)
        return tops
