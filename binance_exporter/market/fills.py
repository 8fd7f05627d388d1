"""Market-quality analytics: simulated fills, depth near the mid, taker trade flow.

Like `market`, this module is pure: functions take parsed books and trades and
return numbers, and the one stateful piece (`TradeFlow`) only changes its own
counters. No order is ever sent: a "fill" is what a market order of a given
size would have got from a depth snapshot, walked level by level.

Numbers: everything is `Decimal`. The arithmetic runs in a local context of
`PRECISION` significant digits, not the default 28, because the product of two
Binance strings (up to 8 decimals each, plus up to 10 integer digits) can need
more than 28 digits and would otherwise be rounded silently. With 50 digits,
sums and products of Binance values are exact; only true divisions (a partial
level's quantity, averages and ratios) round, and those round at the 50th digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Iterable, Mapping, Sequence

from binance_exporter.market.quotes import (
    ZERO, Level, OrderBook, PayloadError, quote_problem, to_decimal,
)

PRECISION = 50

BUY = "buy"
SELL = "sell"
TAKER_SIDES = (BUY, SELL)
BID = "bid"
ASK = "ask"
BOOK_SIDES = (BID, ASK)

# `GET /api/v3/aggTrades` returns at most 1000 trades per call (default 500).
MAX_AGG_TRADES_LIMIT = 1000


def _context(rounding: str = ROUND_HALF_EVEN) -> Context:
    """A fresh arithmetic context; fresh so no caller can change it for another."""
    return Context(prec=PRECISION, rounding=rounding)


def _sum_down(values: Iterable[Decimal]) -> Decimal:
    """Σ values, each partial sum rounded down at `PRECISION` digits."""
    context = _context(ROUND_DOWN)
    total = ZERO
    for value in values:
        total = context.add(total, value)
    return total


# --- simulated market orders ------------------------------------------------


def mid_price(book: OrderBook) -> Decimal | None:
    """(best bid + best ask) / 2, or None when the book has no meaningful mid.

    An empty or one-sided book has no mid; a crossed or locked book (best bid
    >= best ask) is treated like `market.quote_problem` does, as a state not
    worth measuring against, so every analytic built on the mid skips it too.
    """
    if not book.bids or not book.asks:
        return None
    bid, ask = book.bids[0][0], book.asks[0][0]
    if quote_problem(bid, ask) is not None:
        return None
    with localcontext(_context()):
        return (bid + ask) / 2


@dataclass(frozen=True)
class Split:
    """The part of a simulated order filled at one price level."""

    price: Decimal
    qty: Decimal
    notional: Decimal


@dataclass(frozen=True)
class Fill:
    """What a market order of `requested` quote-asset notional would have got.

    `average_price` and `slippage_ratio` are None when nothing filled: there is
    no price to report, and 0 would read as "perfect execution".
    """

    requested: Decimal
    filled_notional: Decimal
    filled_qty: Decimal
    average_price: Decimal | None
    slippage_ratio: Decimal | None
    levels_used: int
    unfilled_notional: Decimal
    splits: tuple[Split, ...]

    @property
    def complete(self) -> bool:
        """True when the book was deep enough to spend the whole notional."""
        return self.unfilled_notional == ZERO


def simulate_fill(levels: Sequence[Level], notional: Decimal, mid: Decimal | None) -> Fill:
    """Walk one side of a book, best level first, until `notional` is spent.

    Pass the asks for a market BUY and the bids for a market SELL; `notional`
    is in the quote asset. Levels are taken in the order given (`OrderBook`
    keeps each side best-first). Levels with a non-positive price or quantity
    hold nothing to trade and are skipped without counting as used.

    Whole levels cost exactly price x qty. The last, partially consumed level
    spends exactly the remaining notional, and its quantity is remaining /
    price to `PRECISION` significant digits rounded DOWN (as is the sum of the
    quantities): the simulated order never buys more than its money affords
    (price x qty <= notional, average price >= the best price used), and
    `filled_notional` equals `requested` exactly when the fill is complete.
    There is no quantisation to the symbol's lot size: this measures the book,
    not an order Binance would accept.

    `slippage_ratio` is |average price - mid| / mid; it is None when nothing
    filled or when there is no positive mid to compare with.
    """
    if notional < ZERO:
        raise ValueError(f"notional must not be negative: {notional}")
    splits: list[Split] = []
    with localcontext(_context()):
        remaining = notional
        for price, qty in levels:
            if remaining <= ZERO:
                break
            if price <= ZERO or qty <= ZERO:
                continue
            level_notional = price * qty
            if level_notional <= remaining:
                splits.append(Split(price, qty, level_notional))
                remaining -= level_notional
            else:
                partial_qty = _context(ROUND_DOWN).divide(remaining, price)
                splits.append(Split(price, partial_qty, remaining))
                remaining = ZERO
        filled_notional = sum((split.notional for split in splits), ZERO)
        # Rounded down too, so the total never overstates what was bought.
        filled_qty = _sum_down(split.qty for split in splits)
        average = filled_notional / filled_qty if filled_qty > ZERO else None
        slippage = None
        if average is not None and mid is not None and mid > ZERO:
            slippage = abs(average - mid) / mid
        return Fill(
            requested=notional,
            filled_notional=filled_notional,
            filled_qty=filled_qty,
            average_price=average,
            slippage_ratio=slippage,
            levels_used=len(splits),
            unfilled_notional=notional - filled_notional,
            splits=tuple(splits),
        )


def simulate_market_order(book: OrderBook, side: str, notional: Decimal) -> Fill:
    """A simulated market `side` ("buy" or "sell") order against a whole book.

    A buy takes the asks and a sell the bids; slippage is measured from the
    book's own mid (None when the book has none, see `mid_price`).
    """
    if side not in TAKER_SIDES:
        raise ValueError(f"side must be one of {TAKER_SIDES}, not {side!r}")
    levels = book.asks if side == BUY else book.bids
    return simulate_fill(levels, notional, mid_price(book))


# --- depth near the mid -----------------------------------------------------


def depth_within(levels: Sequence[Level], mid: Decimal, band: Decimal, side: str) -> Decimal:
    """Σ price x qty of the levels within `band` (a ratio: 0.02 = 2 %) of `mid`.

    Bids count when price >= mid x (1 - band), asks when price <= mid x
    (1 + band). The band edge is INCLUDED: "depth within 2 %" reads as
    "at most 2 % away", and a level exactly on the edge is at most 2 % away.
    Every level is checked, so the order of `levels` does not matter.
    """
    if side not in BOOK_SIDES:
        raise ValueError(f"side must be one of {BOOK_SIDES}, not {side!r}")
    if band < ZERO:
        raise ValueError(f"band must not be negative: {band}")
    with localcontext(_context()):
        if side == BID:
            edge = mid * (1 - band)
            return sum((p * q for p, q in levels if p >= edge), ZERO)
        edge = mid * (1 + band)
        return sum((p * q for p, q in levels if p <= edge), ZERO)


def depth_bands(book: OrderBook, bands: Iterable[Decimal]) -> dict[tuple[str, Decimal], Decimal]:
    """`depth_within` for both sides and every band, keyed by (side, band).

    Empty when the book has no mid (empty, one-sided or crossed): there is
    nothing to measure the bands from, and a 0 would read as "no liquidity".
    """
    mid = mid_price(book)
    if mid is None:
        return {}
    result: dict[tuple[str, Decimal], Decimal] = {}
    for band in bands:
        result[(BID, band)] = depth_within(book.bids, mid, band, BID)
        result[(ASK, band)] = depth_within(book.asks, mid, band, ASK)
    return result


# --- trade flow -------------------------------------------------------------


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
        with localcontext(_context()):
            return self.price * self.qty


def _whole(value: Any, what: str) -> int:
    """A JSON integer; bools and strings are refused because ids drive dedup."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{what}: not an integer: {value!r}")
    return value


