"""`<symbol>@bookTicker` events: best bid and ask, decoded cheaply, checked when read.

A whole-market exporter receives tens of thousands of these a second, and
publishes each symbol's latest only a few times a second. So an event is
decoded (shape and types, in C) on arrival, but its four decimals stay text
until the event is read: most events are overtaken before anyone reads them,
and building Decimals for them would be most of the cost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from binance_exporter.binance.payloads import PayloadError, is_plain_decimal, to_decimal
from binance_exporter.market.types import BookTop

SEEDED = -1  # the update id of a quote taken from REST, older than any event


class BookTickerEvent(msgspec.Struct, frozen=True, gc=False):
    """One bookTicker event (binance-api.md §4.4); it has no event type or time.

    The quantities at the best prices (`B`, `A`) are skipped: no answer uses them.
    """

    update_id: int = msgspec.field(name="u")
    symbol: str = msgspec.field(name="s")
    bid_price: str = msgspec.field(name="b")
    ask_price: str = msgspec.field(name="a")


_DECODER = msgspec.json.Decoder(BookTickerEvent)


def decode_book_ticker(raw: bytes | str | msgspec.Raw) -> BookTickerEvent:
    """Decode the `data` of a `<symbol>@bookTicker` message; PayloadError when malformed."""
    try:
        return _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(f"bookTicker: {exc}") from exc


def to_top(event: BookTickerEvent) -> BookTop:
    """The event's quotes as exact Decimals; PayloadError for an impossible value.

    A price of 0 is Binance's way of saying a side is empty, as on REST.
    """
    bid, ask = event.bid_price, event.ask_price
    if is_plain_decimal(bid) and is_plain_decimal(ask):
        return BookTop(event.symbol, Decimal(bid), Decimal(ask))
    # One is wrong: to_decimal names it and raises.
    return BookTop(event.symbol, to_decimal(bid, f"bookTicker {event.symbol} b"),
                   to_decimal(ask, f"bookTicker {event.symbol} a"))


def seed_events(payload: Any) -> list[BookTickerEvent]:
    """The all-symbols REST `ticker/bookTicker` answer as events older than any streamed one."""
    if not isinstance(payload, list):
        raise PayloadError("ticker/bookTicker: expected an array")
    events = []
    for item in payload:
        try:
            symbol = item["symbol"]
            event = BookTickerEvent(SEEDED, symbol, item["bidPrice"], item["askPrice"])
        except (KeyError, TypeError) as exc:
            raise PayloadError(f"ticker/bookTicker: malformed entry: {exc}") from exc
        if not isinstance(symbol, str):
            raise PayloadError("ticker/bookTicker: a symbol is not a string")
        events.append(event)
    return events
