"""The HTTP endpoint's connections on one thread, and a small pool that answers requests.

A thread per connection lets any client hold a thread for as long as it keeps
its socket open: idle, or sending its headers a byte at a time. Here one
thread does all the waiting. It accepts, completes TLS handshakes, reads
request heads and writes answers, every socket non-blocking under one
selector, and hands a request to a worker only once its head is complete.
So the thread count is fixed, whatever the number of open connections. The
worker sends what the socket takes of its answer at once (most answers,
whole); the loop thread writes the rest.

Every connection has a deadline: the TLS handshake and the first request's
head must arrive within `header_timeout` of the accept, a later request's
head within `header_timeout` of its first byte, an idle keep-alive
connection lives `idle_timeout`, and an answer must be taken within
`write_timeout`. A request line or head over its size cap gets 414 or 431.
Past `max_connections`, the longest-waiting connection gives way to the new one.
"""

from __future__ import annotations

import logging
import queue
import re
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from binance_exporter.metrics.certificates import ReloadingContext

LOG = logging.getLogger(__name__)
HANDSHAKE, READING, WORKING, WRITING = "handshake", "reading", "working", "writing"
HEAD_END = re.compile(rb"\r?\n\r?\n")
CHUNK = 64 * 1024
SWEEP_INTERVAL = 0.25  # how often deadlines are checked: their precision
ACCEPTS_PER_WAKE = 64
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
# A worker turns a complete request head into (the whole answer, keep the connection).
Responder = Callable[[bytes, tuple], tuple[bytes, bool]]


@dataclass(frozen=True)
class Limits:
    """Deadlines in seconds, sizes in bytes, and how many of each."""

    header_timeout: float = 10.0
    # Longer than Prometheus's usual scrape intervals, so a scraper keeps its connection.
    idle_timeout: float = 90.0
    write_timeout: float = 30.0
    max_request_line: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    max_connections: int = 1000
    workers: int = 4


