"""Command line: `binance-exporter [OPTIONS]` / `python -m binance_exporter`.

Every option can also be set with an environment variable
`BINANCE_EXPORTER_<OPTION>` (e.g. `BINANCE_EXPORTER_PORT=9100`), which suits
containers. Options are validated before anything starts.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
import time
from decimal import Decimal, InvalidOperation
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import click
from prometheus_client import CollectorRegistry

from binance_exporter import __version__, report
from binance_exporter.jobs.analytics import AnalyticsJob, AnalyticsSettings, analytics_weight
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.binance.weights import DEFAULT_WEIGHT_LIMIT
from binance_exporter.metrics.collector import SnapshotCollector
from binance_exporter.metrics.exposition import Exposition
from binance_exporter.metrics.http import ExporterServer
from binance_exporter.market.types import VOLUME_FIELDS
from binance_exporter.jobs.quotes import (
    RANKINGS,
    SPREADS,
    SPREADS_ALL,
    SPREADS_LIST,
    SPREADS_TOP,
    Refresher,
    Settings,
    planned_weight_per_minute,
)
from binance_exporter.jobs.scheduler import Scheduler
from binance_exporter.model import ANALYTICS, JOBS, Snapshot, SnapshotStore

if TYPE_CHECKING:  # imported for real only in stream mode (see _stream_mode)
    from binance_exporter.sources.stream_mode import StreamMode

LOG = logging.getLogger("binance_exporter")
# glibc mallopt() parameters, from <malloc.h>.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _bound_heap() -> None:
    """Keep the heap from growing with every multi-megabyte answer (glibc only).

    exchangeInfo is megabytes (6 MB for 3000 symbols). Once glibc frees such an
    mmap'd buffer it raises its mmap threshold to that size, so later big
    buffers land in the worker threads' heaps, which fragment and never shrink:
    RSS grew by about 30 MB per rankings run (490 MB after 10 min). A fixed
    threshold keeps big buffers in mmap, returned on free; two arenas bound the
    heaps the worker threads spread over (measured: 77 MB flat over 10 min).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    libc.mallopt(M_ARENA_MAX, 2)
POSITIVE = click.FloatRange(min=0, min_open=True)


def _shard(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        index_text, count_text = value.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise click.BadParameter(f"must be I/N such as 0/3, got {value!r}") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"needs 0 <= I < N, got {value!r}")
    return index, count


def _names(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip().upper() for n in value.split(",") if n.strip()))


def _spread_symbols(
    _ctx: click.Context, _param: click.Parameter, value: str
) -> tuple[str, tuple[str, ...]]:
    if value.strip().lower() in (SPREADS_TOP, SPREADS_ALL):
        return value.strip().lower(), ()
    names = _names(value)
    if not names:
        raise click.BadParameter("give top, all, or a comma-separated list of symbols")
    return SPREADS_LIST, names


