"""The rankings job: which symbols to follow, from exchangeInfo and the 24 h tickers.

Both requests leave together (one round trip). The result is a `Ranking`; the
quotes job then reads the books and spreads it names and publishes both, so a
scrape never sees new rankings beside old notionals. A failed run publishes
only its failure: the previous answers stay, marked stale.

In stream mode the 24 h figures come from a `TickerTable` kept current by
the `!ticker_1d@arr` stream, and a run spends no weight. Both requests are
made only when the table cannot be trusted (at start, after the ticker
stream's connection was lost) and once every `repair_every` seconds, when
the REST answer repairs what missed pushes left wrong; exchangeInfo is
refreshed with them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from binance_exporter.binance.payloads import (
    PayloadError,
    parse_exchange_info,
    parse_tickers_24h,
)
from binance_exporter.sources.ticker_table import TickerTable
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.config import SPREADS_ALL, SPREADS_LIST, RankingConfig
from binance_exporter.market.rankings import top_by_trades, top_by_volume, tradable_symbols
from binance_exporter.market.types import ExchangeInfo, Ticker24h
from binance_exporter.model import RANKINGS, SnapshotStore

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranking:
    """One rankings run's answer: the two top lists and whose books and spreads to read."""

    info: ExchangeInfo
    top_btc: tuple[Ticker24h, ...]
    top_usdt: tuple[Ticker24h, ...]
    spread_symbols: tuple[str, ...]  # this shard's part only
    started: float  # when the run began, for the duration the quotes job records

    def book_symbols(self, owns: Callable[[str], bool]) -> list[str]:
        """The ranked BTC symbols this shard reads the books of (the notionals)."""
        return [t.symbol for t in self.top_btc if owns(t.symbol)]


class RankingsJob:
    """Ranks the market; knows every listed symbol for the CLI's `--symbols` check."""

    def __init__(
        self,
        client: BinanceClient,
        pool: DaemonPool,
        store: SnapshotStore,
        config: RankingConfig,
        clock: Callable[[], float] = time.time,
        *,
        table: TickerTable | None = None,
        repair_every: float = 600.0,
    ) -> None:
        self.client = client
        self.pool = pool
        self.store = store
        self.config = config
        self._clock = clock
        self.listed: frozenset[str] = frozenset()  # every symbol in the last exchangeInfo
        self.table = table  # stream mode: the 24 h figures, kept current by the stream
        self.repair_every = repair_every
        self._info: ExchangeInfo | None = None
        self._asked = -float("inf")  # when Binance was last asked (stream mode)

    def run(self) -> Ranking | None:
        """Rank afresh; on failure publish the failure and return None."""
        started = self._clock()
        try:
            info, tickers = self._read(started)
        except (BinanceError, PayloadError) as exc:
            self.store.record({RANKINGS: (exc, started)})
            return None
        config = self.config
        top_btc = top_by_volume(
            info.symbols, tickers, config.btc_quote, config.volume_field, config.top_n
        )
        top_usdt = top_by_trades(info.symbols, tickers, config.usdt_quote, config.top_n)
        return Ranking(
            info=info,
            top_btc=tuple(top_btc),
            top_usdt=tuple(top_usdt),
            spread_symbols=tuple(self._spread_symbols(info, top_usdt)),
            started=started,
        )

    def _read(self, now: float) -> tuple[ExchangeInfo, dict[str, Ticker24h]]:
        """exchangeInfo and the 24 h figures: asked of Binance, or read from the table."""
        table = self.table
        if (table is not None and self._info is not None and table.complete
                and now - self._asked < self.repair_every):
            return self._info, table.tickers()
        info_future = self.pool.submit(self.client.exchange_info)
        tickers_future = self.pool.submit(self.client.tickers_24h)
        info = parse_exchange_info(info_future.result())
        if table is None:
            tickers = parse_tickers_24h(tickers_future.result())
        else:
            repairs = table.repair(tickers_future.result())
            if repairs:
                LOG.info("the REST 24 h tickers repaired %d entries of the stream's table",
                         repairs)
            tickers = table.tickers()
            self._asked = now
        self.client.set_weight_limit(info.weight_limit)
        self.listed = frozenset(info.symbols)
        self._info = info
        return info, tickers

    def _spread_symbols(self, info: ExchangeInfo, top_usdt: list[Ticker24h]) -> list[str]:
        """The symbols whose spreads this exporter watches (its shard's part only)."""
        config = self.config
        if config.spread_symbols == SPREADS_ALL:
            chosen = tradable_symbols(info.symbols, config.quote_assets)
        elif config.spread_symbols == SPREADS_LIST:
            chosen = [s for s in config.spread_list if s in info.symbols]
            missing = sorted(set(config.spread_list) - set(chosen))
            if missing:
                LOG.warning("not in exchangeInfo, no spread: %s", ", ".join(missing))
        else:
            chosen = [t.symbol for t in top_usdt]
        return [s for s in chosen if config.owns(s)]
