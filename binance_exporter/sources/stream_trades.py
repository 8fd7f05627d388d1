"""Taker trade flow in stream mode: `<symbol>@aggTrade` events, gaps filled from REST.

Binance numbers aggregate trades consecutively per symbol, so the stream
itself says when something is missing: an event whose id is more than one
past the last one counted. Such a gap (an event the stream skipped, or the
time a connection was down) is filled from `GET /api/v3/aggTrades`, paged by
id from the last counted id, while the stream's events wait in a buffer;
then pages and buffer are counted in id order. `TradeFlow` skips every id it
has counted already, so overlapping pages, replays and a new connection
repeating old trades are never counted twice: REST mode gives the same
guarantee by the same means.

Nothing here waits forever. A fill stops after `max_pages` pages (the ids it
did not reach are counted as missed and the counts carry on from the
buffer), and a buffer that outgrows `MAX_BUFFERED` while REST keeps failing
is given up on the same way: a counter that is short by a known number of
trades, and says so, serves better than one that stops.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable, Protocol, Sequence

import msgspec

from binance_exporter.binance.backoff import MAX_RETRY, retry_delay
from binance_exporter.binance.errors import BinanceError
from binance_exporter.binance.payloads import PayloadError, parse_agg_trades
from binance_exporter.binance.trade_events import AGG_TRADE_STREAM, decode_agg_trade
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.market.order_book import NotSynced
from binance_exporter.market.trades import (
    MAX_AGG_TRADES_LIMIT,
    AggTrade,
    TradeFlow,
    gap_possible,
    next_page_params,
)
from binance_exporter.model import TradeTotals
from binance_exporter.sources.base import followed_among

LOG = logging.getLogger(__name__)
# Events held per symbol while its gap is filled, each a parsed trade with
# its Decimals: a busy symbol fills this in minutes of failing REST calls,
# long enough to wait out a rate limit and short enough to bound the memory
# of many symbols waiting at once.
MAX_BUFFERED = 20_000
RETRY_FLOOR = 0.5  # seconds: the least wait before a fill is tried again


class Cancellable(Protocol):
    """A planned call that can be called off (`threading.Timer` is one)."""

    def cancel(self) -> None:
        """Do not make the call, if it has not been made yet."""


class AggTradesClient(Protocol):
    """What a gap fill needs from the REST client."""

    def agg_trades(self, symbol: str, **params: int) -> Any:
        """`GET /api/v3/aggTrades` for `symbol` with `fromId` and `limit`."""


Later = Callable[[float, Callable[[], None]], Cancellable]


def agg_trade_stream(symbol: str) -> str:
    """The aggregate-trade stream name of `symbol` (stream names are lower case)."""
    return f"{symbol.lower()}@{AGG_TRADE_STREAM}"


def _timer(delay: float, action: Callable[[], None]) -> threading.Timer:
    """Call `action` in `delay` seconds on a daemon thread, so it never holds up an exit."""
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


class _Follow:
    """One symbol's counters and the state of its gap fill; used under StreamTrades' lock.

    Invariant: when `synced`, the buffer is empty and no fill is under way.
    `token` names the fill under way (planned or running); a fill whose token
    is no longer the symbol's own was called off and leaves no trace.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.flow: TradeFlow | None = None  # None until the first event ever
        self.synced = False
        self.live = False  # its SUBSCRIBE is acknowledged on an open connection
        self.buffer: list[AggTrade] = []
        self.token: int | None = None
        self.timer: Cancellable | None = None
        self.failures = 0  # fills in a row that did not end the gap
        self.fills = 0

    def drop_fill(self) -> None:
        """Call off the fill under way, if any."""
        self.token = None
        self.failures = 0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def take(self, trade: AggTrade) -> bool:
        """Count or buffer one stream event; True when a fill must start for it."""
        flow = self.flow
        if flow is None or flow.last_id is None:
            # Counters begin at start-up: the first event is the baseline.
            self.flow = TradeFlow(self.symbol)
            self.flow.apply((trade,))
            self.synced = True
            return False
        if trade.id <= flow.last_id:
            return False  # counted already: a duplicate or a replay
        if not self.buffer and trade.id == flow.last_id + 1:
            flow.apply((trade,))  # continues the counts: whatever a fill would add is here
            self.drop_fill()
            self.synced = True
            return False
        self.buffer.append(trade)
        self.synced = False
        if len(self.buffer) > MAX_BUFFERED:
            missed = flow.missed_ids
            self.drop_fill()
            flow.apply(self.buffer)
            self.buffer = []
            self.synced = True
            LOG.warning("%s: %d aggTrade events waited for a gap fill; %d trades given up on",
                        self.symbol, MAX_BUFFERED, flow.missed_ids - missed)
            return False
        return self.token is None

    def drain(self) -> bool:
        """Count the buffered events that continue the counts; True when a gap is left."""
        assert self.flow is not None and self.flow.last_id is not None
        ordered = sorted(self.buffer, key=lambda t: t.id)
        last, cut = self.flow.last_id, 0
        while cut < len(ordered) and ordered[cut].id <= last + 1:
            last = max(last, ordered[cut].id)
            cut += 1
        self.flow.apply(ordered[:cut])
        self.buffer = ordered[cut:]
        return bool(self.buffer)

    def finish(self, pages: list[AggTrade], short: bool, max_pages: int) -> bool:
        """Count a fill's pages, then the buffer; True when a gap is left for another fill.

        `short`: the last page was shorter than the limit, so REST had no
        more trades when it answered.
        """
        flow = self.flow
        assert flow is not None and flow.last_id is not None
        flow.apply(pages)
        self.fills += 1
        first = min(self.buffer, key=lambda t: t.id, default=None)
        complete = short or (first is not None and flow.last_id + 1 >= first.id)
        if first is not None and not complete:
            missed = flow.missed_ids
            flow.apply((first,))  # max_pages were not enough: carry on from the buffer
            complete = True
            LOG.warning("%s: %d pages did not reach the aggTrade stream; %d trades given up on",
                        self.symbol, max_pages, flow.missed_ids - missed)
        if self.drain():
            # The buffer has a gap of its own, or REST is behind the stream.
            self.failures += 1
            return True
        self.token = None
        self.failures = 0
        # Without a buffer and without a short page, more trades wait: the
        # next event shows the gap and starts another fill.
        self.synced = complete
        return False

    def totals(self) -> TradeTotals | Exception:
        """The counters, or NotSynced while they are not known to be complete."""
        if self.flow is None:
            if self.live:  # subscribed, and no trade since: a flow that has seen none
                return TradeTotals(by_side=TradeFlow(self.symbol).by_side(), last_price=None)
            return NotSynced(f"{self.symbol}: no aggTrade event yet")
        if not self.synced:
            return NotSynced(f"{self.symbol}: aggTrade counts are being completed")
        return TradeTotals(by_side=self.flow.by_side(), last_price=self.flow.last_price)


