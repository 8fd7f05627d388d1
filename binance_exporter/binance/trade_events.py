"""`<symbol>@aggTrade` events, decoded and checked like a REST aggTrades entry."""

from __future__ import annotations

import msgspec

from binance_exporter.binance.payloads import PayloadError, parse_agg_trade
from binance_exporter.market.trades import AggTrade

AGG_TRADE_STREAM = "aggTrade"


def decode_agg_trade(data: bytes | str | msgspec.Raw) -> tuple[str, AggTrade]:
    """The symbol and trade of one aggTrade event; PayloadError for anything else."""
    try:
        item = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise PayloadError(f"aggTrade event: not JSON: {exc}") from exc
    if not isinstance(item, dict) or item.get("e", AGG_TRADE_STREAM) != AGG_TRADE_STREAM:
        raise PayloadError("aggTrade event: not an aggTrade object")
    symbol = item.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise PayloadError("aggTrade event: no symbol")
    return symbol, parse_agg_trade(item)
