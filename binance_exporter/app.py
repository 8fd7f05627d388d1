"""The exporter put together from a `Config`: build the parts, run them, stop them.

`App` is the composition root. It makes the one REST client, the worker pool,
the store, the book source of the chosen mode, the jobs and the HTTP server,
and hands each part exactly what it needs. `run` serves until SIGTERM/SIGINT;
`once` answers once for `--once`. Stream mode's modules (the websocket client,
the local books' sync) are imported only when stream mode is chosen.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Callable

from binance_exporter import report
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.binance.weights import DEFAULT_WEIGHT_LIMIT
from binance_exporter.config import (
    REPAIR_RUNS,
    SPREADS_ALL,
    Config,
    planned_weight_per_minute,
    rankings_weight,
    snapshot_limit,
)
from binance_exporter.jobs.analytics import AnalyticsJob
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.jobs.scheduler import Jobs, Scheduler
from binance_exporter.jobs.supervisor import Supervisor, Watchdog
from binance_exporter.metrics.exposition import Exposition, build_exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.model import ANALYTICS, JOBS, RANKINGS, SPREADS, Snapshot, SnapshotStore
from binance_exporter.sources.base import BookSource, TradeSource
from binance_exporter.sources.rest import RestSource
from binance_exporter.sources.rest_trades import RestTrades

if TYPE_CHECKING:  # stream mode's modules load only in stream mode
    from binance_exporter.sources.stream_source import StreamSource

LOG = logging.getLogger("binance_exporter")
# Stream mode's GIL switch interval (default 5 ms): a scrape waits for the GIL
# a turn at a time behind the stream reader, publisher and renders. 0.5 ms kept
# the market-scale benchmark's scrapes under 10 ms at p99 (1 ms: 11-12 ms).
STREAM_SWITCH_INTERVAL = 0.0005
# glibc mallopt() parameters, from <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# Exit codes: 0 stopped by a signal or answered; 1 Binance could not answer
# (--once) or the port is taken; 2 the configuration cannot work.
EXIT_OK, EXIT_UNANSWERED, EXIT_USAGE = 0, 1, 2
WATCHDOG_TIMEOUTS = 8  # request timeouts other runs may legitimately hold a job back
FREE_RETRY = 2.0  # seconds before a failed run that costs no weight is tried again


def echo(line: str) -> None:
    """Print one report to stdout at once (a pipe would otherwise hold it back).

    A closed stdout (the reader of a pipe went away) stops the reports, not
    the exporter: the metrics are what matters.
    """
    try:
        print(line, flush=True)
    except (BrokenPipeError, ValueError, OSError) as exc:
        LOG.debug("report not printed: %s", exc)


def bound_heap() -> None:
    """Keep the heap from growing with every multi-megabyte answer (glibc only).

    exchangeInfo is megabytes (6 MB for 3000 symbols). Once glibc frees such an
    mmap'd buffer it raises its mmap threshold to that size, so later big
    buffers land in the worker threads' heaps, which fragment and never shrink.
    A fixed threshold keeps big buffers in mmap, returned on free; two arenas
    bound the heaps the worker threads spread over.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    libc.mallopt(M_ARENA_MAX, 2)


def freeze_start_up() -> None:
    """Collect, then move every object left out of the garbage collector's sight.

    Stream mode calls it once, after its first answers: the modules, the
    symbol table and the stream state live as long as the process, and a
    full collection that scans them pauses every thread for tens of
    milliseconds; after this it scans only what was made since.
    """
    gc.collect()
    gc.freeze()


