"""The answers to the exporter's questions: rankings, book notional, spreads, VWAP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from prometheus_client.core import Metric

from binance_exporter.market.numbers import ZERO
from binance_exporter.market.types import SymbolInfo
from binance_exporter.metrics.families import CACHED, Family, FamilyCollector, gauge
from binance_exporter.model import Answers, Snapshot

SYMBOL_INFO = gauge(
    "binance_symbol_info",
    "Tracked symbol, from GET /api/v3/exchangeInfo (baseAsset, quoteAsset, status); "
    "always 1. " + CACHED,
    "symbol", "base_asset", "quote_asset", "status",
)
RANK = gauge(
    "binance_top_symbol_rank",
    "Rank of the symbol (1 = first) by 24h quote volume (BTC-quoted) or number of "
    "trades (USDT-quoted), from GET /api/v3/ticker/24hr. " + CACHED,
    "symbol", "quote_asset", "ranking",
)
QUOTE_VOLUME = gauge(
    "binance_ticker_24h_quote_volume",
    "24h volume in the quote asset of the ranked BTC-quoted symbols, GET "
    "/api/v3/ticker/24hr field quoteVolume. " + CACHED,
    "symbol",
)
TRADES = gauge(
    "binance_ticker_24h_trades",
    "24h number of trades of the ranked USDT-quoted symbols, GET /api/v3/ticker/24hr "
    "field count. " + CACHED,
    "symbol",
)
NOTIONAL = gauge(
    "binance_order_book_notional",
    "Sum of price x quantity over the top levels of one side of the book, in the "
    "quote asset, from GET /api/v3/depth (bids, asks). " + CACHED,
    "symbol", "side",
)
NOTIONAL_REFERENCE = gauge(
    "binance_order_book_notional_reference",
    "binance_order_book_notional converted to the reference asset (--reference-asset, "
    "default USDT) at binance_reference_price of the quote asset; absent when the quote "
    "asset has no reference price. " + CACHED,
    "symbol", "side",
)
REFERENCE_PRICE = gauge(
    "binance_reference_price",
    "Reference-asset units (--reference-asset, default USDT) per unit of `asset`, from the "
    "mid of the converting books' best quotes (REST ticker/bookTicker, or the bookTicker "
    "streams in stream mode): a direct pair, the "
    "inverse of a pair quoted in `asset`, or one hop via BTC; 1 for the reference itself. "
    + CACHED,
    "asset",
)
SPREAD = gauge(
    "binance_spread",
    "Best ask minus best bid, in the quote asset, from REST ticker/bookTicker, or the "
    "bookTicker stream in stream mode. " + CACHED,
    "symbol",
)
SPREAD_RATIO = gauge(
    "binance_spread_ratio",
    "Spread divided by the mid price (ask + bid) / 2, from the same best quotes. " + CACHED,
    "symbol",
)
SPREAD_DELTA = gauge(
    "binance_spread_delta",
    "Absolute change of binance_spread since the previous spread refresh "
    "(0 on the first). " + CACHED,
    "symbol",
)
VWAP = gauge(
    "binance_vwap_price",
    "(bid VWAP + ask VWAP) / 2 over the top --depth-levels levels, each side's VWAP "
    "being sum(price x qty) / sum(qty). " + CACHED,
    "symbol",
)
VWAP_AVERAGE = gauge(
    "binance_vwap_price_average",
    "Time-weighted average of binance_vwap_price over the trailing window, from every "
    "value the exporter computed (stream mode: each book update, sampled at 10 Hz; REST "
    "mode: each rankings refresh, so much coarser). " + CACHED,
    "symbol", "window",
)


# The families with a series per followed symbol: thousands of series each with
# `--spread-symbols all`, most of the page. The exposition keeps their lines
# between pages (`metrics.symbol_lines`); `per_symbol_series` says what they show.
PER_SYMBOL = (SYMBOL_INFO, SPREAD, SPREAD_RATIO, SPREAD_DELTA)


class SymbolSeries(NamedTuple):
    """A `PER_SYMBOL` family's series: one per symbol, in page order.

    `state(symbol)` is what the symbol's line shows, and `sample(symbol,
    state)` its label values and value; a line need only be written again
    when its state changed. The exposition calls these for thousands of
    symbols per page, so nothing here builds a series before it is asked for.
    """

    family: Family
    symbols: Sequence[str]
    state: Callable[[str], object]
    sample: Callable[[str, Any], tuple[tuple[str, ...], float]]


def _info_sample(_symbol: str, info: SymbolInfo) -> tuple[tuple[str, ...], float]:
    return (info.symbol, info.base_asset, info.quote_asset, info.status), 1.0


def _value_sample(symbol: str, value: Decimal) -> tuple[tuple[str, ...], float]:
    return (symbol,), float(value)


def per_symbol_series(answers: Answers) -> list[SymbolSeries]:
    """The series of each `PER_SYMBOL` family, ordered by symbol."""
    spreads = sorted(answers.spreads)
    deltas = answers.deltas
    return [
        SymbolSeries(SYMBOL_INFO, sorted(answers.symbols), answers.symbols.__getitem__,
                     _info_sample),
        SymbolSeries(SPREAD, spreads, answers.spreads.__getitem__, _value_sample),
        SymbolSeries(SPREAD_RATIO, spreads, answers.spread_ratios.__getitem__, _value_sample),
        SymbolSeries(SPREAD_DELTA, spreads, lambda symbol: deltas.get(symbol, ZERO),
                     _value_sample),
    ]


class MarketCollector(FamilyCollector):
    """The snapshot's answers; no family at all before the first answers.

    A ranked symbol outside this exporter's shard has no series; a skipped
    book side has no notional::

        binance_symbol_info{base_asset="ETH",quote_asset="BTC",status="TRADING",symbol="ETHBTC"} 1.0
        binance_top_symbol_rank{quote_asset="BTC",ranking="quote_volume",symbol="ETHBTC"} 1.0
        binance_top_symbol_rank{quote_asset="USDT",ranking="trades",symbol="BTCUSDT"} 1.0
        binance_ticker_24h_quote_volume{symbol="ETHBTC"} 123.5
        binance_ticker_24h_trades{symbol="BTCUSDT"} 4242.0
        binance_order_book_notional{side="bid",symbol="BTCUSDT"} 1000.5
        binance_order_book_notional_reference{side="bid",symbol="ETHBTC"} 60650.0
        binance_reference_price{asset="BTC"} 60650.0
        binance_spread{symbol="BTCUSDT"} 0.01
        binance_spread_ratio{symbol="BTCUSDT"} 2e-07
        binance_spread_delta{symbol="BTCUSDT"} 0.0
        binance_vwap_price{symbol="BTCUSDT"} 50000.5
        binance_vwap_price_average{symbol="BTCUSDT",window="30s"} 50000.1

    With `per_symbol=False` it leaves out the `PER_SYMBOL` families, which
    the exposition then renders from `per_symbol_series` itself.
    """

    families = (SYMBOL_INFO, RANK, QUOTE_VOLUME, TRADES, NOTIONAL, NOTIONAL_REFERENCE,
                REFERENCE_PRICE, SPREAD, SPREAD_RATIO, SPREAD_DELTA, VWAP, VWAP_AVERAGE)

    def __init__(self, snapshot: Callable[[], Snapshot], per_symbol: bool = True) -> None:
        self._snapshot = snapshot
        self._per_symbol = per_symbol

    def collect(self) -> Iterator[Metric]:
        answers = self._snapshot().answers
        if answers is None:
            return
        series = per_symbol_series(answers) if self._per_symbol else []
        yield from (_filled(one) for one in series if one.family is SYMBOL_INFO)
        yield from _rankings(answers)
        yield from _notional(answers)
        yield from (_filled(one) for one in series if one.family is not SYMBOL_INFO)
        yield from _vwaps(answers)


def _filled(series: SymbolSeries) -> Metric:
    metric = series.family.new()
    for symbol in series.symbols:
        labels, value = series.sample(symbol, series.state(symbol))
        metric.add_metric(list(labels), value)
    return metric


def _rankings(answers: Answers) -> Iterator[Metric]:
    rank, quote_volume, trades = RANK.new(), QUOTE_VOLUME.new(), TRADES.new()
    # `answers.symbols` holds only this shard's symbols: with --shard, each
    # ranked symbol is exported by exactly one exporter.
    for position, ticker in enumerate(answers.top_btc, 1):
        if (info_btc := answers.symbols.get(ticker.symbol)) is not None:
            rank.add_metric([ticker.symbol, info_btc.quote_asset, "quote_volume"], position)
            quote_volume.add_metric([ticker.symbol], float(ticker.quote_volume))
    for position, ticker in enumerate(answers.top_usdt, 1):
        if (info_usdt := answers.symbols.get(ticker.symbol)) is not None:
            rank.add_metric([ticker.symbol, info_usdt.quote_asset, "trades"], position)
            trades.add_metric([ticker.symbol], ticker.trades)
    yield from (rank, quote_volume, trades)


def _notional(answers: Answers) -> Iterator[Metric]:
    for family, values in ((NOTIONAL, answers.notional),
                           (NOTIONAL_REFERENCE, answers.notional_reference)):
        notional = family.new()
        for symbol, sides in sorted(values.items()):
            if sides.bids is not None:
                notional.add_metric([symbol, "bid"], float(sides.bids))
            if sides.asks is not None:
                notional.add_metric([symbol, "ask"], float(sides.asks))
        yield notional
    prices = REFERENCE_PRICE.new()
    for asset, rate in sorted(answers.reference_prices.items()):
        prices.add_metric([asset], float(rate))
    yield prices


def _vwaps(answers: Answers) -> Iterator[Metric]:
    vwap, average = VWAP.new(), VWAP_AVERAGE.new()
    for symbol, price in sorted(answers.vwap.items()):
        vwap.add_metric([symbol], float(price))
    for (symbol, window), price in sorted(answers.vwap_averages.items()):
        average.add_metric([symbol, window], float(price))
    yield from (vwap, average)
