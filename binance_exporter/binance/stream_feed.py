"""The market-stream connections for a changing set of streams, 1024 streams each.

Binance carries at most 1024 streams on one connection; `StreamFeed` spreads
the streams the books need over as many supervised connections
(`websocket.StreamSupervisor`) and adds their counters up for the metrics,
keeping those of connections it closed. When the streams change, each stream
stays on the connection that carries it: a connection drops what left and
takes what came, while room lasts, with UNSUBSCRIBE and SUBSCRIBE, without
reconnecting; streams beyond the room open new connections, and a connection
left with nothing closes. So a new ranking costs the few streams it changes,
not a reconnect of the whole market.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Callable

import msgspec

from binance_exporter.binance.subscriptions import MAX_STREAMS_PER_CONNECTION
from binance_exporter.binance.traffic import StreamStats
from binance_exporter.binance.websocket import ConnectionAttempts, StreamSupervisor


def _placed(current: list[list[str]], streams: list[str]) -> list[list[str]]:
    """Each connection's next streams: what it keeps, then what came, while room lasts;
    then new connections for the rest (some may be left empty, to close)."""
    wanted = set(streams)
    parts = [[s for s in part if s in wanted] for part in current]
    carried = {s for part in parts for s in part}
    came = [s for s in streams if s not in carried]
    for part in parts:
        room = MAX_STREAMS_PER_CONNECTION - len(part)
        part.extend(came[:room])
        came = came[room:]
    parts += [came[start:start + MAX_STREAMS_PER_CONNECTION]
              for start in range(0, len(came), MAX_STREAMS_PER_CONNECTION)]
    return parts


class StreamFeed:  # pylint: disable=too-many-instance-attributes
    """The supervised connections for a changing set of streams (1024 per connection)."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        url: str,
        on_data: Callable[[str, msgspec.Raw], None],
        on_connect: Callable[[list[str]], None],
        watchdog: float = 10.0,
        supervisor_factory: Callable[..., StreamSupervisor] = StreamSupervisor,
        on_raw: Callable[[str], None] | None = None,
        on_disconnect: Callable[[list[str]], None] = lambda streams: None,
        on_live: Callable[[list[str]], None] = lambda streams: None,
    ) -> None:
        self.url = url
        self.on_data = on_data
        # Handed to every connection, each called with the streams concerned.
        self.callbacks = {"on_connect": on_connect, "on_disconnect": on_disconnect,
                          "on_live": on_live}
        self.watchdog = watchdog
        self.on_raw = on_raw
        self._factory = supervisor_factory
        self._attempts = ConnectionAttempts()  # one budget for every connection
        self._lock = threading.Lock()
        self._streams: list[str] = []
        self._supervisors: list[StreamSupervisor] = []
        self._closing: list[StreamSupervisor] = []  # still counted until closed
        self._retired = StreamStats(False, 0, {}, None)  # counters of closed connections

    def track(self, streams: list[str]) -> None:
        """Follow exactly `streams`, moving as few of them as possible."""
        with self._lock:
            if sorted(streams) == sorted(self._streams):
                return
            self._streams = list(streams)
            old = self._supervisors
            targets = [s.subscriptions.target() for s in old]
            parts = _placed(targets, list(streams))
            kept: list[StreamSupervisor] = []
            for index, part in enumerate(parts):
                if index >= len(old):
                    kept.append(self._start(part))
                elif part:
                    if part != targets[index]:
                        old[index].subscriptions.update(part)
                    kept.append(old[index])
                else:
                    self._closing.append(old[index])
            self._supervisors = kept
            closing = list(self._closing)
        # Outside the lock: a scrape reading the counters never waits on a close.
        for supervisor in closing:
            supervisor.stop()
            self._retire(supervisor)

    def _start(self, part: list[str]) -> StreamSupervisor:
        supervisor = self._factory(self.url, part, self.on_data, watchdog=self.watchdog,
                                   on_raw=self.on_raw, attempts=self._attempts,
                                   **self.callbacks)
        supervisor.start()
        return supervisor

    def _retire(self, supervisor: StreamSupervisor) -> None:
        """Keep a closed connection's counters (they only grow)."""
        stats = supervisor.stats()
        with self._lock:
            if supervisor not in self._closing:
                return
            self._closing.remove(supervisor)
            messages = Counter(self._retired.messages)
            messages.update(stats.messages)
            self._retired = StreamStats(False, self._retired.reconnects + stats.reconnects,
                                        dict(messages), _latest(self._retired.last_message,
                                                                stats.last_message))

    def stop(self) -> None:
        """Stop every connection (bounded wait each)."""
        with self._lock:
            supervisors = self._supervisors + self._closing
        for supervisor in supervisors:
            supervisor.stop()

    def stats(self) -> StreamStats:
        """All connections together: connected only when every open one is."""
        with self._lock:
            parts = [s.stats() for s in self._supervisors]
            closing = [s.stats() for s in self._closing]
            retired = self._retired
        messages = Counter(retired.messages)
        last = retired.last_message
        for part in parts + closing:
            messages.update(part.messages)
            last = _latest(last, part.last_message)
        return StreamStats(
            connected=bool(parts) and all(p.connected for p in parts),
            reconnects=retired.reconnects + sum(p.reconnects for p in parts + closing),
            messages=dict(messages),
            last_message=last,
        )


def _latest(first: float | None, second: float | None) -> float | None:
    known = [t for t in (first, second) if t is not None]
    return max(known) if known else None
