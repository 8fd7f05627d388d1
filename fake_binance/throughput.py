"""How many bookTicker messages a second `FakeStreams` sends for a whole market.

`python -m fake_binance.throughput --symbols 3000 --interval 0.1 --seconds 10`
builds `Market(extra_symbols=3000)`, subscribes every extra symbol's
`<sym>@bookTicker` over `--connections` raw `/ws` connections (one SUBSCRIBE
each), steps the market every `--interval` s for `--seconds` s and prints
what the fake wrote and what the clients read, per second.

The clients run in processes of their own and only count the `{"u":` that
starts every bookTicker payload, so they cost little and the figure is the
fake's: its event loop shares one interpreter (one GIL) with `Market.step()`,
as in tests and in `python -m fake_binance --ws-port`.  When a step's events
take longer to send than the interval, feeds coalesce (a bookTicker stream
sends the newest top), so "events per step" drops below the moved symbols.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import socket
import struct
import sys
import time
from multiprocessing.sharedctypes import Synchronized

from .market import BUILTIN_SYMBOLS, Market
from .streams import MAX_STREAMS, FakeStreams

_MARK = b'{"u":'  # every bookTicker payload starts so, and nothing else does


def _masked_text(text: str) -> bytes:
    """One client text frame (clients must mask, RFC 6455 §5.3)."""
    data = text.encode()
    mask = os.urandom(4)
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return header + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


def _client(port: int, streams: list[str], count: Synchronized, ready: object) -> None:
    """Subscribe over a bare socket, then count bookTicker payloads until EOF."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, tail = received.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"handshake refused: {head!r}")
    sock.sendall(_masked_text(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1})))
    ready.release()  # type: ignore[attr-defined]
    total = 0
    while data := sock.recv(1 << 20):
        chunk = tail + data
        total += chunk.count(_MARK)
        tail = chunk[-(len(_MARK) - 1):]  # too short to hold a counted mark again
        count.value = total


def _start_clients(port: int, shares: list[list[str]]) -> tuple[list, list[Synchronized]]:
    """One counting client process per share of streams, each subscribed."""
    context = multiprocessing.get_context("spawn")  # no fork of the server's threads
    counts = [context.Value("q", 0) for _ in shares]
    ready = context.Semaphore(0)
    clients = [context.Process(target=_client, args=(port, share, count, ready), daemon=True)
               for share, count in zip(shares, counts)]
    for client in clients:
        client.start()
    for _ in clients:
        ready.acquire()  # pylint: disable=consider-using-with  # a counter, not a lock
    return clients, counts


def _step_for(market: Market, interval: float, seconds: float) -> tuple[int, float, float]:
    """Step every `interval` s for `seconds` s: (steps, seconds stepping, seconds)."""
    started = time.monotonic()
    steps, stepping = 0, 0.0
    while (now := time.monotonic()) < started + seconds:
        begun = time.perf_counter()
        market.step()
        stepping += time.perf_counter() - begun
        steps += 1
        time.sleep(max(0.0, started + steps * interval - time.monotonic()))
    return steps, stepping, now - started


def _figures(market: Market, streams: FakeStreams, counts: list[Synchronized],
             interval: float, seconds: float) -> dict:
    """Step the market under load; what was sent and read per second."""

    def read() -> int:
        return sum(count.value for count in counts)

    time.sleep(0.5)  # the SUBSCRIBE replies are out; baselines taken
    sent, got = streams.messages_sent, read()
    steps, stepping, elapsed = _step_for(market, interval, seconds)
    figures = {"steps_per_s": steps / elapsed, "step_ms": stepping / steps * 1000,
               "sent_per_s": (streams.messages_sent - sent) / elapsed,
               "read_per_s": (read() - got) / elapsed}
    stopped = time.monotonic()
    while read() - got < streams.messages_sent - sent and time.monotonic() < stopped + 10:
        time.sleep(0.05)
    figures["drained_after_s"] = time.monotonic() - stopped
    figures["events_per_step"] = (read() - got) / steps
    return figures


def measure(symbols: int, connections: int, interval: float, seconds: float) -> dict:
    """Run the load and return its figures (see `main` for what they mean)."""
    market = Market(extra_symbols=symbols)
    builtin = {spec.symbol for spec in BUILTIN_SYMBOLS}
    names = [f"{name.lower()}@bookTicker" for name in market.symbols() if name not in builtin]
    shares = [names[index::connections] for index in range(connections)]
    if max(len(share) for share in shares) > MAX_STREAMS:
        raise ValueError(f"more than {MAX_STREAMS} streams a connection; add connections")
    with FakeStreams(market, ping_interval=None) as streams:
        clients, counts = _start_clients(streams.port, shares)
        try:
            figures = _figures(market, streams, counts, interval, seconds)
        finally:
            for client in clients:
                client.kill()
    return {"symbols": len(names), "connections": connections, **figures}


def main(argv: list[str] | None = None) -> int:
    """Print the figures of one run."""
    parser = argparse.ArgumentParser(prog="python -m fake_binance.throughput",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--symbols", type=int, default=3000, help="extra symbols (3000)")
    parser.add_argument("--connections", type=int, default=3, help="client connections (3)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between market steps (0.1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the run (10)")
    args = parser.parse_args(argv)
    figures = measure(args.symbols, args.connections, args.interval, args.seconds)
    print(f"{figures['symbols']} bookTicker streams over {figures['connections']} connections, "
          f"{figures['steps_per_s']:.1f} steps/s ({figures['step_ms']:.1f} ms each)")
    print(f"sent {figures['sent_per_s']:.0f} messages/s, read {figures['read_per_s']:.0f}/s, "
          f"{figures['events_per_step']:.0f} events per step, all read "
          f"{figures['drained_after_s']:.2f} s after the last step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
