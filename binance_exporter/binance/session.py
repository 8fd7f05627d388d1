"""HTTP for the REST client: one deadline and one size cap per request, no redirects.

`requests` bounds each socket read, not a request: an upstream that sends one
byte a second (status line, headers or body, chunked or not) keeps a request
alive for ever, and nothing limits how much of an answer is read into memory.
`BoundedSession` is the `requests.Session` that `binance.spot.Spot` sends
through (the connector calls `self.session.get(...)`), and it makes every
request end, one way or another, within its `timeout`:

* the body is streamed in chunks and counted against `max_bytes`; a declared
  `Content-Length` over the cap is refused before any of the body is read;
* a process-wide watchdog thread shuts down the socket of a request still
  running at its deadline, which wakes a read blocked on dripping headers or
  body; the request then fails with `DeadlineExceeded`;
* a 3xx is never followed (Binance's API does not redirect, so a redirect
  points somewhere that is not Binance): `RedirectRefused` names its target;
* any status >= 400 raises `ErrorAnswer` with the status and headers, whatever
  the body: binance-connector loses the status of a 4xx whose JSON body has no
  `code` (it raises KeyError), and with it a 429's `Retry-After`.

The cap, `MAX_ANSWER_BYTES`, is 24 MiB: four times the largest answer the
exporter asks for. That is exchangeInfo, about 5.5 MB for 3,000 symbols
(measured on the fake Binance with 3,027 symbols, compact JSON); the
all-symbols 24 h tickers are 0.9 MB in MINI form and 1.6 MB in FULL form, the
all-symbols bookTicker 0.4 MB and a 5,000-level depth answer 70 kB. The
factor of four leaves room for Binance listing more symbols and adding fields
before a real answer comes near the cap, while a runaway answer costs at most
24 MiB of memory (plus the parsed copy of what was read).
"""

from __future__ import annotations

import heapq
import itertools
import json
import socket
import threading
import time
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import pool_classes_by_scheme as DEFAULT_POOL_CLASSES

from binance_exporter.binance.errors import clip

MAX_ANSWER_BYTES = 24 * 1024 * 1024
READ_CHUNK = 64 * 1024  # bytes per read; also the most held beyond the cap
RECHECK = 0.05  # seconds between cuts of a request that outlives its deadline
# The socket's own timeouts are only a backstop: they end a little after the
# deadline, so the deadline's cut (and its clear error) always comes first.
SOCKET_SLACK = 1.0
WATCHDOG_IDLE_EXIT = 60.0  # the watchdog thread ends after this long with nothing to watch


class DeadlineExceeded(requests.Timeout):
    """The whole request (connect, headers, body) took longer than its deadline."""


class AnswerTooLarge(requests.RequestException):
    """The answer is larger than the session's cap."""


