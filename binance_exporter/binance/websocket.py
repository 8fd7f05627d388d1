"""A supervised websocket connection to Binance's combined market streams.

binance-connector's `SpotWebsocketStreamClient` connects inside its
constructor, never reconnects (a close frame fires `on_close`, a TCP drop only
`on_error`, and the reader thread just ends), runs a non-daemon reader thread,
can block forever in `stop()` when the peer never answers the close frame,
and lets `subscribe()` fail silently on a dead socket. `StreamSupervisor`
wraps it: create, subscribe, watch (a dead reader thread, silence longer than
the watchdog, the 24 h connection age), tear down with a bounded wait,
back off with jitter, and create again. Every (re)connection is announced
through `on_connect` so the caller can resynchronise its order books.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import msgspec
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

from binance_exporter.binance.backoff import MAX_RETRY, retry_delay

LOG = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024  # Binance's documented limit
MAX_CONNECTION_AGE = 23.5 * 3600.0  # Binance closes at 24 h; leave on our own terms first
SUBSCRIBE_BATCH = 200  # streams per SUBSCRIBE message
SUBSCRIBE_GAP = 0.25  # seconds between control messages (Binance allows 5 per second)


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    """A combined-stream message; `data` stays raw JSON for its handler."""

    stream: str
    data: msgspec.Raw


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _is_shutdown(data: msgspec.Raw) -> bool:
    """True for the `serverShutdown` event (stream `!serverShutdown`, binance-api.md §4.2)."""
    try:
        event = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return isinstance(event, dict) and event.get("e") == "serverShutdown"


class _DaemonStreamClient(SpotWebsocketStreamClient):
    """The connector's client with a daemon reader thread, so exit never waits on it."""

    def _initialize_socket(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        manager = super()._initialize_socket(*args, **kwargs)
        manager.daemon = True
        return manager


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


class StreamSupervisor:  # pylint: disable=too-many-instance-attributes
    """Keeps one combined-stream connection alive and subscribed."""

    def __init__(
        self,
        url: str,
        streams: list[str],
        on_data: Callable[[str, msgspec.Raw], None],
        on_connect: Callable[[], None] = lambda: None,
        watchdog: float = 30.0,
        client_factory: Callable[..., Any] = _DaemonStreamClient,
        wall_clock: Callable[[], float] = time.time,
        on_raw: Callable[[str], None] | None = None,
    ) -> None:
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")
        self.url = url
        self.streams = list(streams)
        self.on_data = on_data
        self.on_connect = on_connect
        self.on_raw = on_raw  # sees every text frame first (`--record`)
        self.watchdog = watchdog
        self._factory = client_factory
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dead = threading.Event()
        self._connected = False
        self._reconnects = 0
        self._messages: Counter[str] = Counter()
        self._kinds: dict[str, str] = {}  # stream name -> stream type, worked out once
        self._last_message: float | None = None
        self._last_seen = time.monotonic()
        self._thread: threading.Thread | None = None

    # Lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Connect and keep connected in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="streams", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.5) -> None:
        """Ask the loop to end and wait at most `timeout` seconds for it."""
        self._stop.set()
        self._dead.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> StreamStats:
        """Counters for the metrics."""
        with self._lock:
            return StreamStats(self._connected, self._reconnects, dict(self._messages),
                               self._last_message)

    # The loop ---------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            client = self._connect()
            if client is None:
                failures += 1
                self._stop.wait(retry_delay(failures, MAX_RETRY))
                continue
            failures = 0
            self._watch(client)
            self._teardown(client)
            if not self._stop.is_set():
                with self._lock:
                    self._reconnects += 1
                self._stop.wait(retry_delay(1, MAX_RETRY))

    def _connect(self) -> Any | None:
        self._dead.clear()
        try:
            client = self._factory(
                stream_url=self.url,
                on_message=self.on_message,
                on_close=self._on_gone,
                on_error=self._on_error,
                is_combined=True,
                timeout=self.watchdog,
            )
            for start in range(0, len(self.streams), SUBSCRIBE_BATCH):
                if start:
                    time.sleep(SUBSCRIBE_GAP)
                client.subscribe(self.streams[start:start + SUBSCRIBE_BATCH], id=start + 1)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The connector raises whatever the socket layer raises on connect.
            LOG.warning("stream connection to %s failed: %s", self.url, exc)
            return None
        with self._lock:
            self._connected = True
        self._last_seen = time.monotonic()
        LOG.info("stream connected to %s (%d streams)", self.url, len(self.streams))
        self.on_connect()
        return client

    def _watch(self, client: Any) -> None:
        opened = time.monotonic()
        while not self._stop.is_set():
            if self._dead.wait(0.2):
                if not self._stop.is_set():  # stop() sets both; that is no loss
                    LOG.warning("stream connection lost; reconnecting")
                return
            now = time.monotonic()
            if not client.socket_manager.is_alive():
                LOG.warning("stream reader stopped; reconnecting")
                return
            if now - self._last_seen > self.watchdog:
                LOG.warning("no stream message for %.0f s; reconnecting", now - self._last_seen)
                return
            if now - opened > MAX_CONNECTION_AGE:
                LOG.info("stream connection is %.0f h old; renewing", MAX_CONNECTION_AGE / 3600)
                return

    def _teardown(self, client: Any) -> None:
        with self._lock:
            self._connected = False
        # stop() sends a close frame and joins the reader without a timeout;
        # run it aside and give up on it after a bound, closing the socket.
        stopper = threading.Thread(target=_quiet_stop, args=(client,), daemon=True)
        stopper.start()
        stopper.join(1.0)
        if stopper.is_alive():
            try:
                client.socket_manager.ws.abort()
            except Exception:  # pylint: disable=broad-exception-caught
                pass

    # Callbacks (reader thread) ---------------------------------------------

    def on_message(self, _manager: Any, text: str) -> None:
        """The connector's message callback (reader thread); public for the benchmark.

        Only the envelope is decoded here; `data` goes on as raw JSON for the
        handler to decode into its own type in one pass.
        """
        self._last_seen = time.monotonic()
        if self.on_raw is not None:
            self.on_raw(text)
        try:
            message = _ENVELOPE.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            # SUBSCRIBE replies {"result": null, "id": n} arrive here too.
            LOG.debug("ignored a stream message that is not {stream, data}: %.200s", text)
            return
        stream = message.stream
        kind = self._kinds.get(stream)
        if kind is None:
            kind = self._kinds[stream] = stream_type(stream)
        with self._lock:
            self._messages[kind] += 1
            self._last_message = self._wall_clock()
        if stream.startswith("!") and _is_shutdown(message.data):
            LOG.info("Binance announced a server shutdown; reconnecting")
            self._dead.set()
            return
        try:
            self.on_data(stream, message.data)
        except Exception:  # pylint: disable=broad-exception-caught
            # A bad message must not cost the connection (the connector would
            # treat the exception as a socket error); log it and go on.
            LOG.exception("could not handle a %s message", stream)

    def _on_gone(self, _manager: Any) -> None:
        self._dead.set()

    def _on_error(self, _manager: Any, exc: BaseException) -> None:
        LOG.debug("stream error: %s", exc)
        self._dead.set()


def _quiet_stop(client: Any) -> None:
    try:
        client.stop()
    except Exception:  # pylint: disable=broad-exception-caught
        pass


class StreamFeed:
    """The supervised connections for a changing set of streams (1024 per connection)."""

    def __init__(
        self,
        url: str,
        on_data: Callable[[str, msgspec.Raw], None],
        on_connect: Callable[[], None],
        watchdog: float = 30.0,
        supervisor_factory: Callable[..., StreamSupervisor] = StreamSupervisor,
        on_raw: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.on_data = on_data
        self.on_connect = on_connect
        self.watchdog = watchdog
        self.on_raw = on_raw
        self._factory = supervisor_factory
        self._lock = threading.Lock()
        self._streams: list[str] = []
        self._supervisors: list[StreamSupervisor] = []
        self._retired = StreamStats(False, 0, {}, None)  # counters of replaced connections

    def track(self, streams: list[str]) -> None:
        """Follow exactly `streams`; reconnects only when the set changed."""
        with self._lock:
            if sorted(streams) == sorted(self._streams):
                return
            old, self._supervisors = self._supervisors, []
            self._streams = list(streams)
            for supervisor in old:
                self._retire(supervisor)
            for start in range(0, len(streams), MAX_STREAMS_PER_CONNECTION):
                supervisor = self._factory(
                    self.url, streams[start:start + MAX_STREAMS_PER_CONNECTION],
                    self.on_data, self.on_connect, self.watchdog, on_raw=self.on_raw,
                )
                supervisor.start()
                self._supervisors.append(supervisor)

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
