"""StreamCollector: connections, messages and local books of stream mode."""

import unittest

from prometheus_client import CollectorRegistry

from binance_exporter.metrics.stream import StreamCollector
from binance_exporter.model import StreamView
from tests.support import registry_with


def registry_of(view: StreamView) -> CollectorRegistry:
    """A registry holding only a StreamCollector that reads `view`."""
    return registry_with(StreamCollector(lambda: view))


VIEW = StreamView(
    connected=True,
    reconnects=2,
    messages={"depth@100ms": 10, "bookTicker": 3},
    last_message=1700000001.0,
    update_ids={"BTCUSDT": 99},
    resyncs={"BTCUSDT": 1, "ETHBTC": 0},
)


class StreamCollectorTest(unittest.TestCase):
    """What a stream view looks like as metrics."""

    def test_connections_and_messages(self):
        registry = registry_of(VIEW)
        self.assertEqual(registry.get_sample_value("binance_stream_connected"), 1)
        self.assertEqual(registry.get_sample_value("binance_stream_reconnects_total"), 2)
        self.assertEqual(registry.get_sample_value(
            "binance_stream_messages_total", {"stream_type": "depth@100ms"}), 10)
        self.assertEqual(
            registry.get_sample_value("binance_stream_last_message_timestamp_seconds"),
            1700000001.0,
        )

    def test_books(self):
        registry = registry_of(VIEW)
        self.assertEqual(
            registry.get_sample_value("binance_order_book_update_id", {"symbol": "BTCUSDT"}), 99
        )
        self.assertIsNone(
            registry.get_sample_value("binance_order_book_update_id", {"symbol": "ETHBTC"})
        )
        self.assertEqual(
            registry.get_sample_value("binance_order_book_resyncs_total", {"symbol": "ETHBTC"}), 0
        )

    def test_before_the_first_message(self):
        view = StreamView(False, 0, {}, None, {}, {})
        registry = registry_of(view)
        self.assertEqual(registry.get_sample_value("binance_stream_connected"), 0)
        names = [family.name for family in registry.collect()]
        self.assertNotIn("binance_stream_last_message_timestamp_seconds", names)
        # A family with no samples still says what it would hold.
        self.assertIn("binance_order_book_update_id", names)


if __name__ == "__main__":
    unittest.main()
