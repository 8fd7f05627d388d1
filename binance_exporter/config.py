"""One frozen `Config` for the whole exporter, and the checks that need all of it.

`cli` turns options into a `Config`; `app` builds the exporter from it. The
parts are the questions the exporter answers (`RankingConfig`), stream mode
(`StreamConfig`) and the market-quality analytics (`AnalyticsConfig`).
`Config.check` refuses a configuration that cannot work before anything
starts: a schedule whose request weight would exceed the share of Binance's
limit the operator allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from binance_exporter.binance.weights import (
    AGG_TRADES_WEIGHT,
    BOOK_TICKER_MULTI_WEIGHT,
    DEFAULT_WEIGHT_LIMIT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
    depth_limit_for,
    depth_weight,
    snapshot_limit_for,
)
from binance_exporter.market.rankings import shard_owns
from binance_exporter.market.types import QUOTE_VOLUME
from binance_exporter.metrics.web_config import WebConfig

SPREADS_TOP, SPREADS_ALL, SPREADS_LIST = "top", "all", "list"
REST, STREAM = "rest", "stream"
# A local book must still vouch for --depth-levels after levels vanished at
# its top: its snapshot covers a quarter more, and at least 20 levels more.
BOOK_MARGIN = 0.25
BOOK_MARGIN_MIN = 20
REPAIR_RUNS = 10  # stream mode asks REST for the 24 h tickers every 10 rankings runs


class ConfigError(ValueError):
    """A configuration that cannot work; the message says what to change."""


@dataclass(frozen=True)
class RankingConfig:
    """What to rank, whose books and spreads to read, and which part of the market is ours."""

    top_n: int = 5
    depth_levels: int = 200
    volume_field: str = QUOTE_VOLUME
    btc_quote: str = "BTC"
    usdt_quote: str = "USDT"
    # Whose spreads to watch: the ranked USDT symbols ("top"), every TRADING
    # symbol ("all", optionally only `quote_assets`), or `spread_list`.
    spread_symbols: str = SPREADS_TOP
    spread_list: tuple[str, ...] = ()
    quote_assets: tuple[str, ...] = ()
    shard: tuple[int, int] = (0, 1)  # (index, count): this exporter's part of the market
    # The currency every notional, depth and order size is also given in.
    reference_asset: str = "USDT"

    def owns(self, symbol: str) -> bool:
        """True when this exporter's shard exports `symbol`."""
        index, count = self.shard
        return count == 1 or shard_owns(symbol, index, count)


@dataclass(frozen=True)
class StreamConfig:
    """Stream mode: where the market streams are, how deep each book starts, `--record`."""

    url: str = "wss://stream.binance.com:9443"
    snapshot_limit: int | None = None  # None: `snapshot_limit(config)` chooses
    record: str | None = None
    silence: float = 10.0  # seconds without a valid message before a connection counts as lost


@dataclass(frozen=True)
class AnalyticsConfig:
    """What to simulate and measure, and how often."""

    # Order sizes in the reference asset (`RankingConfig.reference_asset`).
    fill_notionals: tuple[Decimal, ...] = (Decimal(1000), Decimal(10000), Decimal(100000))
    depth_bands: tuple[Decimal, ...] = (
        Decimal("0.001"), Decimal("0.005"), Decimal("0.01"), Decimal("0.02"),
    )
    extra_symbols: tuple[str, ...] = ()
    depth_limit: int = 500
    interval: float = 30.0


@dataclass(frozen=True)
class Config:  # pylint: disable=too-many-instance-attributes
    """Everything the exporter needs to know, validated."""

    base_url: str = "https://api.binance.com"
    listen_address: str = "0.0.0.0"
    port: int = 8080
    update_interval: float = 10.0
    refresh_interval: float = 60.0
    timeout: float = 10.0
    weight_share: float = 0.5
    log_level: str = "info"
    once: bool = False
    output: str = "text"
    ranking: RankingConfig = RankingConfig()
    stream: StreamConfig | None = None  # None: REST mode
    analytics: AnalyticsConfig | None = AnalyticsConfig()  # None: --no-analytics
    web: WebConfig | None = None  # --web-config-file; None: plain HTTP, no auth

    def check(self) -> None:
        """Raise ConfigError for a configuration that cannot work."""
        planned = planned_weight_per_minute(self)
        if planned > self.weight_share * DEFAULT_WEIGHT_LIMIT:
            raise ConfigError(
                f"this schedule plans {planned:.0f} request weight per minute, over "
                f"{self.weight_share:.0%} of Binance's limit of {DEFAULT_WEIGHT_LIMIT}; raise the "
                "intervals, or lower --top-n, --depth-levels or --analytics-depth-limit"
            )


def rankings_weight(ranking: RankingConfig) -> int:
    """Request weight of one rankings run: exchangeInfo, 24 h tickers, depths, bookTicker."""
    depth = depth_weight(depth_limit_for(ranking.depth_levels))
    return (
        EXCHANGE_INFO_WEIGHT
        + TICKER_24H_ALL_WEIGHT
        + ranking.top_n * depth
        + BOOK_TICKER_MULTI_WEIGHT
    )


def analytics_weight(analytics: AnalyticsConfig, symbols: int) -> int:
    """Request weight of one analytics run over `symbols` symbols (one trade page each)."""
    return symbols * (depth_weight(analytics.depth_limit) + AGG_TRADES_WEIGHT)


def snapshot_limit(config: Config) -> int:
    """The depth `limit` each local book starts from in stream mode.

    The cheapest weight tier covering what a book must answer: the top
    `--depth-levels` plus a margin for levels vanishing at the top before the
    book has to start over, and the analytics snapshot's depth. Binance
    charges by tier, so the rest of the tier comes free (500 levels at the
    defaults, weight 25).
    """
    if config.stream is not None and config.stream.snapshot_limit is not None:
        return config.stream.snapshot_limit
    levels = config.ranking.depth_levels
    needed = levels + max(BOOK_MARGIN_MIN, int(levels * BOOK_MARGIN))
    if config.analytics is not None:
        needed = max(needed, config.analytics.depth_limit)
    return snapshot_limit_for(needed)


def planned_weight_per_minute(config: Config) -> float:
    """Request weight the schedule spends per minute, at most (rankings, spreads, analytics).

    Stream mode reads the spreads, books and trades from the streams and asks
    REST for exchangeInfo and the 24 h tickers every `REPAIR_RUNS` runs.
    """
    if config.stream is not None and not config.once:
        return (EXCHANGE_INFO_WEIGHT + TICKER_24H_ALL_WEIGHT) * 60.0 \
            / (config.refresh_interval * REPAIR_RUNS)
    planned = (
        rankings_weight(config.ranking) * 60.0 / config.refresh_interval
        + BOOK_TICKER_MULTI_WEIGHT * 60.0 / config.update_interval
    )
    if config.analytics is not None:
        most = 2 * config.ranking.top_n + len(config.analytics.extra_symbols)
        planned += analytics_weight(config.analytics, most) * 60.0 / config.analytics.interval
    return planned
