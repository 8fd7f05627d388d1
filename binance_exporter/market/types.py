"""The market data the exporter reasons about, as parsed from Binance's answers.

Plain frozen values: the parsers in `binance.payloads` build them, the maths in
this package reads them, and nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence

import msgspec

TRADING = "TRADING"
QUOTE_VOLUME = "quoteVolume"
BASE_VOLUME = "volume"
VOLUME_FIELDS = (QUOTE_VOLUME, BASE_VOLUME)


@dataclass(frozen=True)
class SymbolInfo:
    """One entry of `exchangeInfo.symbols`, reduced to what the exporter uses."""

    symbol: str
    base_asset: str
    quote_asset: str
    status: str


@dataclass(frozen=True)
class ExchangeInfo:
    """Parsed `exchangeInfo`: the symbols and the request-weight limit per minute."""

    symbols: Mapping[str, SymbolInfo]
    weight_limit: int | None


@dataclass(frozen=True)
class Ticker24h:
    """The 24 h statistics the rankings use (FULL and MINI answers both carry them)."""

    symbol: str
    volume: Decimal
    quote_volume: Decimal
    trades: int

    def volume_of(self, field: str) -> Decimal:
        """The volume named by its Binance field: `quoteVolume` or `volume`."""
        return self.quote_volume if field == QUOTE_VOLUME else self.volume


Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class OrderBook:
    """A depth snapshot: bids best (highest) first, asks best (lowest) first."""

    last_update_id: int
    bids: Sequence[Level]
    asks: Sequence[Level]
    # True when a side may continue past its last level given: cut by the
    # request's limit (REST) or by what a local book can vouch for (stream).
    bids_cut: bool = False
    asks_cut: bool = False


class BookTop(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask from `ticker/bookTicker` (price 0 means an empty side).

    A struct the garbage collector never tracks, not a dataclass like its
    neighbours: a whole-market publish makes thousands a second, each living
    until its symbol's next quote; tracked, they would fill the collector's
    oldest generation, whose full collections pause every thread. It holds
    no references that could make a cycle. The quantities at the best prices
    are left out: no answer uses them.
    """

    symbol: str
    bid_price: Decimal
    ask_price: Decimal