class App:  # pylint: disable=too-many-instance-attributes
    """Every part of one exporter, built from its Config and wired explicitly."""

    def __init__(self, config: Config, print_line: Callable[[str], None] = echo) -> None:
        self.config = config
        self._print = print_line
        self.client = BinanceClient(config.base_url, timeout=config.timeout,
                                    weight_share=config.weight_share,
                                    refresh_weight=rankings_weight(config.ranking))
        jobs = JOBS + ((ANALYTICS,) if config.analytics is not None else ())
        self.store = SnapshotStore(jobs)
        # Each pool thread gets its own Spot (see BinanceClient), so parallel
        # requests never share a requests.Session.
        self.pool = DaemonPool(8, name="binance-rest")
        self.stream: StreamSource | None = None
        self._publisher: Callable[[threading.Event], None] | None = None
        self._exposition: Exposition | None = None  # once `server()` made it
        source: BookSource
        trades: TradeSource
        if config.stream is not None and not config.once:
            source = trades = self._stream_source()
            self.rankings = RankingsJob(self.client, self.pool, self.store, config.ranking,
                                        table=self._stream().tickers,
                                        repair_every=config.refresh_interval * REPAIR_RUNS)
        else:
            source = RestSource(self.client, self.pool,
                                all_symbols=config.ranking.spread_symbols == SPREADS_ALL)
            trades = RestTrades(self.client, self.pool)
            self.rankings = RankingsJob(self.client, self.pool, self.store, config.ranking)
        self.quotes = QuotesJob(source, self.pool, self.store, config.ranking,
                                convert_also=config.analytics.extra_symbols
                                if config.analytics else ())
        self.analytics = AnalyticsJob(source, trades, self.store, config.analytics,
                                      config.ranking.owns) if config.analytics else None

    def _stream_source(self) -> StreamSource:
        """Stream mode's source and publisher, imported only now."""
        # pylint: disable=import-outside-toplevel
        from binance_exporter.jobs.republisher import Republisher
        from binance_exporter.sources.stream_source import StreamSource as Source

        stream = self.config.stream
        assert stream is not None
        republisher = Republisher()
        # Resync snapshots may spend what the schedule leaves of the weight share.
        spare = self.config.weight_share * DEFAULT_WEIGHT_LIMIT \
            - planned_weight_per_minute(self.config)
        self.stream = Source(self.client, stream.url, snapshot_limit(self.config),
                             on_change=republisher.changed, record=stream.record,
                             snapshot_weight_per_minute=spare,
                             follow_trades=self.config.analytics is not None,
                             silence=stream.silence)
        self._publisher = lambda stop: republisher.run(self._publish, stop)
        return self.stream

    def _publish(self) -> None:
        """Stream mode: the book answers, the page for a frequent scraper, the first freeze."""
        # Once per process: what the freeze holds is the process's, not this App's.
        if self.quotes.refresh_books().answers is not None and not gc.get_freeze_count():
            freeze_start_up()
        if self._exposition is not None:
            self._exposition.published()

    def _stream(self) -> StreamSource:
        """The stream source (stream mode only)."""
        assert self.stream is not None
        return self.stream

    # Jobs -------------------------------------------------------------------

    def refresh_rankings(self) -> Snapshot:
        """A rankings run and the book and spread reads it names, published together."""
        ranking = self.rankings.run()
        if ranking is None:
            return self.store.current()
        return self.quotes.with_ranking(ranking)

    def unknown_symbols(self) -> str | None:
        """The error line for --symbols that exchangeInfo does not list, if any."""
        if self.analytics is None or not self.rankings.listed:
            return None
        unknown = [s for s in self.analytics.config.extra_symbols
                   if s not in self.rankings.listed]
        return f"error: --symbols not listed on Binance: {', '.join(unknown)}" if unknown else None

    # --once ---------------------------------------------------------------

    def once(self) -> int:
        """Answer once; 0 on success, 1 with one clear line when Binance could not answer."""
        # Failures are reported by the single line below, not by the job log too.
        logging.getLogger("binance_exporter.model").setLevel(logging.ERROR)
        snapshot = self.refresh_rankings()
        if (unknown := self.unknown_symbols()) is not None:
            print(unknown, file=sys.stderr)
            return EXIT_USAGE
        if self.analytics is not None and snapshot.ready:
            snapshot = self.analytics.refresh()
        self.pool.shutdown()
        if not snapshot.ready or snapshot.answers is None:
            errors = [e for job in (RANKINGS, SPREADS) if (e := snapshot.jobs[job].error)]
            print(f"error: no complete answer from {self.config.base_url}: " + "; ".join(errors),
                  file=sys.stderr)
            return EXIT_UNANSWERED
        self.print_answers(snapshot)
        return EXIT_OK

    def print_answers(self, snapshot: Snapshot) -> None:
        """The report of every answer, in the chosen output format."""
        if snapshot.answers is None:
            return
        if self.config.output == "json":
            self._print(report.to_json(snapshot.answers, snapshot.analytics))
            return
        ranking = self.config.ranking
        self._print(report.to_text(snapshot.answers, ranking.volume_field, ranking.depth_levels))
        if snapshot.analytics is not None:
            self._print(report.fills_text(snapshot.analytics, snapshot.answers))

    def print_spreads(self, snapshot: Snapshot) -> None:
        """One line with every spread and its delta."""
        if snapshot.answers is not None:
            self._print(report.spreads_line(snapshot.answers, time.time()))

    # Serving ----------------------------------------------------------------

    def server(self) -> ExporterServer:
        """Bind the metrics server (OSError when the address cannot be bound)."""
        self._exposition = build_exposition(self.store.current, self.client.stats,
                                            self.stream.view if self.stream else None)
        return ExporterServer((self.config.listen_address, self.config.port), self._exposition,
                              lambda: self.store.current().ready, self.config.base_url,
                              web=self.config.web)

    def run(self, server: ExporterServer) -> int:
        """Serve /metrics and refresh in the background until SIGTERM or SIGINT."""
        stop = threading.Event()
        exit_code = EXIT_OK

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            LOG.info("received %s, shutting down", signal.Signals(signum).name)
            stop.set()

        def on_rankings(snapshot: Snapshot) -> None:
            nonlocal exit_code
            if (unknown := self.unknown_symbols()) is not None:
                print(unknown, file=sys.stderr)
                exit_code = EXIT_USAGE
                stop.set()
                return
            self.print_answers(snapshot)

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        server.serve_in_thread()
        LOG.info("serving http://%s:%d/metrics, data from %s", self.config.listen_address,
                 self.config.port, self.config.base_url)
        scheduler = Scheduler(
            Jobs(rankings=self.refresh_rankings, spreads=self.quotes.refresh_spreads,
                 answered=lambda: self.store.current().answers is not None,
                 blocked_for=self.client.blocked_for),
            self.config.update_interval,
            self.config.refresh_interval,
            on_rankings=on_rankings,
            on_spreads=self.print_spreads,
            analytics=(self.analytics.refresh, self.analytics.config.interval)
            if self.analytics is not None else None,
            # Stream mode's analytics read local state: a run that found a book
            # resyncing or trades being filled may try again soon, at no cost.
            analytics_retry=FREE_RETRY if self.stream is not None else None,
        )
        # Daemon threads: a request stuck in its timeout must not delay shutdown.
        supervisor = Supervisor(self.store, stop)
        supervisor.start("scheduler", scheduler.run, tuple(self.store.current().jobs))
        if self._publisher is not None:
            sys.setswitchinterval(STREAM_SWITCH_INTERVAL)
            supervisor.start("publisher", self._publisher, (SPREADS,))
        # One job waits behind another on the scheduler thread: a rankings run
        # is two round trips, an analytics run pages trades up to five times.
        watchdog = Watchdog(self.store, self._intervals(), self.client.blocked_for,
                            slack=WATCHDOG_TIMEOUTS * self.config.timeout)
        while not stop.wait(0.5):
            watchdog.check()
        server.shutdown()
        server.server_close()
        self.close()
        LOG.info("stopped")
        return exit_code

    def _intervals(self) -> dict[str, float]:
        """How often each job is meant to finish a run."""
        intervals = {RANKINGS: self.config.refresh_interval, SPREADS: self.config.update_interval}
        if self.analytics is not None:
            intervals[ANALYTICS] = self.analytics.config.interval
        return intervals

    def close(self) -> None:
        """Stop the worker threads and stream connections without waiting on requests."""
        self.pool.shutdown()
        if self.stream is not None:
            self.stream.close()
