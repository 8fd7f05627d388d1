"""The stream connections' supervision and the publisher's pacing, in real time.

These run real threads against stand-ins for binance-connector's client and
measure pacing on the wall clock, so they live with the integration tests.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import unittest

import msgspec

from binance_exporter.binance.stream_feed import StreamFeed
from binance_exporter.binance.websocket import StreamSupervisor
from binance_exporter.jobs.republisher import PUBLISH_INTERVAL, PUBLISH_SHARE, Republisher
from tests.support import wait_until


class TimedRefresher:
    """Stands in for the quotes job: records when each publish started."""

    def __init__(self, takes: float, busy: bool = True) -> None:
        self.takes = takes
        self.busy = busy  # spends `takes` on the CPU; else waits it out asleep
        self.started: list[float] = []

    def gaps(self) -> list[float]:
        """Seconds from each publish's start to the next's."""
        return [b - a for a, b in zip(self.started, self.started[1:])]

    def refresh_books(self) -> None:
        """A publish that lasts `takes` seconds."""
        self.started.append(time.monotonic())
        if not self.busy:
            time.sleep(self.takes)
            return
        start = time.thread_time()
        while time.thread_time() - start < self.takes:
            pass


class RepublisherTest(unittest.TestCase):
    """Publishes follow changes, never more often than the interval and the share allow."""

    def run_for(self, refresher: TimedRefresher, seconds: float, changing: bool) -> None:
        """Run a Republisher for `seconds`, with the books changing all along or never."""
        republisher = Republisher()
        stop = threading.Event()
        thread = threading.Thread(target=republisher.run, args=(refresher.refresh_books, stop),
                                  daemon=True)
        thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if changing:
                republisher.changed()
            time.sleep(0.005)
        stop.set()
        thread.join(5)
        self.assertFalse(thread.is_alive())

    def test_nothing_changed_nothing_published(self):
        refresher = TimedRefresher(0)
        self.run_for(refresher, 0.3, changing=False)
        self.assertEqual(refresher.started, [])

    def test_quick_publishes_are_spaced_by_the_interval(self):
        refresher = TimedRefresher(0)
        self.run_for(refresher, 0.5, changing=True)
        self.assertGreaterEqual(len(refresher.started), 1)
        gaps = refresher.gaps()
        self.assertTrue(all(gap >= PUBLISH_INTERVAL * 0.99 for gap in gaps), gaps)

    def test_slow_publishes_keep_their_share(self):
        refresher = TimedRefresher(0.05)  # 50 ms of CPU each, then the rest of the share
        self.run_for(refresher, 1.0, changing=True)
        gaps = refresher.gaps()
        self.assertGreaterEqual(len(refresher.started), 2)
        self.assertTrue(all(gap >= 0.05 / PUBLISH_SHARE * 0.99 for gap in gaps), gaps)

    def test_a_publish_waiting_for_the_gil_costs_only_its_cpu(self):
        # 50 ms of waiting and no CPU: the next starts on the interval, not a share later.
        refresher = TimedRefresher(0.05, busy=False)
        self.run_for(refresher, 1.0, changing=True)
        gaps = refresher.gaps()
        self.assertGreaterEqual(len(gaps), 3)
        self.assertTrue(all(gap >= PUBLISH_INTERVAL * 0.99 for gap in gaps), gaps)
        self.assertLess(statistics.median(gaps), 0.05 / PUBLISH_SHARE * 0.9, gaps)


def QUICK(_failures: int) -> float:  # pylint: disable=invalid-name
    """No back-off worth waiting for in tests of the reconnect logic itself."""
    return 0.01


class FakeManager:
    """Stands in for the connector's socket manager thread."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        """Whether the reader thread runs."""
        return self.alive


class FakeClient:
    """Stands in for SpotWebsocketStreamClient: records, and lets tests push messages."""

    instances: list["FakeClient"] = []
    refuse = 0
    silent = False  # True: SUBSCRIBE is never acknowledged

    def __init__(self, **kwargs) -> None:
        if FakeClient.refuse:
            FakeClient.refuse -= 1
            raise ConnectionRefusedError("refused")
        self.kwargs = kwargs
        self.subscribed: list[list[str]] = []
        self.unsubscribed: list[list[str]] = []
        self.socket_manager = FakeManager()
        self.stopped = False
        FakeClient.instances.append(self)

    def subscribe(self, streams, id=None):  # pylint: disable=redefined-builtin
        """Record a SUBSCRIBE and acknowledge it, as Binance does."""
        self.subscribed.append(list(streams))
        if not FakeClient.silent:
            self.push({"result": None, "id": id})

    def unsubscribe(self, streams, id=None):  # pylint: disable=redefined-builtin
        """Record an UNSUBSCRIBE and acknowledge it."""
        self.unsubscribed.append(list(streams))
        self.push({"result": None, "id": id})

    def stop(self):
        """Record the stop."""
        self.stopped = True

    def push(self, message: dict) -> None:
        """Deliver a message as the reader thread would."""
        self.kwargs["on_message"](self.socket_manager, json.dumps(message))


