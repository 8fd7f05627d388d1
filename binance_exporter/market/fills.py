"""Simulated market orders and the depth near the mid.

Pure: functions take parsed books and return numbers. No order is ever sent:
a "fill" is what a market order of a given size would have got from a depth
answer, walked level by level. Decimal arithmetic follows `numbers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Iterable, Sequence

from binance_exporter.market.numbers import CONTEXT, DOWN, ZERO
from binance_exporter.market.quotes import quote_problem
from binance_exporter.market.types import Level, OrderBook

BUY = "buy"
SELL = "sell"
TAKER_SIDES = (BUY, SELL)
BID = "bid"
ASK = "ask"
BOOK_SIDES = (BID, ASK)


def _sum_down(values: Iterable[Decimal]) -> Decimal:
    """Σ values, each partial sum rounded down at `PRECISION` digits."""
    context = DOWN
    total = ZERO
    for value in values:
        total = context.add(total, value)
    return total


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
    with localcontext(CONTEXT):
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
    with localcontext(CONTEXT):
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
                partial_qty = DOWN.divide(remaining, price)
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
    with localcontext(CONTEXT):
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