def parse_agg_trade(item: Any) -> AggTrade:
    """Parse one aggTrades object (REST, or the `<symbol>@aggTrade` stream event)."""
    if not isinstance(item, dict):
        raise PayloadError(f"aggTrades: expected an object, got {item!r}")
    try:
        maker = item["m"]
        if not isinstance(maker, bool):
            raise PayloadError(f"aggTrades: m is not a boolean: {maker!r}")
        return AggTrade(
            id=_whole(item["a"], "aggTrades a"),
            price=to_decimal(item["p"], "aggTrades p"),
            qty=to_decimal(item["q"], "aggTrades q"),
            first_trade_id=_whole(item["f"], "aggTrades f"),
            last_trade_id=_whole(item["l"], "aggTrades l"),
            time_ms=_whole(item["T"], "aggTrades T"),
            buyer_is_maker=maker,
        )
    except KeyError as exc:
        raise PayloadError(f"aggTrades: missing field {exc} in {item!r}") from exc
    except PayloadError:
        raise
    except ValueError as exc:
        raise PayloadError(f"aggTrades: {exc}") from exc


def parse_agg_trades(payload: Any) -> list[AggTrade]:
    """Parse `GET /api/v3/aggTrades` (an array of aggregate trades)."""
    if not isinstance(payload, list):
        raise PayloadError("aggTrades: expected an array")
    return [parse_agg_trade(item) for item in payload]


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
        with localcontext(_context()):
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
