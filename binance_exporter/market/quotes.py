"""Best quotes and book sides: spreads, their changes, and side notionals.

Pure maths on parsed quotes and books (see `numbers` for the Decimal policy).
A quote whose book is empty, one-sided or crossed has no spread: the reason is
returned instead, so callers count it and never export 0 or a negative.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from itertools import islice, starmap
from operator import mul
from typing import Iterable, Mapping

from binance_exporter.market.numbers import CONTEXT, ZERO
from binance_exporter.market.types import BookTop, Level, OrderBook


def side_notional(levels: Iterable[Level], depth_levels: int) -> Decimal:
    """Σ price × quantity over the first `depth_levels` levels of one book side.

    A side with fewer levels sums what it has; an empty side is 0 (callers
    decide whether an empty side is worth exporting).
    """
    with localcontext(CONTEXT):
        return sum(starmap(mul, islice(levels, max(depth_levels, 0))), ZERO)


# Why a quote cannot give a spread; also the `reason` label of the skip counter.
EMPTY = "empty"

ONE_SIDED = "one_sided"

CROSSED = "crossed"


def quote_problem(bid_price: Decimal, ask_price: Decimal) -> str | None:
    """Say why a best bid/ask pair has no meaningful spread, or None if it has one.

    Binance reports an empty side as price 0; a crossed or locked book
    (bid >= ask) is not a market state an exporter should publish as a spread.
    """
    has_bid, has_ask = bid_price > ZERO, ask_price > ZERO
    if not has_bid and not has_ask:
        return EMPTY
    if not (has_bid and has_ask):
        return ONE_SIDED
    if bid_price >= ask_price:
        return CROSSED
    return None


def book_problem(book: OrderBook) -> str | None:
    """Why a depth book gives no two-sided answer (empty, one-sided, crossed), or None."""
    bid = book.bids[0][0] if book.bids else ZERO
    ask = book.asks[0][0] if book.asks else ZERO
    return quote_problem(bid, ask)


def spread_and_ratio(top: BookTop) -> tuple[Decimal, Decimal] | str:
    """(best ask − best bid, that spread / the mid price), or why there is no spread
    (`quote_problem`).

    One function for both because a whole-market publish computes them for
    thousands of symbols: the checks run once, and the Decimal operations
    call `CONTEXT`'s methods instead of entering it three times.
    """
    bid, ask = top.bid_price, top.ask_price
    if (problem := quote_problem(bid, ask)) is not None:
        return problem
    value = CONTEXT.subtract(ask, bid)
    # spread / ((ask + bid) / 2) as 2 x spread / (ask + bid): every step but the
    # division is exact, so it is the same one rounding of the same quotient.
    return value, CONTEXT.divide(CONTEXT.add(value, value), CONTEXT.add(ask, bid))


def spread_deltas(
    previous: Mapping[str, Decimal], current: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Absolute change of each symbol's spread since the previous refresh.

    A symbol seen for the first time has delta 0: there is nothing to compare
    it with, and the first report after start-up must read 0, not the spread.
    """
    with localcontext(CONTEXT):
        return {
            symbol: abs(value - previous[symbol]) if symbol in previous else ZERO
            for symbol, value in current.items()
        }
