"""The quotes job: notionals, spreads, their deltas and the VWAP, from any book source.

It reads books and best quotes through a `BookSource` and never knows whether
they were polled (REST) or kept locally (stream). Three entry points, one per
moment the answers change:

* `with_ranking`: right after a rankings run, for the symbols it named. Every
  depth read and the bookTicker read are in flight together, so start-up
  costs two round trips in all. It records the `rankings` and `spreads` jobs.
* `refresh_spreads` (every `--update-interval`): the spreads again, and their
  change since the last report (the `spreads` job).
* `refresh_books` (stream mode, after the local books changed): notionals,
  spreads and VWAP again, deltas left as last reported.

A value that cannot be read is never guessed: a delisted symbol leaves, a
failed read keeps the previous value with the job marked failed, and a book
that is not in sync is absent and fails the `spreads` job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Callable, Mapping, Sequence

from binance_exporter.binance.payloads import PayloadError
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceError
from binance_exporter.config import RankingConfig
from binance_exporter.jobs.rankings import Ranking
from binance_exporter.jobs.reference import ReferencePrices
from binance_exporter.market.quotes import (
    CROSSED,
    EMPTY,
    ONE_SIDED,
    book_problem,
    side_notional,
    spread_and_ratio,
    spread_deltas,
)
from binance_exporter.market.types import BookTop, OrderBook
from binance_exporter.market.vwap import VwapTracker
from binance_exporter.model import RANKINGS, SPREADS, Answers, SideNotional, Snapshot, SnapshotStore
from binance_exporter.sources.base import BookSource, NotSynced

INVALID_SYMBOL = "invalid_symbol"
READ_ERRORS = (BinanceError, PayloadError, NotSynced)


@dataclass(frozen=True)
class Spreads:
    """Spreads and spread/mid ratios of one reading."""

    values: dict[str, Decimal] = field(default_factory=dict)
    ratios: dict[str, Decimal] = field(default_factory=dict)
    error: Exception | None = None  # set when some symbols could not be measured
    measured: bool = True  # False: nothing was read, `values` are the previous ones
    rates: dict[str, Decimal] = field(default_factory=dict)  # reference prices, same reading


@dataclass
class BookReading:
    """Notionals and VWAP mids of one read of the ranked books."""

    notional: dict[str, SideNotional] = field(default_factory=dict)
    vwaps: dict[str, Decimal] = field(default_factory=dict)
    error: Exception | None = None  # a read that failed for a reason other than the symbol
    not_synced: list[str] = field(default_factory=list)


def spreads_or_kept(read: Callable[[], Spreads], symbols: list[str],
                    previous: Answers | None) -> Spreads:
    """The reading, or the previous values of `symbols` with the error when it failed."""
    try:
        return read()
    except READ_ERRORS as exc:
        if previous is None:
            return Spreads(error=exc, measured=False)
        kept = set(symbols)
        return Spreads(
            {s: v for s, v in previous.spreads.items() if s in kept},
            {s: v for s, v in previous.spread_ratios.items() if s in kept},
            exc,
            measured=False,
            rates=dict(previous.reference_prices),
        )


def book_notional(book: OrderBook, levels: int, store: SnapshotStore) -> SideNotional | None:
    """Notional per side, skipping sides that are empty and books that are crossed."""
    problem = book_problem(book)
    if problem in (EMPTY, CROSSED):
        store.skip(RANKINGS, problem)
        return None
    if problem == ONE_SIDED:
        store.skip(RANKINGS, ONE_SIDED)
    return SideNotional(
        bids=side_notional(book.bids, levels) if book.bids else None,
        asks=side_notional(book.asks, levels) if book.asks else None,
    )


class QuotesJob:  # pylint: disable=too-many-instance-attributes
    """Measures books and quotes and publishes them with the deltas and VWAP averages."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        source: BookSource,
        pool: DaemonPool,
        store: SnapshotStore,
        config: RankingConfig,
        clock: Callable[[], float] = time.time,
        convert_also: Sequence[str] = (),
    ) -> None:
        """`convert_also`: the analytics' `--symbols`, whose books are kept and converted too."""
        self.source = source
        self.pool = pool
        self.store = store
        self.config = config
        self._clock = clock
        self._reported: dict[str, Decimal] = {}  # the spreads the last delta was taken from
        # Each symbol's last quote and what was measured from it: a whole-market
        # publish measures again only the symbols whose quotes changed.
        # The last spreads and the quotes they came from: a publish measures
        # again only the symbols whose quotes changed.
        self._measured, self._measured_from = Spreads(), dict[str, BookTop]()
        self._vwaps = VwapTracker(config.depth_levels)
        self.reference = ReferencePrices(config.reference_asset, store, convert_also)
        self._books_also = tuple(convert_also)

    # Entry points -----------------------------------------------------------

    def with_ranking(self, ranking: Ranking) -> Snapshot:
        """Read what `ranking` names and publish it whole with the new rankings."""
        owns = self.config.owns
        book_symbols = ranking.book_symbols(owns)
        spread_symbols = list(ranking.spread_symbols)
        ranked = [t.symbol for t in (*ranking.top_btc, *ranking.top_usdt)]
        self.reference.plan(ranking.info, ranked)
        # Outside the turn: following new streams may wait on old connections.
        self.source.track(
            books=[s for s in dict.fromkeys(ranked + list(self._books_also)) if owns(s)],
            tops=list(dict.fromkeys(spread_symbols + self.reference.symbols)))
        with self.store.turn:
            previous = self.store.current().answers
            spreads_future = self.pool.submit(self._spreads, spread_symbols)
            reading = self._read_books(book_symbols, previous)
            spreads = spreads_or_kept(spreads_future.result, spread_symbols, previous)
            self._free_vwaps(reading, [t.symbol for t in ranking.top_usdt if owns(t.symbol)])
            tracked = [t.symbol for t in (*ranking.top_btc, *ranking.top_usdt)] + spread_symbols
            answers = Answers(
                symbols={s: ranking.info.symbols[s] for s in tracked if owns(s)},
                top_btc=ranking.top_btc,
                top_usdt=ranking.top_usdt,
                notional=reading.notional,
                spread_symbols=tuple(spread_symbols),
                spreads=spreads.values,
                spread_ratios=spreads.ratios,
                deltas=self._deltas(previous, spreads),
                **self._vwap_fields(reading.vwaps),
                **self.reference.fields(reading.notional, spreads.rates, RANKINGS),
            )
            # The spreads ride along from the start: both durations are the whole run's.
            return self.store.record(
                {RANKINGS: (reading.error, ranking.started),
                 SPREADS: (spreads.error, ranking.started)},
                answers=answers,
            )

    def refresh_spreads(self) -> Snapshot:
        """Re-read the spreads and take their change since the last report."""
        with self.store.turn:
            started = self._clock()
            previous = self.store.current().answers
            if previous is None:
                raise RuntimeError("refresh_spreads needs a first rankings run")
            symbols = list(previous.spread_symbols)
            spreads = spreads_or_kept(lambda: self._spreads(symbols), symbols, previous)
            answers = replace(previous, spreads=spreads.values, spread_ratios=spreads.ratios,
                              deltas=self._deltas(previous, spreads),
                              **self.reference.fields(previous.notional, spreads.rates, SPREADS))
            return self.store.record({SPREADS: (spreads.error, started)}, answers=answers)

    def refresh_books(self) -> Snapshot:
        """Re-read every book-derived answer; the deltas stay as last reported."""
        with self.store.turn:
            started = self._clock()
            snapshot = self.store.current()
            answers = snapshot.answers
            if answers is None:
                return snapshot
            book_symbols = [t.symbol for t in answers.top_btc if t.symbol in answers.symbols]
            reading = self._read_books(book_symbols, None)
            spreads = self._spreads(list(answers.spread_symbols))
            self._free_vwaps(reading, [t.symbol for t in answers.top_usdt
                                       if t.symbol in answers.symbols])
            error = spreads.error or (
                NotSynced(f"order books not in sync: {', '.join(sorted(reading.not_synced))}")
                if reading.not_synced else None
            )
            updated = replace(
                answers,
                notional=reading.notional,
                spreads=spreads.values,
                spread_ratios=spreads.ratios,
                deltas={s: d for s, d in answers.deltas.items() if s in spreads.values},
                **self._vwap_fields(reading.vwaps),
                **self.reference.fields(reading.notional, spreads.rates, SPREADS),
            )
            # Reported as the `spreads` job: it is what keeps them current.
            return self.store.record({SPREADS: (error, started)}, answers=updated)

    # Books ------------------------------------------------------------------

    def _read_books(self, symbols: Sequence[str], previous: Answers | None) -> BookReading:
        """Notional and VWAP mid of each book; failures keep or drop values as they must."""
        reading = BookReading()
        for symbol, book in self.source.books(symbols, self.config.depth_levels).items():
            if isinstance(book, Exception):
                self._failed_book(symbol, book, previous, reading)
                continue
            value = book_notional(book, self.config.depth_levels, self.store)
            if value is not None:
                reading.notional[symbol] = value
                if (mid := self._vwaps.mid(symbol, book)) is not None:
                    reading.vwaps[symbol] = mid
        return reading

    def _failed_book(
        self, symbol: str, error: Exception, previous: Answers | None, reading: BookReading
    ) -> None:
        if isinstance(error, NotSynced):
            # Out of sync is known to be wrong: absent, not the old value. It
            # is the spreads job that fails for it (see refresh_books).
            reading.not_synced.append(symbol)
        elif isinstance(error, BinanceError) and error.invalid_symbol:
            # Delisted since exchangeInfo was read: drop it, keep the others.
            self.store.skip(RANKINGS, INVALID_SYMBOL)
        else:
            reading.error = error
            if previous is not None and symbol in previous.notional:
                reading.notional[symbol] = previous.notional[symbol]

    def _free_vwaps(self, reading: BookReading, ranked: Sequence[str]) -> None:
        """VWAP mids of the other ranked books too, when reading a book costs nothing."""
        if not self.source.free_books:
            return
        wanted = [s for s in ranked if s not in reading.vwaps]
        for symbol, book in self.source.books(wanted, self.config.depth_levels).items():
            if isinstance(book, Exception):
                continue
            if (mid := self._vwaps.mid(symbol, book)) is not None:
                reading.vwaps[symbol] = mid

    # Spreads ----------------------------------------------------------------

    def _spreads(self, symbols: list[str]) -> Spreads:
        """Spread and spread/mid of each symbol's best quotes; problems are counted, not kept."""
        # The converting books ride in the same read: no request of their own.
        tops = self.source.tops(list(dict.fromkeys(symbols + self.reference.symbols)))
        values: dict[str, Decimal] = {}
        ratios: dict[str, Decimal] = {}
        not_synced: list[str] = []
        known, known_from = self._measured, self._measured_from
        for symbol in symbols:
            top = tops.get(symbol)
            if top is None:  # left out of the answer: no longer listed
                self.store.skip(SPREADS, INVALID_SYMBOL)
            elif isinstance(top, Exception):
                not_synced.append(symbol)
            elif known_from.get(symbol) is top and symbol in known.values:
                values[symbol], ratios[symbol] = known.values[symbol], known.ratios[symbol]
            elif isinstance(result := spread_and_ratio(top), str):
                self.store.skip(SPREADS, result)
            else:
                values[symbol], ratios[symbol] = result
        error = NotSynced(f"no live best quotes: {', '.join(not_synced)}") if not_synced \
            else None
        self._measured = Spreads(values, ratios, error, rates=self.reference.rates(tops))
        self._measured_from = {s: top for s, top in tops.items() if isinstance(top, BookTop)}
        return self._measured

    def _deltas(self, previous: Answers | None, spreads: Spreads) -> dict[str, Decimal]:
        """Change since the spreads of the previous report (rankings or spreads run).

        A symbol measured now gets its change since it was last measured; a
        symbol that could not be (its book out of sync) keeps its last
        reading for next time.
        """
        if previous is not None and not spreads.measured:
            # Nothing new was measured: the old deltas still stand.
            return {s: d for s, d in previous.deltas.items() if s in spreads.values}
        deltas = spread_deltas(self._reported, spreads.values)
        watched = set(previous.spread_symbols) if previous is not None else set()
        self._reported = {**{s: v for s, v in self._reported.items() if s in watched},
                          **spreads.values}
        return deltas

    def _vwap_fields(self, vwaps: Mapping[str, Decimal]) -> dict[str, Mapping]:
        """VWAP mids now and their time-weighted averages, sampled at this moment."""
        now = time.monotonic()  # averages weigh durations: a clock that never jumps
        return {"vwap": dict(vwaps), "vwap_averages": self._vwaps.averages(vwaps, now)}
