"""Pure market maths: parse Binance payloads and answer the exporter's questions.

Nothing here does I/O or keeps state; every function takes parsed data and
returns numbers, so each answer can be unit-tested with hand-checked values.

Numbers: Binance sends prices and quantities as decimal strings. They are parsed
once into `decimal.Decimal`, and every sum and difference is done in Decimal, so
a spread of "60650.01" - "60650.00" is exactly 0.01 and a notional is the exact
sum of the products. Values become floats only at the edge (gauges, JSON).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import islice, starmap
from operator import mul
from typing import Any, Iterable, Mapping, Sequence

ZERO = Decimal(0)
TRADING = "TRADING"
QUOTE_VOLUME = "quoteVolume"
BASE_VOLUME = "volume"
VOLUME_FIELDS = (QUOTE_VOLUME, BASE_VOLUME)
MAX_DEPTH_LIMIT = 5000


class PayloadError(ValueError):
    """A Binance answer did not have the shape the API documents."""


def to_decimal(value: Any, what: str) -> Decimal:
    """Parse a Binance decimal string (or number) into a finite Decimal."""
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise PayloadError(f"{what}: not a number: {value!r}") from exc
    if not number.is_finite():
        raise PayloadError(f"{what}: not a finite number: {value!r}")
    return number


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


def parse_exchange_info(payload: Any) -> ExchangeInfo:
    """Parse `GET /api/v3/exchangeInfo`.

    The weight limit is the REQUEST_WEIGHT limiter over one minute, the window
    that the `X-MBX-USED-WEIGHT-1M` header reports against.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("symbols"), list):
        raise PayloadError("exchangeInfo: no symbols list")
    symbols: dict[str, SymbolInfo] = {}
    for item in payload["symbols"]:
        try:
            info = SymbolInfo(
                symbol=str(item["symbol"]),
                base_asset=str(item["baseAsset"]),
                quote_asset=str(item["quoteAsset"]),
                status=str(item["status"]),
            )
        except (KeyError, TypeError) as exc:
            raise PayloadError(f"exchangeInfo: malformed symbol entry {item!r}") from exc
        symbols[info.symbol] = info
    weight_limit = None
    for limit in payload.get("rateLimits") or []:
        if (
            isinstance(limit, dict)
            and limit.get("rateLimitType") == "REQUEST_WEIGHT"
            and limit.get("interval") == "MINUTE"
            and limit.get("intervalNum") == 1
            and isinstance(limit.get("limit"), int)
        ):
            weight_limit = limit["limit"]
    return ExchangeInfo(symbols=symbols, weight_limit=weight_limit)


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


