"""Stream mode's connections and local books, read live on every scrape."""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

from prometheus_client.core import Metric

from binance_exporter.metrics.families import Family, FamilyCollector, counter, gauge
from binance_exporter.model import StreamView

MESSAGES = counter(
    "binance_stream_messages",
    "Websocket market-stream messages received, by stream type (e.g. depth@100ms).",
    "stream_type",
)
CONNECTED = gauge(
    "binance_stream_connected", "1 when every stream connection is open and subscribed."
)
RECONNECTS = counter(
    "binance_stream_reconnects",
    "Stream connections re-established after a drop, a silence longer than the watchdog "
    "or the 24 h limit.",
)
LAST_MESSAGE = gauge(
    "binance_stream_last_message_timestamp_seconds", "Unix time of the latest stream message."
)
UPDATE_ID = gauge(
    "binance_order_book_update_id",
    "Final update id (u) of the last diff applied to the local book; absent while the "
    "book is out of sync.",
    "symbol",
)
RESYNCS = counter(
    "binance_order_book_resyncs",
    "Times the local book was rebuilt from a REST snapshot after a gap, a crossed book "
    "or a reconnect.",
    "symbol",
)
QUOTES = gauge(
    "binance_stream_book_ticker_symbols",
    "Symbols whose best quotes are followed from bookTicker streams."
)
QUOTES_LIVE = gauge(
    "binance_stream_book_ticker_symbols_live",
    "Of those, the symbols with live best quotes: their connection is up and a quote came "
    "since it came up. The others have no spread on the page.",
)
TICKER_REPAIRS = counter(
    "binance_stream_ticker_repairs",
    "24 h ticker entries the periodic REST answer corrected: pushes the !ticker_1d@arr "
    "stream missed.",
)
GAP_FILLS = counter(
    "binance_stream_trade_gap_fills",
    "Gaps in an aggTrade stream (a reconnect, missing ids) filled from REST aggTrades.",
    "symbol",
)
TRADES_MISSED = counter(
    "binance_stream_trades_missed",
    "Aggregate trade ids given up on after a gap too long to fill: the trade counters are "
    "short by at least that many trades.",
    "symbol",
)


class StreamCollector(FamilyCollector):
    """Stream connections and local books; registered only in stream mode.

    The last-message time is absent before the first message, and a book's
    update id while that book is out of sync::

        binance_stream_messages_total{stream_type="depth@100ms"} 10.0
        binance_stream_connected 1.0
        binance_stream_reconnects_total 2.0
        binance_stream_last_message_timestamp_seconds 1.700000001e+09
        binance_order_book_update_id{symbol="BTCUSDT"} 99.0
        binance_order_book_resyncs_total{symbol="BTCUSDT"} 1.0
        binance_stream_book_ticker_symbols 3000.0
        binance_stream_book_ticker_symbols_live 2998.0
        binance_stream_ticker_repairs_total 0.0
        binance_stream_trade_gap_fills_total{symbol="BTCUSDT"} 1.0
        binance_stream_trades_missed_total{symbol="BTCUSDT"} 0.0
    """

    families = (MESSAGES, CONNECTED, RECONNECTS, LAST_MESSAGE, UPDATE_ID, RESYNCS, QUOTES,
                QUOTES_LIVE, TICKER_REPAIRS, GAP_FILLS, TRADES_MISSED)

    def __init__(self, view: Callable[[], StreamView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view()
        messages = MESSAGES.new()
        for kind, count in sorted(view.messages.items()):
            messages.add_metric([kind], count)
        yield messages
        yield CONNECTED.single(1 if view.connected else 0)
        yield RECONNECTS.single(view.reconnects)
        if view.last_message is not None:
            yield LAST_MESSAGE.single(view.last_message)
        update = UPDATE_ID.new()
        for symbol, value in sorted(view.update_ids.items()):
            update.add_metric([symbol], value)
        yield update
        yield _by_symbol(RESYNCS, view.resyncs)
        yield QUOTES.single(view.quotes_wanted)
        yield QUOTES_LIVE.single(view.quotes_live)
        yield TICKER_REPAIRS.single(view.ticker_repairs)
        yield _by_symbol(GAP_FILLS, view.trade_gap_fills)
        yield _by_symbol(TRADES_MISSED, view.trades_missed)


def _by_symbol(family: Family, values: Mapping[str, int]) -> Metric:
    """One sample per symbol, in symbol order."""
    metric = family.new()
    for symbol, value in sorted(values.items()):
        metric.add_metric([symbol], value)
    return metric