def _decimals(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[Decimal, ...]:
    try:
        numbers = tuple(Decimal(part) for part in _names(value))
    except InvalidOperation:
        raise click.BadParameter(f"must be comma-separated numbers, got {value!r}") from None
    if any(not n.is_finite() or n <= 0 for n in numbers):
        raise click.BadParameter(f"must all be positive, got {value!r}")
    return tuple(sorted(set(numbers)))


def _base_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise click.BadParameter(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


@click.command(context_settings={"auto_envvar_prefix": "BINANCE_EXPORTER", "show_default": True})
@click.option("--base-url", default="https://api.binance.com", callback=_base_url,
              show_envvar=True, help="Binance REST API base URL.")
@click.option("--listen-address", default="0.0.0.0", show_envvar=True,
              help="Address to serve /metrics on.")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=8080, show_envvar=True,
              help="Port to serve /metrics on.")
@click.option("--update-interval", "-i", type=POSITIVE, default=10.0, show_envvar=True,
              help="Seconds between spread refreshes (one bookTicker request each).")
@click.option("--refresh-interval", type=POSITIVE, default=60.0, show_envvar=True,
              help="Seconds between refreshes of the rankings and order-book notionals.")
@click.option("--top-n", type=click.IntRange(1, 100), default=5, show_envvar=True,
              help="How many symbols each ranking keeps.")
@click.option("--depth-levels", type=click.IntRange(1, 5000), default=200, show_envvar=True,
              help="Order-book levels per side summed into the notional.")
@click.option("--volume-field", type=click.Choice(VOLUME_FIELDS), default="quoteVolume",
              show_envvar=True,
              help="24h volume that ranks BTC-quoted symbols: quoteVolume (in BTC) or volume "
                   "(in the base asset).")
@click.option("--spread-symbols", default=SPREADS_TOP, callback=_spread_symbols,
              show_envvar=True,
              help="Whose spreads to watch: top (the ranked USDT symbols), all (every TRADING "
                   "symbol, still one request per refresh), or a list like BTCUSDT,ETHBTC.")
@click.option("--quote-assets", default="", show_envvar=True,
              help="With --spread-symbols all: only symbols quoted in these assets, "
                   "e.g. USDT,FDUSD.")
@click.option("--shard", default="0/1", callback=_shard, show_envvar=True,
              help="I/N: export only the symbols whose stable hash falls in shard I of N, so "
                   "N exporters (on N IPs) split the market and the weight budget.")
@click.option("--analytics/--no-analytics", default=True, show_envvar=True,
              help="Simulated fills, depth near the mid and trade flow of the ranked symbols "
                   "(and --symbols).")
@click.option("--symbols", default="", show_envvar=True,
              help="More symbols for the analytics, e.g. BTCUSDT,ETHBTC; each must exist on "
                   "Binance.")
@click.option("--fill-notionals", default="1000,10000,100000", callback=_decimals,
              show_envvar=True,
              help="Sizes of the simulated market orders, in the quote asset.")
@click.option("--depth-bands", default="0.001,0.005,0.01,0.02", callback=_decimals,
              show_envvar=True,
              help="Distances from the mid (ratios) within which resting notional is summed.")
@click.option("--analytics-interval", type=POSITIVE, default=30.0, show_envvar=True,
              help="Seconds between analytics runs (a depth snapshot and aggTrades pages per "
                   "symbol).")
@click.option("--analytics-depth-limit", type=click.IntRange(1, 5000), default=500,
              show_envvar=True,
              help="Levels per side of the analytics depth snapshots; figures needing deeper "
                   "books are left out.")
@click.option("--source", type=click.Choice(["rest", "stream"]), default="rest", show_envvar=True,
              help="Where books and quotes come from: REST polls, or local order books kept "
                   "from websocket diff-depth streams (zero REST weight between resyncs).")
@click.option("--stream-url", default="wss://stream.binance.com:9443", show_envvar=True,
              help="Websocket market-stream base URL (with --source stream).")
@click.option("--stream-snapshot-limit", type=click.IntRange(1, 5000), default=1000,
              show_envvar=True,
              help="Levels of the REST snapshot each local book starts from (weight 50 at 1000).")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              show_envvar=True,
              help="With --source stream: write every stream message and depth snapshot "
                   "received, with its receive time, to this file as gzip JSON lines.")
@click.option("--timeout", type=POSITIVE, default=10.0, show_envvar=True,
              help="HTTP timeout in seconds for each Binance request.")
@click.option("--weight-share", type=click.FloatRange(0, 1, min_open=True), default=0.5,
              show_envvar=True,
              help="Largest share of Binance's per-minute request-weight limit to use.")
@click.option("--log-level", "-l", default="info", show_envvar=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              help="Logging threshold (logs go to stderr).")
@click.option("--once", is_flag=True, default=False, show_envvar=True,
              help="Answer the four questions once, print them and exit.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_envvar=True,
              help="Format of the --once answer and of the start-up report.")
