"""Rankings and the split of the market between shards: which symbols to follow.

Pure functions of exchangeInfo and the 24 h tickers; ties break by symbol name
so an answer never depends on the order of a payload.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Mapping

from binance_exporter.market.types import TRADING, VOLUME_FIELDS, SymbolInfo, Ticker24h


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
