"""The analytics job: depth snapshots and trade pages for the analytics symbols.

Runs every `--analytics-interval` after the rankings are known, so it never
adds to the start-up floor. Per symbol and run it costs one depth request at
`--analytics-depth-limit` and one or more aggTrades pages (weight 4 each).

Honesty rules: a figure the snapshot cannot support is left out and counted,
never guessed. A fill that runs past the last level of a side that was cut
at the request limit, or a band whose edge lies beyond it, may be wrong, so
neither is exported (reason `beyond_snapshot`). A fill that runs past the
end of a side Binance returned whole is really unfillable, and
`binance_fill_unfilled_notional` says by how much.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Sequence

from binance_exporter.binance.payloads import parse_agg_trades
from binance_exporter.market.fills import (
    ASK,
    BID,
    BUY,
    Fill,
    SELL,
    depth_within,
    mid_price,
    simulate_fill,
)
from binance_exporter.market.trades import TradeFlow, gap_possible, next_page_params
from binance_exporter.binance.rest import BinanceError
from binance_exporter.binance.weights import AGG_TRADES_WEIGHT, depth_weight
from binance_exporter.binance.payloads import parse_depth
from binance_exporter.market.quotes import book_top, quote_problem
from binance_exporter.market.types import Level, OrderBook
from binance_exporter.jobs.quotes import REFRESH_ERRORS, Refresher
from binance_exporter.model import (
    ANALYTICS,
    Analytics,
    BookAnalytics,
    Snapshot,
    TradeTotals,
)

TRADE_PAGE = 1000  # aggTrades limit per page (Binance's maximum)
MAX_PAGES = 5  # pages per symbol and run; the rest waits for the next run
BEYOND_SNAPSHOT = "beyond_snapshot"


@dataclass(frozen=True)
class AnalyticsSettings:
    """What to simulate and measure."""

    fill_notionals: tuple[Decimal, ...] = (Decimal(1000), Decimal(10000), Decimal(100000))
    depth_bands: tuple[Decimal, ...] = (
        Decimal("0.001"), Decimal("0.005"), Decimal("0.01"), Decimal("0.02"),
    )
    extra_symbols: tuple[str, ...] = ()
    depth_limit: int = 500


def analytics_weight(settings: AnalyticsSettings, symbols: int) -> int:
    """Request weight of one analytics run over `symbols` symbols (one trade page each)."""
    return symbols * (depth_weight(settings.depth_limit) + AGG_TRADES_WEIGHT)


def _whole(levels: Sequence[Level], limit: int) -> bool:
    """True when Binance returned the whole side, not a side cut at `limit`."""
    return len(levels) < limit


class AnalyticsJob:
    """Keeps the trade-flow counters and publishes fills, bands and flow."""

    def __init__(
        self,
        refresher: Refresher,
        settings: AnalyticsSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.refresher = refresher
        self.settings = settings
        self._clock = clock
        self._flows: dict[str, TradeFlow] = {}

    def symbols(self, snapshot: Snapshot) -> list[str]:
        """The ranked symbols and the `--symbols` list, this shard's part, in order."""
        names: list[str] = list(self.settings.extra_symbols)
        if snapshot.answers is not None:
            names += [t.symbol for t in (*snapshot.answers.top_btc, *snapshot.answers.top_usdt)]
        owns = self.refresher.settings.owns
        return [s for s in dict.fromkeys(names) if owns(s)]

    def refresh(self) -> Snapshot:
        """One run over every analytics symbol; publish and return the snapshot."""
        with self.refresher.lock:
            return self._refresh()

    def _refresh(self) -> Snapshot:
        started = self._clock()
        previous = self.refresher.store.current()
        symbols = self.symbols(previous)
        pool = self.refresher.pool
        client = self.refresher.client
        limit = self.settings.depth_limit
        depth_futures = {s: pool.submit(client.depth, s, limit) for s in symbols}
        trade_futures = {s: pool.submit(self._follow_trades, s) for s in symbols}
        old = previous.analytics
        books: dict[str, BookAnalytics] = {}
        error: Exception | None = None
        for symbol, future in depth_futures.items():
            try:
                books[symbol] = self._book(parse_depth(future.result(), symbol))
            except REFRESH_ERRORS as exc:
                if isinstance(exc, BinanceError) and exc.invalid_symbol:
                    self.refresher.skip(ANALYTICS, "invalid_symbol")
                    continue
                error = exc
                if old is not None and symbol in old.books:
                    books[symbol] = old.books[symbol]
        trades: dict[str, TradeTotals] = {}
        for symbol, trade_future in trade_futures.items():
            try:
                trade_future.result()
            except REFRESH_ERRORS as exc:
                if isinstance(exc, BinanceError) and exc.invalid_symbol:
                    self._flows.pop(symbol, None)
                    continue
                error = exc
            if (flow := self._flows.get(symbol)) is not None:
                trades[symbol] = TradeTotals(by_side=flow.by_side(), last_price=flow.last_price)
        # Symbols that left the analytics set stop being followed.
        for symbol in set(self._flows) - set(symbols):
            del self._flows[symbol]
        return self.refresher.publish(
            previous,
            previous.answers,
            {ANALYTICS: (error, started)},
            analytics=Analytics(books=books, trades=trades),
        )

    def _book(self, book: OrderBook) -> BookAnalytics:
        limit = self.settings.depth_limit
        mid = mid_price(book)
        if mid is None:
            top = book_top("", book)
            self.refresher.skip(ANALYTICS, quote_problem(top.bid_price, top.ask_price) or "no_mid")
            return BookAnalytics(fills={}, bands={})
        fills: dict[tuple[str, Decimal], Fill] = {}
        for side, levels in ((BUY, book.asks), (SELL, book.bids)):
            for notional in self.settings.fill_notionals:
                fill = simulate_fill(levels, notional, mid)
                if fill.complete or _whole(levels, limit):
                    fills[(side, notional)] = fill
                else:
                    self.refresher.skip(ANALYTICS, BEYOND_SNAPSHOT)
        bands: dict[tuple[str, Decimal], Decimal] = {}
        for side, levels in ((BID, book.bids), (ASK, book.asks)):
            for band in self.settings.depth_bands:
                # The band is fully inside the snapshot when the side is whole
                # or its last level already lies outside the band.
                edge_bid, edge_ask = mid * (1 - band), mid * (1 + band)
                last = levels[-1][0] if levels else None
                covered = _whole(levels, limit) or (
                    last is not None and (last < edge_bid if side == BID else last > edge_ask)
                )
                if covered:
                    bands[(side, band)] = depth_within(levels, mid, band, side)
                else:
                    self.refresher.skip(ANALYTICS, BEYOND_SNAPSHOT)
        return BookAnalytics(fills=fills, bands=bands)

    def _follow_trades(self, symbol: str) -> None:
        """Page aggTrades by id from where the last run stopped (worker thread)."""
        client = self.refresher.client
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