def canned(status: int, reason: str) -> bytes:
    """A whole answer that closes the connection, for requests no worker sees."""
    body = f"{reason}\n".encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Connection:
    """One client socket and where it stands: the loop thread's, but while WORKING the
    worker's that answers it (the loop thread leaves a working connection alone)."""

    def __init__(self, sock: socket.socket, address: tuple, state: str, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.state = state
        self.deadline = deadline
        self.buffer = bytearray()
        self.out = memoryview(b"")
        self.close_after = False
        self.since = time.monotonic()

    def handshake(self) -> bool:
        """Advance the TLS handshake; True once it is complete."""
        assert isinstance(self.sock, ssl.SSLSocket)
        self.sock.do_handshake()
        return True

    def receive(self, most: int) -> bool:
        """Read what has arrived into the buffer; False when the client closed."""
        while len(self.buffer) <= most:
            try:
                data = self.sock.recv(CHUNK)
            except WOULD_BLOCK:
                return True
            if not data:
                return False
            self.buffer += data
        return True

    def send(self) -> bool:
        """Write what the socket takes; True once the whole answer is out."""
        # TLS needs a retry with the same bytes, so each chunk stays as it was;
        # a plain socket takes all it can in one call.
        chunk = CHUNK if isinstance(self.sock, ssl.SSLSocket) else len(self.out)
        while self.out:
            try:
                sent = self.sock.send(self.out[:chunk])
            except WOULD_BLOCK:
                return False
            self.out = self.out[sent:]
        return True


class Workers:
    """A fixed number of daemon threads running what they are given, in order."""

    def __init__(self, count: int, name: str) -> None:
        self._queue: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                         for i in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` on the next free worker."""
        self._queue.put(task)

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            task()

    def close(self) -> None:
        """Let every worker finish its task and end."""
        for _ in self._threads:
            self._queue.put(None)


class Waker:
    """A socket pair that wakes the selector when a worker has an answer ready."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        """Make the selector return (from any thread)."""
        try:
            self._writer.send(b"\0")
        except BlockingIOError:  # already awake: the bytes waiting will do
            pass

    def drain(self) -> None:
        """Take the wake-up bytes (on the loop thread)."""
        try:
            while self.reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends."""
        self.reader.close()
        self._writer.close()


def answer_and_send(respond: Responder, conn: Connection, head: bytes) -> bool:
    """Answer `head` into `conn.out` and send as much as the socket takes at once;
    whether to keep the connection. Runs on a worker: the loop thread leaves a
    working connection alone, and writes whatever is left once it is back.

    Sending here spares a scrape the wait for the loop thread to get the GIL
    back, which under a busy stream reader is most of its time.
    """
    try:
        answer, keep_alive = respond(head, conn.address)
    except Exception:  # pylint: disable=broad-exception-caught
        # A bug of ours must not leave the connection waiting forever.
        LOG.exception("could not answer %s", conn.address[0])
        answer, keep_alive = canned(500, "Internal Server Error"), False
    conn.out = memoryview(answer)
    try:
        conn.send()
    except Exception:  # pylint: disable=broad-exception-caught
        # Reset, broken pipe, a socket closed at shutdown: the loop thread's
        # next write meets it again and closes the connection.
        LOG.debug("client %s: the worker's send failed", conn.address[0], exc_info=True)
    return keep_alive


class ConnectionLoop:  # pylint: disable=too-many-instance-attributes
    """Accepts and serves connections on the calling thread until `stop()`."""

    def __init__(self, listener: socket.socket, respond: Responder,
                 tls: ReloadingContext | None, limits: Limits) -> None:
        self.listener = listener
        self.respond = respond
        self.tls = tls
        self.limits = limits
        self.connections: dict[socket.socket, Connection] = {}
        self._selector = selectors.DefaultSelector()
        self._waker = Waker()
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._waker.reader, selectors.EVENT_READ, "wake")
        self._done: queue.SimpleQueue[tuple[Connection, bool]] = queue.SimpleQueue()
        self._workers = Workers(limits.workers, "http-worker")
        self._stop = threading.Event()

    def run(self) -> None:
        """Serve until `stop()`."""
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        while not self._stop.is_set():
            for key, _events in self._selector.select(SWEEP_INTERVAL):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._waker.drain()
                else:
                    self._advance(key.data)
            while not self._done.empty():
                self._answered(*self._done.get())
            if (now := time.monotonic()) >= next_sweep:
                self._sweep(now)
                next_sweep = now + SWEEP_INTERVAL

    def stop(self) -> None:
        """Make `run` return soon (from any thread)."""
        self._stop.set()
        self._waker.wake()

    def close(self) -> None:
        """Close every connection, the listener and the workers (after `run` returned)."""
        for conn in list(self.connections.values()):
            self._close(conn)
        self._workers.close()
        self._selector.close()
        self.listener.close()
        self._waker.close()


    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            except OSError as exc:  # out of file descriptors: make room for the next
                LOG.warning("cannot accept a connection: %s", exc)
                if not self._evict():
                    return
                continue
            if len(self.connections) >= self.limits.max_connections:
                self._evict()
            self._adopt(sock, address)

    def _adopt(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(False)
        # The answer leaves in one buffer; no Nagle delay on its last segment.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + self.limits.header_timeout
        if self.tls is not None:
            sock = self.tls.context().wrap_socket(sock, server_side=True,
                                                  do_handshake_on_connect=False)
        conn = Connection(sock, address, HANDSHAKE if self.tls else READING, deadline)
        self.connections[sock] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict(self) -> bool:
        """Close the connection that has waited longest without a request in hand."""
        waiting = [c for c in self.connections.values() if c.state != WORKING]
        if not waiting:
            return False
        self._close(min(waiting, key=lambda c: c.since))
        return True


    def _advance(self, conn: Connection) -> None:
        try:
            if conn.state == HANDSHAKE:
                conn.handshake()
                self._set(conn, READING, conn.deadline)
            if conn.state == READING:
                self._read(conn)
            elif conn.state == WRITING:
                self._write(conn)
        except ssl.SSLWantReadError:
            self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        except ssl.SSLWantWriteError:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            # Reset, broken pipe, plain HTTP on the TLS port, a certificate refused.
            LOG.debug("client %s went away: %s", conn.address[0], exc)
            self._close(conn)

    def _read(self, conn: Connection) -> None:
        was_empty = not conn.buffer
        if not conn.receive(self.limits.max_header_bytes):
            self._close(conn)
            return
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if was_empty and conn.buffer and conn.deadline > time.monotonic() + \
                self.limits.header_timeout:
            # An idle keep-alive connection starts a request: its head has the usual time.
            conn.deadline = time.monotonic() + self.limits.header_timeout
        self._parse(conn)

    def _parse(self, conn: Connection) -> None:
        """Hand a complete head to a worker, or refuse one over its cap."""
        while conn.buffer[:2] == b"\r\n":  # blank lines before a request are allowed
            del conn.buffer[:2]
        line_end = conn.buffer.find(b"\n")
        match = HEAD_END.search(conn.buffer)
        if line_end > self.limits.max_request_line or \
                (line_end < 0 and len(conn.buffer) > self.limits.max_request_line):
            self._refuse(conn, canned(414, "URI Too Long"))
        elif (match.end() if match else len(conn.buffer)) > self.limits.max_header_bytes:
            self._refuse(conn, canned(431, "Request Header Fields Too Large"))
        elif match is not None:
            head = bytes(conn.buffer[:match.end()])
            del conn.buffer[:match.end()]
            self._set(conn, WORKING, float("inf"))
            self._workers.submit(lambda: self._work(conn, head))

    def _work(self, conn: Connection, head: bytes) -> None:
        """On a worker: answer and send what the socket takes, then back to the loop thread
        (whatever happens: a connection left working would never be swept)."""
        keep_alive = False
        try:
            keep_alive = answer_and_send(self.respond, conn, head)
        finally:
            self._done.put((conn, keep_alive))
            self._waker.wake()

    def _answered(self, conn: Connection, keep_alive: bool) -> None:
        if conn.sock in self.connections:
            conn.close_after = not keep_alive
            self._start_write(conn)

    def _refuse(self, conn: Connection, answer: bytes) -> None:
        conn.close_after = True
        conn.buffer.clear()
        conn.out = memoryview(answer)
        self._start_write(conn)

    def _start_write(self, conn: Connection) -> None:
        """Write what is left of `conn.out`, from the loop thread."""
        self._set(conn, WRITING, time.monotonic() + self.limits.write_timeout)
        self._advance(conn)

    def _write(self, conn: Connection) -> None:
        if not conn.send():
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        if conn.close_after:
            self._close(conn)
            return
        self._set(conn, READING, time.monotonic() + self.limits.idle_timeout)
        if conn.buffer:  # a pipelined request: its head has the usual time
            conn.deadline = time.monotonic() + self.limits.header_timeout
        # TLS may hold decrypted bytes that no readiness event will announce.
        self._advance(conn)

    def _set(self, conn: Connection, state: str, deadline: float) -> None:
        registered = conn.state != WORKING
        conn.state, conn.deadline, conn.since = state, deadline, time.monotonic()
        if state == WORKING and registered:
            self._selector.unregister(conn.sock)
        elif state != WORKING and not registered:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)


    def _sweep(self, now: float) -> None:
        for conn in [c for c in self.connections.values() if c.deadline < now]:
            if conn.state == READING and conn.buffer:
                LOG.debug("client %s did not send its request in time", conn.address[0])
                conn.out = memoryview(canned(408, "Request Timeout"))
                try:
                    conn.send()  # one try: a client this slow may not read it
                except (OSError, ssl.SSLError):
                    pass
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        if self.connections.pop(conn.sock, None) is None:
            return
        if conn.state != WORKING:
            self._selector.unregister(conn.sock)
        conn.sock.close()
