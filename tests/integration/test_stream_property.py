"""Property: a local book built from a REST snapshot plus stream diffs is the market's book.

The exporter's real pieces (BinanceClient, StreamBooks, StreamSupervisor) run
against the fake REST API and the fake streams over loopback; hypothesis picks
how the fake market moves, including steps that land while a snapshot is being
fetched and reconnects in the middle.
"""

from __future__ import annotations

import time
import unittest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.sources.stream import StreamBooks
from fake_binance.market import Market
from fake_binance.server import FakeBinance
from fake_binance.streams import FakeStreams
from tests.support import wait_until

SYMBOLS = ("ETHBTC", "SOLBTC", "BTCUSDT")
LEVELS = 1000  # snapshot depth (weight 50): many resyncs stay within the budget


class LocalBookPropertyTest(unittest.TestCase):
    """After any sequence of market moves the synced local books equal the market's."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.market = Market(seed=11)
        cls.rest = FakeBinance(cls.market).start()
        cls.addClassCleanup(cls.rest.stop)
        cls.streams = FakeStreams(cls.market).start()
        cls.addClassCleanup(cls.streams.stop)
        pool = DaemonPool(2)
        cls.addClassCleanup(pool.shutdown)
        client = BinanceClient(cls.rest.url, timeout=5, weight_share=1.0)
        cls.books = StreamBooks(client, pool, LEVELS)
        streams = cls.books.track(list(SYMBOLS))
        # The moves drop connections every few seconds, which the exporter
        # rightly backs off from; this test is about the books, not that policy.
        cls.supervisor = StreamSupervisor(cls.streams.url, streams, cls.books.on_data,
                                          cls.books.on_connect, backoff=lambda failures: 0.5,
                                          on_live=cls.books.on_live,
                                          on_disconnect=cls.books.on_disconnect)
        cls.supervisor.start()
        cls.addClassCleanup(cls.supervisor.stop)

    def assert_books_equal_market(self) -> None:
        """Wait for every book to sync to the market's current update id, then compare."""
        def caught_up() -> bool:
            ids = self.books.stats()[0]
            return all(ids.get(s) == self.market.depth(s, 1)["lastUpdateId"] for s in SYMBOLS)

        self.streams.flush()
        wait_until(caught_up, timeout=15)
        # Each book shows the levels it can vouch for (what its snapshot
        # covered, as the market moved): exactly the market's best levels.
        # pylint: disable-next=protected-access
        synced = self.books._read(SYMBOLS, LEVELS, 0)  # a read that never starts a book over
        for symbol in SYMBOLS:
            bids, asks = self.market.book(symbol)
            view = synced[symbol]
            self.assertEqual(list(view.bids), bids[:len(view.bids)], symbol)
            self.assertEqual(list(view.asks), asks[:len(view.asks)], symbol)
            if not view.bids_cut:
                self.assertEqual(list(view.bids), bids[:LEVELS], symbol)
            if not view.asks_cut:
                self.assertEqual(list(view.asks), asks[:LEVELS], symbol)

    @settings(max_examples=10, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(moves=st.lists(st.tuples(st.integers(1, 4), st.sampled_from(
        ["flush", "quick", "drop", "gap"])), min_size=1, max_size=5))
    def test_local_books_equal_the_market(self, moves):
        for steps, how in moves:
            if how == "drop":
                self.streams.drop_connections()
            elif how == "gap":
                # after a drop, wait until the exporter has subscribed again
                wait_until(lambda: any("solbtc@depth@100ms" in streams
                                       for streams in self.streams.subscriptions()), 10)
                self.streams.skip_next_event("SOLBTC")
            self.market.step(steps)
            if how != "quick":  # quick: the next move lands before this one is sent
                self.streams.flush()
                time.sleep(0.05)
        self.market.step()  # an event after any skipped one, so a gap shows
        self.assert_books_equal_market()


if __name__ == "__main__":
    unittest.main()
