"""A supervised websocket connection to Binance's combined market streams.

binance-connector's `SpotWebsocketStreamClient` connects inside its
constructor, never reconnects (a close frame fires `on_close`, a TCP drop only
`on_error`, and the reader thread just ends), runs a non-daemon reader thread,
can block forever in `stop()` when the peer never answers the close frame,
and lets `subscribe()` fail silently on a dead socket. `StreamSupervisor`
wraps it: create, subscribe, watch (a dead reader thread, silence longer than
the watchdog, the 24 h connection age), tear down with a bounded wait,
back off with jitter, and create again. Every (re)connection is announced
through `on_connect`, before subscribing, so the caller can start its order
books over; every loss through `on_disconnect`, at once, so the caller stops
presenting their data as live.

A connection counts as live (`connected`) only once Binance has acknowledged
every SUBSCRIBE, and stays so only while valid messages arrive: junk frames
do not reset the silence watchdog. Reconnects back off exponentially with
jitter; a connection that drops at once backs off further each time.
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

from binance_exporter.binance.backoff import retry_delay

LOG = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024  # Binance's documented limit
MAX_CONNECTION_AGE = 23.5 * 3600.0  # Binance closes at 24 h; leave on our own terms first
SUBSCRIBE_BATCH = 200  # streams per SUBSCRIBE message
SUBSCRIBE_GAP = 0.25  # seconds between control messages (Binance allows 5 per second)
ACK_TIMEOUT = 10.0  # seconds for every SUBSCRIBE to be acknowledged before giving up
STABLE_CONNECTION = 60.0  # seconds up after which a drop starts the back-off over


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    """A combined-stream message; `data` stays raw JSON for its handler."""

    stream: str
    data: msgspec.Raw


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class _Reply(msgspec.Struct, frozen=True, gc=False):
    """The answer to a SUBSCRIBE: `{"result": null, "id": n}` when it worked."""

    id: int
    result: object = None


_REPLY = msgspec.json.Decoder(_Reply)


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

    def __init__(  # pylint: disable=too-many-arguments
        self,
        url: str,
        streams: list[str],
        on_data: Callable[[str, msgspec.Raw], None],
        on_connect: Callable[[], None] = lambda: None,
        watchdog: float = 30.0,
        client_factory: Callable[..., Any] = _DaemonStreamClient,
        wall_clock: Callable[[], float] = time.time,
        *,
        on_raw: Callable[[str], None] | None = None,
        on_disconnect: Callable[[], None] = lambda: None,
        backoff: Callable[[int], float] = retry_delay,
    ) -> None:
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")
        self.url = url
        self.streams = list(streams)
        self.on_data = on_data
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect  # the streams' data is no longer live
        self.on_raw = on_raw  # sees every text frame first (`--record`)
        self.watchdog = watchdog
        self._backoff = backoff  # failures in a row -> seconds before the next attempt
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
        self._pending_acks: set[int] = set()  # SUBSCRIBE ids not yet acknowledged
        self._wanted = frozenset(self.streams)

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
            try:
                client = self._connect()
            except Exception:  # pylint: disable=broad-exception-caught
                LOG.exception("stream connection to %s failed unexpectedly", self.url)
                client = None
            if client is None:
                failures += 1
                self._stop.wait(self._backoff(failures))
                continue
            opened = time.monotonic()
            self._watch(client)
            self._teardown(client)
            if self._stop.is_set():
                return
            with self._lock:
                self._reconnects += 1
            # A connection that stayed up a while starts the back-off over; one
            # that dropped at once (a reconnect storm) backs off further each time.
            failures = 1 if time.monotonic() - opened >= STABLE_CONNECTION else failures + 1
            self._stop.wait(self._backoff(failures))

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
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The connector raises whatever the socket layer raises on connect.
            LOG.warning("stream connection to %s failed: %s", self.url, exc)
            return None
        self._last_seen = time.monotonic()
        # Before subscribing: the books start over, so no event of the new
        # connection can reach a book that the reset would then throw away.
        self.on_connect()
        try:
            batches = range(0, len(self.streams), SUBSCRIBE_BATCH)
            with self._lock:
                self._pending_acks = {start + 1 for start in batches}
            for start in batches:
                if start:
                    time.sleep(SUBSCRIBE_GAP)
                client.subscribe(self.streams[start:start + SUBSCRIBE_BATCH], id=start + 1)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            LOG.warning("subscribing on %s failed: %s", self.url, exc)
            self._teardown(client)
            return None
        LOG.info("stream connected to %s (%d streams); waiting for the subscriptions",
                 self.url, len(self.streams))
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
                LOG.warning("no valid stream message for %.0f s; reconnecting",
                            now - self._last_seen)
                return
            if self._pending_acks and now - opened > ACK_TIMEOUT:
                LOG.warning("subscriptions not acknowledged within %.0f s; reconnecting",
                            ACK_TIMEOUT)
                return
            if now - opened > MAX_CONNECTION_AGE:
                LOG.info("stream connection is %.0f h old; renewing", MAX_CONNECTION_AGE / 3600)
                return

    def _teardown(self, client: Any) -> None:
        with self._lock:
            self._connected = False
            self._pending_acks = set()
        self.on_disconnect()
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
        handler to decode into its own type in one pass. Only a message that
        acknowledges a subscription, or carries data of a stream this
        connection subscribed to, counts as traffic for the silence watchdog:
        junk keeps nothing alive.
        """
        if self.on_raw is not None:
            self.on_raw(text)
        try:
            message = _ENVELOPE.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            self._control(text)
            return
        stream = message.stream
        if stream not in self._wanted and not stream.startswith("!"):
            LOG.debug("ignored data of a stream not subscribed here: %.100s", stream)
            return
        self._last_seen = time.monotonic()
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

    def _control(self, text: str) -> None:
        """A message that is not {stream, data}: a SUBSCRIBE reply, or junk."""
        try:
            reply = _REPLY.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            LOG.debug("ignored a stream message that is neither data nor a reply: %.200s", text)
            return
        with self._lock:
            if reply.result is not None or reply.id not in self._pending_acks:
                LOG.warning("unexpected reply on the stream connection: %.200s", text)
                return
            self._pending_acks.discard(reply.id)
            live = not self._pending_acks
            if live:
                self._connected = True
        self._last_seen = time.monotonic()
        if live:
            LOG.info("stream subscriptions acknowledged on %s", self.url)

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
        on_connect: Callable[[list[str]], None],
        watchdog: float = 30.0,
        supervisor_factory: Callable[..., StreamSupervisor] = StreamSupervisor,
        on_raw: Callable[[str], None] | None = None,
        on_disconnect: Callable[[list[str]], None] = lambda streams: None,
    ) -> None:
        self.url = url
        self.on_data = on_data
        self.on_connect = on_connect  # with the streams of the connection that (re)connected
        self.on_disconnect = on_disconnect  # with the streams of the connection that dropped
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
                part = streams[start:start + MAX_STREAMS_PER_CONNECTION]
                supervisor = self._factory(
                    self.url, part, self.on_data,
                    lambda part=part: self.on_connect(part), self.watchdog, on_raw=self.on_raw,
                    on_disconnect=lambda part=part: self.on_disconnect(part),
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
