"""`--record FILE`: what stream mode received, as gzip-compressed JSON lines.

One line per input, in the order received, each with its receive time `t`
(Unix seconds):

    {"t": 1763900000.125, "m": "{\"stream\":\"btcusdt@depth@100ms\",\"data\":{...}}"}
    {"t": 1763900000.310, "depth": "BTCUSDT", "limit": 1000, "answer": {"lastUpdateId": ...}}

`m` is a stream text frame exactly as it arrived. `depth` lines are the REST
snapshots the local books started from: without them the diffs cannot be
replayed into books. `python -m fake_binance --replay FILE` serves such a
file back. The gzip stream is flushed every second, so a file cut short by a
crash is readable up to its last flush.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from typing import Any, Callable

import msgspec

LOG = logging.getLogger(__name__)
FLUSH_EVERY = 1.0  # seconds


class Recorder:
    """Appends received stream frames and depth snapshots to a gzip JSON-lines file.

    Thread-safe: each stream connection has its own reader thread, and
    snapshots arrive from the worker threads. A write that fails (disk full)
    stops the recording with one error line; the exporter goes on without it,
    since an exception in the reader thread would cost the connection.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        # Opened at construction so that an unwritable path fails at start-up.
        self._file = gzip.open(path, "wb", compresslevel=6)  # pylint: disable=consider-using-with
        self._clock = clock
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()
        self._flushed = time.monotonic()
        self.lines = 0

    def message(self, text: str) -> None:
        """Record one stream text frame as received."""
        self._write({"m": text})

    def snapshot(self, symbol: str, limit: int, answer: Any) -> None:
        """Record one REST depth answer (the parsed JSON) a book started from."""
        self._write({"depth": symbol, "limit": limit, "answer": answer})

    def _write(self, fields: dict[str, Any]) -> None:
        with self._lock:
            if self._file.closed:
                return  # after close() or a failed write
            # The time is read under the lock, so the lines of the reader and
            # worker threads are in the order of their times.
            line = self._encoder.encode({"t": self._clock(), **fields}) + b"\n"
            try:
                self._file.write(line)
                self.lines += 1
                now = time.monotonic()
                if now - self._flushed >= FLUSH_EVERY:
                    self._file.flush()  # a sync flush: readable up to here after a crash
                    self._flushed = now
            except OSError as exc:
                LOG.error("recording stopped after %d lines: %s", self.lines, exc)
                self._close(report=False)  # it would fail the same way

    def close(self) -> None:
        """Write the gzip trailer; later records are dropped."""
        with self._lock:
            self._close(report=True)

    def _close(self, report: bool) -> None:
        try:
            self._file.close()  # closed afterwards even when this raises
        except OSError as exc:
            if report:
                LOG.error("recording: could not finish the file: %s", exc)
