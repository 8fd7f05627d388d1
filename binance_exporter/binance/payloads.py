"""Binance's REST answers, checked and turned into the market's types.

Every answer is untrusted input: a payload that lacks a field, or carries a
value of the wrong type or out of range, raises `PayloadError` with a short
reason (and never another exception), and the job that asked treats it as a
failed refresh.

The ranges, from what Binance documents and sends:

* Prices and quantities are decimal strings with fixed decimals
  ("60650.00000000"). `to_decimal` takes only plain, non-negative decimals
  (or JSON numbers) below `MAX_DECIMAL`, 1e20. Binance's symbol filters
  bound every price and quantity (the documented PRICE_FILTER and LOT_SIZE
  examples stop at 100000.00000000, and `market.numbers` counts on at most
  10 integer digits); only 24 h volumes grow larger, and the base volume of
  the cheapest coins is still orders of magnitude below 1e20. A figure at or
  above it is not a market figure, and at most 20 + 20 digits keeps the
  Decimal maths fast and, in practice, exact.
* Ids, counts and times are JSON integers, and Binance stores them in 64
  bits: `_whole` takes only ints within a signed 64-bit range, never bools,
  floats or strings.
* Prices in depth levels and aggregate trades are positive. bookTicker sends
  0 for the price and quantity of an empty side, so its prices may be 0.
"""

from __future__ import annotations

import re
import json
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

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


MAX_DECIMAL = Decimal("1e20")  # exclusive bound of any price, quantity or volume
MAX_ID = 2**63 - 1  # ids, counts and times are signed 64-bit integers at Binance
MAX_NAME = 100  # characters in a symbol or asset name (real ones are under 20)
# Plain decimal text: digits, optionally a point and more digits; no sign,
# exponent, spaces, underscores or NaN/Infinity that Decimal() would accept.
_DECIMAL_TEXT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?\Z")


def _show(value: Any, limit: int = 40) -> str:
    """A value's repr, clipped so that one error stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_plain_decimal(text: str) -> bool:
    """Whether `text` is plain decimal text, which `to_decimal` always takes.

    The fast check for a whole market's quotes: plain text of at most 20
    integer digits is finite, at least 0 and below `MAX_DECIMAL` by its very
    shape, so `Decimal(text)` needs none of `to_decimal`'s other checks.
    """
    return _DECIMAL_TEXT.match(text) is not None


def to_decimal(value: Any, what: str, *, positive: bool = False) -> Decimal:
    """Parse a Binance price or quantity: a plain decimal string, or a JSON number.

    The result is finite, at least 0 (above 0 when `positive`) and below
    `MAX_DECIMAL`; anything else raises PayloadError. A float is read from
    its shortest repr, so 0.1 stays 0.1.
    """
    if isinstance(value, str):
        if not _DECIMAL_TEXT.match(value):
            raise PayloadError(f"{what}: not a plain non-negative decimal: {_show(value)}")
        number = Decimal(value)
    elif isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, ValueError) as exc:
            raise PayloadError(f"{what}: not a number: {_show(value)}") from exc
        if not number.is_finite():
            raise PayloadError(f"{what}: not a finite number: {_show(value)}")
    else:
        raise PayloadError(f"{what}: not a decimal: {_show(value)}")
    if number < 0 or number >= MAX_DECIMAL:
        raise PayloadError(f"{what}: out of range [0, 1e20): {_show(value)}")
    if positive and number == 0:
        raise PayloadError(f"{what}: zero where a positive price is needed")
    return number


def _whole(value: Any, what: str, minimum: int = -MAX_ID - 1) -> int:
    """A JSON integer within 64 bits; bools, floats and strings are refused (ids drive dedup)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{what}: not an integer: {_show(value)}")
    if not minimum <= value <= MAX_ID:
        raise PayloadError(f"{what}: out of range: {_show(value)}")
    return value