def parse_tickers_24h(payload: Any) -> dict[str, Ticker24h]:
    """Parse the all-symbols `GET /api/v3/ticker/24hr` array."""
    if not isinstance(payload, list):
        raise PayloadError("ticker/24hr: expected an array")
    tickers: dict[str, Ticker24h] = {}
    for item in payload:
        try:
            symbol = str(item["symbol"])
            tickers[symbol] = Ticker24h(
                symbol=symbol,
                volume=to_decimal(item["volume"], f"{symbol} volume"),
                quote_volume=to_decimal(item["quoteVolume"], f"{symbol} quoteVolume"),
                trades=int(item["count"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"ticker/24hr: malformed entry {item!r}") from exc
    return tickers


def _ranked_candidates(
    symbols: Mapping[str, SymbolInfo], tickers: Mapping[str, Ticker24h], quote_asset: str
) -> list[Ticker24h]:
    """Tickers of TRADING symbols whose quote asset (from exchangeInfo) matches."""
    return [
        ticker
        for name, ticker in tickers.items()
        if (info := symbols.get(name)) is not None
        and info.status == TRADING
        and info.quote_asset == quote_asset
    ]


def top_by_volume(
    symbols: Mapping[str, SymbolInfo],
    tickers: Mapping[str, Ticker24h],
    quote_asset: str,
    field: str,
    count: int,
) -> list[Ticker24h]:
    """Top `count` symbols quoted in `quote_asset` by 24 h volume, highest first.

    Ties break by symbol name so the answer never depends on payload order.
    """
    if field not in VOLUME_FIELDS:
        raise ValueError(f"unknown volume field {field!r}")
    candidates = _ranked_candidates(symbols, tickers, quote_asset)
    candidates.sort(key=lambda t: (-t.volume_of(field), t.symbol))
    return candidates[:count]


def top_by_trades(
    symbols: Mapping[str, SymbolInfo],
    tickers: Mapping[str, Ticker24h],
    quote_asset: str,
    count: int,
) -> list[Ticker24h]:
    """Top `count` symbols quoted in `quote_asset` by 24 h trade count, highest first."""
    candidates = _ranked_candidates(symbols, tickers, quote_asset)
    candidates.sort(key=lambda t: (-t.trades, t.symbol))
    return candidates[:count]


Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class OrderBook:
    """A depth snapshot: bids best (highest) first, asks best (lowest) first."""

    last_update_id: int
    bids: Sequence[Level]
    asks: Sequence[Level]


def _parse_levels(levels: Any, what: str) -> tuple[Level, ...]:
    if not isinstance(levels, list):
        raise PayloadError(f"{what}: expected a list of levels")
    try:
        return tuple(
            (to_decimal(price, what), to_decimal(qty, what)) for price, qty in levels
        )
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what}: malformed level") from exc


def parse_depth(payload: Any, symbol: str = "") -> OrderBook:
    """Parse `GET /api/v3/depth`."""
    if not isinstance(payload, dict):
        raise PayloadError(f"depth {symbol}: expected an object")
    try:
        return OrderBook(
            last_update_id=int(payload["lastUpdateId"]),
            bids=_parse_levels(payload["bids"], f"depth {symbol} bids"),
            asks=_parse_levels(payload["asks"], f"depth {symbol} asks"),
        )
    except (KeyError, TypeError) as exc:
        raise PayloadError(f"depth {symbol}: missing field {exc}") from exc


def side_notional(levels: Iterable[Level], depth_levels: int) -> Decimal:
    """Σ price × quantity over the first `depth_levels` levels of one book side.

    A side with fewer levels sums what it has; an empty side is 0 (callers
    decide whether an empty side is worth exporting).
    """
    return sum(starmap(mul, islice(levels, max(depth_levels, 0))), ZERO)


def depth_limit_for(depth_levels: int) -> int:
    """The `limit` to request so the answer covers `depth_levels` levels.

    Binance accepts any limit up to 5000 and charges weight by the limit asked
    for, so asking for exactly the levels needed is never dearer than any other
    limit that covers them.
    """
    return max(1, min(depth_levels, MAX_DEPTH_LIMIT))


@dataclass(frozen=True)
class BookTop:
    """Best bid and ask from `ticker/bookTicker` (price 0 means an empty side)."""

    symbol: str
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal


def parse_book_tickers(payload: Any) -> dict[str, BookTop]:
    """Parse `GET /api/v3/ticker/bookTicker` (one object or an array of them)."""
    items = payload if isinstance(payload, list) else [payload]
    tops: dict[str, BookTop] = {}
    for item in items:
        try:
            symbol = str(item["symbol"])
            tops[symbol] = BookTop(
                symbol=symbol,
                bid_price=to_decimal(item["bidPrice"], f"{symbol} bidPrice"),
                bid_qty=to_decimal(item["bidQty"], f"{symbol} bidQty"),
                ask_price=to_decimal(item["askPrice"], f"{symbol} askPrice"),
                ask_qty=to_decimal(item["askQty"], f"{symbol} askQty"),
            )
        except (KeyError, TypeError) as exc:
            raise PayloadError(f"ticker/bookTicker: malformed entry {item!r}") from exc
    return tops


def book_top(symbol: str, book: OrderBook) -> BookTop:
    """The best bid and ask of a depth book, an empty side as price 0 like bookTicker."""
    bid = book.bids[0] if book.bids else (ZERO, ZERO)
    ask = book.asks[0] if book.asks else (ZERO, ZERO)
    return BookTop(symbol=symbol, bid_price=bid[0], bid_qty=bid[1], ask_price=ask[0],
                   ask_qty=ask[1])


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


def spread(top: BookTop) -> Decimal | None:
    """Best ask − best bid, or None when the quote is empty, one-sided or crossed."""
    if quote_problem(top.bid_price, top.ask_price) is not None:
        return None
    return top.ask_price - top.bid_price


def spread_ratio(top: BookTop) -> Decimal | None:
    """Spread divided by the mid price, or None when there is no spread."""
    value = spread(top)
    if value is None:
        return None
    return value / ((top.ask_price + top.bid_price) / 2)


def spread_deltas(
    previous: Mapping[str, Decimal], current: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Absolute change of each symbol's spread since the previous refresh.

    A symbol seen for the first time has delta 0: there is nothing to compare
    it with, and the first report after start-up must read 0, not the spread.
    """
    return {
        symbol: abs(value - previous[symbol]) if symbol in previous else ZERO
        for symbol, value in current.items()
    }


def shard_owns(symbol: str, index: int, count: int) -> bool:
    """True when `symbol` belongs to shard `index` of `count`.

    CRC-32 of the name is stable across processes, hosts and Python versions
    (unlike `hash()`), so N exporters with `--shard 0/N` ... `N-1/N` split the
    market with every symbol in exactly one shard.
    """
    return zlib.crc32(symbol.encode("utf-8")) % count == index


def tradable_symbols(
    symbols: Mapping[str, SymbolInfo], quote_assets: Iterable[str] = ()
) -> list[str]:
    """Every TRADING symbol, optionally only those quoted in `quote_assets`, sorted."""
    wanted = set(quote_assets)
    return sorted(
        info.symbol
        for info in symbols.values()
        if info.status == TRADING and (not wanted or info.quote_asset in wanted)
    )
