"""Diff-depth stream events, decoded from their JSON text in one pass.

Only stream mode loads this module (and msgspec with it).
"""

from __future__ import annotations

import msgspec

from binance_exporter.binance.payloads import PayloadError
from binance_exporter.market.numbers import ZERO
from binance_exporter.market.types import Level

DEPTH_UPDATE = "depthUpdate"


class DepthUpdate(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag=DEPTH_UPDATE):
    """One diff-depth event: absolute new quantities for update ids U..u.

    A msgspec Struct, so that `decode_depth_update` turns the JSON text into
    this object, Decimals included, in one pass of C code: parsing levels one
    by one in Python was most of the cost of an event. `e` is the tag: any
    other event type is refused (an event without `e` is read as a depth
    diff; the stream name already says it is one). Not tracked by the cyclic
    GC (`gc=False`): it holds only strings, ints and Decimals.
    """

    symbol: str = msgspec.field(name="s")
    event_time: int = msgspec.field(name="E")
    first_update_id: int = msgspec.field(name="U")
    last_update_id: int = msgspec.field(name="u")
    bids: tuple[Level, ...] = msgspec.field(name="b")
    asks: tuple[Level, ...] = msgspec.field(name="a")

    def __post_init__(self) -> None:
        # msgspec has checked the types (ids are ints, not bools or floats;
        # each level is two decimals read exactly from their JSON text); what
        # is left are the values. A ValueError here becomes a ValidationError.
        if not self.symbol:
            raise ValueError("empty symbol")
        if self.first_update_id > self.last_update_id:
            raise ValueError(f"U {self.first_update_id} > u {self.last_update_id}")
        for side in (self.bids, self.asks):
            for price, qty in side:
                # is_finite first: comparing a NaN raises instead of answering.
                if not (price.is_finite() and qty.is_finite() and price > ZERO and qty >= ZERO):
                    raise ValueError(f"impossible level [{price}, {qty}]")


_DEPTH_DECODER = msgspec.json.Decoder(DepthUpdate)


def decode_depth_update(raw: bytes | str | msgspec.Raw) -> DepthUpdate:
    """Decode the `data` of a `<symbol>@depth` / `@depth@100ms` message (binance-api.md §4.4).

    Raises PayloadError when the text is not JSON, not a depthUpdate, or not
    of the documented shape and values, so a broken frame never touches a book.
    """
    try:
        return _DEPTH_DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(f"depthUpdate: {exc}") from exc
