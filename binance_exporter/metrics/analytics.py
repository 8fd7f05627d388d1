"""Market quality of the analytics symbols: simulated fills, depth bands, taker flow."""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterator

from prometheus_client.core import Metric

from binance_exporter.metrics.families import CACHED, FamilyCollector, counter, gauge
from binance_exporter.model import Analytics, Snapshot

FILL = "Simulated market order of `notional` in the reference asset (--reference-asset, " \
    "default USDT), converted to the quote asset at binance_reference_price, walked through a " \
    "GET /api/v3/depth snapshot (buy: asks, sell: bids); no order is sent. "
FILL_LABELS = ("symbol", "side", "notional")
AGG_TRADES = "from GET /api/v3/aggTrades paged by id since the exporter started following " \
    "the symbol; taker side from the maker flag. "

FILL_AVERAGE = gauge(
    "binance_fill_average_price", FILL + "Volume-weighted execution price. " + CACHED,
    *FILL_LABELS,
)
FILL_SLIPPAGE = gauge(
    "binance_fill_slippage_ratio", FILL + "|average price - mid| / mid, a ratio. " + CACHED,
    *FILL_LABELS,
)
FILL_LEVELS = gauge(
    "binance_fill_levels", FILL + "Price levels the order consumed. " + CACHED, *FILL_LABELS
)
FILL_UNFILLED = gauge(
    "binance_fill_unfilled_notional",
    FILL + "Quote-asset notional the whole visible side could not fill; only for orders "
    "larger than the book. " + CACHED,
    *FILL_LABELS,
)
DEPTH = gauge(
    "binance_order_book_depth_notional",
    "Quote notional resting within `band` (a ratio) of the mid price, edges included, "
    "from GET /api/v3/depth; band 0.02 is the '2% depth' listing sites quote. " + CACHED,
    "symbol", "side", "band",
)
DEPTH_REFERENCE = gauge(
    "binance_order_book_depth_notional_reference",
    "binance_order_book_depth_notional converted to the reference asset (--reference-asset, "
    "default USDT) at binance_reference_price of the quote asset, at the time of the depth "
    "snapshot; absent when the quote asset has no reference price. " + CACHED,
    "symbol", "side", "band",
)
TRADES = counter("binance_trades", "Trades " + AGG_TRADES, "symbol", "taker_side")
BASE_VOLUME = counter(
    "binance_traded_base_volume",
    "Traded quantity in the base asset, " + AGG_TRADES,
    "symbol", "taker_side",
)
QUOTE_VOLUME = counter(
    "binance_traded_quote_volume",
    "Traded value (price x quantity) in the quote asset, " + AGG_TRADES,
    "symbol", "taker_side",
)
LAST_PRICE = gauge(
    "binance_last_trade_price",
    "Price of the latest trade seen, GET /api/v3/aggTrades field p. " + CACHED,
    "symbol",
)


def decimal_label(value: Decimal) -> str:
    """A Decimal as a label value: plain digits, no exponent (1E+5 -> 100000)."""
    return format(value.normalize(), "f")


class AnalyticsCollector(FamilyCollector):
    """The snapshot's analytics; no family at all while analytics are off or pending.

    A complete fill has an average price (and a slippage when the book had a
    mid); an order larger than the book has an unfilled notional instead::

        binance_fill_average_price{notional="1000",side="buy",symbol="BTCUSDT"} 50001.0
        binance_fill_slippage_ratio{notional="1000",side="buy",symbol="BTCUSDT"} 2e-05
        binance_fill_levels{notional="1000000",side="sell",symbol="BTCUSDT"} 9.0
        binance_fill_unfilled_notional{notional="1000000",side="sell",symbol="BTCUSDT"} 999500.0
        binance_order_book_depth_notional{band="0.02",side="bid",symbol="BTCUSDT"} 12345.6
        binance_order_book_depth_notional_reference{band="0.02",side="bid",symbol="BTCUSDT"} 12345.6
        binance_trades_total{symbol="BTCUSDT",taker_side="buy"} 3.0
        binance_traded_base_volume_total{symbol="BTCUSDT",taker_side="buy"} 0.5
        binance_traded_quote_volume_total{symbol="BTCUSDT",taker_side="buy"} 25000.0
        binance_last_trade_price{symbol="BTCUSDT"} 50000.0
    """

    families = (FILL_AVERAGE, FILL_SLIPPAGE, FILL_LEVELS, FILL_UNFILLED, DEPTH, DEPTH_REFERENCE,
                TRADES, BASE_VOLUME, QUOTE_VOLUME, LAST_PRICE)

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        analytics = self._snapshot().analytics
        if analytics is not None:
            yield from _fills(analytics)
            yield from _flow(analytics)


def _fills(analytics: Analytics) -> Iterator[Metric]:
    average, slippage = FILL_AVERAGE.new(), FILL_SLIPPAGE.new()
    levels, unfilled, depth = FILL_LEVELS.new(), FILL_UNFILLED.new(), DEPTH.new()
    depth_reference = DEPTH_REFERENCE.new()
    for symbol, book in sorted(analytics.books.items()):
        for (side, notional), fill in sorted(book.fills.items()):
            key = [symbol, side, decimal_label(notional)]
            levels.add_metric(key, fill.levels_used)
            if fill.complete and fill.average_price is not None:
                average.add_metric(key, float(fill.average_price))
                if fill.slippage_ratio is not None:
                    slippage.add_metric(key, float(fill.slippage_ratio))
            else:
                unfilled.add_metric(key, float(fill.unfilled_notional))
        for (side, band), value in sorted(book.bands.items()):
            depth.add_metric([symbol, side, decimal_label(band)], float(value))
        for (side, band), value in sorted(book.bands_reference.items()):
            depth_reference.add_metric([symbol, side, decimal_label(band)], float(value))
    yield from (average, slippage, levels, unfilled, depth, depth_reference)


def _flow(analytics: Analytics) -> Iterator[Metric]:
    trades, base, quote = TRADES.new(), BASE_VOLUME.new(), QUOTE_VOLUME.new()
    last = LAST_PRICE.new()
    for symbol, flow in sorted(analytics.trades.items()):
        for side, totals in sorted(flow.by_side.items()):
            trades.add_metric([symbol, side], totals.trades)
            base.add_metric([symbol, side], float(totals.base_volume))
            quote.add_metric([symbol, side], float(totals.quote_volume))
        if flow.last_price is not None:
            last.add_metric([symbol], float(flow.last_price))
    yield from (trades, base, quote, last)
