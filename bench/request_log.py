"""Reading the fake Binance's request log: round trips, refresh bursts, weights.

Every figure here comes from what the fake saw arrive (`RequestRecord.time`
is the arrival, before any injected latency), never from what the exporter
says about itself.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from fake_binance import RequestRecord

BOOK_TICKER = "/api/v3/ticker/bookTicker"


def groups(records: Iterable[RequestRecord], gap: float) -> list[list[RequestRecord]]:
    """Split requests, in arrival order, wherever `gap` seconds pass with no arrival.

    With an injected latency L, requests sent together arrive within
    milliseconds and a request that waits for an answer arrives at least L
    later, so `gap = L / 2` splits a start-up into its round trips. Between
    refreshes the exporter is idle, so half the refresh interval splits a run
    into refreshes.
    """
    result: list[list[RequestRecord]] = []
    for record in sorted(records, key=lambda r: r.time):
        if result and record.time - result[-1][-1].time <= gap:
            result[-1].append(record)
        else:
            result.append([record])
    return result


def weight(records: Iterable[RequestRecord]) -> int:
    """Total request weight of `records`."""
    return sum(r.weight for r in records)


def between(records: Sequence[RequestRecord], start: float, end: float) -> list[RequestRecord]:
    """The requests that arrived in [start, end) (Unix time)."""
    return [r for r in records if start <= r.time < end]


def spread_weights(records: Sequence[RequestRecord], gap: float) -> list[int]:
    """Weight of each spread refresh: bookTicker requests grouped by `gap`.

    Only bookTicker requests are grouped, so a depth or analytics request
    next to a refresh cannot merge two refreshes; the requests of one
    refresh (one for the exporter, one per symbol for the naive client)
    follow each other within milliseconds.
    """
    return [weight(burst) for burst in groups((r for r in records if r.path == BOOK_TICKER), gap)]
