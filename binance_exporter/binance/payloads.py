"""Binance's REST answers, checked and turned into the market's types.

Every answer is untrusted input: a payload that lacks a field, or carries a
value of the wrong type or out of range, raises `PayloadError` with a short
reason, and the job that asked treats it as a failed refresh.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from binance_exporter.market.trades import AggTrade
from binance_exporter.market.types import (
    BookTop,
    ExchangeInfo,
    Level,
    OrderBook,
    SymbolInfo,
    Ticker24h,
)


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
