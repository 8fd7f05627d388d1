"""Where books, best quotes and trades come from: one protocol each, REST and stream.

The jobs ask a `BookSource` for books and tops, and a `TradeSource` for trade
flow, and never know which one they have: REST mode polls Binance for each
read, stream mode reads what the websocket streams keep current. A read
answers per symbol, so one symbol that cannot be read (delisted, not in
sync) never fails the others.
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, Sequence

from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.types import BookTop, OrderBook
from binance_exporter.model import TradeTotals

__all__ = ["BookSource", "NotSynced", "TradeSource", "followed_among"]


def followed_among(streams: Sequence[str] | None, followed: Iterable[str],
                   stream_of: Callable[[str], str]) -> list[str]:
    """The `followed` symbols whose stream (`stream_of`) is among `streams`; all for None.

    A connection's callbacks name streams; each part of stream mode keeps
    symbols, and acts only on those it follows.
    """
    if streams is None:
        return list(followed)
    wanted = set(streams)
    return [s for s in followed if stream_of(s) in wanted]


class BookSource(Protocol):
    """Books and best quotes of the symbols the jobs follow."""

    # True when reading a book costs no request weight, so every followed book
    # can feed the VWAP, not only those whose notional is asked for.
    free_books: bool

    def track(self, books: Sequence[str], tops: Sequence[str]) -> None:
        """Follow exactly these books (depth) and best quotes from now on.

        Stream mode keeps a local book for each of `books` and only the best
        quotes for the rest of `tops`; REST mode asks on every read.
        """

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """The top `levels` of each book, or why not (also when fewer are known)."""

    def depths(self, symbols: Sequence[str], limit: int) -> dict[str, OrderBook | Exception]:
        """Up to `limit` levels of each book; `bids_cut`/`asks_cut` say if a side goes on."""

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """Best bid and ask of each symbol, or why not; a symbol left out is no longer listed.

        Raises when nothing could be read at all (e.g. the one request failed).
        """


class TradeSource(Protocol):
    """Taker trade flow of the symbols the analytics follow, counted once each."""

    def flows(self, symbols: Sequence[str]) -> dict[str, TradeTotals | Exception]:
        """Counters since each symbol was first followed, or why they are not known now."""
