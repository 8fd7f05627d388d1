"""Amounts of any quote asset in one reference asset, from the mids of converting books.

Pure: a route is found from exchangeInfo's symbols, and a rate from best
quotes. The rate of an asset is how many reference units one unit of it is
worth: a direct pair (BTCUSDT for BTC against USDT) gives its mid, an inverse
pair (USDTTRY for TRY) one over its mid, and an asset with neither converts
through one hop via BTC (USDC: BTCUSDC inverted, then BTCUSDT). A converting
book that is empty, one-sided or crossed gives no rate: a guessed rate would
put a wrong number on every converted series. Decimal arithmetic follows
`numbers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Iterable, Mapping

from binance_exporter.market.numbers import CONTEXT
from binance_exporter.market.quotes import quote_problem
from binance_exporter.market.types import TRADING, BookTop, SymbolInfo

HUB = "BTC"  # the one asset a conversion may pass through
NO_REFERENCE_PRICE = "no_reference_price"  # the skip reason of a value left unconverted


@dataclass(frozen=True)
class Leg:
    """One converting book: `inverse` when the asset converted from is its quote asset."""

    symbol: str
    inverse: bool


Route = tuple[Leg, ...]  # empty: the reference itself


def _leg(pairs: Mapping[tuple[str, str], str], source: str, target: str) -> Leg | None:
    """The book converting `source` into `target`, either way round, if one trades."""
    if (symbol := pairs.get((source, target))) is not None:
        return Leg(symbol, inverse=False)
    if (symbol := pairs.get((target, source))) is not None:
        return Leg(symbol, inverse=True)
    return None


def find_routes(symbols: Mapping[str, SymbolInfo], assets: Iterable[str],
                reference: str, hub: str = HUB) -> dict[str, Route]:
    """The route of each asset to `reference`; an asset with no route is left out.

    Only TRADING symbols convert. A direct or inverse pair is preferred to a
    hop through `hub`.
    """
    pairs = {(s.base_asset, s.quote_asset): s.symbol for s in symbols.values()
             if s.status == TRADING}
    routes: dict[str, Route] = {}
    for asset in assets:
        if asset == reference:
            routes[asset] = ()
        elif (leg := _leg(pairs, asset, reference)) is not None:
            routes[asset] = (leg,)
        elif hub not in (asset, reference):
            first, second = _leg(pairs, asset, hub), _leg(pairs, hub, reference)
            if first is not None and second is not None:
                routes[asset] = (first, second)
    return routes


def route_symbols(routes: Iterable[Route]) -> list[str]:
    """Every converting book of `routes`, once, in order."""
    return list(dict.fromkeys(leg.symbol for route in routes for leg in route))


def route_rate(route: Route, tops: Mapping[str, BookTop | Exception]) -> Decimal | None:
    """Reference units per unit of the asset, or None when a converting book has no mid."""
    with localcontext(CONTEXT):
        rate = Decimal(1)
        for leg in route:
            top = tops.get(leg.symbol)
            if not isinstance(top, BookTop) or quote_problem(top.bid_price, top.ask_price):
                return None
            mid = (top.bid_price + top.ask_price) / 2
            rate = rate / mid if leg.inverse else rate * mid
        return rate


def rates(routes: Mapping[str, Route], tops: Mapping[str, BookTop | Exception]
          ) -> dict[str, Decimal]:
    """The rate of every routed asset whose converting books all have a mid."""
    found = {asset: route_rate(route, tops) for asset, route in routes.items()}
    return {asset: rate for asset, rate in found.items() if rate is not None}


def to_reference(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount of the asset, in the reference asset."""
    with localcontext(CONTEXT):
        return amount * rate


def from_reference(amount: Decimal, rate: Decimal) -> Decimal:
    """A reference amount, in the asset (rounded at the 60th digit)."""
    with localcontext(CONTEXT):
        return amount / rate
