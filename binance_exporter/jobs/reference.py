"""The reference currency for the quotes job: which books convert, and at what rate.

A rankings run names the symbols whose figures are converted (the ranked
ones and the analytics `--symbols`); their quote assets get a route from
exchangeInfo, and the books on those routes ride along in the one bookTicker
read the spreads already make (stream mode: the local books, so they are
tracked too). Each reading of the tops gives fresh rates, and the notionals
are converted with the rates of the same reading. A value that cannot be
converted is left out and counted, never converted at a stale or guessed rate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping, Sequence

from binance_exporter.market.conversion import (
    NO_REFERENCE_PRICE,
    find_routes,
    rates,
    route_symbols,
    to_reference,
)
from binance_exporter.market.types import BookTop, ExchangeInfo
from binance_exporter.model import SideNotional, SnapshotStore


class ReferencePrices:
    """Routes of the converted quote assets to the reference, and their rates."""

    def __init__(self, reference: str, store: SnapshotStore,
                 also: Sequence[str] = ()) -> None:
        self.reference = reference
        self.store = store
        self.also = tuple(also)  # converted whether ranked or not (the analytics --symbols)
        self.quote_assets: dict[str, str] = {}
        self._routes: dict = {}

    def plan(self, info: ExchangeInfo, symbols: Sequence[str]) -> None:
        """Convert the figures of `symbols` (and `also`) from now on."""
        listed = info.symbols
        self.quote_assets = {s: listed[s].quote_asset
                             for s in dict.fromkeys((*symbols, *self.also)) if s in listed}
        assets = {self.reference, *self.quote_assets.values()}
        self._routes = find_routes(listed, sorted(assets), self.reference)

    @property
    def symbols(self) -> list[str]:
        """The converting books, read with the spreads."""
        return route_symbols(self._routes.values())

    def rates(self, tops: Mapping[str, BookTop | Exception]) -> dict[str, Decimal]:
        """The rate of each quote asset whose converting books have a mid in `tops`."""
        return rates(self._routes, tops)

    def notional(self, notional: Mapping[str, SideNotional], prices: Mapping[str, Decimal],
                 job: str) -> dict[str, SideNotional]:
        """The notionals in the reference; a book whose quote asset has no rate is left out."""
        converted: dict[str, SideNotional] = {}
        for symbol, sides in notional.items():
            rate = prices.get(self.quote_assets.get(symbol, ""))
            if rate is None:
                for side in (sides.bids, sides.asks):
                    if side is not None:
                        self.store.skip(job, NO_REFERENCE_PRICE)
                continue
            converted[symbol] = SideNotional(
                bids=None if sides.bids is None else to_reference(sides.bids, rate),
                asks=None if sides.asks is None else to_reference(sides.asks, rate),
            )
        return converted

    def fields(self, notional: Mapping[str, SideNotional], prices: Mapping[str, Decimal],
               job: str) -> dict[str, object]:
        """The reference fields of `Answers` for these notionals and rates."""
        return {
            "reference_asset": self.reference,
            "quote_assets": dict(self.quote_assets),
            "reference_prices": dict(prices),
            "notional_reference": self.notional(notional, prices, job),
        }
