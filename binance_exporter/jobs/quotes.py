"""Refresh jobs: ask Binance, compute the answers, publish a new snapshot.

Two jobs share one client:

* `rankings` (every `--refresh-interval`): exchangeInfo and the 24 h tickers
  in parallel, then every depth snapshot and one bookTicker in parallel. Two
  round trips answer all four questions.
* `spreads` (every `--update-interval`): one bookTicker request with the
  `symbols` parameter (weight 4, whatever the number of symbols).

A job that fails keeps the previous good values and marks itself failed; one
bad symbol never fails the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Callable, Mapping

from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.binance.weights import (
    BOOK_TICKER_MULTI_WEIGHT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
    depth_weight,
)
from binance_exporter.binance.payloads import (
    PayloadError,
    parse_book_tickers,
    parse_depth,
    parse_exchange_info,
    parse_tickers_24h,
)
from binance_exporter.binance.weights import depth_limit_for
from binance_exporter.market.quotes import (
    CROSSED,
    EMPTY,
    ONE_SIDED,
    quote_problem,
    side_notional,
    spread,
    spread_deltas,
    spread_ratio,
)
from binance_exporter.market.rankings import (
    shard_owns,
    top_by_trades,
    top_by_volume,
    tradable_symbols,
)
from binance_exporter.market.types import BookTop, ExchangeInfo, OrderBook, QUOTE_VOLUME, Ticker24h
from binance_exporter.market.vwap import TimeWeightedAverage, vwap_price
from binance_exporter.jobs.pool import DaemonPool
from binance_exporter.model import (
    RANKINGS,
    SPREADS,
    Answers,
    JobState,
    SideNotional,
    Snapshot,
    SnapshotStore,
)

LOG = logging.getLogger(__name__)
INVALID_SYMBOL = "invalid_symbol"
NOT_SYNCED = "not_synced"
SPREADS_TOP, SPREADS_ALL, SPREADS_LIST = "top", "all", "list"
VWAP_WINDOWS = (("30s", 30.0), ("1m", 60.0))  # label value, seconds


class NotSynced(Exception):
    """A local order book is not (or no longer) in sync with Binance."""


REFRESH_ERRORS = (BinanceError, PayloadError, NotSynced)


@dataclass(frozen=True)
class Settings:
    """What to rank and how deep to look."""

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

    def owns(self, symbol: str) -> bool:
        """True when this exporter's shard exports `symbol`."""
        index, count = self.shard
        return count == 1 or shard_owns(symbol, index, count)


def rankings_weight(settings: Settings) -> int:
    """Request weight of one rankings run: exchangeInfo, 24 h tickers, depths, bookTicker."""
    depth = depth_weight(depth_limit_for(settings.depth_levels))
    return (
        EXCHANGE_INFO_WEIGHT
        + TICKER_24H_ALL_WEIGHT
        + settings.top_n * depth
        + BOOK_TICKER_MULTI_WEIGHT
    )


def planned_weight_per_minute(
    settings: Settings, update_interval: float, refresh_interval: float
) -> float:
    """Request weight the schedule spends per minute, at most (rankings + spreads runs)."""
    return (
        rankings_weight(settings) * 60.0 / refresh_interval
        + BOOK_TICKER_MULTI_WEIGHT * 60.0 / update_interval
    )


@dataclass(frozen=True)
class Spreads:
    """Spreads and spread/mid ratios of one reading."""

    values: dict[str, Decimal]
    ratios: dict[str, Decimal]
    error: Exception | None = None  # set when some symbols could not be measured


