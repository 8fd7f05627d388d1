"""The streams one connection carries, and the control messages that change them.

Binance takes at most 5 incoming messages per second on a connection (pongs
included) and closes it past that, so every SUBSCRIBE and UNSUBSCRIBE of a
connection goes out at least SUBSCRIBE_GAP apart, whichever code path sends
it: at most 3 in any second. A change of streams while the connection is live
becomes UNSUBSCRIBE and SUBSCRIBE messages for only what left and what came.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from binance_exporter.binance.traffic import Traffic

MAX_STREAMS_PER_CONNECTION = 1024  # Binance's documented limit
SUBSCRIBE_BATCH = 200  # streams per control message
SUBSCRIBE_GAP = 0.35  # seconds between control messages


def _check(streams: list[str]) -> None:
    """Refuse more streams than one connection may carry."""
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")


class Subscriptions:
    """What one supervised connection carries, and what it is asked to carry."""

    def __init__(self, streams: list[str], traffic: Traffic, stop: threading.Event) -> None:
        _check(streams)
        self._traffic = traffic
        self._stop = stop
        self._lock = threading.Lock()
        self._target = list(streams)  # what `update` last asked for (any thread)
        self._changed = threading.Event()
        self.current = list(streams)  # subscribed on this connection (loop thread)
        self.wanted = frozenset(streams)  # whose data the reader takes
        self._next_id = 1  # of this connection's control messages
        self.control_at = -float("inf")  # monotonic time of the last control message

    def update(self, streams: list[str]) -> None:
        """Carry exactly `streams` from now on (any thread)."""
        _check(streams)
        with self._lock:
            self._target = list(streams)
        self._changed.set()

    def target(self) -> list[str]:
        """The streams asked for."""
        with self._lock:
            return list(self._target)

    @property
    def changed(self) -> bool:
        """True when the streams asked for may differ from those carried."""
        return self._changed.is_set()

    def fresh(self) -> list[str]:
        """A new connection carries what is asked for now; returns it."""
        with self._lock:
            self.current = list(self._target)
            self._changed.clear()
        self.wanted = frozenset(self.current)
        self._next_id = 1
        return list(self.current)

    def changes(self) -> tuple[list[str], list[str]]:
        """(streams that left, streams that came) since the last call; carried from now."""
        with self._lock:
            target = list(self._target)
            self._changed.clear()
        keep, had = set(target), set(self.current)
        gone = [s for s in self.current if s not in keep]
        new = [s for s in target if s not in had]
        self.current = target
        self.wanted = frozenset(target)  # data of a stream that left is ignored from now
        return gone, new

    def apply(self, client: Any, on_connect: Callable[[list[str]], None],
              on_disconnect: Callable[[list[str]], None]) -> None:
        """Make the live connection carry what was last asked for (loop thread).

        The streams that left are no longer live at once, then unsubscribed;
        those that came start over, then are subscribed.
        """
        gone, new = self.changes()
        if gone:
            on_disconnect(gone)
            self.send(client, "UNSUBSCRIBE", gone)
        if new:
            on_connect(new)
            self.send(client, "SUBSCRIBE", new)

    def send(self, client: Any, method: str, streams: list[str], fresh: bool = False) -> None:
        """SUBSCRIBE or UNSUBSCRIBE `streams` in batches, SUBSCRIBE_GAP apart (loop thread)."""
        batches = {}
        for start in range(0, len(streams), SUBSCRIBE_BATCH):
            batches[self._next_id] = streams[start:start + SUBSCRIBE_BATCH]
            self._next_id += 1
        # Known before the first message leaves: its reply may come at once.
        expected = {i: (part if method == "SUBSCRIBE" else []) for i, part in batches.items()}
        if fresh:
            self._traffic.subscribing(expected)
        else:
            self._traffic.expect(expected)
        send = client.subscribe if method == "SUBSCRIBE" else client.unsubscribe
        for message_id, part in batches.items():
            if self._stop.wait(max(0.0, self.control_at + SUBSCRIBE_GAP - time.monotonic())):
                return
            send(part, id=message_id)
            self.control_at = time.monotonic()
