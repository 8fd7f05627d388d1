"""Where books and best quotes come from: one protocol, a REST and a stream implementation.

The jobs ask a `BookSource` for books and tops and never know which one they
have: REST mode polls Binance for each read, stream mode reads local books
kept in sync from the websocket streams. A read answers per symbol, so one
book that cannot be read (delisted, not in sync) never fails the others.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.types import BookTop, OrderBook

__all__ = ["BookSource", "NotSynced"]


class BookSource(Protocol):
    """Books and best quotes of the symbols the jobs follow."""

    # True when reading a book costs no request weight, so every followed book
    # can feed the VWAP, not only those whose notional is asked for.
    free_books: bool

    def track(self, symbols: Sequence[str]) -> None:
        """Follow exactly `symbols` from now on (stream: subscribe and sync; REST: nothing)."""

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """The top `levels` of each book, or why it could not be read."""

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """Best bid and ask of each symbol, or why not; a symbol left out is no longer listed.

        Raises when nothing could be read at all (e.g. the one request failed).
        """