class RedirectRefused(requests.RequestException):
    """A 3xx answer; `location` is where it pointed."""

    def __init__(self, message: str, *, status: int, location: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.location = location


class ErrorAnswer(requests.RequestException):
    """An HTTP status >= 400, with Binance's `code` and `msg` when the body has them."""

    def __init__(self, *, status: int, code: int | None, message: str, headers: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class _Guard:
    """One request's deadline, and the socket to cut when it passes.

    It holds the socket itself, not the connection: http.client drops a
    connection's socket (`conn.sock = None`) once an answer says
    `Connection: close`, while the body is still read from it.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.done = False
        self._sock: Any = None
        self._lock = threading.Lock()

    def attach(self, sock: Any) -> None:
        """Remember the socket the request is sent on."""
        with self._lock:
            self._sock = sock

    def cut(self) -> None:
        """Past the deadline: shut the socket down so a blocked read returns.

        `shutdown`, unlike `close`, wakes a thread blocked in `recv` on the
        same socket. The base class's method is called so that a TLS socket is
        cut underneath its TLS layer. Under the lock, so a request that has
        just finished never loses the connection it hands back to the pool.
        """
        with self._lock:
            if self.done:
                return
            self.expired = True
            if isinstance(self._sock, socket.socket):
                try:
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed or not connected: nothing left to wake

    def finish(self) -> bool:
        """The request is over; True when the deadline passed before it was."""
        with self._lock:
            self.done = True
            return self.expired


class _Watchdog:
    """One daemon thread for the whole process that cuts requests at their deadlines.

    A request still running after its cut (it was connecting, so there was no
    socket yet, or urllib3 replaced a stale pooled connection) is cut again
    every `RECHECK` seconds until it ends. The thread ends by itself after
    `WATCHDOG_IDLE_EXIT` seconds without requests and starts again with the
    next one.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, _Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, guard: _Guard) -> None:
        """Cut `guard`'s request if it is still running at its deadline."""
        with self._cond:
            heapq.heappush(self._queue, (guard.deadline, next(self._order), guard))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="binance-rest-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                guard = self._next_due()
                if guard is None:
                    self._thread = None
                    return
            guard.cut()
            with self._cond:
                if not guard.done:
                    heapq.heappush(
                        self._queue, (time.monotonic() + RECHECK, next(self._order), guard)
                    )

    def _next_due(self) -> _Guard | None:
        """The next guard past its deadline, or None after an idle spell (lock held)."""
        while True:
            while self._queue and self._queue[0][2].done:
                heapq.heappop(self._queue)
            if not self._queue:
                if not self._cond.wait(WATCHDOG_IDLE_EXIT) and not self._queue:
                    return None
                continue
            delay = self._queue[0][0] - time.monotonic()
            if delay <= 0:
                return heapq.heappop(self._queue)[2]
            self._cond.wait(delay)


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()  # the guard of the request this thread is sending


def _attach_current(sock: Any) -> None:
    guard = getattr(_CURRENT, "guard", None)
    if guard is not None and sock is not None:
        guard.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that hands each new socket to the current request's guard."""

    def connect(self) -> None:
        super().connect()
        _attach_current(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    """The TLS twin of `_WatchedHTTPConnection`."""

    def connect(self) -> None:
        # pylint cannot tell: urllib3 names a stand-in class the same when ssl is missing.
        super().connect()  # pylint: disable=no-member
        _attach_current(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    """A pool of watched connections; a reused one reports its socket when taken."""

    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _attach_current(conn.sock)
        return conn


class _WatchedHTTPSPool(HTTPSConnectionPool):
    """The TLS twin of `_WatchedHTTPPool`."""

    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _attach_current(conn.sock)
        return conn


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools report their connections to the watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # A SOCKS manager brings its own pool classes; those keep them and
        # rely on the deadline checks between body chunks.
        if manager.pool_classes_by_scheme is DEFAULT_POOL_CLASSES:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class BoundedSession(requests.Session):
    """A Session whose every request ends within `timeout` s and reads at most `max_bytes`.

    Answers come back fully read (`response.content` is set), so callers such
    as binance-connector use them as usual. Failures are `requests`
    exceptions: `DeadlineExceeded`, `AnswerTooLarge`, `RedirectRefused`,
    `ErrorAnswer`, or what `requests` raises for a refused connection.
    """

    def __init__(self, timeout: float, max_bytes: int = MAX_ANSWER_BYTES,
                 decoders: Mapping[str, Callable[[bytes], Any]] | None = None) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_bytes = max_bytes
        # URL path -> how to turn a 200 answer's body into data, instead of
        # decoding all of its JSON (see `payloads.decode_exchange_info`).
        self.decoders = dict(decoders or {})
        adapter = _WatchedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        """Send and read one request within the session's deadline and cap.

        The caller's `timeout`, `stream` and `allow_redirects` are replaced:
        the session's deadline covers the whole request, the body is always
        streamed against the cap, and redirects are never followed.
        """
        started = time.monotonic()
        guard = _Guard(started + self.timeout)
        backstop = self.timeout + SOCKET_SLACK
        kwargs.update(stream=True, allow_redirects=False, timeout=(backstop, backstop))
        _CURRENT.guard = guard
        _WATCHDOG.watch(guard)
        try:
            response = super().request(method, url, *args, **kwargs)
            try:
                self._read_body(response, guard)
            finally:
                response.close()  # releases a fully read connection, drops any other
        except requests.RequestException as exc:
            if guard.finish() and not isinstance(exc, AnswerTooLarge):
                raise self._late(started) from None
            raise
        except (OSError, ValueError) as exc:
            # What urllib3 or http.client let through unwrapped.
            if guard.finish():
                raise self._late(started) from None
            raise requests.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            guard.finish()
            _CURRENT.guard = None
        return self._judge(response)

    def get_redirect_target(self, resp: requests.Response) -> None:
        """No redirect is ever followed, nor prepared.

        Even with `allow_redirects=False`, `Session.send` prepares the next
        request of a 3xx (`response.next`), reading the 3xx's whole body
        first, uncapped; with no target there is nothing to prepare.
        """

    def _late(self, started: float) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"no complete answer within the {self.timeout:g} s deadline "
            f"(gave up after {time.monotonic() - started:.1f} s)"
        )

    def _read_body(self, response: requests.Response, guard: _Guard) -> None:
        """Read the body into `response.content`, within the deadline and the cap."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise AnswerTooLarge(
                f"answer of {int(declared)} bytes (Content-Length) is over the "
                f"{self.max_bytes}-byte cap"
            )
        body = bytearray()
        for chunk in response.iter_content(READ_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                raise AnswerTooLarge(f"answer is over the {self.max_bytes}-byte cap")
            if time.monotonic() > guard.deadline:
                guard.cut()
                break
        if guard.finish():
            # A cut socket can look like the end of a body sent without a length.
            raise requests.Timeout("deadline passed while reading the body")
        # requests keeps a read body in these two attributes; setting them is
        # what makes `.content`, `.text` and `.json()` work on a streamed answer.
        response._content = bytes(body)  # pylint: disable=protected-access
        response._content_consumed = True  # pylint: disable=protected-access
        if response.encoding is None:
            # Binance's JSON is UTF-8; without this, `.text` would guess the
            # encoding by scanning the whole body.
            response.encoding = "utf-8"
        decoder = self.decoders.get(urlsplit(response.url).path)
        if decoder is not None and response.status_code == 200:
            body_bytes = response.content
            response.json = lambda **_options: decoder(body_bytes)  # type: ignore[method-assign]

    @staticmethod
    def _judge(response: requests.Response) -> requests.Response:
        """Refuse redirects and error statuses; hand back anything else."""
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location")
            raise RedirectRefused(
                f"HTTP {status} redirect to {clip(location)} not followed "
                "(Binance's API does not redirect)",
                status=status, location=location,
            )
        if status >= 400:
            code, message = _error_fields(response)
            raise ErrorAnswer(status=status, code=code, message=message,
                              headers=response.headers)
        return response


def _error_fields(response: requests.Response) -> tuple[int | None, str]:
    """Binance's `{"code": int, "msg": str}` when the body is that, else the body's text."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        code = body.get("code")
        message = body.get("msg")
        if isinstance(code, int) and not isinstance(code, bool) and isinstance(message, str):
            return code, clip(message)
    return None, clip(response.content[:1000].decode("utf-8", "replace"))
