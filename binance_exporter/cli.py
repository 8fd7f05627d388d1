"""Command line: `binance-exporter [OPTIONS]` / `python -m binance_exporter`.

This module only turns options into a `Config` and hands it to `app`. Every
option can also be set with an environment variable `BINANCE_EXPORTER_<OPTION>`
(e.g. `BINANCE_EXPORTER_PORT=9100`), which suits containers. Every value is
validated before anything starts: a bad one is one line and exit 2.
"""

from __future__ import annotations

import logging
import math
import sys
from decimal import Decimal, InvalidOperation
from typing import Callable
from urllib.parse import urlparse

import click

from binance_exporter import __version__
from binance_exporter.app import EXIT_UNANSWERED, App, bound_heap
from binance_exporter.config import (
    REST,
    SPREADS_ALL,
    SPREADS_LIST,
    SPREADS_TOP,
    STREAM,
    AnalyticsConfig,
    Config,
    ConfigError,
    RankingConfig,
    StreamConfig,
)
from binance_exporter.market.types import VOLUME_FIELDS
from binance_exporter.metrics.web_config import WebConfig, WebConfigError, load_web_config


class FiniteFloat(click.ParamType):
    """A finite float within (low, high]: `nan`, `inf` and out-of-range values are refused."""

    name = "float"

    def __init__(self, low: float = 0.0, high: float = math.inf) -> None:
        self.low, self.high = low, high

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if not self.low < number <= self.high:
            bound = "" if math.isinf(self.high) else f" and at most {self.high:g}"
            self.fail(f"{value!r} must be more than {self.low:g}{bound}", param, ctx)
        return number


# An interval or timeout of more than a day is a typo, and would overflow timers.
POSITIVE = FiniteFloat(0.0, 86400.0)


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


def _asset(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    asset = value.strip().upper()
    if not asset.isalnum():
        raise click.BadParameter(f"must be one asset name such as USDT, got {value!r}")
    return asset


def _spread_symbols_option(
    _ctx: click.Context, _param: click.Parameter, value: str
) -> tuple[str, tuple[str, ...]]:
    if value.strip().lower() in (SPREADS_TOP, SPREADS_ALL):
        return value.strip().lower(), ()
    names = _names(value)
    if not names:
        raise click.BadParameter("give top, all, or a comma-separated list of symbols")
    return SPREADS_LIST, names


def _decimals(
    most: Decimal,
) -> Callable[[click.Context, click.Parameter, str], tuple[Decimal, ...]]:
    """A callback for comma-separated numbers, each in (0, most]."""
    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[Decimal, ...]:
        try:
            numbers = tuple(Decimal(part) for part in _names(value))
        except InvalidOperation:
            raise click.BadParameter(f"must be comma-separated numbers, got {value!r}") from None
        if any(not n.is_finite() or not 0 < n <= most for n in numbers):
            raise click.BadParameter(f"must all be more than 0 and at most {most}, got {value!r}")
        return tuple(sorted(set(numbers)))
    return parse


# A band is a distance from the mid as a ratio: past 1, a bid band reaches
# below zero. An order of more than a trillion is a typo.
MAX_BAND = Decimal(1)
MAX_NOTIONAL = Decimal(10) ** 12


def _url(value: str, schemes: tuple[str, ...]) -> str:
    """`value` when it is a URL with one of `schemes`, a host and a valid port."""
    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parsed = urlparse(value)
        port = parsed.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise click.BadParameter(f"must be a {wanted} URL, got {value!r} ({exc})") from None
    if parsed.scheme not in schemes or not parsed.hostname:
        raise click.BadParameter(f"must be a {wanted} URL with a host, got {value!r}")
    if port == 0:
        raise click.BadParameter(f"port must be 1-65535, got {value!r}")
    return value.rstrip("/")


def _base_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    return _url(value, ("http", "https"))


def _stream_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    return _url(value, ("ws", "wss"))


def _web_config(path: str | None) -> WebConfig | None:
    """The checked --web-config-file; one line naming the file and the problem, and exit 2."""
    if not path:
        return None
    try:
        return load_web_config(path)
    except WebConfigError as exc:
        click.echo(f"error: --web-config-file {exc}", err=True)
        sys.exit(2)


@click.command(context_settings={"auto_envvar_prefix": "BINANCE_EXPORTER", "show_default": True})
@click.option("--base-url", default="https://api.binance.com", callback=_base_url,
              show_envvar=True, help="Binance REST API base URL.")
@click.option("--listen-address", default="0.0.0.0", show_envvar=True,
              help="Address to serve /metrics on.")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=8080, show_envvar=True,
              help="Port to serve /metrics on.")
