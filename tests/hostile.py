"""A hostile HTTP upstream on 127.0.0.1, for tests of the REST client's defences.

`HostileServer` answers every request with the current `Behaviour`: a chosen
JSON body, headers or a body dripped one byte at a time, a slow chunked body,
a huge generated body, a redirect, or a 429/418 with any `Retry-After`. Each
answer closes its connection, so a test that changes the behaviour sees the
next request get the new one.

Bounded by construction: a request head larger than 64 kB is dropped, every
behaviour stops as soon as the client goes away or the server stops, huge
bodies are generated block by block (never held whole), and the server stops
by itself after `lifetime` seconds if the test does not stop it first.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_HEAD = 64 * 1024  # bytes of request line and headers read before giving up
BLOCK = 64 * 1024  # bytes per write of a generated body


class _Gone(Exception):
    """The client went away or the server is stopping."""


class Connection:
    """One accepted connection, with writes that give up when the server stops."""

    def __init__(self, sock: socket.socket, stopping: threading.Event, log: Log,
                 request: str = "") -> None:
        self.sock = sock
        self.stopping = stopping
        self.log = log
        self.request = request  # the request line, e.g. "GET /api/v3/depth?... HTTP/1.1"

    def send(self, data: bytes) -> None:
        """Write `data`, or raise `_Gone` when the client has left or the server stops."""
        if self.stopping.is_set():
            raise _Gone()
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Gone() from exc
        self.log.sent(len(data))

    def drip(self, data: bytes, interval: float) -> None:
        """Write `data` one byte every `interval` seconds."""
        for index in range(len(data)):
            self.send(data[index:index + 1])
            if self.stopping.wait(interval):
                raise _Gone()

    def pause(self, seconds: float) -> None:
        """Wait, unless the server stops first."""
        if self.stopping.wait(seconds):
            raise _Gone()


Behaviour = Callable[[Connection], None]


def head(status: int, headers: dict[str, str] | None = None, reason: str = "X") -> bytes:
    """A status line and headers; `Connection: close` so each answer has its own connection."""
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def whole_answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of an answer: `body` as JSON (or as is, when bytes), with a Content-Length."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    fields = {"Content-Type": "application/json;charset=UTF-8",
              "Content-Length": str(len(data)), "X-MBX-USED-WEIGHT-1M": "10"}
    fields.update(headers or {})
    return head(status, fields) + data


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    """Send `whole_answer(body, status, headers)` at once."""
    data = whole_answer(body, status, headers)

    def behave(conn: Connection) -> None:
        conn.send(data)

    return behave


def relay(base_url: str) -> Behaviour:
    """Pass each GET on to `base_url` (the fake Binance) and its answer back: no fault.

    The weight and Retry-After headers go back with the answer; an answer the
    fake cuts short (its own faults) is cut short here too, by hanging up.
    """

    def behave(conn: Connection) -> None:
        target = base_url + conn.request.split(" ")[1]
        try:
            with urllib.request.urlopen(target, timeout=10) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        except (OSError, http.client.HTTPException) as exc:
            raise _Gone() from exc
        kept = {name: headers[name] for name in ("X-MBX-USED-WEIGHT-1M", "Retry-After")
                if headers.get(name) is not None}
        conn.send(whole_answer(body, status, kept))

    return behave


def drip_head(interval: float) -> Behaviour:
    """A whole answer, status line and headers included, one byte per `interval`."""
    data = whole_answer({"ok": True}, headers={"X-Padding": "x" * 200})

    def behave(conn: Connection) -> None:
        conn.drip(data, interval)

    return behave


def drip_body(interval: float, size: int = 10_000) -> Behaviour:
    """Headers at once, then a `size`-byte body one byte per `interval`."""
    def behave(conn: Connection) -> None:
        conn.send(head(200, {"Content-Type": "application/json",
                             "Content-Length": str(size)}))
        conn.drip(b" " * size, interval)

    return behave


def slow_chunks(interval: float, chunks: int = 10_000) -> Behaviour:
    """A chunked body of one-byte chunks, one every `interval` seconds."""
    def behave(conn: Connection) -> None:
        conn.send(head(200, {"Content-Type": "application/json",
                             "Transfer-Encoding": "chunked"}))
        for _ in range(chunks):
            conn.send(b"1\r\n \r\n")
            conn.pause(interval)
        conn.send(b"0\r\n\r\n")

    return behave


def huge_body(size: int, framing: str = "length") -> Behaviour:
    """A `size`-byte body generated block by block.

    `framing` is "length" (a Content-Length header), "chunked", or "close"
    (no length: the body ends when the connection does).
    """
    fields = {"Content-Type": "application/json"}
    if framing == "length":
        fields["Content-Length"] = str(size)
    elif framing == "chunked":
        fields["Transfer-Encoding"] = "chunked"
    block = b" " * BLOCK

    def behave(conn: Connection) -> None:
        conn.send(head(200, fields))
        left = size
        while left > 0:
            piece = block[:min(left, BLOCK)]
            if framing == "chunked":
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            else:
                conn.send(piece)
            left -= len(piece)
        if framing == "chunked":
            conn.send(b"0\r\n\r\n")

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    """A redirect to `location`."""
    return answer(b"", status=status, headers={"Location": location})


def rate_limited(status: int, retry_after: str | None, code: int | None = -1003,
                 body: bytes | None = None) -> Behaviour:
    """A 429 or 418 with `retry_after` (None: no header); the body has `code` unless None."""
    if body is None:
        payload: dict[str, Any] = {"msg": "Too much request weight used; fake"}
        if code is not None:
            payload["code"] = code
        body = json.dumps(payload).encode()
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return answer(body, status=status, headers=headers)


@dataclass
class Log:
    """What the server saw and did: request lines, bytes sent, answers ended."""

    lines: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    ended: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, line: str) -> None:
        """Record one request line."""
        with self.changed:
            self.lines.append(line)

    def sent(self, size: int) -> None:
        """Count bytes written to clients."""
        with self.changed:
            self.bytes_sent += size

    def end(self) -> None:
        """One answer is over (sent in full, or its client went away)."""
        with self.changed:
            self.ended += 1
            self.changed.notify_all()

    def count(self) -> int:
        """Requests seen so far."""
        with self.changed:
            return len(self.lines)

    def wait_ended(self, answers: int, timeout: float) -> bool:
        """Wait until `answers` answers are over; False if `timeout` s pass first."""
        with self.changed:
            return self.changed.wait_for(lambda: self.ended >= answers, timeout)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, owner: HostileServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner = self.server.owner
        sock: socket.socket = self.request
        sock.settimeout(5.0)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                more = sock.recv(4096)
                if not more or len(data) > MAX_HEAD:
                    return
                data += more
        except OSError:
            return
        request = data.split(b"\r\n", 1)[0].decode("latin-1")
        owner.log.add(request)
        try:
            owner.behaviour(Connection(sock, owner.stopping, owner.log, request))
        except _Gone:
            pass
        finally:
            owner.log.end()


class HostileServer:
    """The hostile upstream: `with HostileServer() as server: ... server.behaviour = ...`."""

    def __init__(self, behaviour: Behaviour | None = None, lifetime: float = 120.0) -> None:
        self.behaviour: Behaviour = behaviour or answer({})
        self.log = Log()
        self.stopping = threading.Event()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="hostile-server", daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        """The base URL to point a client at."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HostileServer:
        """Serve in a background thread until `stop` (or the lifetime ends)."""
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and end every behaviour still running."""
        self.stopping.set()
        self._timer.cancel()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
