"""Keeping the long-lived threads alive, and noticing jobs that stop finishing.

An exporter that freezes while it reports `binance_up 1` is worse than one
that is down. Two guards:

* `Supervisor.start` runs a thread's loop; an unexpected exception is logged
  with its traceback, counted as a restart of that thread, marks the jobs the
  thread serves failed and stuck (`binance_up` 0, `/-/ready` 503), and the
  loop starts again after a back-off.
* `Watchdog.check` marks a job failed and stuck when no run of it has
  finished within its deadline, whatever the reason: a hang raises nothing.
  The deadline is three intervals plus `slack` (the time runs of the other
  jobs on the same thread may take), counted from the later of the job's
  last finished run and the end of any back-off Binance asked for.

A job that finishes a run again clears its stuck mark.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

from binance_exporter.binance.backoff import retry_delay
from binance_exporter.model import RANKINGS, SnapshotStore

LOG = logging.getLogger(__name__)
DEADLINE_INTERVALS = 3  # a job is stuck after this many intervals without a finished run
STABLE_RUN = 60.0  # seconds a restarted loop must run before its back-off starts over


class Supervisor:
    """Starts loops on daemon threads and restarts a loop that raised."""

    def __init__(self, store: SnapshotStore, stop: threading.Event,
                 backoff: Callable[[int], float] = retry_delay) -> None:
        self.store = store
        self.stop = stop
        self._backoff = backoff

    def start(self, name: str, loop: Callable[[threading.Event], None],
              jobs: tuple[str, ...]) -> threading.Thread:
        """Run `loop(stop)` on a daemon thread named `name`, serving `jobs`, until stop."""
        self.store.watch_thread(name)
        thread = threading.Thread(target=self._keep, args=(name, loop, jobs), name=name,
                                  daemon=True)
        thread.start()
        return thread

    def _keep(self, name: str, loop: Callable[[threading.Event], None],
              jobs: tuple[str, ...]) -> None:
        crashes = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                loop(self.stop)
                return
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # A loop that ran a while before dying starts the back-off over.
                crashes = 1 if time.monotonic() - started >= STABLE_RUN else crashes + 1
                wait = self._backoff(crashes)
                LOG.error("the %s thread died (%s: %s); restarting it in %.1f s", name,
                          type(exc).__name__, exc, wait, exc_info=True)
                self.store.stall(jobs, f"the {name} thread died: {type(exc).__name__}: {exc}",
                                 thread=name)
                self.stop.wait(wait)


class Watchdog:
    """Marks jobs stuck whose last run finished longer ago than their deadline."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        store: SnapshotStore,
        intervals: Mapping[str, float],
        blocked_for: Callable[[], float],
        slack: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.intervals = dict(intervals)
        self.blocked_for = blocked_for
        self.slack = slack
        self._clock = clock
        self._since = clock()  # a job that never finished counts from here
        self._resumed = self._since  # when the latest back-off ended (or ends)

    def check(self) -> list[str]:
        """Stall every overdue job (logged once per stall); returns their names."""
        now = self._clock()
        blocked = self.blocked_for()
        if blocked > 0:
            self._resumed = max(self._resumed, now + blocked)
        overdue = []
        snapshot = self.store.current()
        for job, interval in self.intervals.items():
            state = snapshot.jobs.get(job)
            # Until the first rankings run succeeds only the rankings job runs.
            if state is None or state.stuck or (snapshot.answers is None and job != RANKINGS):
                continue
            finished = state.finished if state.finished is not None else self._since
            since = max(finished, self._resumed)
            deadline = DEADLINE_INTERVALS * interval + self.slack
            if now - since > deadline:
                LOG.error("no %s run has finished for %.0f s (deadline %.0f s); "
                          "marking it failed", job, now - since, deadline)
                self.store.stall((job,), f"no run finished for {now - since:.0f} s")
                overdue.append(job)
        return overdue