def _name(value: Any, what: str) -> str:
    """A symbol, asset or status name: a non-empty string of at most `MAX_NAME` characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise PayloadError(f"{what}: not a name: {_show(value)}")
    return value


def _field(item: Any, key: str, what: str) -> Any:
    """`item[key]` of an object, or PayloadError naming what is missing."""
    if not isinstance(item, dict):
        raise PayloadError(f"{what}: expected an object, got {_show(item)}")
    if key not in item:
        raise PayloadError(f"{what}: missing field {key!r}")
    return item[key]


def parse_exchange_info(payload: Any) -> ExchangeInfo:
    """Parse `GET /api/v3/exchangeInfo`.

    The weight limit is the REQUEST_WEIGHT limiter over one minute, the window
    that the `X-MBX-USED-WEIGHT-1M` header reports against.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("symbols"), list):
        raise PayloadError("exchangeInfo: no symbols list")
    symbols: dict[str, SymbolInfo] = {}
    for item in payload["symbols"]:
        what = "exchangeInfo symbol"
        info = SymbolInfo(
            symbol=_name(_field(item, "symbol", what), f"{what} symbol"),
            base_asset=_name(_field(item, "baseAsset", what), f"{what} baseAsset"),
            quote_asset=_name(_field(item, "quoteAsset", what), f"{what} quoteAsset"),
            status=_name(_field(item, "status", what), f"{what} status"),
        )
        symbols[info.symbol] = info
    return ExchangeInfo(symbols=symbols, weight_limit=_weight_limit(payload.get("rateLimits")))


def _weight_limit(rate_limits: Any) -> int | None:
    """The REQUEST_WEIGHT limit per 1 MINUTE in `rateLimits`, or None.

    The limiters only tune the budget, so a malformed list, entry or limit is
    skipped rather than refusing the symbols that came with it.
    """
    if not isinstance(rate_limits, list):
        return None
    weight_limit = None
    for limit in rate_limits:
        if (
            isinstance(limit, dict)
            and limit.get("rateLimitType") == "REQUEST_WEIGHT"
            and limit.get("interval") == "MINUTE"
            and limit.get("intervalNum") == 1
        ):
            value = limit.get("limit")
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
                weight_limit = value
    return weight_limit


def parse_tickers_24h(payload: Any) -> dict[str, Ticker24h]:
    """Parse the all-symbols `GET /api/v3/ticker/24hr` array."""
    if not isinstance(payload, list):
        raise PayloadError("ticker/24hr: expected an array")
    tickers: dict[str, Ticker24h] = {}
    for item in payload:
        symbol = _name(_field(item, "symbol", "ticker/24hr"), "ticker/24hr symbol")
        what = f"ticker/24hr {symbol}"
        tickers[symbol] = Ticker24h(
            symbol=symbol,
            volume=to_decimal(_field(item, "volume", what), f"{what} volume"),
            quote_volume=to_decimal(_field(item, "quoteVolume", what), f"{what} quoteVolume"),
            trades=_whole(_field(item, "count", what), f"{what} count", minimum=0),
        )
    return tickers


def parse_tickers_24h_timed(payload: Any) -> dict[str, tuple[Ticker24h, int]]:
    """Parse the all-symbols `GET /api/v3/ticker/24hr` array, each ticker with its `closeTime`.

    A table that streams keep current must know which of a REST figure and a
    pushed one is newer; `closeTime` (ms) is the end of the rolling window,
    the moment the answer describes. The figures are checked exactly as
    `parse_tickers_24h` checks them.
    """
    tickers = parse_tickers_24h(payload)
    timed: dict[str, tuple[Ticker24h, int]] = {}
    for item in payload:  # every item passed parse_tickers_24h: an object with a symbol
        symbol = item["symbol"]
        what = f"ticker/24hr {symbol}"
        close_time = _whole(_field(item, "closeTime", what), f"{what} closeTime", minimum=0)
        timed[symbol] = (tickers[symbol], close_time)
    return timed


def _parse_levels(levels: Any, what: str) -> tuple[Level, ...]:
    """`[[price, qty], ...]` with positive prices and non-negative quantities."""
    if not isinstance(levels, list):
        raise PayloadError(f"{what}: expected a list of levels")
    parsed = []
    for level in levels:
        if not isinstance(level, list) or len(level) != 2:
            raise PayloadError(f"{what}: a level is not [price, qty]: {_show(level)}")
        parsed.append(
            (to_decimal(level[0], f"{what} price", positive=True),
             to_decimal(level[1], f"{what} qty"))
        )
    return tuple(parsed)


