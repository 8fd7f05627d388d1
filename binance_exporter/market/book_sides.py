"""The two sides of a local order book as parallel ascending lists, and their edits.

Each side is an ascending list of prices with a parallel list of quantities:
a level is found by one binary search, a new or removed level costs one
memmove, the best price is an index, and the top N levels are a slice.
Nothing re-sorts a whole side per event, and nothing hashes a price (a
Decimal computes its hash on first use, slowly).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal
from operator import itemgetter
from typing import Iterable, Sequence

from binance_exporter.market.types import Level

# An event with at least this many levels, and more than 1/16 of the book's
# side, is merged into the side in one pass instead of level by level: an
# insert moves the rest of the list, so a huge event applied level by level
# would cost levels x book size.
MERGE_MIN_LEVELS = 64


def set_levels(prices: list[Decimal], quantities: list[Decimal], levels: Sequence[Level]) -> None:
    """Set each level's absolute quantity; 0 deletes it. `prices` stays ascending.

    One binary search per level finds the price or its place. No dict: a
    Decimal fresh from the wire computes its hash on first use, which cost
    more than the whole search. A large event is merged instead (`merge_levels`).
    """
    if len(levels) >= MERGE_MIN_LEVELS and len(levels) * 16 > len(prices):
        merge_levels(prices, quantities, levels)
        return
    for price, qty in levels:
        index = bisect_left(prices, price)
        if index < len(prices) and prices[index] == price:
            if qty:
                quantities[index] = qty
            else:
                del prices[index]
                del quantities[index]
        # Deleting a level the book never had is normal (docs): beyond the
        # snapshot's depth, or already gone.
        elif qty:
            prices.insert(index, price)
            quantities.insert(index, qty)


def merge_levels(prices: list[Decimal], quantities: list[Decimal],
                  levels: Sequence[Level]) -> None:
    """`set_levels` for a large event: sort it, then one pass over the side.

    Costs O(m log m + m log n + n) for m levels into a side of n, where one
    insert per level costs O(m x n). Within the event the last quantity given
    for a price wins, as when the levels are applied in order.
    """
    update = sorted(levels, key=itemgetter(0))  # stable: equal prices keep their order
    new_prices: list[Decimal] = []
    new_qty: list[Decimal] = []
    start = 0
    for index, (price, qty) in enumerate(update):
        if index + 1 < len(update) and update[index + 1][0] == price:
            continue  # a later quantity for the same price follows
        stop = bisect_left(prices, price, start)
        new_prices.extend(prices[start:stop])
        new_qty.extend(quantities[start:stop])
        start = stop + 1 if stop < len(prices) and prices[stop] == price else stop
        if qty:
            new_prices.append(price)
            new_qty.append(qty)
    new_prices.extend(prices[start:])
    new_qty.extend(quantities[start:])
    prices[:] = new_prices
    quantities[:] = new_qty


def side_from(levels: Iterable[Level]) -> tuple[list[Decimal], list[Decimal]]:
    """Ascending prices and their quantities from snapshot levels (zeros dropped)."""
    merged = {price: qty for price, qty in levels if qty}
    prices = sorted(merged)
    return prices, [merged[price] for price in prices]


def best_levels(prices: list[Decimal], quantities: list[Decimal], levels: int,
                edge: Decimal | None, bids: bool) -> tuple[tuple[Level, ...], bool]:
    """The best `levels` levels of a side, best first, none beyond `edge`; and whether
    the side may go on past the last one given (cut by `levels` or at `edge`)."""
    if bids:  # the best bid is the last price; those below the edge come first
        known = bisect_left(prices, edge) if edge is not None else 0
        start = max(len(prices) - levels, known)  # not -levels: -0 is the whole list
        return (tuple(zip(reversed(prices[start:]), reversed(quantities[start:]))),
                start > 0 or edge is not None)
    stop = min(levels, bisect_right(prices, edge) if edge is not None else len(prices))
    return tuple(zip(prices[:stop], quantities[:stop])), stop < len(prices) or edge is not None
