"""Books and best quotes polled from Binance's REST API.

Every depth request of a read leaves at once, each on its own pool thread, so
a read of N books takes one round trip. Every best quote comes from one
`ticker/bookTicker` request (weight 4 for any number of symbols).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace
from typing import Sequence

from binance_exporter.binance.payloads import PayloadError, parse_book_tickers, parse_depth
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.binance.weights import depth_limit_for
from binance_exporter.market.types import BookTop, OrderBook


class RestSource:
    """A `BookSource` that asks Binance for every read."""

    free_books = False

    def __init__(self, client: BinanceClient, pool: DaemonPool, all_symbols: bool = False) -> None:
        self.client = client
        self.pool = pool
        # Whole market: the all-symbols bookTicker (same weight 4) instead of a
        # `symbols` list thousands of names long in the URL.
        self.all_symbols = all_symbols

    def track(self, books: Sequence[str], tops: Sequence[str]) -> None:
        """Nothing to follow: every read asks Binance."""

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """One depth request per symbol at the cheapest limit that covers `levels`."""
        return self.depths(symbols, depth_limit_for(levels))

    def depths(self, symbols: Sequence[str], limit: int) -> dict[str, OrderBook | Exception]:
        """One depth request per symbol, all in flight together.

        A side that came back with `limit` levels was cut by the limit.
        """
        futures: dict[str, Future[object]] = {
            s: self.pool.submit(self.client.depth, s, limit) for s in symbols
        }
        books: dict[str, OrderBook | Exception] = {}
        for symbol, future in futures.items():
            try:
                book = parse_depth(future.result(), symbol)
            except (BinanceError, PayloadError) as exc:
                books[symbol] = exc
                continue
            books[symbol] = replace(book, bids_cut=len(book.bids) >= limit,
                                    asks_cut=len(book.asks) >= limit)
        return books

    def tops(self, symbols: Sequence[str]) -> dict[str, BookTop | Exception]:
        """Best quotes from one bookTicker request; a symbol Binance no longer lists is left out."""
        if not symbols:
            return {}
        try:
            tops = parse_book_tickers(self.client.book_tickers(None if self.all_symbols
                                                               else list(symbols)))
        except BinanceError as exc:
            if not exc.invalid_symbol:
                raise
            # One symbol of the list no longer exists, which fails the whole
            # request. The all-symbols form costs the same weight (4) and
            # answers for every symbol that still exists.
            tops = parse_book_tickers(self.client.book_tickers(None))
        return {s: tops[s] for s in symbols if s in tops}
