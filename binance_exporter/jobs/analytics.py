"""The analytics job: depth answers and trade pages for the analytics symbols.

Runs every `--analytics-interval` after the rankings are known, so it never
adds to the start-up floor. Per symbol and run it costs one depth request at
`--analytics-depth-limit` and one or more aggTrades pages (weight 4 each).

Honesty rules: a figure the snapshot cannot support is left out and counted,
never guessed. A fill that runs past the last level of a side that was cut
at the request limit, or a band whose edge lies beyond it, may be wrong, so
neither is exported (reason `beyond_snapshot`). A fill that runs past the
end of a side Binance returned whole is really unfillable, and
`binance_fill_unfilled_notional` says by how much.

Order sizes are reference-currency amounts, converted to the book's quote
asset at the rate the latest spreads reading gave (`Answers.reference_prices`);
the depth bands are also converted with it. A book whose quote asset has no
rate gets no fills and no converted bands (reason `no_reference_price`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Callable, Sequence

from binance_exporter.binance.payloads import parse_agg_trades, parse_depth
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.config import AnalyticsConfig
from binance_exporter.jobs.quotes import INVALID_SYMBOL, READ_ERRORS
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
from binance_exporter.market.trades import TradeFlow, gap_possible, next_page_params
from binance_exporter.market.types import Level, OrderBook
from binance_exporter.model import (
    ANALYTICS,
    Analytics,
    Answers,
    BookAnalytics,
    Snapshot,
    SnapshotStore,
    TradeTotals,
)

TRADE_PAGE = 1000  # aggTrades limit per page (Binance's maximum)
MAX_PAGES = 5  # pages per symbol and run; the rest waits for the next run
BEYOND_SNAPSHOT = "beyond_snapshot"


def _returned_whole(levels: Sequence[Level], limit: int) -> bool:
    """True when Binance returned the whole side, not a side cut at `limit`."""
    return len(levels) < limit


def _rate(answers: Answers | None, symbol: str) -> Decimal | None:
    """The reference price of `symbol`'s quote asset, None when it has none."""
    if answers is None or (quote := answers.quote_assets.get(symbol)) is None:
        return None
    return answers.reference_prices.get(quote)


class AnalyticsJob:
    """Keeps the trade-flow counters and publishes fills, bands and flow."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        client: BinanceClient,
        pool: DaemonPool,
        store: SnapshotStore,
        config: AnalyticsConfig,
        owns: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.pool = pool
        self.store = store
        self.config = config
        self.owns = owns  # this exporter's shard
        self._clock = clock
        self._flows: dict[str, TradeFlow] = {}

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
        limit = self.config.depth_limit
        depth_futures = {s: self.pool.submit(self.client.depth, s, limit) for s in symbols}
        trade_futures = {s: self.pool.submit(self._follow_trades, s) for s in symbols}
        old = previous.analytics
        books: dict[str, BookAnalytics] = {}
        error: Exception | None = None
        for symbol, future in depth_futures.items():
            try:
                book = parse_depth(future.result(), symbol)
                books[symbol] = self._book(book, _rate(previous.answers, symbol))
            except READ_ERRORS as exc:
                if isinstance(exc, BinanceError) and exc.invalid_symbol:
                    self.store.skip(ANALYTICS, INVALID_SYMBOL)
                    continue
                error = exc
                if old is not None and symbol in old.books:
                    books[symbol] = old.books[symbol]
        trades: dict[str, TradeTotals] = {}
        for symbol, trade_future in trade_futures.items():
            try:
                trade_future.result()
            except READ_ERRORS as exc:
                if isinstance(exc, BinanceError) and exc.invalid_symbol:
                    self._flows.pop(symbol, None)
                    continue
                error = exc
            if (flow := self._flows.get(symbol)) is not None:
                trades[symbol] = TradeTotals(by_side=flow.by_side(), last_price=flow.last_price)
        # Symbols that left the analytics set stop being followed.
        for symbol in set(self._flows) - set(symbols):
            del self._flows[symbol]
        return self.store.record({ANALYTICS: (error, started)},
                                 analytics=Analytics(books=books, trades=trades))

    def _book(self, book: OrderBook, rate: Decimal | None) -> BookAnalytics:
        limit = self.config.depth_limit
        mid = mid_price(book)
        if mid is None:
            self.store.skip(ANALYTICS, book_problem(book) or "no_mid")
            return BookAnalytics(fills={}, bands={})
        fills: dict[tuple[str, Decimal], Fill] = {}
        for side, levels in ((BUY, book.asks), (SELL, book.bids)):
            for notional in self.config.fill_notionals:
                if rate is None:
                    self.store.skip(ANALYTICS, NO_REFERENCE_PRICE)
                    continue
                fill = simulate_fill(levels, from_reference(notional, rate), mid)
                if fill.complete or _returned_whole(levels, limit):
                    fills[(side, notional)] = fill
                else:
                    self.store.skip(ANALYTICS, BEYOND_SNAPSHOT)
        bands: dict[tuple[str, Decimal], Decimal] = {}
        for side, levels in ((BID, book.bids), (ASK, book.asks)):
            for band in self.config.depth_bands:
                # The band is fully inside the snapshot when the side is whole
                # or its last level already lies outside the band.
                edge_bid, edge_ask = mid * (1 - band), mid * (1 + band)
                last = levels[-1][0] if levels else None
                covered = _returned_whole(levels, limit) or (
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

    def _follow_trades(self, symbol: str) -> None:
        """Page aggTrades by id from where the last run stopped (worker thread)."""
        client = self.client
        flow = self._flows.get(symbol)
        if flow is None:
            # Start from the latest trade: counters begin at start-up.
            first = parse_agg_trades(client.agg_trades(symbol, **next_page_params(None, 1)))
            flow = TradeFlow(symbol)
            flow.apply(first)
            self._flows[symbol] = flow
            return
        for _ in range(MAX_PAGES):
            params = next_page_params(flow.last_id, TRADE_PAGE)
            page = parse_agg_trades(client.agg_trades(symbol, **params))
            flow.apply(page)
            if not gap_possible(len(page), TRADE_PAGE):
                return
