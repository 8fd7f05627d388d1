"""The fake Binance streams, talked to through binance-connector as the exporter does.

The property everything else rests on: Binance's local-book procedure
(binance-api.md §6), applied by hand to the diff-depth events and a REST
snapshot of the same `Market`, gives exactly `market.book(symbol)`.  Then each
fault, and the protocol details (replies, errors, limits, paths) a client
meets.  `streams.flush()` puts a step's events on the wire at once, so the
tests wait for messages instead of sleeping.  Everything listens on 127.0.0.1
and is stopped by addCleanup.
"""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import re
import signal
import subprocess
import sys
import threading
import time
import unittest
from decimal import Decimal
from typing import Any, Callable

from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from fake_binance import Market
from fake_binance.streams import FakeStreams
from tests.support import ROOT, wait_until

FIXED_NOW = 1_700_000_000.0
FIXED_MS = int(FIXED_NOW * 1000)
TICKERS = "!ticker_1d@arr"
# `!ticker_1d@arr` letter -> the ticker_24hr field it must equal.
WINDOW = {"p": "priceChange", "P": "priceChangePercent", "o": "openPrice", "h": "highPrice",
          "l": "lowPrice", "c": "lastPrice", "w": "weightedAvgPrice", "v": "volume",
          "q": "quoteVolume", "O": "openTime", "C": "closeTime", "F": "firstId", "L": "lastId",
          "n": "count"}
QUIET = logging.getLogger("test.fake_streams.connector")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False  # the connector logs every drop as an error


class Recorder:
    """A binance-connector combined-stream client whose callbacks are recorded."""

    def __init__(self, url: str) -> None:
        self.messages: list[dict] = []
        self.errors: list[Exception] = []
        self.closed = threading.Event()
        self.pings = 0
        self._lock = threading.Lock()
        self.client = SpotWebsocketStreamClient(
            stream_url=url, is_combined=True, on_message=self._on_message,
            on_error=self._on_error, on_close=self._on_close, on_ping=self._on_ping,
            logger=QUIET)

    def _on_message(self, _manager: object, text: str) -> None:
        with self._lock:
            self.messages.append(json.loads(text))

    def _on_error(self, _manager: object, error: Exception) -> None:
        with self._lock:
            self.errors.append(error)

    def _on_close(self, _manager: object) -> None:
        self.closed.set()

    def _on_ping(self, _manager: object, _payload: bytes) -> None:
        with self._lock:
            self.pings += 1

    def alive(self) -> bool:
        """Whether the connector's reader thread still runs."""
        return self.client.socket_manager.is_alive()

    def stop(self) -> None:
        """client.stop() with a bound: it blocks forever if the server never answers."""
        stopper = threading.Thread(target=self.client.stop, daemon=True)
        stopper.start()
        stopper.join(5)
        if stopper.is_alive():
            raise AssertionError("client.stop() hung: the server did not answer the close")
        self.client.socket_manager.ws.shutdown()  # the connector never closes its socket

    def received(self) -> list[dict]:
        """A copy of every message so far."""
        with self._lock:
            return list(self.messages)

    def wait(self, predicate: Callable[[dict], bool], timeout: float = 5.0) -> dict:
        """The first message matching `predicate`, waiting for it."""
        return wait_until(lambda: next((m for m in self.received() if predicate(m)), None),
                          timeout, interval=0.01)

    def reply(self, request_id: int) -> dict:
        """The answer to the control message with this id."""
        return self.wait(lambda m: "id" in m and m.get("id") == request_id)

    def events(self, stream: str) -> list[dict]:
        """The payloads received on `stream`, in arrival order."""
        return [m["data"] for m in self.received() if m.get("stream") == stream]

    def wait_event(self, stream: str, last_id: int, timeout: float = 5.0) -> list[dict]:
        """Events of `stream` once one with u == last_id has arrived."""
        return wait_until(lambda: (events := self.events(stream))
                          and any(e["u"] == last_id for e in events) and events,
                          timeout, interval=0.01)


def rebuild(events: list[dict], snapshot: dict) -> tuple[int, list, list]:
    """Binance's §6 procedure by hand: (local id, bids, asks) from a snapshot and events."""
    last = snapshot["lastUpdateId"]
    if last < events[0]["U"]:
        raise AssertionError("snapshot older than the first event: fetch it again")
    sides = {"b": {Decimal(p): Decimal(q) for p, q in snapshot["bids"]},
             "a": {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}}
    for event in [e for e in events if e["u"] > last]:  # step 4: drop what the snapshot has
        if event["u"] < last:
            continue
        if event["U"] > last + 1:
            raise AssertionError(f"gap: U={event['U']} after local id {last}")
        for side in "ba":
            for price, qty in event[side]:
                if Decimal(qty) == 0:
                    sides[side].pop(Decimal(price), None)
                else:
                    sides[side][Decimal(price)] = Decimal(qty)
        last = event["u"]
    return (last, sorted(sides["b"].items(), reverse=True), sorted(sides["a"].items()))


