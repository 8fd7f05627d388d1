"""The analytics job: fills, depth bands and trade flow of the analytics symbols.

Runs every `--analytics-interval` after the rankings are known, so it never
adds to the start-up floor. It reads books from a `BookSource` and trade flow
from a `TradeSource`: in REST mode each run costs, per symbol, one depth
request at `--analytics-depth-limit` and one or more aggTrades pages (weight
4 each); in stream mode it reads the local books and the aggTrade streams and
costs nothing.

Honesty rules: a figure the snapshot cannot support is left out and counted,
never guessed. A fill that runs past the last level of a side that was cut
(at the request limit, or where a local book stops vouching for its
levels), or a band whose edge lies beyond it, may be wrong, so neither is
exported (reason `beyond_snapshot`). A fill that runs past the end of a
side known whole is really unfillable, and
`binance_fill_unfilled_notional` says by how much.

Order sizes are reference-currency amounts, converted to the book's quote
asset at the rate the latest spreads reading gave (`Answers.reference_prices`);
the depth bands are also converted with it. A book whose quote asset has no
rate gets no fills and no converted bands (reason `no_reference_price`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Callable

from binance_exporter.binance.rest import BinanceError
from binance_exporter.config import AnalyticsConfig
from binance_exporter.jobs.quotes import INVALID_SYMBOL
from binance_exporter.market.fills import (
    ASK,
    BID,
    BUY,
    SELL,
    Fill,
    depth_within,
    mid_price,
    simulate_fill,
)
from binance_exporter.market.conversion import NO_REFERENCE_PRICE, from_reference, to_reference
from binance_exporter.market.quotes import book_problem
from binance_exporter.market.types import OrderBook
from binance_exporter.model import (
    ANALYTICS,
    Analytics,
    Answers,
    BookAnalytics,
    Snapshot,
    SnapshotStore,
    TradeTotals,
)
from binance_exporter.sources.base import BookSource, NotSynced, TradeSource

BEYOND_SNAPSHOT = "beyond_snapshot"


def _rate(answers: Answers | None, symbol: str) -> Decimal | None:
    """The reference price of `symbol`'s quote asset, None when it has none."""
    if answers is None or (quote := answers.quote_assets.get(symbol)) is None:
        return None
    return answers.reference_prices.get(quote)


class AnalyticsJob:
    """Publishes fills, depth bands and trade flow from its book and trade sources."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        books: BookSource,
        trades: TradeSource,
        store: SnapshotStore,
        config: AnalyticsConfig,
        owns: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = books
        self.trades = trades
        self.store = store
        self.config = config
        self.owns = owns  # this exporter's shard
        self._clock = clock

    def symbols(self, snapshot: Snapshot) -> list[str]:
        """The ranked symbols and the `--symbols` list, this shard's part, in order."""
        names: list[str] = list(self.config.extra_symbols)
        if snapshot.answers is not None:
            names += [t.symbol for t in (*snapshot.answers.top_btc, *snapshot.answers.top_usdt)]
        return [s for s in dict.fromkeys(names) if self.owns(s)]

    def refresh(self) -> Snapshot:
        """One run over every analytics symbol; publish and return the snapshot.

        It takes no turn: it only reads the answers for the symbols and
        records its own figures, so the stream publisher never waits on its
        requests.
        """
        started = self._clock()
        previous = self.store.current()
        symbols = self.symbols(previous)
        old = previous.analytics
        books: dict[str, BookAnalytics] = {}
        error: Exception | None = None
        for symbol, book in self.source.depths(symbols, self.config.depth_limit).items():
            if isinstance(book, Exception):
                if isinstance(book, BinanceError) and book.invalid_symbol:
                    self.store.skip(ANALYTICS, INVALID_SYMBOL)
                    continue
                error = book
                # A failed request keeps the last figures; a local book out of
                # sync is known to be wrong, so its figures leave the page.
                if old is not None and symbol in old.books and not isinstance(book, NotSynced):
                    books[symbol] = old.books[symbol]
            elif isinstance(book, OrderBook):
                books[symbol] = self._book(book, _rate(previous.answers, symbol))
        trades: dict[str, TradeTotals] = {}
        for symbol, flow in self.trades.flows(symbols).items():
            if isinstance(flow, TradeTotals):
                trades[symbol] = flow
            elif not (isinstance(flow, BinanceError) and flow.invalid_symbol):
                error = flow
                if old is not None and symbol in old.trades:
                    trades[symbol] = old.trades[symbol]  # behind, never wrong: counters only grow
        return self.store.record({ANALYTICS: (error, started)},
                                 analytics=Analytics(books=books, trades=trades))

    def _book(self, book: OrderBook, rate: Decimal | None) -> BookAnalytics:
        mid = mid_price(book)
        if mid is None:
            self.store.skip(ANALYTICS, book_problem(book) or "no_mid")
            return BookAnalytics(fills={}, bands={})
        fills: dict[tuple[str, Decimal], Fill] = {}
        for side, levels, cut in ((BUY, book.asks, book.asks_cut),
                                  (SELL, book.bids, book.bids_cut)):
            for notional in self.config.fill_notionals:
                if rate is None:
                    self.store.skip(ANALYTICS, NO_REFERENCE_PRICE)
                    continue
                fill = simulate_fill(levels, from_reference(notional, rate), mid)
                if fill.complete or not cut:
                    fills[(side, notional)] = fill
                else:
                    self.store.skip(ANALYTICS, BEYOND_SNAPSHOT)
        bands: dict[tuple[str, Decimal], Decimal] = {}
        for side, levels, cut in ((BID, book.bids, book.bids_cut),
                                  (ASK, book.asks, book.asks_cut)):
            for band in self.config.depth_bands:
                # The band is fully inside the snapshot when the side is whole
                # or its last level already lies outside the band.
                edge_bid, edge_ask = mid * (1 - band), mid * (1 + band)
                last = levels[-1][0] if levels else None
                covered = not cut or (
                    last is not None and (last < edge_bid if side == BID else last > edge_ask)
                )
                if covered:
                    bands[(side, band)] = depth_within(levels, mid, band, side)
                else:
                    self.store.skip(ANALYTICS, BEYOND_SNAPSHOT)
        if rate is None:
            for _ in bands:
                self.store.skip(ANALYTICS, NO_REFERENCE_PRICE)
            return BookAnalytics(fills=fills, bands=bands)
        return BookAnalytics(fills=fills, bands=bands, bands_reference={
            key: to_reference(value, rate) for key, value in bands.items()})