@click.version_option(__version__, prog_name="binance-exporter")
def main(  # pylint: disable=too-many-arguments,too-many-positional-arguments,too-many-locals
    base_url: str,
    listen_address: str,
    port: int,
    update_interval: float,
    refresh_interval: float,
    top_n: int,
    depth_levels: int,
    volume_field: str,
    spread_symbols: tuple[str, tuple[str, ...]],
    quote_assets: str,
    shard: tuple[int, int],
    analytics: bool,
    symbols: str,
    fill_notionals: tuple[Decimal, ...],
    depth_bands: tuple[Decimal, ...],
    analytics_interval: float,
    analytics_depth_limit: int,
    source: str,
    stream_url: str,
    stream_snapshot_limit: int,
    record: str | None,
    timeout: float,
    weight_share: float,
    log_level: str,
    once: bool,
    output: str,
) -> None:
    """Prometheus exporter for Binance SPOT market data.

    Answers, at start-up and then continuously: the top BTC-quoted symbols by
    24h volume, the top USDT-quoted symbols by 24h number of trades, the
    notional of the top bids and asks of the first list's order books, and the
    bid-ask spread of the second list's symbols with its change every update
    interval. Serves them as Prometheus gauges on /metrics.
    """
    _bound_heap()
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = Settings(
        top_n=top_n,
        depth_levels=depth_levels,
        volume_field=volume_field,
        spread_symbols=spread_symbols[0],
        spread_list=spread_symbols[1],
        quote_assets=_names(quote_assets),
        shard=shard,
    )
    analytics_settings = AnalyticsSettings(
        fill_notionals=fill_notionals,
        depth_bands=depth_bands,
        extra_symbols=_names(symbols),
        depth_limit=analytics_depth_limit,
    ) if analytics else None
    planned = planned_weight_per_minute(settings, update_interval, refresh_interval)
    if analytics_settings is not None:
        most = 2 * top_n + len(analytics_settings.extra_symbols)
        planned += analytics_weight(analytics_settings, most) * 60.0 / analytics_interval
    if planned > weight_share * DEFAULT_WEIGHT_LIMIT:
        raise click.UsageError(
            f"this schedule plans {planned:.0f} request weight per minute, over "
            f"{weight_share:.0%} of Binance's limit of {DEFAULT_WEIGHT_LIMIT}; raise the "
            "intervals, or lower --top-n, --depth-levels or --analytics-depth-limit"
        )
    client = BinanceClient(base_url, timeout=timeout, weight_share=weight_share)
    jobs = JOBS + ((ANALYTICS,) if analytics_settings else ())
    feed: StreamMode | None = None
    if record is not None and (source != "stream" or once):
        raise click.UsageError("--record needs --source stream (and not --once)")
    if source == "stream" and not once:
        feed = _stream_mode(client, SnapshotStore(jobs), settings,
                            (stream_url, stream_snapshot_limit, record))
        refresher: Refresher = feed.refresher
    else:
        refresher = Refresher(client, SnapshotStore(jobs), settings)
    job = AnalyticsJob(refresher, analytics_settings) if analytics_settings else None
    if once:
        sys.exit(_once(refresher, job, output))
    _serve(refresher, job, feed, (listen_address, port),
           (update_interval, refresh_interval, analytics_interval), output)


def _stream_mode(client: BinanceClient, store: SnapshotStore, settings: Settings,
                 stream: tuple[str, int, str | None]) -> StreamMode:
    """Stream mode's parts; a `--record` path that cannot be written is a usage error."""
    # Imported here: the REST mode never loads the websocket client or msgspec.
    from binance_exporter.sources.stream_mode import (  # pylint: disable=import-outside-toplevel
        StreamMode,
    )

    url, snapshot_limit, record = stream
    try:
        return StreamMode(client, store, settings, url, snapshot_limit, record)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {record}: {exc.strerror or exc}",
                                 param_hint="--record") from exc


def _unknown_symbols(refresher: Refresher, job: AnalyticsJob | None) -> str | None:
    """The error line for --symbols that exchangeInfo does not list, if any."""
    if job is None or not refresher.listed:
        return None
    unknown = [s for s in job.settings.extra_symbols if s not in refresher.listed]
    return f"error: --symbols not listed on Binance: {', '.join(unknown)}" if unknown else None


