"""Serve a `--record` file back: its stream frames on their recorded schedule, its snapshots.

`load(path)` reads the gzip JSON lines the exporter's `--record` writes (a
file cut short by a crash is read up to its last complete line).
`ReplayMarket` is the simulated market for every REST answer except depth,
which comes from the recorded snapshots of that symbol, in recorded order (the
last one again once they run out). `FakeStreams(market, replay=recording)`
sends the recorded frames, verbatim, to the clients subscribed to their
streams, starting when the first client subscribes and keeping the recorded
times, counted from the file's first record (divided by `speed`).

An exporter pointed at both, with the same options as when recording, builds
the same books: the snapshot it gets is the one it got, followed by the same
diffs. The rankings come from the simulated market, so record against the
fake market (same seed) for a faithful replay.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .market import DEFAULT_DEPTH_LIMIT, Market


@dataclass(frozen=True)
class Frame:
    """One recorded stream text frame."""

    offset: float  # seconds after the file's first record
    stream: str
    text: str


@dataclass(frozen=True)
class Recording:
    """A `--record` file, split into stream frames and depth snapshots."""

    frames: list[Frame] = field(default_factory=list)
    snapshots: dict[str, list[dict]] = field(default_factory=dict)  # symbol -> answers


def load(path: str) -> Recording:
    """Read a `--record` file; a truncated last line or gzip trailer ends it early."""
    recording = Recording()
    first: float | None = None
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        try:
            for line in lines:
                record = _record(line)
                if record is None:
                    break  # the line a crash cut in half
                # Offsets count from the first record, usually the snapshot
                # taken as the connection opened, so the replayed frames keep
                # their distance from it.
                first = record["t"] if first is None else first
                if "m" in record:
                    stream = json.loads(record["m"]).get("stream", "")
                    recording.frames.append(Frame(record["t"] - first, stream, record["m"]))
                elif "depth" in record:
                    recording.snapshots.setdefault(record["depth"], []).append(record["answer"])
        except (EOFError, zlib.error):
            pass  # no trailer: the recording stopped without close()
    return recording


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "t" in record else None


class ReplayMarket(Market):
    """The simulated market, except that depth answers are the recorded snapshots."""

    def __init__(self, recording: Recording, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._replay_lock = threading.Lock()
        self._recorded = {symbol: deque(answers)
                          for symbol, answers in recording.snapshots.items() if answers}

    def depth(self, symbol: str, limit: int = DEFAULT_DEPTH_LIMIT, *,
              symbol_status: str | None = None) -> dict:
        """The next recorded snapshot of `symbol` (the last one once they run out)."""
        with self._replay_lock:
            answers = self._recorded.get(symbol)
            if answers:
                return answers.popleft() if len(answers) > 1 else answers[0]
        return super().depth(symbol, limit, symbol_status=symbol_status)
