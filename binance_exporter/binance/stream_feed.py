"""The market-stream connections for a changing set of streams, 1024 streams each.

Binance carries at most 1024 streams on one connection; `StreamFeed` splits
the streams the books need over as many supervised connections
(`websocket.StreamSupervisor`) and adds their counters up for the metrics,
keeping those of connections it replaced. When the streams change, only the
connections whose part changed are replaced: callers list the streams that
rarely change (every symbol's best quotes) first, and those that follow the
rankings last, so a new ranking reconnects one connection, not all.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Callable

import msgspec

from binance_exporter.binance.traffic import StreamStats
from binance_exporter.binance.websocket import (
    MAX_STREAMS_PER_CONNECTION,
    ConnectionAttempts,
    StreamSupervisor,
)


class StreamFeed:
    """The supervised connections for a changing set of streams (1024 per connection)."""

    def __init__(
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
        self.on_connect = on_connect  # with the streams of the connection that (re)connected
        self.on_disconnect = on_disconnect  # with the streams of the connection that dropped
        self.on_live = on_live  # with the streams of a connection now fully subscribed
        self.watchdog = watchdog
        self.on_raw = on_raw
        self._factory = supervisor_factory
        self._attempts = ConnectionAttempts()  # one budget for every connection
        self._lock = threading.Lock()
        self._streams: list[str] = []
        self._supervisors: list[StreamSupervisor] = []
        self._retired = StreamStats(False, 0, {}, None)  # counters of replaced connections

    def track(self, streams: list[str]) -> None:
        """Follow exactly `streams`; replaces only the connections whose part changed."""
        with self._lock:
            if sorted(streams) == sorted(self._streams):
                return
            self._streams = list(streams)
            parts = [streams[start:start + MAX_STREAMS_PER_CONNECTION]
                     for start in range(0, len(streams), MAX_STREAMS_PER_CONNECTION)]
            old = self._supervisors
            kept = [old[i] if i < len(old) and old[i].streams == part else None
                    for i, part in enumerate(parts)]
            for supervisor in old:
                if supervisor not in kept:
                    self._retire(supervisor)
            self._supervisors = [supervisor or self._start(part)
                                 for supervisor, part in zip(kept, parts)]

    def _start(self, part: list[str]) -> StreamSupervisor:
        supervisor = self._factory(
            self.url, part, self.on_data, lambda: self.on_connect(part), self.watchdog,
            on_raw=self.on_raw, on_disconnect=lambda: self.on_disconnect(part),
            on_live=lambda: self.on_live(part), attempts=self._attempts,
        )
        supervisor.start()
        return supervisor

    def _retire(self, supervisor: StreamSupervisor) -> None:
        supervisor.stop()
        stats = supervisor.stats()
        messages = Counter(self._retired.messages)
        messages.update(stats.messages)
        self._retired = StreamStats(False, self._retired.reconnects + stats.reconnects,
                                    dict(messages), _latest(self._retired.last_message,
                                                            stats.last_message))

    def stop(self) -> None:
        """Stop every connection (bounded wait each)."""
        with self._lock:
            for supervisor in self._supervisors:
                supervisor.stop()

    def stats(self) -> StreamStats:
        """All connections together: connected only when every one of them is."""
        with self._lock:
            parts = [s.stats() for s in self._supervisors]
            retired = self._retired
        messages = Counter(retired.messages)
        last = retired.last_message
        for part in parts:
            messages.update(part.messages)
            last = _latest(last, part.last_message)
        return StreamStats(
            connected=bool(parts) and all(p.connected for p in parts),
            reconnects=retired.reconnects + sum(p.reconnects for p in parts),
            messages=dict(messages),
            last_message=last,
        )


def _latest(first: float | None, second: float | None) -> float | None:
    known = [t for t in (first, second) if t is not None]
    return max(known) if known else None
