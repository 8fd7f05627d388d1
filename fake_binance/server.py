"""`FakeBinance`: a `Market` served over HTTP/1.1 the way api.binance.com answers.

Stdlib only (`ThreadingHTTPServer`), keep-alive with exact Content-Length, so
binance-connector (one `requests.Session` per `Spot`) reuses its connections as
it does against Binance.

Endpoints (GET): /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo,
/api/v3/depth, /api/v3/aggTrades, /api/v3/ticker/24hr,
/api/v3/ticker/bookTicker, with the weights, parameters and error codes of
`binance-api.md`.

Where Binance's docs are silent, this fake decides as follows (tests may rely
on it):

- The REQUEST_WEIGHT window is fixed (not sliding): windows of
  `window_seconds` aligned to the clock (`floor(now / window_seconds)`).
- Every /api request is charged its weight, rejected ones included (429, 418,
  -11xx errors, injected faults).  `X-MBX-USED-WEIGHT-1M` is on every /api
  response and includes the request itself.  A bad parameter that stops the
  weight being known (an unparsable `limit` or `symbols`) is charged the
  endpoint's smallest weight.
- Going over `market.weight_limit`: HTTP 429, `Retry-After` = seconds until
  the window ends.  Any request before that deadline: HTTP 418, IP banned for
  `ban_seconds` (doubling for each further ban, capped at 3 days), and every
  request until the ban ends gets 418 with `Retry-After` = seconds left.
- An unknown path: HTTP 404 with a small text/html body (what a web front end
  answers), weight 0, header still present.  POST on /api: 405 (other
  methods: the stdlib's 501).
- `depth?limit=` must match ^[0-9]{1,20}$ (else -1100); 0 gives -1130.
- aggTrades (weight 4 whatever the parameters): `limit`, `fromId`,
  `startTime` and `endTime` must match ^[0-9]{1,20}$ (else -1100); limit 0
  gives -1130 and a limit above 1000 is cut to 1000 (like depth's 5000).
  `fromId` with `startTime` or `endTime`: -1128.  Only the newest 5000
  aggregate trades of a symbol exist (`Market.agg_trades`), so an older
  `fromId` starts at the oldest one kept; startTime > endTime gives `[]`.
- A `symbols` value that is not a JSON array of strings: -1135; `[]`: -1102.
  Lists are answered in request order.  A parameter sent twice: -1101; an
  empty one: -1105.  Unknown parameters are ignored.
- `symbolStatus` (TRADING|HALT|BREAK) is honoured on depth, 24hr, bookTicker
  and exchangeInfo (-1122 for another value, -1220 for a single symbol that
  does not match).

Control API for other processes (GET or POST, JSON answers, never charged,
logged, delayed or faulted):

- /fake/step?n=1 (move the market), /fake/stats
- /fake/fault?fault=status&path=/api/v3/depth&status=503&count=3 (any
  `inject()` option; count=0 means until cleared), /fake/clear
- /fake/latency?seconds=0.1, /fake/status?symbol=BTCUSDT&status=BREAK
"""

from __future__ import annotations

import json
import math
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .market import DEFAULT_AGG_TRADES_LIMIT, BinanceError, Market

FAULTS = ("status", "reset", "truncate", "non_json", "slow", "json_without_code",
          "invalid_symbol")
_FAULT_OPTIONS = {"status": {"status", "body", "retry_after"}, "slow": {"seconds"}}
_MAX_BAN_SECONDS = 3 * 86_400
_JSON = "application/json;charset=UTF-8"
_HTML = "text/html"
_LIMIT_PATTERN = re.compile(r"[0-9]{1,20}")


