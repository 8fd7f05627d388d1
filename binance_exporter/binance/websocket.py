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
STABLE_CONNECTION = 10.0  # seconds live after which a drop starts the back-off over


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
        self._pending: set[int] = set()  # SUBSCRIBE ids not yet acknowledged
        self.live = False
        self._live_since: float | None = None  # monotonic time the connection became live
        self.last_seen = time.monotonic()  # of the last valid message

    @property
    def unacknowledged(self) -> bool:
        """True while a SUBSCRIBE of this connection awaits its reply."""
        return bool(self._pending)

    def subscribing(self, ids: set[int]) -> None:
        """A new connection is about to send SUBSCRIBEs with these ids."""
        with self._lock:
            self._pending = set(ids)
            self.live = False
            self._live_since = None
        self.last_seen = time.monotonic()

    def acknowledged(self, reply_id: int) -> bool | None:
        """A reply `{"result": null, "id": reply_id}`: True when the connection is now live,
        False when more replies are awaited, None when no SUBSCRIBE had that id."""
        with self._lock:
            if reply_id not in self._pending:
                return None
            self._pending.discard(reply_id)
            self.live = not self._pending
            live = self.live
            if live:
                self._live_since = time.monotonic()
        self.last_seen = time.monotonic()
        return live

    def data(self, stream: str) -> None:
        """A valid message of `stream`."""
        self.last_seen = time.monotonic()
        kind = self._kinds.get(stream)
        if kind is None:
            kind = self._kinds[stream] = stream_type(stream)
        with self._lock:
            self._messages[kind] += 1
            self._last_message = self._wall_clock()

    def control(self, text: str, url: str) -> None:
        """A message that is not {stream, data}: a SUBSCRIBE reply, or junk."""
        try:
            reply = _REPLY.decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            LOG.debug("ignored a stream message that is neither data nor a reply: %.200s", text)
            return
        live = self.acknowledged(reply.id) if reply.result is None else None
        if live is None:
            LOG.warning("unexpected reply on the stream connection: %.200s", text)
        elif live:
            LOG.info("stream subscriptions acknowledged on %s", url)

    def live_for(self) -> float:
        """Seconds the connection has been live (0 when it is not)."""
        with self._lock:
            return 0.0 if self._live_since is None else time.monotonic() - self._live_since

    def lost(self) -> None:
        """The connection is gone: not live, nothing awaited."""
        with self._lock:
            self.live = False
            self._pending = set()
            self._live_since = None

    def stats(self, reconnects: int) -> StreamStats:
        """Counters for the metrics."""
        with self._lock:
            return StreamStats(self.live, reconnects, dict(self._messages), self._last_message)


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
        self._traffic = Traffic(wall_clock)
        self._stop = threading.Event()
        self._dead = threading.Event()
        self._reconnects = 0
        self._thread: threading.Thread | None = None
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
        return self._traffic.stats(self._reconnects)

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
            self._watch(client)
            stable = self._traffic.live_for() >= STABLE_CONNECTION
            self._teardown(client)
            if self._stop.is_set():
                return
            self._reconnects += 1  # written by this loop only
            # A connection that was live a while starts the back-off over; one
            # that dropped before (a reconnect storm) backs off further each time.
            failures = 1 if stable else failures + 1
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
        if self._stop.is_set():  # stopped while connecting: this connection is not wanted
            _quiet_stop(client)
            return None
        # Before subscribing: the books start over, so no event of the new
        # connection can reach a book that the reset would then throw away.
        self.on_connect()
        try:
            batches = range(0, len(self.streams), SUBSCRIBE_BATCH)
            self._traffic.subscribing({start + 1 for start in batches})
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
            if now - self._traffic.last_seen > self.watchdog:
                LOG.warning("no valid stream message for %.0f s; reconnecting",
                            now - self._traffic.last_seen)
                return
            if self._traffic.unacknowledged and now - opened > ACK_TIMEOUT:
                LOG.warning("subscriptions not acknowledged within %.0f s; reconnecting",
                            ACK_TIMEOUT)
                return
            if now - opened > MAX_CONNECTION_AGE:
                LOG.info("stream connection is %.0f h old; renewing", MAX_CONNECTION_AGE / 3600)
                return

    def _teardown(self, client: Any) -> None:
        self._traffic.lost()
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
            self._traffic.control(text, self.url)
            return
        stream = message.stream
        if stream not in self._wanted and not stream.startswith("!"):
            LOG.debug("ignored data of a stream not subscribed here: %.100s", stream)
            return
        self._traffic.data(stream)
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
