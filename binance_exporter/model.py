"""The last good answers, swapped whole so every reader sees one consistent state.

Refresh jobs build a new `Snapshot` and `publish` it; collectors, health checks
and reports only ever read `current()`. A snapshot is immutable, so a scrape
that started on the old one finishes on the old one: never half old, half new.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Mapping

from binance_exporter.market.fills import Fill
from binance_exporter.market.trades import SideTotals
from binance_exporter.market.types import SymbolInfo, Ticker24h

RANKINGS = "rankings"
SPREADS = "spreads"
ANALYTICS = "analytics"
JOBS = (RANKINGS, SPREADS)  # the jobs that answer the four questions


@dataclass(frozen=True)
class SideNotional:
    """Notional of the top levels of each side; None where the side was skipped."""

    bids: Decimal | None
    asks: Decimal | None


@dataclass(frozen=True)
class Answers:
    """The answers to the exporter's questions, as of the last good refreshes."""

    symbols: Mapping[str, SymbolInfo]  # every tracked symbol
    top_btc: tuple[Ticker24h, ...]  # question 1
    top_usdt: tuple[Ticker24h, ...]  # question 2
    notional: Mapping[str, SideNotional]  # question 3
    spread_symbols: tuple[str, ...]  # whose spreads are watched (the top_usdt by default)
    spreads: Mapping[str, Decimal]  # question 4
    spread_ratios: Mapping[str, Decimal]
    deltas: Mapping[str, Decimal]  # question 5
    vwap: Mapping[str, Decimal] = field(default_factory=dict)  # VWAP mid of each book read
    vwap_averages: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)  # (sym, window)


@dataclass(frozen=True)
class JobState:
    """How the latest run of one refresh job went."""

    success: bool = False
    last_success: float | None = None  # Unix time of the last successful run
    duration: float | None = None  # seconds the latest run took


@dataclass(frozen=True)
class BookAnalytics:
    """Simulated fills and depth bands of one symbol's depth snapshot."""

    fills: Mapping[tuple[str, Decimal], Fill]  # (taker side, notional) -> fill
    bands: Mapping[tuple[str, Decimal], Decimal]  # (book side, band) -> notional


@dataclass(frozen=True)
class TradeTotals:
    """Taker flow of one symbol since the exporter started following it."""

    by_side: Mapping[str, SideTotals]
    last_price: Decimal | None


@dataclass(frozen=True)
class Analytics:
    """Market-quality figures of the analytics symbols."""

    books: Mapping[str, BookAnalytics]
    trades: Mapping[str, TradeTotals]


@dataclass(frozen=True)
class StreamView:
    """What stream mode shows about its connections and local books, read live per scrape."""

    connected: bool  # every connection open and subscribed
    reconnects: int
    messages: Mapping[str, int]  # by stream type (the part after '@', e.g. depth@100ms)
    last_message: float | None  # Unix time of the latest message
    update_ids: Mapping[str, int]  # last applied final update id (u) of each synced book
    resyncs: Mapping[str, int]  # books rebuilt from a snapshot, by symbol


@dataclass(frozen=True)
class Snapshot:
    """Everything the metrics and health endpoints show, at one instant."""

    answers: Answers | None = None
    # Every job this exporter runs; `up` needs all of them, `ready` only JOBS.
    jobs: Mapping[str, JobState] = field(default_factory=lambda: {job: JobState() for job in JOBS})
    skipped: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (job, reason) -> count
    analytics: Analytics | None = None

    @property
    def ready(self) -> bool:
        """True once every job has succeeded at least once: all questions answered."""
        return self.answers is not None and all(
            self.jobs[job].last_success is not None for job in JOBS
        )

    @property
    def up(self) -> bool:
        """True when the latest run of every job succeeded."""
        return all(state.success for state in self.jobs.values())


class SnapshotStore:
    """Holds the current snapshot and tells subscribers when a new one lands."""

    def __init__(self, jobs: tuple[str, ...] = JOBS) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot(jobs={job: JobState() for job in jobs})
        self._subscribers: list[Callable[[Snapshot], None]] = []

    def current(self) -> Snapshot:
        """The snapshot in force (reading a reference is atomic)."""
        return self._snapshot

    def subscribe(self, callback: Callable[[Snapshot], None]) -> None:
        """Call `callback` with each snapshot published from now on."""
        self._subscribers.append(callback)

    def publish(self, snapshot: Snapshot) -> None:
        """Make `snapshot` current, then notify subscribers (in publish order)."""
        with self._lock:
            self._snapshot = snapshot
            for callback in self._subscribers:
                callback(snapshot)
