"""When to run which refresh job.

The rankings job runs every `refresh_interval`; the spreads job every
`update_interval` in between (a rankings run reads the spreads too, so it
stands in for the spreads run that falls due with it). A failed rankings run is
retried with capped exponential back-off and jitter, never before a 429/418
`Retry-After` has passed; a failed spreads run simply waits for its next turn.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from binance_exporter.binance.backoff import MAX_RETRY, retry_delay
from binance_exporter.model import ANALYTICS, RANKINGS, Snapshot

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Jobs:
    """What the scheduler runs and asks, as plain callables (no job reaches another)."""

    rankings: Callable[[], Snapshot]  # a rankings run and the reads it names; the snapshot
    spreads: Callable[[], Snapshot]  # a spreads run
    answered: Callable[[], bool]  # whether a rankings run has succeeded yet
    blocked_for: Callable[[], float]  # seconds until Binance may be asked again (429/418)


class Scheduler:
    """Runs the refresh jobs on their intervals until stopped."""

    def __init__(  # pylint: disable=too-many-arguments
        self,
        jobs: Jobs,
        update_interval: float,
        refresh_interval: float,
        on_rankings: Callable[[Snapshot], None] = lambda snapshot: None,
        on_spreads: Callable[[Snapshot], None] = lambda snapshot: None,
        clock: Callable[[], float] = time.monotonic,
        analytics: tuple[Callable[[], Snapshot], float] | None = None,
        analytics_retry: float | None = None,
    ) -> None:
        self.jobs = jobs
        # (job, interval): the analytics job, run once answers exist.
        self.analytics = analytics
        # Seconds before a failed analytics run is tried again, when trying costs
        # no weight (stream mode); None: at its next interval.
        self.analytics_retry = analytics_retry
        self.update_interval = update_interval
        self.refresh_interval = refresh_interval
        self.on_rankings = on_rankings
        self.on_spreads = on_spreads
        self._clock = clock
        self._retry_cap = min(MAX_RETRY, refresh_interval)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; never raises because of Binance."""
        failures = 0
        next_rankings = self._clock()
        next_spreads = next_rankings + self.update_interval
        next_analytics = next_rankings
        while not stop.is_set():
            now = self._clock()
            if now >= next_rankings:
                snapshot = self.jobs.rankings()
                if snapshot.jobs[RANKINGS].success:
                    failures = 0
                    next_rankings = now + self.refresh_interval
                    # From the end of the run: it read the spreads just now.
                    next_spreads = self._clock() + self.update_interval
                    self.on_rankings(snapshot)
                else:
                    failures += 1
                    next_rankings = now + retry_delay(failures, self._retry_cap)
                next_rankings = max(next_rankings, self._clock() + self._blocked_for())
            elif now >= next_spreads and self._answered():
                snapshot = self.jobs.spreads()
                # Keep the cadence; after a stall, skip the missed turns instead
                # of firing them back to back.
                next_spreads = max(next_spreads + self.update_interval, now)
                next_spreads = max(next_spreads, self._clock() + self._blocked_for())
                self.on_spreads(snapshot)
            elif self.analytics is not None and now >= next_analytics and self._answered():
                job, interval = self.analytics
                failed = not job().jobs[ANALYTICS].success
                if failed and self.analytics_retry is not None:
                    interval = min(interval, self.analytics_retry)
                next_analytics = max(next_analytics + interval, now)
                next_analytics = max(next_analytics, self._clock() + self._blocked_for())
            wake = next_rankings
            if self._answered():
                wake = min(wake, next_spreads)
                if self.analytics is not None:
                    wake = min(wake, next_analytics)
            stop.wait(max(0.0, wake - self._clock()))

    def _answered(self) -> bool:
        return self.jobs.answered()

    def _blocked_for(self) -> float:
        return self.jobs.blocked_for()
