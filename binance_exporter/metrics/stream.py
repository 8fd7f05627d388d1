"""Stream mode's connections and local books, read live on every scrape."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import Metric

from binance_exporter.metrics.families import FamilyCollector, counter, gauge
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
    """

    families = (MESSAGES, CONNECTED, RECONNECTS, LAST_MESSAGE, UPDATE_ID, RESYNCS)

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
        resyncs = RESYNCS.new()
        for symbol, count in sorted(view.resyncs.items()):
            resyncs.add_metric([symbol], count)
        yield resyncs
