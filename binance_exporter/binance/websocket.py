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
presenting their data as live. `update` changes the streams of a live
connection with UNSUBSCRIBE and SUBSCRIBE, without reconnecting: the same
callbacks then name only the streams that left or came.

A connection counts as live (`connected`) only once Binance has acknowledged
every SUBSCRIBE, and stays so only while valid messages arrive: junk frames
do not reset the silence watchdog. Reconnects back off exponentially with
jitter; a connection that drops at once backs off further each time.
`on_live` announces each acknowledged SUBSCRIBE with its streams, from which
no change of those streams can be missed. The attempts of all the
connections of one exporter share one `ConnectionAttempts`, so even a storm
stays within Binance's 300 per 5 minutes per IP.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

import msgspec
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

from binance_exporter.binance.backoff import retry_delay
from binance_exporter.binance.subscriptions import Subscriptions
from binance_exporter.binance.traffic import StreamStats, Traffic

LOG = logging.getLogger(__name__)

MAX_CONNECTION_AGE = 23.5 * 3600.0  # Binance closes at 24 h; leave on our own terms first
ACK_TIMEOUT = 10.0  # seconds for every SUBSCRIBE to be acknowledged before giving up
STABLE_CONNECTION = 10.0  # seconds live after which a drop starts the back-off over
SHUTDOWN_STREAM = "!serverShutdown"  # sent unasked before a server goes down
# Binance allows 300 connection attempts per 5 minutes per IP; keep a margin
# for other clients on the same address.
MAX_ATTEMPTS = 250
ATTEMPT_WINDOW = 300.0


class ConnectionAttempts:
    """Connection attempts shared by every connection of one exporter, within Binance's limit.

    Back-off alone keeps a reconnect storm far below the limit; this makes
    it a guarantee however many connections fail together: an attempt past
    `limit` within `window` seconds waits for the oldest to leave the window.
    """

    def __init__(self, limit: int = MAX_ATTEMPTS, window: float = ATTEMPT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._times: deque[float] = deque()

    def wait_turn(self, stop: threading.Event) -> bool:
        """Wait until one more attempt is within the limit, and take it; False if stopped."""
        while not stop.is_set():
            with self._lock:
                now = self._clock()
                while self._times and now - self._times[0] >= self._window:
                    self._times.popleft()
                if len(self._times) < self._limit:
                    self._times.append(now)
                    return True
                wait = self._times[0] + self._window - now
            LOG.warning("%d stream connection attempts in %.0f s; waiting %.0f s", self._limit,
                        self._window, wait)
            stop.wait(wait)
        return False


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


class StreamSupervisor:  # pylint: disable=too-many-instance-attributes
    """Keeps one combined-stream connection alive and subscribed."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        url: str,
        streams: list[str],
        on_data: Callable[[str, msgspec.Raw], None],
        on_connect: Callable[[list[str]], None] = lambda streams: None,
        watchdog: float = 30.0,
        client_factory: Callable[..., Any] = _DaemonStreamClient,
        wall_clock: Callable[[], float] = time.time,
        *,
        on_raw: Callable[[str], None] | None = None,
        on_disconnect: Callable[[list[str]], None] = lambda streams: None,
        on_live: Callable[[list[str]], None] = lambda streams: None,
        backoff: Callable[[int], float] = retry_delay,
        attempts: ConnectionAttempts | None = None,
    ) -> None:
        self.url = url
        self.on_data = on_data
        # Each with the streams concerned: about to subscribe, no longer
        # live, acknowledged (the last on the reader thread).
        self.on_connect, self.on_disconnect, self.on_live = on_connect, on_disconnect, on_live
        self.on_raw = on_raw  # sees every text frame first (`--record`)
        self.watchdog = watchdog
        self._backoff = backoff  # failures in a row -> seconds before the next attempt
        self._factory = client_factory
        self._attempts = attempts if attempts is not None else ConnectionAttempts()
        self._traffic = Traffic(wall_clock)
        self._stop = threading.Event()
        self._dead = threading.Event()
        self._reconnects = 0
        self._thread: threading.Thread | None = None
        self.subscriptions = Subscriptions(streams, self._traffic, self._stop)

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
        while self._attempts.wait_turn(self._stop):
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
        subscriptions = self.subscriptions
        streams = subscriptions.fresh()
        # Before subscribing: the books start over, so no event of the new
        # connection can reach a book that the reset would then throw away.
        self.on_connect(streams)
        try:
            subscriptions.send(client, "SUBSCRIBE", streams, fresh=True)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            LOG.warning("subscribing on %s failed: %s", self.url, exc)
            self._teardown(client)
            return None
        LOG.info("stream connected to %s (%d streams); waiting for the subscriptions",
                 self.url, len(streams))
        return client

    def _watch(self, client: Any) -> None:
        opened = time.monotonic()
        while not self._stop.is_set():
            if self.subscriptions.changed:
                try:
                    self.subscriptions.apply(client, self.on_connect, self.on_disconnect)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    LOG.warning("changing the subscriptions on %s failed: %s", self.url, exc)
                    return
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
            asked = max(opened, self.subscriptions.control_at)
            if self._traffic.unacknowledged and now - asked > ACK_TIMEOUT:
                LOG.warning("subscriptions not acknowledged within %.0f s; reconnecting",
                            ACK_TIMEOUT)
                return
            if now - opened > MAX_CONNECTION_AGE:
                LOG.info("stream connection is %.0f h old; renewing", MAX_CONNECTION_AGE / 3600)
                return

    def _teardown(self, client: Any) -> None:
        self._traffic.lost()
        self.on_disconnect(self.subscriptions.current)
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
            acknowledged = self._traffic.control(text, self.url)
            if acknowledged:
                self.on_live(acknowledged)
            return
        stream = message.stream
        if stream not in self.subscriptions.wanted and stream != SHUTDOWN_STREAM:
            # Nor counted: a stream name is a label, bounded by what was subscribed.
            LOG.debug("ignored data of a stream not subscribed here: %.100s", stream)
            return
        self._traffic.data(stream)
        if stream == SHUTDOWN_STREAM and _is_shutdown(message.data):
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