class _Reply(NamedTuple):
    """A response to write; mode "reset"/"truncate" break it on purpose."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()
    mode: str = "normal"


def _json_reply(status: int, payload: object,
                headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _Reply(status, body, _JSON, headers)


def _html_reply(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode("utf-8"), _HTML)


def _error_page(status: int, reason: str) -> _Reply:
    return _html_reply(status, f"<html><head><title>{status} {reason}</title></head><body>"
                               f"<center><h1>{status} {reason}</h1></center></body></html>")


def _too_much_weight(limit: int) -> str:
    return (f"Too much request weight used; current limit is {limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")


def _banned(until_ms: int) -> str:
    return (f"Way too much request weight used; IP banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.")


def _retry_after(seconds: float) -> tuple[tuple[str, str], ...]:
    return (("Retry-After", str(max(1, math.ceil(seconds)))),)


@dataclass(frozen=True)
class RequestRecord:
    """One /api request as the fake saw it, for assertions in tests."""

    method: str
    path: str
    params: dict[str, str]
    weight: int
    status: int | None  # None: the connection was reset without an answer
    time: float
    fault: str | None = None


@dataclass
class _Fault:
    kind: str
    path: str | None
    remaining: int | None  # None: until clear_faults()
    options: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- parameters

def _parse_params(query: str) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True)
    for name, values in parsed.items():
        if len(values) > 1:
            raise BinanceError(400, -1101, "Duplicate values for a parameter detected.")
        if values[0] == "":
            raise BinanceError(400, -1105, f"Parameter '{name}' was empty.")
    return {name: values[0] for name, values in parsed.items()}


def _json_list(params: dict[str, str], name: str) -> list[str] | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BinanceError(400, -1135, f"JSON sent for parameter '{name}' is not valid.")
    if not value:
        raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was "
                                       "empty/null, or malformed.")
    return value


def _symbols(params: dict[str, str]) -> list[str] | None:
    """`symbols` as a list; None when absent.  Refuses `symbol` and `symbols` together."""
    if "symbol" in params and "symbols" in params:
        raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
    return _json_list(params, "symbols")


def _count_symbols(params: dict[str, str]) -> int | None:
    """How many symbols `symbols` names, for the weight; None if absent or unreadable."""
    try:
        value = json.loads(params["symbols"])
    except (KeyError, ValueError):
        return None
    return len(value) if isinstance(value, list) else None


# --------------------------------------------------------------------------- weights

def _weight_one(_params: dict[str, str]) -> int:
    return 1


def _weight_exchange_info(_params: dict[str, str]) -> int:
    return 20


def _weight_depth(params: dict[str, str]) -> int:
    """By the limit requested, not the levels returned: 5 / 25 / 50 / 250."""
    raw = params.get("limit", "100")
    limit = int(raw) if _LIMIT_PATTERN.fullmatch(raw) else 100
    return next((weight for bound, weight in _DEPTH_WEIGHTS if limit <= bound), 250)


# (highest limit, weight) from the docs; written as a table here, as the docs do.
_DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50))


def _weight_agg_trades(_params: dict[str, str]) -> int:
    return 4


def _weight_ticker_24hr(params: dict[str, str]) -> int:
    if "symbol" in params:
        return 2
    if "symbols" not in params:
        return 80
    count = _count_symbols(params) or 1
    if count <= 20:
        return 2
    return 40 if count <= 100 else 80


def _weight_book_ticker(params: dict[str, str]) -> int:
    return 2 if "symbol" in params else 4


# --------------------------------------------------------------------------- answers

def _answer_ping(_market: Market, _params: dict[str, str]) -> object:
    return {}


def _answer_time(market: Market, _params: dict[str, str]) -> object:
    return {"serverTime": market.server_time()}


def _answer_exchange_info(market: Market, params: dict[str, str]) -> object:
    symbols = _symbols(params)
    if "symbol" in params:
        symbols = [params["symbol"]]
    if symbols is not None and ("permissions" in params or "symbolStatus" in params):
        raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
    permissions = None
    if "permissions" in params:
        raw = params["permissions"]
        permissions = _json_list(params, "permissions") if raw.startswith("[") else [raw]
    show = params.get("showPermissionSets", "true")
    if show not in ("true", "false"):
        raise BinanceError(400, -1130, "Data sent for parameter 'showPermissionSets' is not "
                                       "valid.")
    return market.exchange_info(symbols, symbol_status=params.get("symbolStatus"),
                                permissions=permissions, show_permission_sets=show == "true")


def _answer_depth(market: Market, params: dict[str, str]) -> object:
    symbol = params.get("symbol")
    if symbol is None:
        raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was "
                                       "empty/null, or malformed.")
    raw = params.get("limit", "100")
    if not _LIMIT_PATTERN.fullmatch(raw):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'limit'; "
                                       "legal range is '^[0-9]{1,20}$'.")
    return market.depth(symbol, int(raw), symbol_status=params.get("symbolStatus"))


def _whole_param(params: dict[str, str], name: str) -> int | None:
    """An optional non-negative integer parameter; -1100 if it is not one."""
    raw = params.get(name)
    if raw is None:
        return None
    if not _LIMIT_PATTERN.fullmatch(raw):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^[0-9]{1,20}$'.")
    return int(raw)


def _answer_agg_trades(market: Market, params: dict[str, str]) -> object:
    symbol = params.get("symbol")
    if symbol is None:
        raise BinanceError(400, -1102, "Mandatory parameter 'symbol' was not sent, was "
                                       "empty/null, or malformed.")
    limit = _whole_param(params, "limit")
    return market.agg_trades(symbol, _whole_param(params, "fromId"),
                             DEFAULT_AGG_TRADES_LIMIT if limit is None else limit,
                             start_time=_whole_param(params, "startTime"),
                             end_time=_whole_param(params, "endTime"))


def _answer_ticker_24hr(market: Market, params: dict[str, str]) -> object:
    kind = params.get("type", "FULL")
    if kind not in ("FULL", "MINI"):
        raise BinanceError(400, -1139, "Invalid ticker type.")
    symbols = _symbols(params)
    return market.ticker_24hr(symbols, kind == "MINI", symbol=params.get("symbol"),
                              symbol_status=params.get("symbolStatus"))


def _answer_book_ticker(market: Market, params: dict[str, str]) -> object:
    symbols = _symbols(params)
    return market.book_ticker(symbols, symbol=params.get("symbol"),
                              symbol_status=params.get("symbolStatus"))


class _Route(NamedTuple):
    weigh: Callable[[dict[str, str]], int]
    answer: Callable[[Market, dict[str, str]], object]


ROUTES: dict[str, _Route] = {
    "/api/v3/ping": _Route(_weight_one, _answer_ping),
    "/api/v3/time": _Route(_weight_one, _answer_time),
    "/api/v3/exchangeInfo": _Route(_weight_exchange_info, _answer_exchange_info),
    "/api/v3/depth": _Route(_weight_depth, _answer_depth),
    "/api/v3/aggTrades": _Route(_weight_agg_trades, _answer_agg_trades),
    "/api/v3/ticker/24hr": _Route(_weight_ticker_24hr, _answer_ticker_24hr),
    "/api/v3/ticker/bookTicker": _Route(_weight_book_ticker, _answer_book_ticker),
}


# --------------------------------------------------------------------------- rate limit

class _RateLimiter:
    """REQUEST_WEIGHT per fixed window, and Binance's 429 -> 418 escalation."""

    def __init__(self, window_seconds: float, ban_seconds: float) -> None:
        self.window_seconds = window_seconds
        self.ban_seconds = ban_seconds
        self.used = 0
        self._window = -1
        self._retry_deadline = 0.0
        self._ban_until = 0.0
        self._bans = 0

    def reset(self) -> None:
        """Forget the window, the pending Retry-After and any ban."""
        self.used, self._window = 0, -1
        self._retry_deadline = self._ban_until = 0.0
        self._bans = 0

    def peek(self, now: float) -> int:
        """Weight used in the window that `now` falls in."""
        window = math.floor(now / self.window_seconds)
        if window != self._window:
            self._window, self.used = window, 0
        return self.used

    def charge(self, now: float, weight: int, limit: int) -> tuple[int, _Reply | None]:
        """Add `weight`; returns (used, a 429/418 reply or None if allowed)."""
        self.used = self.peek(now) + weight
        if now < self._ban_until:
            return self.used, self._ban_reply(now)
        if self.used <= limit:
            return self.used, None
        if now < self._retry_deadline:
            # Ignored the 429's Retry-After: banned, longer each time.
            ban = min(self.ban_seconds * 2 ** self._bans, _MAX_BAN_SECONDS)
            self._ban_until, self._bans = now + ban, self._bans + 1
            return self.used, self._ban_reply(now)
        self._retry_deadline = (self._window + 1) * self.window_seconds
        return self.used, _json_reply(429, {"code": -1003, "msg": _too_much_weight(limit)},
                                      _retry_after(self._retry_deadline - now))

    def _ban_reply(self, now: float) -> _Reply:
        return _json_reply(418, {"code": -1003, "msg": _banned(int(self._ban_until * 1000))},
                           _retry_after(self._ban_until - now))