class SupervisorTest(unittest.TestCase):
    """Reconnection logic against a stand-in client."""

    def setUp(self) -> None:
        FakeClient.instances = []
        FakeClient.refuse = 0
        self.data: list[tuple[str, object]] = []
        self.connects = 0

    def supervisor(self, watchdog: float = 5.0) -> StreamSupervisor:
        """A started supervisor over FakeClient, stopped at cleanup."""
        def on_connect(_streams):
            self.connects += 1

        supervisor = StreamSupervisor("ws://127.0.0.1:1", ["btcusdt@depth@100ms"],
                                      lambda s, d: self.data.append((s, msgspec.json.decode(d))),
                                      on_connect,
                                      watchdog=watchdog, client_factory=FakeClient,
                                      backoff=QUICK)
        supervisor.start()
        self.addCleanup(supervisor.stop)
        return supervisor

    def test_subscribes_and_delivers_combined_messages(self):
        supervisor = self.supervisor()
        wait_until(lambda: FakeClient.instances, timeout=5)
        client = FakeClient.instances[0]
        self.assertEqual(client.subscribed, [["btcusdt@depth@100ms"]])
        self.assertTrue(client.kwargs["is_combined"])
        client.push({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate"}})
        self.assertEqual(self.data, [("btcusdt@depth@100ms", {"e": "depthUpdate"})])
        stats = supervisor.stats()
        self.assertTrue(stats.connected)
        self.assertEqual(stats.messages, {"depth@100ms": 1})
        self.assertEqual(self.connects, 1)

    def test_reconnects_when_the_reader_dies(self):
        supervisor = self.supervisor()
        wait_until(lambda: FakeClient.instances, timeout=5)
        FakeClient.instances[0].socket_manager.alive = False
        wait_until(lambda: len(FakeClient.instances) == 2, timeout=5)
        self.assertTrue(FakeClient.instances[0].stopped)
        wait_until(lambda: supervisor.stats().reconnects == 1, timeout=5)
        self.assertEqual(self.connects, 2)

    def test_reconnects_on_error_close_silence_and_shutdown_notice(self):
        supervisor = self.supervisor(watchdog=0.5)
        wait_until(lambda: FakeClient.instances, timeout=5)
        FakeClient.instances[0].kwargs["on_error"](None, OSError("reset"))
        wait_until(lambda: len(FakeClient.instances) == 2, timeout=5)
        FakeClient.instances[1].kwargs["on_close"](None)
        wait_until(lambda: len(FakeClient.instances) == 3, timeout=5)
        FakeClient.instances[2].push({"stream": "!serverShutdown",
                                      "data": {"e": "serverShutdown", "E": 1}})
        wait_until(lambda: len(FakeClient.instances) == 4, timeout=5)
        # silence: no message for longer than the watchdog
        wait_until(lambda: len(FakeClient.instances) == 5, timeout=5)
        self.assertGreaterEqual(supervisor.stats().reconnects, 4)

    def test_junk_frames_keep_nothing_alive(self):
        disconnects: list[int] = []
        supervisor = StreamSupervisor("ws://127.0.0.1:1", ["btcusdt@depth@100ms"],
                                      lambda s, d: None, watchdog=0.5, client_factory=FakeClient,
                                      backoff=QUICK,
                                      on_disconnect=lambda streams: disconnects.append(1))
        supervisor.start()
        self.addCleanup(supervisor.stop)
        wait_until(lambda: supervisor.stats().connected, timeout=5)
        client = FakeClient.instances[0]
        with self.assertLogs("binance_exporter.binance.websocket", "WARNING") as logs:
            for _ in range(60):  # junk, and data of a stream never subscribed here
                client.kwargs["on_message"](client.socket_manager, "not json")
                client.push({"stream": "ethbtc@depth@100ms", "data": {}})
                if len(FakeClient.instances) > 1:
                    break
                time.sleep(0.05)
        self.assertEqual(len(FakeClient.instances), 2)
        self.assertEqual(disconnects, [1])
        self.assertIn("no valid stream message", "".join(logs.output))
        self.assertEqual(supervisor.stats().messages, {})

    def test_unacknowledged_subscriptions_are_not_live(self):
        FakeClient.silent = True
        self.addCleanup(setattr, FakeClient, "silent", False)
        supervisor = self.supervisor()
        wait_until(lambda: FakeClient.instances, timeout=5)
        FakeClient.instances[0].push({"stream": "btcusdt@depth@100ms", "data": {}})
        self.assertFalse(supervisor.stats().connected)
        FakeClient.instances[0].push({"result": None, "id": 1})
        self.assertTrue(supervisor.stats().connected)

    def test_stopping_is_not_reported_as_a_lost_connection(self):
        supervisor = self.supervisor()
        wait_until(lambda: supervisor.stats().connected, timeout=5)
        with self.assertNoLogs("binance_exporter.binance.websocket", "WARNING"):
            supervisor.stop()
        self.assertTrue(FakeClient.instances[0].stopped)

    def test_refused_connections_are_retried(self):
        FakeClient.refuse = 1
        with self.assertLogs("binance_exporter.binance.websocket", "WARNING"):
            self.supervisor()
            wait_until(lambda: FakeClient.instances, timeout=5)

    def test_handler_errors_do_not_cost_the_connection(self):
        supervisor = StreamSupervisor("ws://x", ["a@depth"], lambda s, d: 1 / 0,
                                      client_factory=FakeClient)
        supervisor.start()
        self.addCleanup(supervisor.stop)
        wait_until(lambda: FakeClient.instances, timeout=5)
        with self.assertLogs("binance_exporter.binance.websocket", "ERROR"):
            FakeClient.instances[0].push({"stream": "a@depth", "data": {}})
        time.sleep(0.3)
        self.assertEqual(len(FakeClient.instances), 1)

    def test_too_many_streams_for_one_connection(self):
        with self.assertRaises(ValueError):
            StreamSupervisor("ws://x", ["s"] * 1025, lambda s, d: None)


class FeedTest(unittest.TestCase):
    """Connections follow the tracked set, 1024 streams each."""

    def setUp(self) -> None:
        FakeClient.instances = []
        FakeClient.refuse = 0

    def test_splits_and_only_reconnects_on_change(self):
        def factory(*args, **kwargs):
            return StreamSupervisor(*args, client_factory=FakeClient, backoff=QUICK, **kwargs)

        feed = StreamFeed("ws://x", lambda s, d: None, lambda streams: None,
                          supervisor_factory=factory)
        self.addCleanup(feed.stop)
        streams = [f"s{i}@depth@100ms" for i in range(1500)]
        feed.track(streams)
        wait_until(lambda: sum(len(s) for c in FakeClient.instances for s in c.subscribed)
                   == 1500, timeout=5)
        per_connection = [sum(len(s) for s in c.subscribed) for c in FakeClient.instances]
        self.assertEqual(sorted(per_connection), [476, 1024])
        self.assertTrue(all(len(s) <= 200 for c in FakeClient.instances for s in c.subscribed))
        self.assertEqual(sum(len(s) for c in FakeClient.instances for s in c.subscribed), 1500)
        feed.track(list(reversed(streams)))  # same set: nothing happens
        time.sleep(0.2)
        self.assertEqual(len(FakeClient.instances), 2)
        first = next(c for c in FakeClient.instances
                     if sum(len(s) for s in c.subscribed) == 1024)
        first.push({"stream": "s1@depth@100ms", "data": {}})
        # Fewer streams: the connection that carries them drops the rest with
        # UNSUBSCRIBE, without reconnecting, and the other one closes.
        kept = first.subscribed[0][:10]
        feed.track(kept)
        wait_until(lambda: sum(len(u) for u in first.unsubscribed) == 1014, timeout=5)
        self.assertEqual(len(FakeClient.instances), 2)
        self.assertFalse(first.stopped)
        self.assertTrue(all(len(u) <= 200 for u in first.unsubscribed))
        stats = feed.stats()
        self.assertEqual(stats.messages, {"depth@100ms": 1})
        wait_until(lambda: feed.stats().connected, timeout=5)
        # New streams join the open connection while it has room.
        feed.track(kept + ["x@bookTicker"])
        wait_until(lambda: ["x@bookTicker"] in first.subscribed, timeout=5)
        self.assertEqual(len(FakeClient.instances), 2)


if __name__ == "__main__":
    unittest.main()