def update_id(market: Market, symbol: str) -> int:
    """The symbol's current lastUpdateId."""
    return market.depth(symbol, 1)["lastUpdateId"]


def rest_tickers(market: Market) -> dict[str, dict]:
    """ticker_24hr of every symbol, by symbol."""
    return {ticker["symbol"]: ticker for ticker in market.ticker_24hr()}


def window_changed(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """The symbols (in `after`'s order) whose window figures differ between two
    `rest_tickers` readings: those `!ticker_1d@arr` must push."""
    return [symbol for symbol in after
            if any(after[symbol][name] != before[symbol][name] for name in WINDOW.values())]


def window_event(ticker: dict) -> dict:
    """The `1dTicker` object the stream must send for this ticker_24hr object."""
    return {"e": "1dTicker", "E": FIXED_MS, "s": ticker["symbol"],
            **{letter: ticker[name] for letter, name in WINDOW.items()}}


class StreamsTestCase(unittest.TestCase):
    """A running FakeStreams on a fresh market; clients are stopped before it."""

    ping_interval: float | None = 20.0
    options: dict[str, Any] = {}  # more FakeStreams keywords

    def setUp(self) -> None:
        self.market = Market(clock=lambda: FIXED_NOW)
        self.streams = FakeStreams(self.market, ping_interval=self.ping_interval,
                                   **self.options).start()
        self.addCleanup(self.streams.stop)

    def recorder(self) -> Recorder:
        """A connected connector client, stopped in cleanup."""
        recorder = Recorder(self.streams.url)
        self.addCleanup(recorder.stop)
        return recorder

    def subscribed(self, *streams: str) -> Recorder:
        """A connector client subscribed to `streams` (the reply received)."""
        recorder = self.recorder()
        recorder.client.subscribe(list(streams), id=1)
        self.assertEqual(recorder.reply(1), {"result": None, "id": 1})
        return recorder

    def step(self, times: int = 1) -> None:
        """Move the market and put the events on the wire, one event per step."""
        for _ in range(times):
            self.market.step()
            self.streams.flush()

    def assert_known_levels(self, mine: list, market: list, snapshot: list,
                            better: Callable[[Decimal, Decimal], bool]) -> None:
        """The rebuilt side equals the market's as far as the snapshot covered it.

        A side cut at 5000 levels says nothing beyond its last price until
        those levels change (binance-api.md §6); a side held whole, whole.
        """
        edge = Decimal(snapshot[-1][0]) if len(snapshot) == 5000 else None
        known = [level for level in market if edge is None or better(level[0], edge)]
        self.assertEqual([level for level in mine if edge is None or better(level[0], edge)],
                         known)
        self.assertGreaterEqual(len(known), len(snapshot) // 2)  # not vacuous

    def raw(self, path: str) -> ClientConnection:
        """A plain websockets client on `path`, closed in cleanup."""
        stack = contextlib.ExitStack()
        self.addCleanup(stack.close)
        return stack.enter_context(connect(self.streams.url + path, max_size=None,
                                           open_timeout=5))


def send(connection: ClientConnection, message: Any) -> None:
    """Send one control message (a str goes as it is)."""
    connection.send(message if isinstance(message, str) else json.dumps(message))


def receive(connection: ClientConnection, timeout: float = 5.0) -> Any:
    """The next message, parsed."""
    return json.loads(connection.recv(timeout=timeout))


def close_code(connection: ClientConnection) -> int | None:
    """Read until the server closes; the code of its close frame."""
    try:
        while True:
            connection.recv(timeout=5)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


class DiffDepthTest(StreamsTestCase):
    """Diff-depth events chain onto REST snapshots."""

    STREAMS = {"btcusdt@depth@100ms": "BTCUSDT", "ethbtc@depth@1000ms": "ETHBTC",
               "solbtc@depth": "SOLBTC", "thinusdt@depth@100ms": "THINUSDT"}

    def test_local_book_procedure_rebuilds_the_market_book(self):
        recorder = self.subscribed(*self.STREAMS)
        self.step(3)
        snapshots = {symbol: self.market.depth(symbol, 5000) for symbol in self.STREAMS.values()}
        self.step(3)
        for stream, symbol in self.STREAMS.items():
            with self.subTest(stream=stream):
                events = recorder.wait_event(stream, update_id(self.market, symbol))
                self.assertEqual(len(events), 6)
                for before, after in zip(events, events[1:]):
                    self.assertEqual(after["U"], before["u"] + 1)
                self.assertEqual({e["e"] for e in events}, {"depthUpdate"})
                self.assertEqual({e["s"] for e in events}, {symbol})
                self.assertEqual({e["E"] for e in events}, {int(FIXED_NOW * 1000)})
                last, bids, asks = rebuild(events, snapshots[symbol])
                book_bids, book_asks = self.market.book(symbol)
                self.assertEqual(last, update_id(self.market, symbol))
                self.assert_known_levels(bids, book_bids, snapshots[symbol]["bids"], operator.ge)
                self.assert_known_levels(asks, book_asks, snapshots[symbol]["asks"], operator.le)

    def test_first_event_follows_the_book_at_subscription(self):
        before = update_id(self.market, "ETHBTC")
        recorder = self.subscribed("ethbtc@depth@100ms")
        snapshot = self.market.depth("ETHBTC", 5000)  # no step yet: as old as the baseline
        self.step()
        event = recorder.wait_event("ethbtc@depth@100ms", update_id(self.market, "ETHBTC"))[0]
        self.assertEqual(event["U"], before + 1)
        self.assertEqual(snapshot["lastUpdateId"], before)
        with self.assertRaisesRegex(AssertionError, "fetch it again"):
            rebuild([event], snapshot)  # §6 step 3 wants a snapshot >= U
        self.assertTrue(all(isinstance(level, list) and len(level) == 2
                            and all(isinstance(text, str) and len(text.split(".")[1]) == 8
                                    for text in level) for level in event["b"] + event["a"]))

    def test_removed_levels_have_zero_quantity(self):
        recorder = self.subscribed("ethbtc@depth@100ms")
        old_bids = dict(self.market.book("ETHBTC")[0])
        self.step()
        new_bids = dict(self.market.book("ETHBTC")[0])
        event = recorder.wait_event("ethbtc@depth@100ms", update_id(self.market, "ETHBTC"))[0]
        gone = {f"{price:.8f}" for price in old_bids.keys() - new_bids.keys()}
        self.assertTrue(gone)
        self.assertEqual({p for p, q in event["b"] if q == "0.00000000"}, gone)

    def test_100ms_and_1000ms_streams_are_paced(self):
        recorder = self.subscribed("ethbtc@depth@100ms", "ethbtc@depth")
        started = time.monotonic()
        for _ in range(6):  # without flush(): the server's own pacing
            self.market.step()
            time.sleep(0.15)
        elapsed = time.monotonic() - started
        final = update_id(self.market, "ETHBTC")
        fast = recorder.wait_event("ethbtc@depth@100ms", final)
        slow = recorder.wait_event("ethbtc@depth", final, timeout=3)
        self.assertGreaterEqual(len(fast), 4)
        self.assertLessEqual(len(slow), 2 + int(elapsed))  # 2 when stepping took < 1 s
        for events in (fast, slow):
            for before, after in zip(events, events[1:]):
                self.assertEqual(after["U"], before["u"] + 1)

    def test_same_steps_give_the_same_events(self):
        def run() -> list[Any]:
            market = Market(seed=11, clock=lambda: FIXED_NOW)
            with FakeStreams(market) as streams:
                with connect(streams.url + "/stream?streams=ethbtc@depth@100ms/"
                             "ethbtc@bookTicker", max_size=None) as connection:
                    messages = []
                    for _ in range(3):
                        market.step()
                        streams.flush()
                        messages += [receive(connection), receive(connection)]
                    return messages

        first = run()
        self.assertEqual([m["stream"] for m in first],
                         ["ethbtc@depth@100ms", "ethbtc@bookTicker"] * 3)
        self.assertEqual(first, run())


class SteppedDepthTest(StreamsTestCase):
    """Several steps between two polls: one event covers them all.  Only flush()
    polls here, so the steps land exactly where the test puts them."""

    options = {"poll_interval": 3600.0}

    def test_snapshots_taken_between_two_events_chain_on(self):
        recorder = self.subscribed(*DiffDepthTest.STREAMS)
        snapshots = []
        for _ in range(4):  # each snapshot is of a state no event ends at
            self.market.step()
            snapshots.append({symbol: self.market.depth(symbol, 5000)
                              for symbol in DiffDepthTest.STREAMS.values()})
        self.market.step()
        self.streams.flush()
        for stream, symbol in DiffDepthTest.STREAMS.items():
            events = recorder.wait_event(stream, update_id(self.market, symbol))
            self.assertEqual(len(events), 1)
            book_bids, book_asks = self.market.book(symbol)
            for index, snapshot in enumerate(snapshot[symbol] for snapshot in snapshots):
                with self.subTest(stream=stream, snapshot=index):
                    last, bids, asks = rebuild(events, snapshot)
                    self.assertEqual(last, events[0]["u"])
                    self.assert_known_levels(bids, book_bids, snapshot["bids"], operator.ge)
                    self.assert_known_levels(asks, book_asks, snapshot["asks"], operator.le)

    def test_one_event_names_each_level_that_changed_in_between(self):
        streams = {"btcusdt@depth": "BTCUSDT", "ethbtc@depth": "ETHBTC"}
        recorder = self.subscribed(*streams)
        books = {symbol: [self.market.book(symbol)] for symbol in streams.values()}
        for _ in range(5):
            self.market.step()
            for symbol, states in books.items():
                states.append(self.market.book(symbol))
        self.streams.flush()
        for stream, symbol in streams.items():
            event = recorder.wait_event(stream, update_id(self.market, symbol))[0]
            for index, side in enumerate("ba"):
                with self.subTest(stream=stream, side=side):
                    states = [dict(book[index]) for book in books[symbol]]
                    changed = {price for before, after in zip(states, states[1:])
                               for price in before.keys() | after.keys()
                               if before.get(price) != after.get(price)}
                    self.assertEqual({Decimal(price) for price, _ in event[side]}, changed)
                    self.assertEqual({Decimal(price): Decimal(qty) for price, qty in event[side]},
                                     {price: states[-1].get(price, Decimal(0))
                                      for price in changed})


class OtherStreamsTest(StreamsTestCase):
    """bookTicker, aggTrade and the names that carry nothing."""

    def test_subscribe_reply_and_book_ticker_in_the_combined_wrapper(self):
        recorder = self.recorder()
        recorder.client.book_ticker("BTCUSDT", id=7)
        self.assertEqual(recorder.reply(7), {"result": None, "id": 7})
        recorder.client.list_subscribe(id=8)
        self.assertEqual(recorder.reply(8), {"result": ["btcusdt@bookTicker"], "id": 8})
        self.step()
        message = recorder.wait(lambda m: "stream" in m)
        self.assertEqual(set(message), {"stream", "data"})
        self.assertEqual(message["stream"], "btcusdt@bookTicker")
        ticker = self.market.book_ticker(symbol="BTCUSDT")
        self.assertEqual(message["data"], {
            "u": update_id(self.market, "BTCUSDT"), "s": "BTCUSDT",
            "b": ticker["bidPrice"], "B": ticker["bidQty"],
            "a": ticker["askPrice"], "A": ticker["askQty"]})

    def test_connector_helpers_subscribe_to_served_names(self):
        recorder = self.recorder()
        recorder.client.diff_book_depth("ETHBTC", id=1)  # speed 1000: ethbtc@depth@1000ms
        recorder.client.partial_book_depth("ETHBTC", id=2)  # depth5@1000ms: silent here
        recorder.client.agg_trade("ETHBTC", id=3)
        for request_id in (1, 2, 3):
            self.assertEqual(recorder.reply(request_id)["result"], None)
        self.step()
        recorder.wait_event("ethbtc@depth@1000ms", update_id(self.market, "ETHBTC"))

    def test_well_formed_names_without_data_are_accepted_and_silent(self):
        recorder = self.subscribed("btcusdt@trade", "!miniTicker@arr", "BTCUSDT@depth",
                                   "nosuchcoin@depth", "btcusdt@kline_1m")
        self.step()
        time.sleep(0.2)
        self.assertEqual(recorder.received(), [{"result": None, "id": 1}])

    def test_agg_trades_follow_the_trade_history(self):
        if not hasattr(self.market, "agg_trade_history"):
            self.skipTest("this Market has no agg_trade_history yet")
        recorder = self.subscribed("btcusdt@aggTrade")
        start = self.market.agg_trade_history("BTCUSDT")
        start_id = start[-1]["a"] if start else -1
        self.step(2)
        expected = [t for t in self.market.agg_trade_history("BTCUSDT") if t["a"] > start_id]
        self.assertTrue(expected)
        events = wait_until(lambda: len(got := recorder.events("btcusdt@aggTrade"))
                            >= len(expected) and got, timeout=5)
        self.assertEqual([e["a"] for e in events], [t["a"] for t in expected])
        for event, trade in zip(events, expected):
            self.assertEqual(event["e"], "aggTrade")
            self.assertEqual(event["s"], "BTCUSDT")
            self.assertEqual({k: event[k] for k in "pqflTm"}, {k: trade[k] for k in "pqflTm"})


class FaultTest(StreamsTestCase):
    """Each fault, as the connector's callbacks see it."""

    STREAM = "ethbtc@depth@100ms"

    def test_drop_ends_the_reader_with_on_error(self):
        recorder = self.subscribed(self.STREAM)
        self.assertEqual(self.streams.drop_connections(), 1)
        wait_until(lambda: recorder.errors and not recorder.alive(), timeout=5)
        self.assertFalse(recorder.closed.is_set())
        wait_until(lambda: self.streams.connections_open == 0, timeout=5)

    def test_close_ends_the_reader_with_on_close(self):
        recorder = self.subscribed(self.STREAM)
        self.assertEqual(self.streams.close_connections(), 1)
        self.assertTrue(recorder.closed.wait(5))
        wait_until(lambda: not recorder.alive(), timeout=5)
        self.assertEqual(recorder.errors, [])
        self.assertEqual(self.streams.connections_open, 0)

    def test_silence_sends_nothing_and_keeps_the_connection(self):
        recorder = self.subscribed(self.STREAM)
        self.step()
        first = recorder.wait_event(self.STREAM, update_id(self.market, "ETHBTC"))[-1]
        self.streams.silence(0.8)
        self.step(2)  # flush() does nothing while silent
        time.sleep(0.4)
        self.assertEqual(len(recorder.events(self.STREAM)), 1)
        self.assertTrue(recorder.alive())
        self.assertEqual(self.streams.connections_open, 1)
        recorder.client.list_subscribe(id=2)  # replies still come
        self.assertEqual(recorder.reply(2)["result"], [self.STREAM])
        events = recorder.wait_event(self.STREAM, update_id(self.market, "ETHBTC"), timeout=3)
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["U"], first["u"] + 1)  # one event covers the silence

    def test_skip_leaves_a_gap(self):
        recorder = self.subscribed(self.STREAM)
        self.step()
        snapshot = self.market.depth("ETHBTC", 5000)
        self.streams.skip_next_event("ETHBTC")
        self.step(2)
        events = recorder.wait_event(self.STREAM, update_id(self.market, "ETHBTC"))
        self.assertEqual(len(events), 2)
        self.assertGreater(events[1]["U"], events[0]["u"] + 1)
        with self.assertRaisesRegex(AssertionError, "gap"):
            rebuild(events, snapshot)
        with self.assertRaises(ValueError):
            self.streams.skip_next_event("BTCUSDT")  # nobody subscribed to its depth

    def test_swap_delivers_out_of_order(self):
        recorder = self.subscribed(self.STREAM)
        self.step()
        self.streams.swap_next_events("ETHBTC")
        self.step()
        middle = update_id(self.market, "ETHBTC")
        self.step()
        events = recorder.wait_event(self.STREAM, middle)
        self.assertEqual(len(events), 3)
        self.assertEqual(events[2]["u"], middle)
        self.assertGreater(events[1]["U"], events[0]["u"] + 1)  # looks like a gap...
        self.assertEqual(events[1]["U"], events[2]["u"] + 1)  # ...the late one fills it
        self.assertLess(events[2]["u"], events[1]["U"])

    def test_server_shutdown_event_then_close(self):
        recorder = self.subscribed(self.STREAM)
        self.assertEqual(self.streams.server_shutdown(), 1)
        message = recorder.wait(lambda m: m.get("stream") == "!serverShutdown")
        self.assertEqual(message, {"stream": "!serverShutdown",
                                   "data": {"e": "serverShutdown",
                                            "E": int(FIXED_NOW * 1000)}})
        self.assertTrue(recorder.closed.wait(5))
        wait_until(lambda: not recorder.alive(), timeout=5)

    def test_stop_closes_clients_promptly(self):
        recorder = self.subscribed(self.STREAM)
        started = time.monotonic()
        self.streams.stop()
        self.assertLess(time.monotonic() - started, 3)
        self.assertTrue(recorder.closed.wait(5))

    def test_counters(self):
        recorder = self.subscribed(self.STREAM)
        self.step()
        recorder.wait_event(self.STREAM, update_id(self.market, "ETHBTC"))
        self.assertEqual(self.streams.connections_accepted, 1)
        self.assertEqual(self.streams.connections_open, 1)
        self.assertEqual(self.streams.messages_sent, 2)  # the reply and one event
        self.assertEqual(self.streams.subscriptions(), [[self.STREAM]])


class PingTest(StreamsTestCase):
    """Server pings; the connector's pongs keep the connection."""

    ping_interval = 0.5

    def test_server_pings(self):
        recorder = self.subscribed("ethbtc@bookTicker")
        wait_until(lambda: recorder.pings >= 1, timeout=3)
        time.sleep(0.2)
        self.assertTrue(recorder.alive())


class ProtocolTest(StreamsTestCase):
    """Paths, control-message errors and Binance's limits, on a plain websocket."""

    def test_raw_path_sends_bare_payloads(self):
        connection = self.raw("/ws/ethbtc@bookTicker")
        self.step()
        message = receive(connection)
        self.assertEqual(set(message), {"u", "s", "b", "B", "a", "A"})

    def test_url_streams_and_microseconds(self):
        connection = self.raw("/stream?streams=ethbtc@depth@100ms&timeUnit=MICROSECOND")
        self.step()
        message = receive(connection)
        self.assertEqual(message["stream"], "ethbtc@depth@100ms")
        self.assertEqual(message["data"]["E"], int(FIXED_NOW * 1_000_000))

    def test_combined_property(self):
        connection = self.raw("/stream")
        send(connection, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1})
        self.assertEqual(receive(connection), {"result": True, "id": 1})
        send(connection, {"method": "SET_PROPERTY", "params": ["combined", False], "id": 2})
        self.assertEqual(receive(connection), {"result": None, "id": 2})
        send(connection, {"method": "SET_PROPERTY", "params": ["combined", "no"], "id": 3})
        self.assertEqual(receive(connection)["error"]["code"], 1)
        send(connection, {"method": "SUBSCRIBE", "params": ["ethbtc@bookTicker"], "id": 4})
        self.assertEqual(receive(connection), {"result": None, "id": 4})
        self.step()
        self.assertEqual(receive(connection)["s"], "ETHBTC")

    def test_bad_requests_get_binance_errors(self):
        connection = self.raw("/stream")
        send(connection, "{not json")
        self.assertEqual(receive(connection)["error"]["code"], 3)
        send(connection, {"method": "PUBLISH", "params": [], "id": 5})
        answer = receive(connection)
        self.assertEqual(answer["error"]["code"], 2)
        self.assertIn("unknown variant `PUBLISH`", answer["error"]["msg"])
        self.assertEqual(answer["id"], 5)
        send(connection, {"params": [], "id": 6})
        self.assertIn("missing field `method`", receive(connection)["error"]["msg"])
        send(connection, {"method": "LIST_SUBSCRIPTIONS", "id": [1]})
        self.assertEqual(receive(connection)["error"]["code"], 2)

    def test_malformed_stream_is_refused_and_closed(self):
        connection = self.raw("/stream")
        send(connection, {"method": "SUBSCRIBE", "params": ["@@@bad###"], "id": 9})
        self.assertEqual(receive(connection), {
            "error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 9})
        self.assertEqual(close_code(connection), 1008)

    def test_at_most_1024_streams(self):
        connection = self.raw("/stream")
        names = [f"sym{i}usdt@trade" for i in range(1025)]
        send(connection, {"method": "SUBSCRIBE", "params": names, "id": 1})
        self.assertEqual(receive(connection),
                         {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 1})
        send(connection, {"method": "SUBSCRIBE", "params": names[:1024], "id": 2})
        self.assertEqual(receive(connection), {"result": None, "id": 2})
        send(connection, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        self.assertEqual(receive(connection)["result"], names[:1024])

    def test_more_than_5_messages_a_second_disconnects(self):
        connection = self.raw("/stream")
        for request_id in range(6):
            send(connection, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        self.assertEqual(close_code(connection), 1008)

    def test_max_incoming_per_second_reports_the_busiest_connection(self):
        connection = self.raw("/stream")
        for request_id in range(3):
            send(connection, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        for _ in range(3):
            receive(connection)
        self.assertEqual(self.streams.max_incoming_per_second(), 3)
        hasty = self.raw("/stream")
        for request_id in range(6):
            send(hasty, {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        self.assertEqual(close_code(hasty), 1008)
        wait_until(lambda: self.streams.connections_open == 1, timeout=5)
        self.assertEqual(self.streams.max_incoming_per_second(), 6)  # closed ones count

    def test_ticker_array_in_microseconds(self):
        connection = self.raw(f"/ws/{TICKERS}?timeUnit=MICROSECOND")
        self.step()
        push = receive(connection)
        self.assertEqual({(e["E"], e["O"], e["C"]) for e in push},
                         {(FIXED_MS * 1000, (FIXED_MS - 86_400_000) * 1000, FIXED_MS * 1000)})

    def test_unsubscribe_stops_the_data(self):
        connection = self.raw("/stream")
        send(connection, {"method": "SUBSCRIBE", "params": ["ethbtc@bookTicker"], "id": 1})
        receive(connection)
        send(connection, {"method": "UNSUBSCRIBE", "params": ["ethbtc@bookTicker"], "id": 2})
        self.assertEqual(receive(connection), {"result": None, "id": 2})
        self.step()
        with self.assertRaises(TimeoutError):
            connection.recv(timeout=0.2)

    def test_handshake_refusals(self):
        for path, status in (("/nope", 404), ("/stream?streams=@@bad", 400),
                             ("/ws/a%20b@depth", 400)):
            with self.subTest(path=path), self.assertRaises(InvalidStatus) as caught:
                connect(self.streams.url + path, open_timeout=5)
            self.assertEqual(caught.exception.response.status_code, status)


class TickerArrayTest(StreamsTestCase):
    """`!ticker_1d@arr`: the changed symbols' 24 h figures, as REST has them."""

    options = {"ticker_period": 3600.0}  # after the first, pushes come from flush()

    def pushes(self, recorder: Recorder, count: int) -> list[list[dict]]:
        """The first `count` arrays of the stream, waiting for them."""
        return wait_until(lambda: len(got := recorder.events(TICKERS)) >= count and got,
                          timeout=5, interval=0.01)[:count]

    def test_pushes_only_changed_symbols_with_the_rest_figures(self):
        recorder = self.recorder()
        recorder.client.rolling_window_ticker_all_symbols("1d", id=1)
        self.assertEqual(recorder.reply(1), {"result": None, "id": 1})
        before = rest_tickers(self.market)
        self.step()
        after = rest_tickers(self.market)
        changed = window_changed(before, after)
        self.assertLess(0, len(changed))
        self.assertLess(len(changed), len(after))  # BREAK and HALT symbols do not trade
        push = self.pushes(recorder, 1)[0]
        self.assertEqual(push, [window_event(after[symbol]) for symbol in changed])
        btcusdt = after["BTCUSDT"]
        self.market.set_ticker("BTCUSDT", volume=btcusdt["volume"], count=btcusdt["count"])
        self.market.set_ticker("ETHBTC", volume="123.5")  # only this one changes
        self.streams.flush()
        second = self.pushes(recorder, 2)[1]
        self.assertEqual(second, [window_event(self.market.ticker_24hr(symbol="ETHBTC"))])
        self.assertEqual(second[0]["v"], "123.50000000")

    def test_dropped_pushes_leave_the_symbol_out_until_it_moves(self):
        recorder = self.subscribed(TICKERS)
        self.streams.drop_ticker_pushes("ETHBTC", 2)
        self.step(2)
        for push in self.pushes(recorder, 2):
            symbols = [event["s"] for event in push]
            self.assertNotIn("ETHBTC", symbols)
            self.assertIn("BTCUSDT", symbols)
        self.market.set_ticker("BTCUSDT", volume="1")
        self.streams.flush()
        # ETHBTC has not changed since the push it missed: not sent again.
        self.assertEqual([event["s"] for event in self.pushes(recorder, 3)[2]], ["BTCUSDT"])
        self.step()
        fourth = {event["s"]: event for event in self.pushes(recorder, 4)[3]}
        self.assertEqual(fourth["ETHBTC"],
                         window_event(self.market.ticker_24hr(symbol="ETHBTC")))
        for symbol, count in (("NOSUCHCOIN", 1), ("ETHBTC", 0)):
            with self.subTest(symbol=symbol, count=count), self.assertRaises(ValueError):
                self.streams.drop_ticker_pushes(symbol, count)


class TickerPeriodTest(StreamsTestCase):
    """Without flush(), `!ticker_1d@arr` pushes on its own every ticker_period."""

    options = {"ticker_period": 0.05}

    def test_pushes_follow_the_market_without_flush(self):
        recorder = self.subscribed(TICKERS)
        for count in (1, 2):
            self.market.step()
            wait_until(lambda n=count: len(recorder.events(TICKERS)) == n, timeout=5,
                       interval=0.01)
        self.assertEqual(recorder.events(TICKERS)[-1][0],
                         window_event(self.market.ticker_24hr(symbol="ETHBTC")))


class AggTradeFaultTest(StreamsTestCase):
    """A skipped or duplicated aggTrade event, against the REST history."""

    STREAM = "btcusdt@aggTrade"

    def new_trades(self, start_id: int) -> list[int]:
        """Ids of the trades after `start_id` in the market's history."""
        return [t["a"] for t in self.market.agg_trade_history("BTCUSDT", from_id=start_id + 1)]

    def received(self, recorder: Recorder, last_id: int) -> list[dict]:
        """The stream's events once the one with id `last_id` has arrived."""
        return wait_until(lambda: (events := recorder.events(self.STREAM))
                          and events[-1]["a"] == last_id and events, timeout=5, interval=0.01)

    def faulted(self, fault: Callable[[str], None]) -> tuple[list[int], list[dict]]:
        """With `fault` on BTCUSDT's next trade and two steps: the ids the market traded,
        and the events the stream sent for them."""
        recorder = self.subscribed(self.STREAM)
        start_id = self.market.agg_trade_history("BTCUSDT")[-1]["a"]
        fault("BTCUSDT")
        self.step(2)
        expected = self.new_trades(start_id)
        return expected, self.received(recorder, expected[-1])

    def test_skipped_trade_is_only_in_rest(self):
        expected, events = self.faulted(self.streams.skip_next_agg_trade)
        self.assertEqual([e["a"] for e in events], expected[1:])
        self.assertEqual(self.market.agg_trades("BTCUSDT", from_id=expected[0])[0]["a"],
                         expected[0])

    def test_duplicated_trade_comes_twice(self):
        expected, events = self.faulted(self.streams.duplicate_next_agg_trade)
        self.assertEqual([e["a"] for e in events], expected[:1] + expected)
        self.assertEqual(events[0], events[1])

    def test_faults_need_a_subscribed_stream(self):
        self.subscribed(self.STREAM)
        for fault in (self.streams.skip_next_agg_trade, self.streams.duplicate_next_agg_trade):
            with self.subTest(fault=fault.__name__), self.assertRaises(ValueError):
                fault("ETHBTC")


class ConnectionLimitTest(StreamsTestCase):
    """Binance's limit on connection attempts per IP, lowered to 3 a minute."""

    options = {"max_attempts": 3, "attempts_window": 60.0}

    def test_attempts_past_the_limit_get_429(self):
        for _ in range(3):
            self.raw("/ws")
        for refused in (1, 2):
            with self.assertRaises(InvalidStatus) as caught:
                connect(self.streams.url + "/ws", open_timeout=5)
            self.assertEqual(caught.exception.response.status_code, 429)
            self.assertEqual(self.streams.connections_refused, refused)
        self.assertEqual(self.streams.connections_accepted, 3)
        self.assertEqual(self.streams.connections_open, 3)


class AttemptWindowTest(StreamsTestCase):
    """Attempts older than the window no longer count."""

    options = {"max_attempts": 1, "attempts_window": 0.3}

    def test_a_new_window_admits_again(self):
        self.raw("/ws")
        with self.assertRaises(InvalidStatus):
            connect(self.streams.url + "/ws", open_timeout=5)
        time.sleep(0.35)  # the window itself is what is tested: both attempts age out
        self.raw("/ws")
        self.assertEqual((self.streams.connections_accepted,
                          self.streams.connections_refused), (2, 1))


class CommandLineTest(unittest.TestCase):
    """`python -m fake_binance --ws-port 0` serves streams of the stepping market."""

    def test_ws_port_serves_the_streams(self):
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "fake_binance", "--port", "0", "--ws-port", "0",
             "--tick", "0.05"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(process.kill)
        self.addCleanup(process.wait)
        self.assertIn("http://127.0.0.1:", process.stdout.readline())
        url = re.search(r"ws://127\.0\.0\.1:\d+", process.stdout.readline())
        self.assertIsNotNone(url)
        with connect(url.group(0) + "/ws/ethbtc@depth@100ms", open_timeout=5) as connection:
            first, second = receive(connection), receive(connection)
        self.assertEqual(second["U"], first["u"] + 1)
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=5)[1]
        self.assertEqual((process.returncode, "Traceback" in stderr), (0, False), stderr)


if __name__ == "__main__":
    unittest.main()
