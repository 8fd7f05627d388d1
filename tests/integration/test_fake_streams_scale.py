"""The fake streams at market scale: every symbol's bookTicker, as an exporter follows them.

3000 extra symbols over 3 connections (at most 1024 streams each, the
SUBSCRIBEs batched well under 5 messages a second), plus `!ticker_1d@arr`:
after each step every symbol whose top changed gets one bookTicker event, and
the array carries every symbol whose 24 h figures changed.  What that costs the
fake is measured by `python -m fake_binance.throughput`, not here.
"""

from __future__ import annotations

import contextlib
import json
import unittest

from websockets.sync.client import ClientConnection, connect

from fake_binance import BUILTIN_SYMBOLS, Market
from fake_binance.streams import FakeStreams
from tests.integration.test_fake_streams import (
    FIXED_NOW,
    TICKERS,
    WINDOW,
    rest_tickers,
    window_changed,
)

EXTRA = 3000
CONNECTIONS = 3
BATCH = 500  # streams per SUBSCRIBE: two messages per connection


def book_ticker(market: Market, symbol: str) -> dict:
    """The bookTicker event the stream must send for the symbol's current top."""
    top = market.top(symbol)
    return {"u": top.update_id, "s": symbol, "b": top.bid_price, "B": top.bid_qty,
            "a": top.ask_price, "A": top.ask_qty}


class MarketScaleTest(unittest.TestCase):
    """One market of 3027 symbols; each test opens its own connections."""

    market: Market
    streams: FakeStreams
    extras: list[str]

    @classmethod
    def setUpClass(cls) -> None:
        cls.market = Market(extra_symbols=EXTRA, clock=lambda: FIXED_NOW)
        builtin = {spec.symbol for spec in BUILTIN_SYMBOLS}
        cls.extras = [name for name in cls.market.symbols() if name not in builtin]
        cls.streams = FakeStreams(cls.market).start()
        cls.addClassCleanup(cls.streams.stop)

    def connection(self, streams: list[str]) -> ClientConnection:
        """A combined-stream connection subscribed to `streams`, BATCH names a message."""
        stack = contextlib.ExitStack()
        self.addCleanup(stack.close)
        connection = stack.enter_context(connect(self.streams.url + "/stream", max_size=None,
                                                 open_timeout=5))
        for request_id, start in enumerate(range(0, len(streams), BATCH), 1):
            connection.send(json.dumps({"method": "SUBSCRIBE", "id": request_id,
                                        "params": streams[start:start + BATCH]}))
            self.assertEqual(json.loads(connection.recv(timeout=5)),
                             {"result": None, "id": request_id})
        return connection

    def test_every_moved_top_gets_a_book_ticker_after_a_step(self):
        self.assertEqual(len(self.extras), EXTRA)
        shares = [self.extras[index::CONNECTIONS] for index in range(CONNECTIONS)]
        connections = [self.connection([f"{name.lower()}@bookTicker" for name in share])
                       for share in shares]
        self.assertEqual(sorted(len(streams) for streams in self.streams.subscriptions()[-3:]),
                         [EXTRA // CONNECTIONS] * CONNECTIONS)
        self.assertLessEqual(self.streams.max_incoming_per_second(), 5)
        for _ in range(2):
            before = {name: book_ticker(self.market, name) for name in self.extras}
            self.market.step()
            self.streams.flush()
            for connection, share in zip(connections, shares):
                expected = {}
                for name in share:
                    event = book_ticker(self.market, name)
                    self.assertGreater(event["u"], before[name]["u"])  # every book moved
                    if {k: v for k, v in event.items() if k != "u"} != {
                            k: v for k, v in before[name].items() if k != "u"}:
                        expected[f"{name.lower()}@bookTicker"] = event
                self.assertGreater(len(expected), len(share) // 2)
                received = {}
                for _ in expected:
                    message = json.loads(connection.recv(timeout=5))
                    received[message["stream"]] = message["data"]
                self.assertEqual(received, expected)

    def test_ticker_array_carries_the_whole_market(self):
        connection = self.connection([TICKERS])
        before = rest_tickers(self.market)
        self.market.step()
        self.streams.flush()
        after = rest_tickers(self.market)
        changed = window_changed(before, after)
        self.assertGreater(len(changed), EXTRA)
        message = json.loads(connection.recv(timeout=5))
        self.assertEqual(message["stream"], TICKERS)
        self.assertEqual([event["s"] for event in message["data"]], changed)
        for event in message["data"]:
            self.assertEqual({letter: event[letter] for letter in WINDOW},
                             {letter: after[event["s"]][field]
                              for letter, field in WINDOW.items()})


if __name__ == "__main__":
    unittest.main()