def _once(refresher: Refresher, job: AnalyticsJob | None, output: str) -> int:
    """Answer once; 0 on success, 1 with one clear line when Binance could not answer."""
    # Failures are reported by the single line below, not by the refresh log too.
    logging.getLogger("binance_exporter.jobs.quotes").setLevel(logging.ERROR)
    snapshot = refresher.refresh_rankings()
    if (unknown := _unknown_symbols(refresher, job)) is not None:
        click.echo(unknown, err=True)
        return 2
    if job is not None and snapshot.ready:
        snapshot = job.refresh()
    refresher.close()
    if not snapshot.ready or snapshot.answers is None:
        errors = [str(e) for name in (RANKINGS, SPREADS) if (e := refresher.last_errors.get(name))]
        click.echo(
            f"error: no complete answer from {refresher.client.base_url}: " + "; ".join(errors),
            err=True,
        )
        return 1
    _print_answers(snapshot, output, refresher.settings)
    return 0


def _print_answers(snapshot: Snapshot, output: str, settings: Settings) -> None:
    if snapshot.answers is None:
        return
    if output == "json":
        print(report.to_json(snapshot.answers, snapshot.analytics), flush=True)
    else:
        print(report.to_text(snapshot.answers, settings.volume_field, settings.depth_levels),
              flush=True)
        if snapshot.analytics is not None:
            print(report.fills_text(snapshot.analytics), flush=True)


def _print_spreads(snapshot: Snapshot) -> None:
    if snapshot.answers is not None:
        print(report.spreads_line(snapshot.answers, time.time()), flush=True)


def _http_server(
    refresher: Refresher, listen: tuple[str, int], feed: StreamMode | None
) -> ExporterServer:
    """Bind the metrics server, rendering a page for every published snapshot."""
    store = refresher.store
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store.current, refresher.client.stats,
                                        feed.view if feed is not None else None))
    exposition = Exposition(registry)
    store.subscribe(exposition.update)
    try:
        # Ready once the page being served shows the answers, not while the store
        # has them and the page is still being rendered.
        return ExporterServer(
            listen, exposition, lambda: exposition.page().ready, refresher.client.base_url
        )
    except OSError as exc:
        click.echo(f"error: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}",
                   err=True)
        sys.exit(1)


def _serve(
    refresher: Refresher,
    job: AnalyticsJob | None,
    feed: StreamMode | None,
    listen: tuple[str, int],
    intervals: tuple[float, float, float],
    output: str,
) -> None:
    """Serve /metrics and refresh in the background until SIGTERM or SIGINT."""
    server = _http_server(refresher, listen, feed)
    stop = threading.Event()
    exit_code = [0]

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    def on_rankings(snapshot: Snapshot) -> None:
        if (unknown := _unknown_symbols(refresher, job)) is not None:
            click.echo(unknown, err=True)
            exit_code[0] = 2
            stop.set()
            return
        _print_answers(snapshot, output, refresher.settings)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.serve_in_thread()
    LOG.info("serving http://%s:%d/metrics, data from %s", *listen, refresher.client.base_url)
    update_interval, refresh_interval, analytics_interval = intervals
    scheduler = Scheduler(
        refresher,
        update_interval,
        refresh_interval,
        on_rankings=on_rankings,
        on_spreads=_print_spreads,
        analytics=(job.refresh, analytics_interval) if job is not None else None,
    )
    # Daemon thread: a request stuck in its timeout must not delay shutdown.
    threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True).start()
    if feed is not None:
        # The stream reader holds the GIL most of the time; a 1 ms switch
        # interval (default 5 ms) lets scrapes through without waiting several
        # 5 ms turns (measured: scrape p50 31 ms -> 7 ms under 30k events/s).
        sys.setswitchinterval(0.001)
        feed.start_publisher(stop)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    refresher.close()
    if feed is not None:
        feed.close()
    LOG.info("stopped")
    sys.exit(exit_code[0])