class StreamTrades:
    """Per-symbol taker flow from aggTrade events, complete or marked NotSynced.

    Threads: `on_data` runs on a stream reader thread, fills on the pool,
    `flows` on the analytics job's thread. One lock guards every symbol's
    state, and no REST call is made while it is held.
    """

    def __init__(self, client: AggTradesClient, pool: DaemonPool, max_pages: int = 20, *,
                 later: Later = _timer) -> None:
        self.client = client
        self.pool = pool
        self.max_pages = max_pages
        self._later = later  # plans a retry; injected so tests run it when they choose
        self._lock = threading.Lock()
        self._symbols: dict[str, _Follow] = {}
        self._tokens = itertools.count(1)
        self._stopped = False

    # Which symbols ------------------------------------------------------------

    def track(self, symbols: list[str]) -> list[str]:
        """Follow exactly `symbols` from now on; returns their stream names."""
        with self._lock:
            for symbol in set(self._symbols) - set(symbols):
                self._symbols.pop(symbol).drop_fill()
            for symbol in symbols:
                self._symbols.setdefault(symbol, _Follow(symbol))
        return [agg_trade_stream(s) for s in symbols]

    def on_connect(self, streams: Sequence[str] | None = None) -> None:
        """A (re)connection for `streams` (None: all), before subscribing: not complete."""
        self.on_disconnect(streams)

    def on_live(self, streams: Sequence[str] | None = None) -> None:
        """The SUBSCRIBE of `streams` is acknowledged: fill from the last counted id now.

        Not at the first event: a quiet symbol may send none for long, and its
        silence may be no trades or trades missed while the connection was
        down. A short page proves the counts complete up to now, and the next
        event continues them (or shows a gap, filled in turn). A symbol that
        never traded counts from now: no trade since is no event since.
        """
        starts = []
        with self._lock:
            for symbol in self._symbols_of(streams):
                state = self._symbols[symbol]
                state.live = True
                if state.flow is not None and state.token is None and not state.synced:
                    state.token = next(self._tokens)
                    starts.append((symbol, state.token))
        for symbol, token in starts:
            self._start(symbol, token)

    def on_disconnect(self, streams: Sequence[str] | None = None) -> None:
        """The connection carrying `streams` dropped: their counts may fall behind, at once."""
        with self._lock:
            for symbol in self._symbols_of(streams):
                state = self._symbols[symbol]
                state.drop_fill()
                state.synced = state.live = False

    def stop(self) -> None:
        """Plan and start no more fills (the exporter is stopping)."""
        with self._lock:
            self._stopped = True
            for state in self._symbols.values():
                state.drop_fill()

    def _symbols_of(self, streams: Sequence[str] | None) -> list[str]:
        """The tracked symbols whose aggTrade streams are among `streams` (all for None)."""
        return followed_among(streams, self._symbols, agg_trade_stream)

    # Events (stream reader thread) -----------------------------------------

    def on_data(self, stream: str, data: bytes | str | msgspec.Raw) -> None:
        """Count one aggTrade event, or buffer it and start a fill for the gap it shows."""
        if not stream.endswith("@" + AGG_TRADE_STREAM):
            return
        try:
            symbol, trade = decode_agg_trade(data)
        except PayloadError as exc:
            LOG.warning("ignored a malformed aggTrade event on %s: %s", stream, exc)
            return
        with self._lock:
            state = self._symbols.get(symbol)
            if state is None or self._stopped or not state.take(trade):
                return
            state.token = token = next(self._tokens)
        self._start(symbol, token)

    # Gap fills (pool threads) ------------------------------------------------

    def _start(self, symbol: str, token: int) -> None:
        """Hand a fill to the pool."""
        try:
            self.pool.submit(self._fill, symbol, token)
        except RuntimeError:  # the pool is shut down: the exporter is stopping
            pass

    def _current(self, symbol: str, token: int) -> _Follow | None:
        """The symbol's state while the fill `token` is still its own; under the lock."""
        state = self._symbols.get(symbol)
        if self._stopped or state is None or state.token != token:
            return None
        return state

    def _fill(self, symbol: str, token: int) -> None:
        """Page aggTrades from the last counted id until they reach the buffer."""
        pages: list[AggTrade] = []
        short = False
        try:
            for _ in range(self.max_pages):
                with self._lock:
                    state = self._current(symbol, token)
                    if state is None:
                        return
                    assert state.flow is not None and state.flow.last_id is not None
                    last = pages[-1].id if pages else state.flow.last_id
                    first = min((t.id for t in state.buffer), default=None)
                if first is not None and last + 1 >= first:
                    break  # the pages reach the buffered events
                params = next_page_params(last, MAX_AGG_TRADES_LIMIT)
                page = parse_agg_trades(self.client.agg_trades(symbol, **params))
                pages += sorted(page, key=lambda t: t.id)
                if not gap_possible(len(page), MAX_AGG_TRADES_LIMIT):
                    short = True
                    break
        except (BinanceError, PayloadError) as exc:
            # Waiting out a 429/418 or this minute's weight budget: try when it ends.
            retry_after = getattr(exc, "retry_after", None)
            wait = max(RETRY_FLOOR, retry_after) if retry_after else None
            self._failed(symbol, token, pages, wait, str(exc))
            return
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Nobody reads this worker's future: without a retry the symbol
            # would wait for a fill that never comes.
            LOG.exception("%s: aggTrades gap fill failed unexpectedly", symbol)
            self._failed(symbol, token, pages, MAX_RETRY, repr(exc))
            return
        self._finish(symbol, token, pages, short)

    def _failed(self, symbol: str, token: int, pages: list[AggTrade], wait: float | None,
                reason: str) -> None:
        """Keep the pages fetched (they follow the counts) and try again later."""
        with self._lock:
            state = self._current(symbol, token)
            if state is None or state.flow is None:
                return
            state.flow.apply(pages)
            state.failures += 1
            delay = wait if wait is not None else max(RETRY_FLOOR, retry_delay(state.failures))
            LOG.warning("%s: aggTrades gap fill failed (%s); trying again in %.1f s", symbol,
                        reason, delay)
            self._plan(state, token, delay)

    def _finish(self, symbol: str, token: int, pages: list[AggTrade], short: bool) -> None:
        """Count the pages, then the buffer; plan another fill if a gap is left."""
        with self._lock:
            state = self._current(symbol, token)
            if state is not None and state.finish(pages, short, self.max_pages):
                self._plan(state, token, max(RETRY_FLOOR, retry_delay(state.failures)))

    def _plan(self, state: _Follow, token: int, delay: float) -> None:
        """Start fill `token` again in `delay` seconds; under the lock."""
        state.timer = self._later(delay, lambda: self._due(state.symbol, token))

    def _due(self, symbol: str, token: int) -> None:
        """A planned fill is due (timer thread)."""
        with self._lock:
            state = self._current(symbol, token)
            if state is None:
                return
            state.timer = None
        self._start(symbol, token)

    # Reading ----------------------------------------------------------------

    def flows(self, symbols: Sequence[str]) -> dict[str, TradeTotals | Exception]:
        """Counters of each symbol, NotSynced while they are not known to be complete."""
        with self._lock:
            return {s: (f.totals() if (f := self._symbols.get(s)) is not None
                        else NotSynced(f"{s}: not followed")) for s in symbols}

    def missed(self) -> dict[str, int]:
        """Aggregate trades given up on, by symbol (a fill too long, or a buffer overflow)."""
        with self._lock:
            return {s: f.flow.missed_ids for s, f in self._symbols.items() if f.flow is not None}

    def gap_fills(self) -> dict[str, int]:
        """Gap fills from REST finished, by symbol."""
        with self._lock:
            return {s: f.fills for s, f in self._symbols.items() if f.flow is not None}
