"""`FakeStreams`: Binance's market-data websocket streams, served from a `Market`.

Give it the `Market` that `FakeBinance` serves and the two agree: the
diff-depth events chain exactly onto REST `depth` snapshots, so Binance's
local order-book procedure (binance-api.md §6) rebuilds `market.book(symbol)`.

A `websockets` asyncio server runs on 127.0.0.1 in a thread with its own event
loop.  Paths: `/ws` and `/ws/<s1>/<s2>` (raw payloads), `/stream` and
`/stream?streams=<s1>/<s2>` (wrapped as `{"stream", "data"}`); `timeUnit=
MICROSECOND` gives times in µs.  SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS,
SET_PROPERTY and GET_PROPERTY (`combined`) are answered as Binance does.

Streams with data: `<sym>@depth` (= `@depth@1000ms`, the connector's default
name), `<sym>@depth@100ms`, `<sym>@bookTicker`, `<sym>@aggTrade` (from
`market.agg_trade_history(symbol, from_id)`; silent for a Market without it)
and `!ticker_1d@arr` (from `market.ticker_changes`).  Any other well-formed
name (`btcusdt@trade`, `!miniTicker@arr`, an unknown symbol, an upper-case
symbol) is accepted and stays silent, as Binance's ack checks only the syntax.

How events are made: every `poll_interval` a task looks at the market, if
`market.revision` moved since it last did (idle subscriptions cost nothing,
so a whole market of bookTicker streams can be followed).  A depth stream
whose symbol's lastUpdateId moved sends one event covering every change since
its previous event: each level that changed at any step in between, with its
quantity now ("0.00000000" once gone), `U` = previous u + 1, `u` = the current
lastUpdateId.  One event may thus span several `step()`s, as on Binance, and a
snapshot taken at any of them chains on.  The 100 ms streams send at most
every 0.1 s, the 1000 ms ones every second; `flush()` sends what is pending
at once, so tests need not sleep.  A stream starts from the book as it was
when its first subscriber appeared (at the SUBSCRIBE, or at the handshake for
streams named in the URL): the first event has U = that lastUpdateId + 1, so
a snapshot fetched after the reply chains on without a hole (§6 still
refetches one that equals U - 1).
bookTicker sends when the update id moved and the top changed (it reads
`market.top`, not a depth answer); aggTrade sends each new aggregate trade.
`!ticker_1d@arr` sends every `ticker_period` s (1 by default) one array of
`1dTicker` objects, one per symbol whose 24 h figures changed since the
previous push: `p P o h l c w v q O C F L n` are exactly the `ticker_24hr()`
figures of that market state (volume = v, quoteVolume = q, count = n...).
Given the same market states, the same events.  What is queued for one
connection together goes out in one write.

Faults on demand (each `FakeStreams` method says what it does):
`drop_connections`, `close_connections`, `silence`, `server_shutdown`;
`skip_next_event` and `swap_next_events` (diff depth);
`skip_next_agg_trade` and `duplicate_next_agg_trade`; `drop_ticker_pushes`
(a symbol left out of pushes that would carry it, sent again only once its
figures change after them: a missed push).

Where Binance's docs are silent, this fake decides as follows (tests may rely
on it):

- Error replies are `{"error": {"code", "msg"}, "id"}`, the shape recorded
  from the live service (the docs print the inner object only).  A malformed
  stream name gets code 2 "Invalid request: invalid stream", then the
  connection is closed (1008).  More than 1024 streams: code 4 "Too many
  subscriptions", nothing of that request is subscribed, the connection stays.
- More than 5 incoming frames (text, binary, ping, pong) within any 1 s:
  close 1008 "Too many requests".  `max_incoming_per_second()` is the most
  such frames seen within any 1 s on one connection, closed ones included.
- More than `max_attempts` (300) handshakes from one IP within
  `attempts_window` (300) s: HTTP 429 "Too many connection attempts", no
  upgrade, counted in `connections_refused`.  Every attempt counts, refused
  ones too (a client that keeps knocking stays out), and before the path.
- Malformed or too many streams in the URL: HTTP 400 at the handshake; an
  unknown path: HTTP 404.
- `!ticker_1d@arr` starts at the subscription: no array of every symbol
  first, only changes made after it; no empty arrays.  `E` is the push
  time; `O`/`C` are those of `ticker_24hr` (24 h before now, now); with
  timeUnit=MICROSECOND `E`, `O` and `C` are in µs.
- `server_shutdown()` and `stop()` close with 1001.  `silence()` mutes market
  data only: control replies and pings go on, and the first event afterwards
  covers the silent period (no gap).
- Pings every `ping_interval` s; no pong within `ping_timeout` s: close 1011.
- After a close frame from the client the server closes TCP itself within
  0.2 s (binance-connector never closes its socket).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import re
import threading
from typing import Any, Callable, Iterable, NamedTuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from .feeds import (BandLog, BookReader, DepthFeed, Feed, FeedKey, Payload, TickerFeed,
                    TradeFeed, WindowFeed, feed_key)
from .market import Market
from .replay import Recording

MAX_STREAMS = 1024  # per connection
MAX_INCOMING = 5  # frames per second per connection
MAX_ATTEMPTS = 300  # connection attempts per IP within ATTEMPTS_WINDOW
ATTEMPTS_WINDOW = 300.0  # seconds
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
LOG = logging.getLogger(__name__)

_TIMES = ("E", "T", "O", "C")  # fields scaled by timeUnit=MICROSECOND
_WELL_FORMED = re.compile(r"!?\w+(?:@\w+){1,2}")
_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)
_TCP_GRACE = 0.2  # seconds after a close frame before the server closes TCP
_BATCH = 1024  # queued frames written together at most
_MAX_ID = 2 ** 63 - 1
_ID_TEXT = re.compile(r"[A-Za-z0-9]{1,36}")


def well_formed(stream: object) -> bool:
    """What Binance's SUBSCRIBE checks: the syntax of a name, not that it exists."""
    return isinstance(stream, str) and _WELL_FORMED.fullmatch(stream) is not None