class Refresher:
    """Runs the refresh jobs and publishes each result to the snapshot store."""

    def __init__(
        self,
        client: BinanceClient,
        store: SnapshotStore,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        workers: int = 8,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self._clock = clock
        # Each pool thread gets its own Spot (see BinanceClient), so the
        # parallel requests never share a requests.Session.
        self.pool = DaemonPool(workers, name="binance-rest")
        self._skipped: Counter[tuple[str, str]] = Counter()
        self._failures: Counter[str] = Counter()
        self.last_errors: dict[str, Exception | None] = {}
        self.listed: frozenset[str] = frozenset()  # every symbol in the last exchangeInfo
        self._reported: dict[str, Decimal] = {}  # the spreads the last delta was taken from
        self._averages: dict[str, dict[str, TimeWeightedAverage]] = {}
        # Jobs that may run on different threads (stream mode) take turns here,
        # since each builds its snapshot on the current one.
        self.lock = threading.RLock()

    def close(self) -> None:
        """Stop the worker threads without waiting for requests in flight."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # Jobs -------------------------------------------------------------------

    def refresh_rankings(self) -> Snapshot:
        """Answer all four questions afresh; publish and return the snapshot."""
        started = self._clock()
        previous = self.store.current()
        try:
            info, top_btc, top_usdt = self._rank()
        except REFRESH_ERRORS as exc:
            return self.publish(previous, previous.answers, {RANKINGS: (exc, started)})
        owns = self.settings.owns
        depth_futures = self._submit_depths([t.symbol for t in top_btc if owns(t.symbol)])
        spread_symbols = self._spread_symbols(info, top_usdt)
        spreads_future = self.pool.submit(self._fetch_spreads, spread_symbols)

        notional, vwaps, rankings_error = self._collect_notional(depth_futures, previous.answers)
        spreads, spreads_error = self._spreads_result(spreads_future, spread_symbols, previous)
        tracked = [t.symbol for t in (*top_btc, *top_usdt)] + spread_symbols
        answers = Answers(
            symbols={s: info.symbols[s] for s in tracked if owns(s)},
            top_btc=tuple(top_btc),
            top_usdt=tuple(top_usdt),
            notional=notional,
            spread_symbols=tuple(spread_symbols),
            spreads=spreads.values,
            spread_ratios=spreads.ratios,
            deltas=self._deltas(previous.answers, spreads.values, spreads_error),
            **self._vwap_fields(vwaps),
        )
        return self.publish(
            previous,
            answers,
            # The spreads ride along from the start: both durations are the whole run's.
            {RANKINGS: (rankings_error, started), SPREADS: (spreads_error, started)},
        )

    def refresh_spreads(self) -> Snapshot:
        """Re-read the spreads of the ranked USDT symbols; publish and return the snapshot."""
        started = self._clock()
        previous = self.store.current()
        if previous.answers is None:
            raise RuntimeError("refresh_spreads needs a first successful refresh_rankings")
        symbols = list(previous.answers.spread_symbols)
        future: Future[Spreads] = self.pool.submit(self._fetch_spreads, symbols)
        spreads, error = self._spreads_result(future, symbols, previous)
        answers = Answers(
            symbols=previous.answers.symbols,
            top_btc=previous.answers.top_btc,
            top_usdt=previous.answers.top_usdt,
            notional=previous.answers.notional,
            spread_symbols=previous.answers.spread_symbols,
            spreads=spreads.values,
            spread_ratios=spreads.ratios,
            deltas=self._deltas(previous.answers, spreads.values, error),
            vwap=previous.answers.vwap,
            vwap_averages=previous.answers.vwap_averages,
        )
        return self.publish(previous, answers, {SPREADS: (error, started)})

    # Pieces -----------------------------------------------------------------

    def _rank(self) -> tuple[ExchangeInfo, list[Ticker24h], list[Ticker24h]]:
        """First round trip: exchangeInfo and the 24 h tickers together, then rank."""
        info_future = self.pool.submit(self.client.exchange_info)
        tickers_future = self.pool.submit(self.client.tickers_24h)
        info = parse_exchange_info(info_future.result())
        tickers = parse_tickers_24h(tickers_future.result())
        self.client.set_weight_limit(info.weight_limit)
        self.listed = frozenset(info.symbols)
        settings = self.settings
        top_btc = top_by_volume(
            info.symbols, tickers, settings.btc_quote, settings.volume_field, settings.top_n
        )
        top_usdt = top_by_trades(info.symbols, tickers, settings.usdt_quote, settings.top_n)
        return info, top_btc, top_usdt

    def _submit_depths(self, symbols: list[str]) -> dict[str, Future[object]]:
        """Second round trip: every depth snapshot at once, each on its own thread."""
        limit = depth_limit_for(self.settings.depth_levels)
        return {s: self.pool.submit(self.client.depth, s, limit) for s in symbols}

    def _spread_symbols(self, info: ExchangeInfo, top_usdt: list[Ticker24h]) -> list[str]:
        """The symbols whose spreads this exporter watches (its shard's part only)."""
        settings = self.settings
        if settings.spread_symbols == SPREADS_ALL:
            chosen = tradable_symbols(info.symbols, settings.quote_assets)
        elif settings.spread_symbols == SPREADS_LIST:
            chosen = [s for s in settings.spread_list if s in info.symbols]
            missing = sorted(set(settings.spread_list) - set(chosen))
            if missing:
                LOG.warning("not in exchangeInfo, no spread: %s", ", ".join(missing))
        else:
            chosen = [t.symbol for t in top_usdt]
        return [s for s in chosen if settings.owns(s)]

    def skip(self, job: str, reason: str) -> None:
        """Count a value left out of the metrics, by job and reason."""
        self._skipped[(job, reason)] += 1

    def _collect_notional(
        self, futures: Mapping[str, Future[object]], previous: Answers | None
    ) -> tuple[dict[str, SideNotional], dict[str, Decimal], Exception | None]:
        """Notional and VWAP mid of each book; failures keep or drop values as they must."""
        notional: dict[str, SideNotional] = {}
        vwaps: dict[str, Decimal] = {}
        error: Exception | None = None
        for symbol, future in futures.items():
            try:
                result = future.result()
                book = result if isinstance(result, OrderBook) else parse_depth(result, symbol)
            except REFRESH_ERRORS as exc:
                if isinstance(exc, NotSynced):
                    # Out of sync is known to be wrong: absent, not the old value.
                    # The stream's own job reports it; the REST rankings did not fail.
                    self.skip(RANKINGS, NOT_SYNCED)
                elif isinstance(exc, BinanceError) and exc.invalid_symbol:
                    # Delisted since exchangeInfo was read: drop it, keep the others.
                    self.skip(RANKINGS, INVALID_SYMBOL)
                else:
                    error = exc
                    if previous is not None and symbol in previous.notional:
                        notional[symbol] = previous.notional[symbol]
                continue
            value = self._book_notional(book)
            if value is not None:
                notional[symbol] = value
                if (mid := vwap_price(book, self.settings.depth_levels)) is not None:
                    vwaps[symbol] = mid
        return notional, vwaps, error

    def _book_notional(self, book: OrderBook) -> SideNotional | None:
        """Notional per side, skipping sides that are empty and books that are crossed."""
        if not book.bids and not book.asks:
            self.skip(RANKINGS, EMPTY)
            return None
        if book.bids and book.asks and book.bids[0][0] >= book.asks[0][0]:
            self.skip(RANKINGS, CROSSED)
            return None
        if not (book.bids and book.asks):
            self.skip(RANKINGS, ONE_SIDED)
        levels = self.settings.depth_levels
        return SideNotional(
            bids=side_notional(book.bids, levels) if book.bids else None,
            asks=side_notional(book.asks, levels) if book.asks else None,
        )

    def _fetch_spreads(self, symbols: list[str]) -> Spreads:
        if not symbols:
            return Spreads({}, {})
        try:
            # Whole market: the all-symbols form (same weight 4) instead of a
            # `symbols` list thousands of names long in the URL.
            wanted = None if self.settings.spread_symbols == SPREADS_ALL else symbols
            tops = parse_book_tickers(self.client.book_tickers(wanted))
        except BinanceError as exc:
            if not exc.invalid_symbol:
                raise
            # One symbol of the list no longer exists, which fails the whole
            # request. The all-symbols form costs the same weight (4) and
            # answers for every symbol that still exists.
            tops = parse_book_tickers(self.client.book_tickers(None))
        spreads, missing = self.measure_spreads(symbols, tops)
        for _ in missing:  # absent from an all-symbols answer: no longer listed
            self.skip(SPREADS, INVALID_SYMBOL)
        return spreads

    def measure_spreads(
        self, symbols: list[str], tops: Mapping[str, BookTop]
    ) -> tuple[Spreads, list[str]]:
        """Spread and spread/mid of each symbol's best quotes, and the symbols without any.

        An empty, one-sided or crossed quote gives no value; it is counted instead.
        """
        values: dict[str, Decimal] = {}
        ratios: dict[str, Decimal] = {}
        missing: list[str] = []
        for symbol in symbols:
            top = tops.get(symbol)
            if top is None:
                missing.append(symbol)
            elif (problem := quote_problem(top.bid_price, top.ask_price)) is not None:
                self.skip(SPREADS, problem)
            else:
                values[symbol] = spread(top)  # type: ignore[assignment]  # checked above
                ratios[symbol] = spread_ratio(top)  # type: ignore[assignment]
        return Spreads(values, ratios), missing

    def _spreads_result(
        self, future: Future[Spreads], symbols: list[str], previous: Snapshot
    ) -> tuple[Spreads, Exception | None]:
        try:
            result = future.result()
            return result, result.error
        except REFRESH_ERRORS as exc:
            old = previous.answers
            if old is None:
                return Spreads({}, {}), exc
            kept = set(symbols)
            return (
                Spreads(
                    {s: v for s, v in old.spreads.items() if s in kept},
                    {s: v for s, v in old.spread_ratios.items() if s in kept},
                ),
                exc,
            )

    def _deltas(
        self, previous: Answers | None, spreads: Mapping[str, Decimal], error: Exception | None
    ) -> dict[str, Decimal]:
        """Change since the spreads of the previous report (rankings or spreads run)."""
        if previous is not None and error is not None:
            # Nothing new was measured: the old deltas still stand.
            return {s: d for s, d in previous.deltas.items() if s in spreads}
        deltas = spread_deltas(self._reported, spreads)
        self._reported = dict(spreads)
        return deltas

    def _vwap_fields(self, vwaps: Mapping[str, Decimal]) -> dict[str, Mapping]:
        """VWAP mids now and their time-weighted averages, sampled at this moment."""
        now = time.monotonic()  # averages weigh durations: a clock that never jumps
        averages: dict[tuple[str, str], Decimal] = {}
        for symbol in set(self._averages) - set(vwaps):
            del self._averages[symbol]
        for symbol, value in vwaps.items():
            windows = self._averages.setdefault(
                symbol, {name: TimeWeightedAverage(seconds) for name, seconds in VWAP_WINDOWS}
            )
            for name, average in windows.items():
                average.add(now, value)
                if (result := average.average(now)) is not None:
                    averages[(symbol, name)] = result
        return {"vwap": dict(vwaps), "vwap_averages": averages}

    def publish(
        self,
        previous: Snapshot,
        answers: Answers | None,
        outcomes: Mapping[str, tuple[Exception | None, float]],
        **changes: object,
    ) -> Snapshot:
        """Publish `previous` with new answers, job states and skip counts.

        Jobs run one after another on the scheduler thread, so building on
        `previous` never loses another job's update.
        """
        now = self._clock()
        jobs = dict(previous.jobs)
        for job, (error, started) in outcomes.items():
            self._log_outcome(job, error)
            self.last_errors[job] = error
            old = jobs.get(job, JobState())
            jobs[job] = JobState(
                success=error is None,
                last_success=now if error is None else old.last_success,
                duration=now - started,
            )
        snapshot = replace(
            previous, answers=answers, jobs=jobs, skipped=dict(self._skipped), **changes
        )
        self.store.publish(snapshot)
        return snapshot

    def _log_outcome(self, job: str, error: Exception | None) -> None:
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