# --------------------------------------------------------------------------- transport

class _Connections:
    """Open client sockets, so stop()/pause() can drop idle keep-alive connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.accepted = 0

    def add(self, sock: socket.socket) -> None:
        """A new client connection."""
        with self._lock:
            self._open.add(sock)
            self.accepted += 1

    def discard(self, sock: socket.socket) -> None:
        """A connection the handler has finished with."""
        with self._lock:
            self._open.discard(sock)

    def drop_all(self) -> None:
        """Shut every open connection down; their handler threads then end."""
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that skips the reverse-DNS lookup and stays quiet on drops."""

    daemon_threads = True
    allow_reuse_address = True  # resume() re-binds the same port at once

    def __init__(self, address: tuple[str, int], owner: FakeBinance,
                 connections: _Connections) -> None:
        self.owner = owner
        self.connections = connections
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would call getfqdn()
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # clients hanging up, resets we caused: expected here
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the owning FakeBinance."""

    protocol_version = "HTTP/1.1"  # keep-alive, like Binance
    server_version = "fake-binance"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection may stay open

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # the socket was reset or shut down under us

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        """All Binance endpoints are GET."""
        self.server.owner.serve_request(self)

    def do_POST(self) -> None:  # pylint: disable=invalid-name
        """Only the /fake control API answers POST; /api answers 405."""
        self.server.owner.serve_request(self)

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """Silent: tests and demos read `FakeBinance.requests` instead."""


def _write(handler: BaseHTTPRequestHandler, reply: _Reply, used: int | None) -> None:
    """Send `reply`, or break the connection the way `reply.mode` asks."""
    if reply.mode == "reset":
        # Linger 0 makes close() send RST: the client sees a reset, no answer.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()
        return
    handler.send_response(reply.status)
    handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Content-Length", str(len(reply.body)))
    if used is not None:
        handler.send_header("X-MBX-USED-WEIGHT-1M", str(used))
    for name, value in reply.headers:
        handler.send_header(name, value)
    handler.end_headers()
    if reply.mode == "truncate":
        handler.wfile.write(reply.body[: len(reply.body) // 2])
        handler.close_connection = True  # then close: the client gets less than promised
    else:
        handler.wfile.write(reply.body)


def _fault_reply(fault: _Fault, limit: int, now: float) -> _Reply:
    """The canned answer of a fault that replaces the real one."""
    if fault.kind == "non_json":
        return _html_reply(200, "<html><body><h1>Service maintenance</h1></body></html>")
    if fault.kind == "json_without_code":
        return _json_reply(403, {"error": "Request blocked by the web application firewall."})
    if fault.kind == "invalid_symbol":
        return _json_reply(400, {"code": -1121, "msg": "Invalid symbol."})
    return _status_fault_reply(fault, limit, now)


def _status_fault_reply(fault: _Fault, limit: int, now: float) -> _Reply:
    """fault "status": Binance-like bodies by default (JSON -1003 for 429/418, HTML for 5xx)."""
    status = int(fault.options.get("status", 503))
    retry_after = fault.options.get("retry_after")
    headers = _retry_after(float(retry_after)) if retry_after is not None else ()
    body = fault.options.get("body")
    if body is not None:
        try:
            json.loads(body)
            return _Reply(status, str(body).encode("utf-8"), _JSON, headers)
        except ValueError:
            return _Reply(status, str(body).encode("utf-8"), _HTML, headers)
    if status == 429:
        return _json_reply(429, {"code": -1003, "msg": _too_much_weight(limit)}, headers)
    if status == 418:
        until = int((now + float(retry_after or 120)) * 1000)
        return _json_reply(418, {"code": -1003, "msg": _banned(until)}, headers)
    if status >= 500:
        return _error_page(status, "Server Error")._replace(headers=headers)
    return _json_reply(status, {"code": -1000, "msg": "An unknown error occurred while "
                                                      "processing the request."}, headers)


def _control_option(name: str, value: str) -> Any:
    """Query-string option of /fake/fault -> the type inject() expects."""
    if value.lower() == "none":
        return None
    if name == "status":
        return int(value)
    if name in ("retry_after", "seconds"):
        return float(value)
    return value


# --------------------------------------------------------------------------- the server

class FakeBinance:
    """Binance SPOT REST on 127.0.0.1, from a `Market`, with faults on demand.

    Usage: `with FakeBinance(Market()) as fake: Spot(base_url=fake.url, ...)`.
    `clock` (seconds, like time.time) drives the weight window, bans and the
    request log, so tests can move time instead of sleeping.
    """

    def __init__(self, market: Market | None = None, host: str = "127.0.0.1", port: int = 0,
                 *, window_seconds: float = 60.0, ban_seconds: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.market = market if market is not None else Market()
        self.host = host
        self._port = port
        self._clock = clock
        self._lock = threading.Lock()
        self._limiter = _RateLimiter(window_seconds, ban_seconds)
        self._faults: list[_Fault] = []
        self._log: tuple[list[RequestRecord], list[int]] = ([], [0])  # records, total weight
        self._latency = 0.0
        self._stopping = threading.Event()
        self._connections = _Connections()
        self._listener: tuple[_Server, threading.Thread] | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeBinance:
        """Bind and serve in a daemon thread; returns self."""
        with self._lock:
            if self._listener is None:
                self._stopping.clear()
                self._listen()
        return self

    def _listen(self) -> None:
        server = _Server((self.host, self._port), self, self._connections)
        self._port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"fake-binance-{self._port}", daemon=True)
        thread.start()
        self._listener = (server, thread)

    def _unlisten(self) -> None:
        if self._listener is not None:
            server, thread = self._listener
            self._listener = None
            server.shutdown()
            server.server_close()
            thread.join(timeout=2)
        self._connections.drop_all()

    def stop(self) -> None:
        """Stop serving, close the socket and every open connection; idempotent."""
        self._stopping.set()  # wakes handlers sleeping on latency/slow faults
        with self._lock:
            self._unlisten()

    def pause(self) -> None:
        """Refuse connections (listening socket closed) until resume(): Binance unreachable."""
        with self._lock:
            self._unlisten()

    def resume(self) -> None:
        """Listen again on the same port (SO_REUSEADDR)."""
        with self._lock:
            if self._listener is None:
                self._listen()

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the real one once started with port=0)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL for `Spot(base_url=...)`."""
        return f"http://{self.host}:{self._port}"

    # ----------------------------------------------------------------- inspection
    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the /api requests seen so far, oldest first."""
        with self._lock:
            return list(self._log[0])

    @property
    def total_weight(self) -> int:
        """Weight charged since start or reset_log(), across windows."""
        with self._lock:
            return self._log[1][0]

    @property
    def used_weight(self) -> int:
        """Weight used in the current window (what the next header would start from)."""
        with self._lock:
            return self._limiter.peek(self._clock())

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far: shows keep-alive reuse."""
        return self._connections.accepted

    def reset_log(self) -> None:
        """Forget the request log and total_weight (not the rate-limit window)."""
        with self._lock:
            self._log = ([], [0])

    def reset_limits(self) -> None:
        """Forget the weight window, pending Retry-After and bans."""
        with self._lock:
            self._limiter.reset()

    # ----------------------------------------------------------------- faults
    def inject(self, fault: str, path: str | None = None, count: int | None = 1,
               **options: Any) -> None:
        """Make the next `count` requests to `path` (None: any /api path) misbehave.

        fault: "status" (status=, body=, retry_after=), "reset", "truncate",
        "non_json", "slow" (seconds=), "json_without_code", "invalid_symbol".
        count None or <= 0: until clear_faults().  Faults queue in order.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        unknown = set(options) - _FAULT_OPTIONS.get(fault, set())
        if unknown:
            raise ValueError(f"fault {fault!r} takes no option(s) {sorted(unknown)}")
        remaining = count if count is not None and count > 0 else None
        with self._lock:
            self._faults.append(_Fault(fault, path, remaining, dict(options)))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> list[dict[str, Any]]:
        """The faults still queued, as plain dicts."""
        with self._lock:
            return [{"fault": f.kind, "path": f.path, "remaining": f.remaining, **f.options}
                    for f in self._faults]

    def set_latency(self, seconds: float) -> None:
        """Delay every /api answer by `seconds` (e.g. 0.1 to mimic a distant Binance)."""
        with self._lock:
            self._latency = max(0.0, float(seconds))

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path is None or fault.path == path:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # ----------------------------------------------------------------- serving
    def serve_request(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request (called from handler threads)."""
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)  # keep the keep-alive stream in step
        if split.path.startswith("/fake/"):
            _write(handler, self._control(split.path, split.query), None)
            return
        now = self._clock()
        route = ROUTES.get(split.path) if handler.command == "GET" else None
        try:
            params, bad_params = _parse_params(split.query), None
        except BinanceError as exc:
            params, bad_params = {}, exc
        weight = route.weigh(params) if route else 0
        with self._lock:
            if route is None:
                used, verdict = self._limiter.peek(now), None
            else:
                used, verdict = self._limiter.charge(now, weight, self.market.weight_limit)
            fault = self._take_fault(split.path) if route else None
            delay = self._latency + (float(fault.options.get("seconds", 1.0))
                                     if fault and fault.kind == "slow" else 0.0)
        if delay:
            self._stopping.wait(delay)
        if route is None:
            reply = (_error_page(404, "Not Found") if split.path not in ROUTES
                     else _error_page(405, "Method Not Allowed"))
        else:
            reply = self._reply(route, params, bad_params, verdict, fault)
        if route is not None:
            record = RequestRecord(handler.command, split.path, params, weight,
                                   reply.status or None, now, fault.kind if fault else None)
            with self._lock:
                self._log[0].append(record)
                self._log[1][0] += weight
        _write(handler, reply, used)

    def _reply(self, route: _Route, params: dict[str, str], bad_params: BinanceError | None,
               verdict: _Reply | None, fault: _Fault | None) -> _Reply:
        """Precedence: a fault, then the rate limiter's 429/418, then the real answer."""
        if fault is not None and fault.kind == "reset":
            return _Reply(0, b"", mode="reset")
        if fault is not None and fault.kind not in ("slow", "truncate"):
            return _fault_reply(fault, self.market.weight_limit, self._clock())
        reply = verdict if verdict is not None else self._answer(route, params, bad_params)
        if fault is not None and fault.kind == "truncate":
            return reply._replace(mode="truncate")
        return reply

    def _answer(self, route: _Route, params: dict[str, str],
                bad_params: BinanceError | None) -> _Reply:
        try:
            if bad_params is not None:
                raise bad_params
            return _json_reply(200, route.answer(self.market, params))
        except BinanceError as exc:
            return _json_reply(exc.http_status, exc.body())
        except Exception:  # pylint: disable=broad-exception-caught
            # A bug in the fake must not look like a hang: show it, answer 500.
            traceback.print_exc()
            return _json_reply(500, {"code": -1000, "msg": "An unknown error occurred while "
                                                           "processing the request."})

    # ----------------------------------------------------------------- control API
    def _control(self, path: str, query: str) -> _Reply:
        params = {name: values[-1] for name, values in
                  parse_qs(query, keep_blank_values=True).items()}
        action = {
            "/fake/step": self._control_step,
            "/fake/fault": self._control_fault,
            "/fake/clear": self._control_clear,
            "/fake/latency": self._control_latency,
            "/fake/status": self._control_status,
            "/fake/stats": self._control_stats,
        }.get(path)
        if action is None:
            return _json_reply(404, {"error": f"unknown control path {path}"})
        try:
            return _json_reply(200, action(params))
        except (KeyError, ValueError, TypeError, BinanceError) as exc:
            return _json_reply(400, {"error": f"{type(exc).__name__}: {exc}"})

    def _control_step(self, params: dict[str, str]) -> dict:
        self.market.step(int(params.get("n", "1")))
        return {"steps": self.market.steps}

    def _control_fault(self, params: dict[str, str]) -> dict:
        kind = params.pop("fault")
        path = params.pop("path", None)
        count = int(params.pop("count", "1"))
        self.inject(kind, path, count,
                    **{name: _control_option(name, value) for name, value in params.items()})
        return {"faults": self.pending_faults()}

    def _control_clear(self, _params: dict[str, str]) -> dict:
        self.clear_faults()
        return {"faults": []}

    def _control_latency(self, params: dict[str, str]) -> dict:
        self.set_latency(float(params.get("seconds", "0")))
        return {"latency": self._latency}

    def _control_status(self, params: dict[str, str]) -> dict:
        self.market.set_status(params["symbol"], params["status"])
        return {"symbol": params["symbol"], "status": params["status"]}

    def _control_stats(self, _params: dict[str, str]) -> dict:
        return {"steps": self.market.steps, "total_weight": self.total_weight,
                "used_weight": self.used_weight, "requests": len(self.requests),
                "connections": self.connections_accepted}