def _compact(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _error(code: int, msg: str, request_id: object) -> str:
    return _compact({"error": {"code": code, "msg": msg}, "id": request_id})


def _in_micros(payload: Payload) -> Payload:
    if isinstance(payload, list):
        return [_in_micros(event) for event in payload]
    scaled = dict(payload)
    for name in _TIMES:
        if isinstance(scaled.get(name), int):
            scaled[name] *= 1000
    return scaled


class _Close(NamedTuple):
    """Queued after the messages that must go out before the close frame."""

    code: int
    reason: str


class _Target(NamedTuple):
    """What the handshake URL asked for."""

    combined: bool
    streams: list[str]
    micros: bool


def parse_target(path: str) -> _Target | None:
    """The handshake path (`/ws/...`, `/stream?...`) -> _Target; None if unknown."""
    parts = urlsplit(path)
    route = unquote(parts.path).rstrip("/")
    query = parse_qs(parts.query)
    micros = any(unit.upper() == "MICROSECOND" for unit in query.get("timeUnit", []))
    if route == "/ws":
        return _Target(False, [], micros)
    if route.startswith("/ws/"):
        return _Target(False, route[len("/ws/"):].split("/"), micros)
    if route == "/stream":
        names = "/".join(query.get("streams", []))
        return _Target(True, names.split("/") if names else [], micros)
    return None


class _Connection(ServerConnection):
    """A server connection that counts incoming frames, pings and pongs included."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: collections.deque[float] = collections.deque()  # within the last 1 s
        self.peak = 0  # the most counted frames seen within any 1 s
        self.over_limit = False
        self.closer: asyncio.Task | None = None
        self.client: _Client | None = None  # set just before the 101 goes out

    def process_event(self, event: Any) -> None:
        if self.request is not None and isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
            # The server closes TCP after the closing handshake (RFC 6455 §7.1.1);
            # websockets would wait for the client's FIN, which binance-connector
            # never sends (it never closes its socket).
            self.loop.call_later(_TCP_GRACE, self.transport.close)
        if self.request is not None and isinstance(event, Frame) and event.opcode in _COUNTED:
            now = self.loop.time()
            self.arrivals.append(now)
            while self.arrivals[0] <= now - 1.0:
                self.arrivals.popleft()
            self.peak = max(self.peak, len(self.arrivals))
            if len(self.arrivals) > MAX_INCOMING and not self.over_limit:
                self.over_limit = True  # Binance: disconnected, no answer
                self.closer = self.loop.create_task(self.close(1008, "Too many requests"))
        super().process_event(event)


class _Client:
    """One open connection: its subscriptions (in order) and its outgoing queue."""

    def __init__(self, connection: _Connection, target: _Target) -> None:
        self.connection = connection
        self.combined = target.combined
        self.micros = target.micros
        self.streams: dict[str, FeedKey | None] = {}
        self.queue: asyncio.Queue[Union[str, _Close]] = asyncio.Queue()
        self.sender: asyncio.Task | None = None

    def frame(self, stream: str, payload: Payload) -> str:
        """The text Binance sends for `payload` on this connection."""
        if self.micros:
            payload = _in_micros(payload)
        return _compact({"stream": stream, "data": payload} if self.combined else payload)


class _Hub:
    """Everything that lives on the event loop: clients, feeds, faults, counters."""

    def __init__(self, market: Market, ticker_period: float = 1.0) -> None:
        self.market = market
        self.ticker_period = ticker_period
        self.clients: list[_Client] = []
        self.feeds: dict[FeedKey, Feed] = {}
        self.refs: collections.Counter[FeedKey] = collections.Counter()
        self.ticker_drops: collections.Counter[str] = collections.Counter()
        self.bands: BandLog | None = BandLog(market)  # what depth events span
        self.silent_until = -math.inf
        self.idle_at: int | None = None  # a revision every feed has seen
        self.accepted = 0
        self.open = 0
        self.sent = 0
        self.peak_incoming = 0  # of the connections already closed

    # ----------------------------------------------------------------- feeds
    def _new_feed(self, key: FeedKey) -> Feed:
        symbol, kind, period = key
        reader, revision = BookReader(self.market), self.market.revision
        if kind == "depth":
            return DepthFeed(symbol, period, revision, reader, self.bands)
        if kind == "bookTicker":
            return TickerFeed(symbol, revision, reader)
        if kind == "ticker_1d":
            return WindowFeed(self.ticker_period, revision, self.ticker_drops)
        return TradeFeed(symbol, revision, reader)

    def subscribe(self, client: _Client, streams: list[str]) -> None:
        """Add streams (duplicates ignored); a feed starts with its first subscriber."""
        for stream in streams:
            if stream in client.streams:
                continue
            key = feed_key(stream)
            client.streams[stream] = key
            if key is not None:
                if key not in self.feeds:
                    self.feeds[key] = self._new_feed(key)
                self.refs[key] += 1

    def unsubscribe(self, client: _Client, streams: Iterable[str]) -> None:
        """Drop streams; a feed with no subscriber left forgets its book."""
        for stream in list(streams):
            if stream not in client.streams:
                continue
            key = client.streams.pop(stream)
            if key is not None:
                self.refs[key] -= 1
                if self.refs[key] <= 0:
                    del self.refs[key]
                    self.feeds.pop(key).close()

    def symbol_feeds(self, symbol: str, kind: type[Feed]) -> list[Feed]:
        """The feeds of this kind for `symbol` that have subscribers."""
        return [feed for feed in self.feeds.values()
                if isinstance(feed, kind) and feed.symbol == symbol]

    # ----------------------------------------------------------------- pump
    def cycle(self, now: float, force: bool = False) -> None:
        """Poll the due feeds and queue their events for every subscriber.

        Called every poll_interval: when the market has not moved since every
        feed last looked, it returns without touching the feeds, so thousands
        of idle subscriptions cost nothing between steps.
        """
        revision = self.market.revision
        if now < self.silent_until or not self.feeds or (revision == self.idle_at and not force):
            return
        reader = BookReader(self.market)
        now_ms = self.market.server_time()
        events: dict[FeedKey, list[Payload]] = {}
        waiting = False  # a feed that has not seen this revision yet (paced)
        for key, feed in self.feeds.items():
            if not feed.due(revision, now, force):
                waiting = waiting or feed.seen != revision
                continue
            feed.seen = revision
            payloads = feed.poll(reader, now_ms)
            if payloads:
                feed.last_sent = now
                events[key] = payloads
        self.idle_at = None if waiting else revision
        if events:
            self._dispatch(events)

    def _dispatch(self, events: dict[FeedKey, list[Payload]]) -> None:
        texts: dict[tuple[str, int, bool, bool], str] = {}  # one encoding per stream shape
        for client in self.clients:
            for stream, key in client.streams.items():
                for payload in events.get(key, ()) if key else ():
                    shape = (stream, id(payload), client.combined, client.micros)
                    if shape not in texts:
                        texts[shape] = client.frame(stream, payload)
                    client.queue.put_nowait(texts[shape])

    # ----------------------------------------------------------------- control messages
    def control(self, client: _Client, text: object) -> None:
        """Answer one incoming message the way Binance does."""
        try:
            request = json.loads(text)
        except ValueError as exc:
            line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            client.queue.put_nowait(_error(
                3, f"Invalid JSON: expected value at line {line} column {column}", None))
            return
        if not isinstance(request, dict):
            client.queue.put_nowait(_error(2, "Invalid request: expected a JSON object", None))
            return
        request_id = request.get("id")
        if not _valid_id(request_id):
            client.queue.put_nowait(_error(
                2, "Invalid request: request ID must be an unsigned integer", None))
            return
        if "method" not in request:
            client.queue.put_nowait(_error(2, "Invalid request: missing field `method`",
                                           request_id))
            return
        method = request["method"]
        if method not in METHODS:
            expected = ", ".join(f"`{name}`" for name in METHODS)
            client.queue.put_nowait(_error(
                2, f"Invalid request: unknown variant `{method}`, expected one of {expected}",
                request_id))
            return
        params = request.get("params", [])
        client.queue.put_nowait(self._answer(client, method, params, request_id))

    def _answer(self, client: _Client, method: str, params: object,
                request_id: object) -> Union[str, _Close]:
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return self._subscription(client, method, params, request_id)
        if method == "LIST_SUBSCRIPTIONS":
            return _compact({"result": list(client.streams), "id": request_id})
        return _property(client, method, params, request_id)

    def _subscription(self, client: _Client, method: str, params: object,
                      request_id: object) -> Union[str, _Close]:
        if not isinstance(params, list) or not all(well_formed(name) for name in params):
            client.queue.put_nowait(_error(2, "Invalid request: invalid stream", request_id))
            return _Close(1008, "Invalid request")
        if method == "UNSUBSCRIBE":
            self.unsubscribe(client, params)
        elif len(client.streams.keys() | set(params)) > MAX_STREAMS:
            return _error(4, "Too many subscriptions", request_id)
        else:
            self.subscribe(client, params)
        return _compact({"result": None, "id": request_id})


def _property(client: _Client, method: str, params: object, request_id: object) -> str:
    """SET_PROPERTY / GET_PROPERTY: only `combined` exists."""
    if not isinstance(params, list) or not params or params[0] != "combined":
        return _error(0, "Unknown property", request_id)
    if method == "GET_PROPERTY":
        return _compact({"result": client.combined, "id": request_id})
    if len(params) != 2 or not isinstance(params[1], bool):
        return _error(1, "Invalid value type: expected Boolean", request_id)
    client.combined = params[1]
    return _compact({"result": None, "id": request_id})


def _valid_id(request_id: object) -> bool:
    """Binance's ids: a signed 64-bit int, up to 36 alphanumerics, or null."""
    if request_id is None:
        return True
    if isinstance(request_id, bool):
        return False
    if isinstance(request_id, int):
        return -_MAX_ID - 1 <= request_id <= _MAX_ID
    return isinstance(request_id, str) and _ID_TEXT.fullmatch(request_id) is not None


# --------------------------------------------------------------------------- the server

class _ReplayHub(_Hub):
    """A hub whose frames come from a recording instead of the simulated market."""

    def __init__(self, market: Market, recording: Recording, speed: float) -> None:
        super().__init__(market)
        self.bands = None  # its depth frames are recorded ones
        self.frames = recording.frames
        self.speed = speed
        self.position = 0
        self.started: float | None = None

    def cycle(self, now: float, force: bool = False) -> None:
        """Queue every frame now due; the clock starts at the first subscription."""
        del force
        if self.started is None:
            if not any(client.streams for client in self.clients):
                return
            self.started = now
        due = (now - self.started) * self.speed
        while self.position < len(self.frames) and self.frames[self.position].offset <= due:
            frame = self.frames[self.position]
            self.position += 1
            for client in self.clients:
                if frame.stream in client.streams:
                    # Combined clients get the frame verbatim; the others get
                    # its payload the way every other frame is encoded for them.
                    client.queue.put_nowait(
                        frame.text if client.combined
                        else client.frame(frame.stream, json.loads(frame.text)["data"]))


class FakeStreams:
    """Binance's market streams on 127.0.0.1, from a `Market`, with faults on demand.

    Usage: `with FakeStreams(market) as streams:
    SpotWebsocketStreamClient(stream_url=streams.url, is_combined=True, ...)`.
    Every public method is thread-safe; fault methods return once the fault
    is in place. With `replay=` a recording (`replay.load`) is served instead
    of the simulated market's diffs, at `replay_speed` times its pace.
    """

    def __init__(  # pylint: disable=too-many-arguments  # the knobs are keyword-only
            self, market: Market | None = None, host: str = "127.0.0.1", port: int = 0,
            *, ping_interval: float | None = 20.0, ping_timeout: float | None = 60.0,
            poll_interval: float = 0.02, ticker_period: float = 1.0,
            max_attempts: int = MAX_ATTEMPTS, attempts_window: float = ATTEMPTS_WINDOW,
            replay: Recording | None = None, replay_speed: float = 1.0) -> None:
        self.market = market if market is not None else Market()
        self.host = host
        self._port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.poll_interval = poll_interval
        self._hub = (_Hub(self.market, ticker_period) if replay is None
                     else _ReplayHub(self.market, replay, replay_speed))
        self._gate = _AttemptGate(max_attempts, attempts_window)
        self._lock = threading.Lock()
        self._running: tuple[threading.Thread, asyncio.AbstractEventLoop,
                             asyncio.Event] | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeStreams:
        """Bind and serve in a daemon thread with its own event loop; returns self."""
        with self._lock:
            if self._running is not None:
                return self
            loop = asyncio.new_event_loop()
            ready: list[BaseException | None] = []
            started = threading.Event()
            stopping = asyncio.Event()
            thread = threading.Thread(target=self._run, args=(loop, stopping, ready, started),
                                      name="fake-binance-streams", daemon=True)
            thread.start()
            started.wait()
            if ready[0] is not None:
                thread.join()
                raise ready[0]
            self._running = (thread, loop, stopping)
        return self

    def stop(self) -> None:
        """Close every connection (1001), stop listening, join the thread; idempotent."""
        with self._lock:
            running, self._running = self._running, None
        if running is not None:
            thread, loop, stopping = running
            loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout=10)

    def __enter__(self) -> FakeStreams:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, loop: asyncio.AbstractEventLoop, stopping: asyncio.Event,
             ready: list[BaseException | None], started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(stopping, ready, started))
        finally:
            leftover = asyncio.all_tasks(loop)
            for task in leftover:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.close()
            if self._hub.bands is not None:
                self._hub.bands.close()  # no step records bands for feeds that are gone

    async def _main(self, stopping: asyncio.Event, ready: list[BaseException | None],
                    started: threading.Event) -> None:
        try:
            server = await serve(self._serve, self.host, self._port,
                                 process_request=self._check_request,
                                 process_response=self._admit,
                                 create_connection=_Connection,
                                 ping_interval=self.ping_interval,
                                 ping_timeout=self.ping_timeout, close_timeout=1.0,
                                 max_size=2 ** 20, compression=None, logger=LOG)
        except OSError as exc:
            ready.append(exc)
            started.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        ready.append(None)
        started.set()
        pump = asyncio.create_task(self._pump())
        await stopping.wait()
        pump.cancel()
        await self._shut(server)

    @staticmethod
    async def _shut(server: Server) -> None:
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(asyncio.shield(server.wait_closed()), timeout=3)
        except asyncio.TimeoutError:
            for connection in server.connections:
                connection.transport.abort()
            await asyncio.wait([asyncio.ensure_future(server.wait_closed())], timeout=1)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._hub.cycle(loop.time())
            except Exception:  # pylint: disable=broad-exception-caught
                LOG.exception("fake streams: poll failed")  # keep serving the others

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Handshake filter: the per-IP attempt limit first (every attempt counts),
        then the path."""
        if not self._gate.admit(connection.remote_address[0], connection.loop.time()):
            return connection.respond(429, "Too many connection attempts\n")
        return _check_path(connection, request)

    def _admit(self, connection: _Connection, request: Request,
               response: Response) -> None:
        """Register the client before the 101 goes out: a stream named in the URL
        starts from the book as it is now, and no event can be missed."""
        target = parse_target(request.path)
        if response.status_code != 101 or not isinstance(target, _Target):
            return
        client = connection.client = _Client(connection, target)
        self._hub.clients.append(client)
        self._hub.subscribe(client, target.streams)
        closed = asyncio.ensure_future(connection.wait_closed())
        closed.add_done_callback(lambda _done: self._forget(client))  # a failed handshake too

    async def _serve(self, connection: _Connection) -> None:
        hub, client = self._hub, connection.client
        assert client is not None  # _admit ran
        hub.accepted += 1
        hub.open += 1
        client.sender = asyncio.create_task(self._send(client))
        try:
            async for message in connection:
                if not connection.over_limit:
                    hub.control(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget(client)

    def _forget(self, client: _Client) -> None:
        hub = self._hub
        if client not in hub.clients:
            return
        hub.clients.remove(client)
        hub.peak_incoming = max(hub.peak_incoming, client.connection.peak)
        hub.unsubscribe(client, list(client.streams))
        if client.sender is not None:
            hub.open -= 1
            client.sender.cancel()
        while not client.queue.empty():  # release flush() waiters
            client.queue.get_nowait()
            client.queue.task_done()

    async def _send(self, client: _Client) -> None:
        """Write the queue in order.  What is queued together goes out in one
        transport write: a step's events for a thousand streams then cost one
        system call instead of a thousand (the frames are the same)."""
        connection = client.connection
        while True:
            batch = [await client.queue.get()]
            while (not client.queue.empty() and len(batch) < _BATCH
                   and not isinstance(batch[-1], _Close)):
                batch.append(client.queue.get_nowait())
            texts = [item for item in batch if isinstance(item, str)]
            try:
                if texts:
                    async with connection.send_context():  # checks the state, then drains
                        for text in texts:
                            connection.protocol.send_text(text.encode())
                        connection.transport.write(b"".join(connection.protocol.data_to_send()))
                    self._hub.sent += len(texts)
                if isinstance(batch[-1], _Close):
                    await connection.close(batch[-1].code, batch[-1].reason)
            except ConnectionClosed:
                pass
            finally:
                for _ in batch:
                    client.queue.task_done()

    # ----------------------------------------------------------------- calls into the loop
    def _call(self, action: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run `action` on the event loop and return its result (awaited if a coroutine)."""
        with self._lock:
            running = self._running
        if running is None:
            raise RuntimeError("FakeStreams is not running; call start() first")

        async def run() -> Any:
            result = action()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), running[1]).result(timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """Poll the market now (whatever the 100/1000 ms pacing) and wait until every
        queued message is written: after `market.step(); streams.flush()` the events
        of that step are on the wire.  Does nothing while silenced."""

        async def flush() -> None:
            hub = self._hub
            hub.cycle(asyncio.get_running_loop().time(), force=True)
            await asyncio.gather(*(client.queue.join() for client in hub.clients))

        self._call(flush, timeout)

    # ----------------------------------------------------------------- faults
    def drop_connections(self) -> int:
        """Abort every connection's TCP socket, no close frame; returns how many."""

        def drop() -> int:
            for client in self._hub.clients:
                client.connection.transport.abort()
            return len(self._hub.clients)

        return self._call(drop)

    def close_connections(self, code: int = 1001, reason: str = "") -> int:
        """Close every connection with a close frame after what is queued; returns how
        many.  Waits (about 1 s at most) for the closing handshakes."""

        async def close() -> int:
            clients = list(self._hub.clients)
            for client in clients:
                client.queue.put_nowait(_Close(code, reason))
            await _closed(clients)
            return len(clients)

        return self._call(close)

    def silence(self, seconds: float) -> None:
        """Send no market data for `seconds`; connections, pings and replies go on."""

        def mute() -> None:
            self._hub.silent_until = asyncio.get_running_loop().time() + seconds

        self._call(mute)

    def skip_next_event(self, symbol: str) -> None:
        """Drop the next diff-depth event of `symbol` (each subscribed speed): the
        one after it starts with U > previous u + 1, a gap."""
        self._feed_fault(symbol, DepthFeed, "skips", "diff-depth")

    def swap_next_events(self, symbol: str) -> None:
        """Send the next two diff-depth events of `symbol` in reverse order."""
        self._feed_fault(symbol, DepthFeed, "swaps", "diff-depth")

    def duplicate_next_agg_trade(self, symbol: str) -> None:
        """Send the next aggTrade event of `symbol` twice in a row (same `a`)."""
        self._feed_fault(symbol, TradeFeed, "duplicates", "aggTrade")

    def skip_next_agg_trade(self, symbol: str) -> None:
        """Leave the next aggTrade event of `symbol` off the stream; REST aggTrades
        still has the trade, so a client sees a hole in the ids."""
        self._feed_fault(symbol, TradeFeed, "skips", "aggTrade")

    def _feed_fault(self, symbol: str, kind: type[Feed], counter: str, name: str) -> None:
        def arm() -> int:
            feeds = self._hub.symbol_feeds(symbol, kind)
            for feed in feeds:
                setattr(feed, counter, getattr(feed, counter) + 1)
            return len(feeds)

        if not self._call(arm):
            raise ValueError(f"no {name} stream of {symbol} is subscribed")

    def drop_ticker_pushes(self, symbol: str, count: int = 1) -> None:
        """Leave `symbol` out of the next `count` `!ticker_1d@arr` pushes that would
        have carried it (the other symbols are still sent).  Like a missed push,
        it is sent again only once its figures change after those pushes.  The
        fault waits for pushes, even without a subscriber yet."""
        if count < 1:
            raise ValueError("count must be >= 1")
        if symbol not in self.market.symbols():
            raise ValueError(f"{symbol} is not a listed symbol")

        def arm() -> None:
            self._hub.ticker_drops[symbol] += count

        self._call(arm)

    def server_shutdown(self) -> int:
        """Send the serverShutdown event to every connection, then close it (1001);
        returns how many connections got it."""

        async def shutdown() -> int:
            clients = list(self._hub.clients)
            event = {"e": "serverShutdown", "E": self.market.server_time()}
            for client in clients:
                client.queue.put_nowait(client.frame("!serverShutdown", event))
                client.queue.put_nowait(_Close(1001, "server shutdown"))
            await _closed(clients)
            return len(clients)

        return self._call(shutdown)

    # ----------------------------------------------------------------- inspection
    @property
    def port(self) -> int:
        """The bound port (the real one once started with port=0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for `SpotWebsocketStreamClient(stream_url=...)`."""
        return f"ws://{self.host}:{self._port}"

    @property
    def connections_accepted(self) -> int:
        """Websocket handshakes completed since construction."""
        return self._hub.accepted

    @property
    def connections_open(self) -> int:
        """Connections open right now."""
        return self._hub.open

    @property
    def connections_refused(self) -> int:
        """Handshakes answered 429 for the attempt limit since construction."""
        return self._gate.refused

    def max_incoming_per_second(self) -> int:
        """The most counted frames (text, binary, ping, pong) seen within any 1 s
        on any one connection so far, closed ones included: what a test checks
        to show a client stays under Binance's 5 a second."""
        return self._call(lambda: max([self._hub.peak_incoming] + [
            client.connection.peak for client in self._hub.clients]))

    @property
    def messages_sent(self) -> int:
        """Text frames written (data, replies, serverShutdown) since construction."""
        return self._hub.sent

    def subscriptions(self) -> list[list[str]]:
        """Each open connection's streams, in subscription order."""
        return self._call(lambda: [list(client.streams) for client in self._hub.clients])


class _AttemptGate:
    """Binance's limit on connection attempts per IP: at most `limit` within any
    `window` seconds; refused attempts count too, so hammering stays refused."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.attempts: dict[str, collections.deque[float]] = {}
        self.refused = 0

    def admit(self, address: str, now: float) -> bool:
        """Record one attempt from `address`; whether it is within the limit."""
        times = self.attempts.setdefault(address, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        times.append(now)
        if len(times) > self.limit:
            self.refused += 1
            return False
        return True


async def _closed(clients: list[_Client]) -> None:
    """Wait (2 s at most) until these connections are closed."""
    if clients:
        await asyncio.wait([asyncio.ensure_future(client.connection.wait_closed())
                            for client in clients], timeout=2)


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    """Handshake filter: 404 for an unknown path, 400 for bad streams in the URL."""
    target = parse_target(request.path)
    if target is None:
        return connection.respond(404, "Not Found\n")
    if not all(well_formed(name) for name in target.streams):
        return connection.respond(400, "Invalid request: invalid stream\n")
    if len(set(target.streams)) > MAX_STREAMS:
        return connection.respond(400, "Too many subscriptions\n")
    return None
