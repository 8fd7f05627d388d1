"""The exporter's published state: the last good answers and how each job went.

Jobs build on `SnapshotStore.current()` and `record` their outcome, which
swaps in a new immutable `Snapshot` whole; collectors, health checks and
reports only ever read `current()`. A scrape that started on the old snapshot
finishes on the old one: never half old, half new.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Callable, Mapping

from binance_exporter.market.fills import Fill
from binance_exporter.market.trades import SideTotals
from binance_exporter.market.types import SymbolInfo, Ticker24h

LOG = logging.getLogger(__name__)
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
    # The reference currency: every symbol whose figures are converted, by its
    # quote asset; the rate of each quote asset that converts (reference units
    # per unit, 1 for the reference itself); the notionals converted with them.
    reference_asset: str = "USDT"
    quote_assets: Mapping[str, str] = field(default_factory=dict)
    reference_prices: Mapping[str, Decimal] = field(default_factory=dict)
    notional_reference: Mapping[str, SideNotional] = field(default_factory=dict)


@dataclass(frozen=True)
class JobState:
    """How the latest run of one refresh job went."""

    success: bool = False
    last_success: float | None = None  # Unix time of the last successful run
    duration: float | None = None  # seconds the latest run took
    error: str | None = None  # why the latest run failed
    finished: float | None = None  # Unix time the latest run ended, success or not
    stuck: bool = False  # no run finished within the deadline, or the job's thread died


@dataclass(frozen=True)
class BookAnalytics:
    """Simulated fills and depth bands of one symbol's depth snapshot.

    The order sizes are reference-currency amounts: no fill without a rate.
    """

    # (taker side, reference notional) -> fill of that amount converted to the quote asset
    fills: Mapping[tuple[str, Decimal], Fill]
    bands: Mapping[tuple[str, Decimal], Decimal]  # (book side, band) -> quote notional
    bands_reference: Mapping[tuple[str, Decimal], Decimal] = field(default_factory=dict)


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
    quotes_wanted: int = 0  # symbols whose best quotes are followed (bookTicker)
    quotes_live: int = 0  # of those, the ones with live quotes
    ticker_repairs: int = 0  # 24 h ticker entries the REST repair corrected
    trade_gap_fills: Mapping[str, int] = field(default_factory=dict)  # by symbol
    trades_missed: Mapping[str, int] = field(default_factory=dict)  # aggregate ids given up on


@dataclass(frozen=True)
class Snapshot:
    """Everything the metrics and health endpoints show, at one instant."""

    answers: Answers | None = None
    # Every job this exporter runs; `up` needs all of them, `ready` only JOBS.
    jobs: Mapping[str, JobState] = field(default_factory=lambda: {job: JobState() for job in JOBS})
    skipped: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (job, reason) -> count
    analytics: Analytics | None = None
    thread_restarts: Mapping[str, int] = field(default_factory=dict)  # by thread name

    @property
    def ready(self) -> bool:
        """True once every question has been answered, while no job is stuck."""
        return self.answers is not None and all(
            self.jobs[job].last_success is not None for job in JOBS
        ) and not any(state.stuck for state in self.jobs.values())

    @property
    def up(self) -> bool:
        """True when the latest run of every job succeeded."""
        return all(state.success for state in self.jobs.values())


# One run's result per job: (error or None, the run's start time).
Outcomes = Mapping[str, "tuple[Exception | None, float]"]
_KEEP: Any = object()  # `record` leaves the field as it is


class SnapshotStore:
    """Holds the current snapshot; jobs take turns building the next one on it.

    `turn` is held by a job that builds new answers on `current()` from
    reading them to recording its result, so jobs on different threads (the
    stream publisher and the scheduler) never lose each other's answers.
    Swapping the snapshot itself takes a short lock of its own, never held
    during I/O, so the watchdog can mark a job stuck even while that job
    hangs holding its turn. Skips are counted here, across jobs, and each
    job's failures are logged once per burst.
    """

    def __init__(
        self, jobs: tuple[str, ...] = JOBS, clock: Callable[[], float] = time.time
    ) -> None:
        self.turn = threading.RLock()
        self._swap = threading.Lock()  # held only to build and swap a snapshot
        # Skips are counted from pool threads while a job holds `turn`: their own lock.
        self._skip_lock = threading.Lock()
        self._clock = clock
        self._snapshot = Snapshot(jobs={job: JobState() for job in jobs})
        self._skipped: Counter[tuple[str, str]] = Counter()
        self._failures: Counter[str] = Counter()

    def current(self) -> Snapshot:
        """The snapshot in force (reading a reference is atomic)."""
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        """Make `snapshot` current."""
        with self._swap:
            self._snapshot = snapshot

    def skip(self, job: str, reason: str) -> None:
        """Count a value left out of the metrics, by job and reason."""
        with self._skip_lock:
            self._skipped[(job, reason)] += 1

    def record(self, outcomes: Outcomes, answers: Any = _KEEP, analytics: Any = _KEEP) -> Snapshot:
        """Publish the current snapshot with these job outcomes and, if given, new answers.

        A failed job keeps its last success time: the page shows how old the
        values it still serves are.
        """
        with self._swap:
            previous = self._snapshot
            now = self._clock()
            jobs = dict(previous.jobs)
            for job, (error, started) in outcomes.items():
                self._log(job, error)
                old = jobs.get(job, JobState())
                jobs[job] = JobState(
                    success=error is None,
                    last_success=now if error is None else old.last_success,
                    duration=now - started,
                    error=None if error is None else str(error),
                    finished=now,
                )
            with self._skip_lock:
                skipped = dict(self._skipped)
            changes: dict[str, Any] = {"jobs": jobs, "skipped": skipped}
            if answers is not _KEEP:
                changes["answers"] = answers
            if analytics is not _KEEP:
                changes["analytics"] = analytics
            snapshot = replace(previous, **changes)
            self._snapshot = snapshot
            return snapshot

    def watch_thread(self, thread: str) -> None:
        """Show `thread`'s restart count from now on (0 until it dies)."""
        with self._swap:
            previous = self._snapshot
            if thread not in previous.thread_restarts:
                restarts = {**previous.thread_restarts, thread: 0}
                self._snapshot = replace(previous, thread_restarts=restarts)

    def stall(self, jobs: tuple[str, ...], reason: str, thread: str | None = None) -> Snapshot:
        """Mark `jobs` failed and stuck (not ready) until their next run finishes.

        `thread` names a thread that died for it, counted as a restart. The
        last success time stays, so the page still says how old the values are.
        """
        with self._swap:
            previous = self._snapshot
            jobs_now = dict(previous.jobs)
            for job in jobs:
                jobs_now[job] = replace(jobs_now.get(job, JobState()), success=False,
                                        error=reason, stuck=True)
            restarts = dict(previous.thread_restarts)
            if thread is not None:
                restarts[thread] = restarts.get(thread, 0) + 1
            snapshot = replace(previous, jobs=jobs_now, thread_restarts=restarts)
            self._snapshot = snapshot
            return snapshot

    def _log(self, job: str, error: Exception | None) -> None:
        """Log the first failure of a burst and the recovery, not every retry."""
        if error is None:
            if self._failures[job]:
                LOG.info("%s refresh recovered after %d failed attempts", job, self._failures[job])
            self._failures[job] = 0
            return
        self._failures[job] += 1
        if self._failures[job] == 1:
            LOG.warning("%s refresh failed: %s (repeats are logged at debug level)", job, error)
        else:
            LOG.debug("%s refresh failed again (%d in a row): %s", job, self._failures[job], error)