@click.option("--web-config-file", default=None, show_envvar=True,
              help="exporter-toolkit web config (YAML): TLS, client certificates, extra "
                   "headers and bcrypt basic auth for every endpoint but /-/healthy.")
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
@click.option("--spread-symbols", default=SPREADS_TOP, callback=_spread_symbols_option,
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
@click.option("--fill-notionals", default="1000,10000,100000", callback=_decimals(MAX_NOTIONAL),
              show_envvar=True,
              help="Sizes of the simulated market orders, in the reference asset "
                   "(--reference-asset), converted to each book's quote asset.")
@click.option("--reference-asset", default="USDT", callback=_asset, show_envvar=True,
              help="Asset every order size, notional and depth is also given in, converted "
                   "at the mid of a direct or inverse pair, or one hop via BTC.")
@click.option("--depth-bands", default="0.001,0.005,0.01,0.02", callback=_decimals(MAX_BAND),
              show_envvar=True,
              help="Distances from the mid (ratios) within which resting notional is summed.")
@click.option("--analytics-interval", type=POSITIVE, default=30.0, show_envvar=True,
              help="Seconds between analytics runs (a depth snapshot and aggTrades pages per "
                   "symbol).")
@click.option("--analytics-depth-limit", type=click.IntRange(1, 5000), default=500,
              show_envvar=True,
              help="Levels per side of the analytics depth snapshots; figures needing deeper "
                   "books are left out.")
@click.option("--source", type=click.Choice([REST, STREAM]), default=REST, show_envvar=True,
              help="Where books and quotes come from: REST polls, or the websocket streams "
                   "(bookTicker for every spread, local depth books for the ranked symbols, "
                   "!ticker_1d@arr for the rankings, aggTrade for trade flow).")
@click.option("--stream-url", default="wss://stream.binance.com:9443", callback=_stream_url,
              show_envvar=True,
              help="Websocket market-stream base URL (with --source stream).")
@click.option("--stream-snapshot-limit", type=click.IntRange(1, 5000), default=None,
              show_envvar=True,
              help="Levels of the REST snapshot each local book starts from; default: the "
                   "cheapest weight tier covering --depth-levels plus a quarter and "
                   "--analytics-depth-limit (500, weight 25, at the defaults).")
@click.option("--stream-silence-timeout", type=POSITIVE, default=10.0, show_envvar=True,
              help="Seconds without a valid stream message after which a connection is taken "
                   "as lost: its books and quotes leave the page and it reconnects.")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              show_envvar=True,
              help="With --source stream: write every stream message and depth snapshot "
                   "received, with its receive time, to this file as gzip JSON lines.")
@click.option("--timeout", type=POSITIVE, default=10.0, show_envvar=True,
              help="HTTP timeout in seconds for each Binance request.")
@click.option("--weight-share", type=FiniteFloat(0.0, 1.0), default=0.5,
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
    web_config_file: str | None,
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
    reference_asset: str,
    depth_bands: tuple[Decimal, ...],
    analytics_interval: float,
    analytics_depth_limit: int,
    source: str,
    stream_url: str,
    stream_snapshot_limit: int | None,
    stream_silence_timeout: float,
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
    bound_heap()
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if record is not None and (source != STREAM or once):
        raise click.UsageError("--record needs --source stream (and not --once)")
    config = Config(
        base_url=base_url,
        listen_address=listen_address,
        port=port,
        update_interval=update_interval,
        refresh_interval=refresh_interval,
        timeout=timeout,
        weight_share=weight_share,
        log_level=log_level,
        once=once,
        output=output,
        web=_web_config(web_config_file),
        ranking=RankingConfig(
            top_n=top_n,
            depth_levels=depth_levels,
            volume_field=volume_field,
            spread_symbols=spread_symbols[0],
            spread_list=spread_symbols[1],
            quote_assets=_names(quote_assets),
            shard=shard,
            reference_asset=reference_asset,
        ),
        stream=StreamConfig(stream_url, stream_snapshot_limit, record, stream_silence_timeout)
        if source == STREAM
        else None,
        analytics=AnalyticsConfig(
            fill_notionals=fill_notionals,
            depth_bands=depth_bands,
            extra_symbols=_names(symbols),
            depth_limit=analytics_depth_limit,
            interval=analytics_interval,
        ) if analytics else None,
    )
    try:
        config.check()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(_start(config))


def _start(config: Config) -> int:
    """Build the exporter and run it (or answer once); the process exit code."""
    try:
        app = App(config)
    except OSError as exc:  # the --record file cannot be written
        raise click.BadParameter(f"cannot write {config.stream.record if config.stream else ''}: "
                                 f"{exc.strerror or exc}", param_hint="--record") from exc
    if config.once:
        return app.once()
    try:
        server = app.server()
    except OSError as exc:
        click.echo(f"error: cannot listen on {config.listen_address}:{config.port}: "
                   f"{exc.strerror or exc}", err=True)
        app.close()
        return EXIT_UNANSWERED
    return app.run(server)
