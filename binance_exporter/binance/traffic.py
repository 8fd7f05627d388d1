"""What one stream connection has received, and whether it is live.

`Traffic` counts valid messages by stream type, keeps the time of the last
one for the silence watchdog, and tracks the SUBSCRIBE replies: a
connection is live only once Binance has acknowledged every SUBSCRIBE, and
stays so until it is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import msgspec

LOG = logging.getLogger(__name__)


class _Reply(msgspec.Struct, frozen=True, gc=False):
    """The answer to a SUBSCRIBE: `{"result": null, "id": n}` when it worked.

    An error reply has no `result` but an `error` object (as recorded from
    the live service) or a `code` and `msg` (as the docs print it).
    """

    id: int
    result: object = msgspec.UNSET
    error: object = msgspec.UNSET
    code: object = msgspec.UNSET


_REPLY = msgspec.json.Decoder(_Reply)


@dataclass(frozen=True)
class StreamStats:
    """A copy of the supervisor's counters, for the metrics."""

    connected: bool
    reconnects: int
    messages: dict[str, int]  # by stream type (the part after '@', e.g. depth@100ms)
    last_message: float | None  # Unix time


def stream_type(stream: str) -> str:
    """`btcusdt@depth@100ms` -> `depth@100ms`: a bounded label, unlike the symbol."""
    return stream.split("@", 1)[1] if "@" in stream else stream


class Traffic:
    """What one connection has received: counts by stream type, acknowledgements, liveness.

    The reader thread records; the supervisor's loop and the metrics read.
    The connection is live once every SUBSCRIBE is acknowledged, until lost.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._messages: Counter[str] = Counter()
        self._kinds: dict[str, str] = {}  # stream name -> stream type, worked out once
        self._last_message: float | None = None  # Unix time
        # Control messages not yet acknowledged: id -> the streams a SUBSCRIBE
        # adds (none for an UNSUBSCRIBE).
        self._pending: dict[int, list[str]] = {}
        self.live = False
        self._live_since: float | None = None  # monotonic time the connection became live
        self.last_seen = time.monotonic()  # of the last valid message

    @property
    def unacknowledged(self) -> bool:
        """True while a SUBSCRIBE of this connection awaits its reply."""
        return bool(self._pending)

    def subscribing(self, batches: dict[int, list[str]]) -> None:
        """A new connection is about to send these SUBSCRIBEs (id -> streams)."""
        with self._lock:
            self._pending = dict(batches)
            self.live = False
            self._live_since = None
        self.last_seen = time.monotonic()

    def expect(self, batches: dict[int, list[str]]) -> None:
        """A live connection is about to send more control messages (id -> streams added)."""
        with self._lock:
            self._pending.update(batches)
            self.live = False

    def acknowledged(self, reply_id: int) -> list[str] | None:
        """A reply `{"result": null, "id": reply_id}`: the streams it subscribed, or None
        when no control message had that id. The connection is live once none is pending."""
        with self._lock:
            if reply_id not in self._pending:
                return None
            streams = self._pending.pop(reply_id)
            self.live = not self._pending
            if self.live and self._live_since is None:
                self._live_since = time.monotonic()
        self.last_seen = time.monotonic()
        return streams

    def data(self, stream: str) -> None:
        """A valid message of `stream`."""
        self.last_seen = time.monotonic()
        kind = self._kinds.get(stream)
        if kind is None:
            kind = self._kinds[stream] = stream_type(stream)
        with self._lock:
            self._messages[kind] += 1
            self._last_message = self._wall_clock()

    def control(self, text: str, url: str) -> list[str]:
        """A message that is not {stream, data}: a reply to a control message, or junk.

        Returns the streams this reply acknowledged a SUBSCRIBE of (often none).
        """
        try:
            reply = _REPLY.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            LOG.debug("ignored a stream message that is neither data nor a reply: %.200s", text)
            return []
        if reply.error is not msgspec.UNSET or reply.code is not msgspec.UNSET:
            # The subscription was refused: the connection never counts as
            # live, and is rebuilt when the acknowledgement is overdue.
            LOG.error("Binance refused a stream request on %s: %.200s", url, text)
            return []
        streams = self.acknowledged(reply.id) if reply.result is None else None
        if streams is None:
            LOG.warning("unexpected reply on the stream connection: %.200s", text)
            return []
        if self.live:
            LOG.info("stream subscriptions acknowledged on %s", url)
        return streams

    def live_for(self) -> float:
        """Seconds the connection has been live (0 when it is not)."""
        with self._lock:
            return 0.0 if self._live_since is None else time.monotonic() - self._live_since

    def lost(self) -> None:
        """The connection is gone: not live, nothing awaited."""
        with self._lock:
            self.live = False
            self._pending = {}
            self._live_since = None

    def stats(self, reconnects: int) -> StreamStats:
        """Counters for the metrics."""
        with self._lock:
            return StreamStats(self.live, reconnects, dict(self._messages), self._last_message)