def parse_depth(payload: Any, symbol: str = "") -> OrderBook:
    """Parse `GET /api/v3/depth`."""
    what = f"depth {symbol}".rstrip()
    if not isinstance(payload, dict):
        raise PayloadError(f"{what}: expected an object")
    return OrderBook(
        last_update_id=_whole(
            _field(payload, "lastUpdateId", what), f"{what} lastUpdateId", minimum=0
        ),
        bids=_parse_levels(_field(payload, "bids", what), f"{what} bids"),
        asks=_parse_levels(_field(payload, "asks", what), f"{what} asks"),
    )


def parse_book_tickers(payload: Any) -> dict[str, BookTop]:
    """Parse `GET /api/v3/ticker/bookTicker` (one object or an array of them).

    A price of 0 is Binance's way of saying a side is empty, so prices here
    may be 0; the spread maths treats such a side as no quote.
    """
    items = payload if isinstance(payload, list) else [payload]
    tops: dict[str, BookTop] = {}
    for item in items:
        symbol = _name(_field(item, "symbol", "ticker/bookTicker"), "ticker/bookTicker symbol")
        what = f"ticker/bookTicker {symbol}"
        tops[symbol] = BookTop(
            symbol=symbol,
            bid_price=to_decimal(_field(item, "bidPrice", what), f"{what} bidPrice"),
            ask_price=to_decimal(_field(item, "askPrice", what), f"{what} askPrice"),
        )
    return tops


def parse_agg_trade(item: Any) -> AggTrade:
    """Parse one aggTrades object (REST, or the `<symbol>@aggTrade` stream event)."""
    what = "aggTrades"
    maker = _field(item, "m", what)
    if not isinstance(maker, bool):
        raise PayloadError(f"{what}: m is not a boolean: {_show(maker)}")
    fields = {
        "id": _whole(_field(item, "a", what), f"{what} a", minimum=0),
        "price": to_decimal(_field(item, "p", what), f"{what} p", positive=True),
        "qty": to_decimal(_field(item, "q", what), f"{what} q"),
        "first_trade_id": _whole(_field(item, "f", what), f"{what} f", minimum=0),
        "last_trade_id": _whole(_field(item, "l", what), f"{what} l", minimum=0),
        "time_ms": _whole(_field(item, "T", what), f"{what} T", minimum=0),
    }
    try:
        return AggTrade(buyer_is_maker=maker, **fields)
    except ValueError as exc:
        raise PayloadError(f"{what}: {exc}") from exc


def parse_agg_trades(payload: Any) -> list[AggTrade]:
    """Parse `GET /api/v3/aggTrades` (an array of aggregate trades)."""
    if not isinstance(payload, list):
        raise PayloadError("aggTrades: expected an array")
    return [parse_agg_trade(item) for item in payload]


class _SymbolFields(msgspec.Struct, gc=False, omit_defaults=True):
    """The fields of an exchangeInfo symbol the exporter reads; the rest is skipped."""

    symbol: Any = None
    status: Any = None
    baseAsset: Any = None  # pylint: disable=invalid-name  # Binance's field names
    quoteAsset: Any = None  # pylint: disable=invalid-name


class _ExchangeInfoFields(msgspec.Struct, gc=False, omit_defaults=True):
    """The fields of exchangeInfo the exporter reads."""

    symbols: list[_SymbolFields] | None = None
    rateLimits: Any = None  # pylint: disable=invalid-name


_EXCHANGE_INFO = msgspec.json.Decoder(_ExchangeInfoFields)


def decode_exchange_info(body: bytes) -> Any:
    """exchangeInfo's JSON text as plain data, keeping only what `parse_exchange_info` reads.

    The whole answer is megabytes (filters and permissions for every
    symbol); decoding it into Python objects costs several times its size
    during every rankings run. msgspec reads past the fields not asked for
    without building them. An answer not of that shape is decoded whole
    instead, so that `parse_exchange_info` names what is wrong with it.
    """
    try:
        return msgspec.to_builtins(_EXCHANGE_INFO.decode(body))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return json.loads(body)
