"""The answers to the exporter's questions: rankings, book notional, spreads, VWAP."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import Metric

from binance_exporter.metrics.families import CACHED, FamilyCollector, gauge
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
    """

    families = (SYMBOL_INFO, RANK, QUOTE_VOLUME, TRADES, NOTIONAL, NOTIONAL_REFERENCE,
                REFERENCE_PRICE, SPREAD, SPREAD_RATIO, SPREAD_DELTA, VWAP, VWAP_AVERAGE)

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        answers = self._snapshot().answers
        if answers is not None:
            yield from _rankings(answers)
            yield from _books(answers)


def _rankings(answers: Answers) -> Iterator[Metric]:
    info = SYMBOL_INFO.new()
    for symbol in sorted(answers.symbols.values(), key=lambda s: s.symbol):
        info.add_metric([symbol.symbol, symbol.base_asset, symbol.quote_asset, symbol.status], 1)
    yield info
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


def _books(answers: Answers) -> Iterator[Metric]:
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
    spread, ratio, delta = SPREAD.new(), SPREAD_RATIO.new(), SPREAD_DELTA.new()
    for symbol, value in sorted(answers.spreads.items()):
        spread.add_metric([symbol], float(value))
        ratio.add_metric([symbol], float(answers.spread_ratios[symbol]))
        delta.add_metric([symbol], float(answers.deltas.get(symbol, 0)))
    yield from (spread, ratio, delta)
    vwap, average = VWAP.new(), VWAP_AVERAGE.new()
    for symbol, price in sorted(answers.vwap.items()):
        vwap.add_metric([symbol], float(price))
    for (symbol, window), price in sorted(answers.vwap_averages.items()):
        average.add_metric([symbol, window], float(price))
    yield from (vwap, average)
