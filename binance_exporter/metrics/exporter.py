"""The exporter's own health: version, whether each refresh job works, what it left out."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import Metric

from binance_exporter import __version__
from binance_exporter.metrics.families import FamilyCollector, counter, gauge
from binance_exporter.model import Snapshot

BUILD_INFO = gauge("binance_exporter_build_info", "Exporter version; always 1.", "version")
UP = gauge("binance_up", "1 when the latest run of every refresh job succeeded, else 0.")
SUCCESS = gauge("binance_refresh_success", "1 when the latest run of the job succeeded.", "job")
LAST_SUCCESS = gauge(
    "binance_last_refresh_timestamp_seconds",
    "Unix time of the job's last successful refresh.",
    "job",
)
DURATION = gauge("binance_refresh_duration_seconds", "How long the job's latest run took.", "job")
SKIPPED = counter(
    "binance_skipped_values",
    "Values not exported because the book or quote was empty, one-sided or crossed, its "
    "symbol no longer exists, the figure needed levels beyond the depth answer, or its quote "
    "asset had no reference price (no_reference_price).",
    "job",
    "reason",
)
RESTARTS = counter(
    "binance_exporter_thread_restarts",
    "Times a long-lived thread of the exporter died on an unexpected error and was restarted.",
    "thread",
)
STUCK = gauge(
    "binance_refresh_stuck",
    "1 when no run of the job finished within its deadline (three intervals and eight "
    "request timeouts, after any back-off Binance asked for) or its thread died, until a run "
    "finishes again.",
    "job",
)


class ExporterCollector(FamilyCollector):
    """Build info, `binance_up` and each refresh job's outcome, from the snapshot.

    A job that never succeeded has no last-refresh timestamp, and one that never
    finished has no duration::

        binance_exporter_build_info{version="0.1.0"} 1.0
        binance_up 0.0
        binance_refresh_success{job="rankings"} 1.0
        binance_refresh_success{job="spreads"} 0.0
        binance_last_refresh_timestamp_seconds{job="rankings"} 1.7000000005e+09
        binance_refresh_duration_seconds{job="rankings"} 0.25
        binance_skipped_values_total{job="spreads",reason="crossed"} 2.0
        binance_exporter_thread_restarts_total{thread="scheduler"} 0.0
        binance_refresh_stuck{job="spreads"} 0.0
    """

    families = (BUILD_INFO, UP, SUCCESS, LAST_SUCCESS, DURATION, SKIPPED, RESTARTS, STUCK)

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        build = BUILD_INFO.new()
        build.add_metric([__version__], 1)
        yield build
        yield UP.single(1 if snapshot.up else 0)
        success, last, duration = SUCCESS.new(), LAST_SUCCESS.new(), DURATION.new()
        stuck = STUCK.new()
        for job, state in snapshot.jobs.items():
            success.add_metric([job], 1 if state.success else 0)
            stuck.add_metric([job], 1 if state.stuck else 0)
            if state.last_success is not None:
                last.add_metric([job], state.last_success)
            if state.duration is not None:
                duration.add_metric([job], state.duration)
        yield from (success, last, duration)
        skipped = SKIPPED.new()
        for (job, reason), count in sorted(snapshot.skipped.items()):
            skipped.add_metric([job, reason], count)
        yield skipped
        restarts = RESTARTS.new()
        for thread, count in sorted(snapshot.thread_restarts.items()):
            restarts.add_metric([thread], count)
        yield restarts
        yield stuck
