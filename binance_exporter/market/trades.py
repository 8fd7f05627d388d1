"""Taker trade flow from aggregate trades, counted once each.

`TradeFlow` is the one stateful piece of the market maths: it only changes its
own counters, and its id bookkeeping is what guarantees no trade is counted
twice across pages, runs and reconnects. Decimal arithmetic follows `numbers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Iterable, Mapping

from binance_exporter.market.fills import BUY, SELL, TAKER_SIDES
from binance_exporter.market.numbers import CONTEXT, ZERO

# `GET /api/v3/aggTrades` returns at most 1000 trades per call (default 500).
MAX_AGG_TRADES_LIMIT = 1000


@dataclass(frozen=True)
class AggTrade:
    """One Binance aggregate trade: takers' orders at one price, one taker side.

    Ids are the aggregate id (`a`) and the range of underlying trade ids it
    covers (`f` to `l`). Validation here, not only in the parser, is what keeps
    `TradeFlow` counters monotonic whatever built the trade.
    """

    id: int
    price: Decimal
    qty: Decimal
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    buyer_is_maker: bool

    def __post_init__(self) -> None:
        if self.last_trade_id < self.first_trade_id:
            raise ValueError(f"aggTrade {self.id}: last trade id before first")
        if self.price <= ZERO or self.qty < ZERO:
            raise ValueError(f"aggTrade {self.id}: non-positive price or negative quantity")

    @property
    def taker_side(self) -> str:
        """"sell" when the buyer was the maker (the seller took), else "buy"."""
        return SELL if self.buyer_is_maker else BUY

    @property
    def trade_count(self) -> int:
        """Underlying trades covered: `l - f + 1`, what Binance's own counts count."""
        return self.last_trade_id - self.first_trade_id + 1

    @property
    def quote_qty(self) -> Decimal:
        """price x qty, exact."""
        with localcontext(CONTEXT):
            return self.price * self.qty


@dataclass(frozen=True)
class SideTotals:
    """Counters for one taker side since the accumulator started.

    `trades` counts underlying trades (`l - f + 1` per aggregate), the unit of
    Binance's own 24 h `count`, so the two can be compared; `aggregate_trades`
    counts the aggTrades records themselves.
    """

    trades: int = 0
    aggregate_trades: int = 0
    base_volume: Decimal = ZERO
    quote_volume: Decimal = ZERO

    def plus(self, trade: AggTrade) -> SideTotals:
        """These totals with one more trade added."""
        with localcontext(CONTEXT):
            return SideTotals(
                trades=self.trades + trade.trade_count,
                aggregate_trades=self.aggregate_trades + 1,
                base_volume=self.base_volume + trade.qty,
                quote_volume=self.quote_volume + trade.price * trade.qty,
            )


class TradeFlow:
    """Per-symbol taker flow counters fed by aggTrades pages or stream events.

    Counters only grow, and a trade is never counted twice: any trade whose
    aggregate id is <= `last_id` is ignored. Binance numbers aggregate trades
    consecutively per symbol and pages by id are contiguous, so an id at or
    below the last one applied can only be a replay (a reconnect, a duplicate,
    an overlapping page), never a trade still owed. Within one batch trades are
    applied in id order, whatever order they came in.

    `missed_ids` counts aggregate ids skipped over between applied trades:
    non-zero means paging fell behind (or a stream dropped events) and the
    counters are short by that many aggregate trades.
    """

    def __init__(self, symbol: str = "", last_id: int | None = None) -> None:
        """Start empty; `last_id` makes every trade up to it count as already seen."""
        self.symbol = symbol
        self._last_id = last_id
        self._last_price: Decimal | None = None
        self._last_time_ms: int | None = None
        self._missed_ids = 0
        self._totals = {side: SideTotals() for side in TAKER_SIDES}

    @property
    def last_id(self) -> int | None:
        """Highest aggregate id applied (None before the first trade)."""
        return self._last_id

    @property
    def last_price(self) -> Decimal | None:
        """Price of the highest-id trade applied."""
        return self._last_price

    @property
    def last_time_ms(self) -> int | None:
        """Trade time (ms since the epoch) of the highest-id trade applied."""
        return self._last_time_ms

    @property
    def missed_ids(self) -> int:
        """Aggregate ids skipped between applied trades (a gap in the feed)."""
        return self._missed_ids

    def totals(self, side: str) -> SideTotals:
        """The counters of one taker side, "buy" or "sell"."""
        if side not in TAKER_SIDES:
            raise ValueError(f"side must be one of {TAKER_SIDES}, not {side!r}")
        return self._totals[side]

    def by_side(self) -> Mapping[str, SideTotals]:
        """Both sides' counters, a copy the caller may keep in a snapshot."""
        return dict(self._totals)

    def apply(self, trades: Iterable[AggTrade]) -> int:
        """Count the trades not seen before, in id order; return how many."""
        applied = 0
        for trade in sorted(trades, key=lambda t: t.id):
            if self._last_id is not None and trade.id <= self._last_id:
                continue  # a replay, a duplicate or an overlapping page
            if self._last_id is not None:
                self._missed_ids += trade.id - self._last_id - 1
            side = trade.taker_side
            self._totals[side] = self._totals[side].plus(trade)
            self._last_id = trade.id
            self._last_price = trade.price
            self._last_time_ms = trade.time_ms
            applied += 1
        return applied


def next_page_params(last_id: int | None, limit: int = MAX_AGG_TRADES_LIMIT) -> dict[str, int]:
    """The `/api/v3/aggTrades` parameters (besides `symbol`) for the next page.

    With a `last_id`, page on by id: `fromId` is inclusive, so last_id + 1.
    Without one (the first call) ask only for the most recent `limit` trades:
    the counters start at exporter start-up, like any Prometheus counter, and
    `rate()` needs no history, so paging from some old id would only spend
    request weight replaying trades nobody will graph.
    """
    if not 1 <= limit <= MAX_AGG_TRADES_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_AGG_TRADES_LIMIT}, not {limit}")
    if last_id is None:
        return {"limit": limit}
    return {"fromId": last_id + 1, "limit": limit}


def gap_possible(page_len: int, limit: int) -> bool:
    """A full page may not be the end: more trades may wait, so page again."""
    return page_len >= limit
