"""A local order book kept in sync from Binance's diff-depth stream.

This follows the procedure of binance-api.md §6 (the web-socket-streams.md
wording of 2025-11-12):

1. buffer `<sym>@depth` events and remember the first event's `U`;
2. fetch a REST snapshot;
3. a snapshot whose `lastUpdateId` is smaller than the first buffered `U` is
   too old: fetch it again;
4. drop the buffered events with `u <= lastUpdateId`;
5. start from the snapshot, local id = `lastUpdateId`;
6. apply the remaining buffered events, then every live event: `u < local id`
   is old and ignored, `U > local id + 1` is a gap (start again from step 1),
   otherwise set every level to its quantity (0 deletes it), local id = `u`.

One `LocalBook` is one symbol. It does no I/O and reads no clock: the caller
owns the stream and the REST call, feeds parsed events to `on_event`, fetches a
snapshot when `needs_depth()` says so, and calls `reset()` when an outcome
says the book must be resynchronised.

Speed: an exporter following 50 symbols at 100 ms must apply tens of thousands
of events a second on one core; `book_sides` keeps each side so that an event
costs a binary search per level. Prices and quantities stay `Decimal`, exact,
and msgspec builds them from the JSON text in C.

Coverage: a snapshot cut at its `limit` says nothing about the levels beyond
its last one, and diffs later add only the levels that change. So a book
started from a cut side remembers that side's last price and never shows a
level beyond it: `view` returns the levels it can vouch for, and says on
each side whether more may exist (`OrderBook.bids_cut`/`asks_cut`). Levels
vanishing at the top shrink what it can vouch for; a caller that needs more
fetches a new snapshot.
"""

from __future__ import annotations

import enum
from collections import deque
from decimal import Decimal
from typing import Protocol, Sequence

from binance_exporter.market.book_sides import best_levels, set_levels, side_from
from binance_exporter.market.types import Level, OrderBook


class DepthDiff(Protocol):
    """One diff-depth event as the book needs it (`binance.depth_events.DepthUpdate`)."""

    @property
    def symbol(self) -> str:
        """The symbol the event is for."""

    @property
    def first_update_id(self) -> int:
        """U: the first update id the event covers."""

    @property
    def last_update_id(self) -> int:
        """u: the last update id the event covers."""

    @property
    def bids(self) -> Sequence[Level]:
        """Absolute new quantities of bid levels (0 removes a level)."""

    @property
    def asks(self) -> Sequence[Level]:
        """Absolute new quantities of ask levels (0 removes a level)."""


# 10 000 events is 1000 s of a 100 ms stream: far longer than a snapshot takes,
# yet a stream whose snapshot never comes cannot grow the buffer without end.
DEFAULT_MAX_BUFFERED = 10_000
# The same bound in price levels, what the buffer's memory grows with: real
# events carry tens of levels, so this only bites on a flood of huge events.
DEFAULT_MAX_BUFFERED_LEVELS = 200_000


class State(enum.Enum):
    """Where a LocalBook is in the sync procedure."""

    BUFFERING = "buffering"  # no snapshot applied yet; events are kept
    SYNCED = "synced"  # the book follows the stream
    OUT_OF_SYNC = "out_of_sync"  # a gap or a crossed book: reset() and start again


class Outcome(enum.Enum):
    """What `on_event` or `apply_depth` did, so the caller knows what to do next."""

    BUFFERED = "buffered"  # kept until a snapshot arrives
    APPLIED = "applied"  # the event changed the book
    IGNORED_OLD = "ignored_old"  # u < local id: already in the book
    SYNCED = "synced"  # the snapshot and the buffered events are applied
    REFETCH = "refetch"  # snapshot older than the first buffered U: fetch another
    GAP = "gap"  # U > local id + 1: events were missed; reset()
    CROSSED = "crossed"  # best bid >= best ask after applying; reset()
    RESYNC_PENDING = "resync_pending"  # event dropped: the book awaits reset()

    @property
    def needs_resync(self) -> bool:
        """True when the caller must `reset()` the book (then buffer and re-snapshot)."""
        return self in _RESYNC_OUTCOMES


_RESYNC_OUTCOMES = frozenset({Outcome.GAP, Outcome.CROSSED, Outcome.RESYNC_PENDING})


class NotSynced(Exception):
    """A local order book is not (or no longer) in sync with Binance: its values are unknown."""


class LocalBook:
    """One symbol's order book, rebuilt from a snapshot and kept current by diffs.

    Feed `on_event` each decoded event; when an outcome `needs_resync`,
    `reset()` and feed that event again; when `needs_depth()`, fetch a
    snapshot for `apply_depth` (and fetch again on REFETCH).
    """

    def __init__(self, symbol: str, max_buffered: int = DEFAULT_MAX_BUFFERED,
                 max_buffered_levels: int = DEFAULT_MAX_BUFFERED_LEVELS) -> None:
        if max_buffered < 1 or max_buffered_levels < 1:
            raise ValueError("max_buffered and max_buffered_levels must be at least 1")
        self.symbol = symbol
        self._state = State.BUFFERING
        # Oldest events fall off a full buffer; the first buffered U then moves
        # on with it, which keeps the snapshot check of step 3 correct.
        self._buffer: deque[DepthDiff] = deque()
        self._max_buffered = max_buffered
        self._max_buffered_levels = max_buffered_levels
        self._buffered_levels = 0
        # Each side is two parallel lists, prices ascending: the best bid is
        # the last, the best ask the first.
        self._bid_prices: list[Decimal] = []
        self._bid_qty: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self._ask_qty: list[Decimal] = []
        self._local_id: int | None = None
        # Last price of a snapshot side cut at its limit (None: whole side).
        self._bid_edge: Decimal | None = None
        self._ask_edge: Decimal | None = None

    @property
    def state(self) -> State:
        """The current step of the sync procedure."""
        return self._state

    @property
    def synced(self) -> bool:
        """True when the book follows the stream and can be read."""
        return self._state is State.SYNCED

    @property
    def last_update_id(self) -> int | None:
        """The local id: the last update id in the book (None before a snapshot)."""
        return self._local_id

    @property
    def buffered(self) -> int:
        """Events waiting for a snapshot."""
        return len(self._buffer)

    def needs_depth(self) -> bool:
        """True when a REST snapshot should be fetched now.

        Only once an event is buffered: the stream must be known to be open
        before the snapshot is taken (step 1 before step 2), and step 3 needs
        the first buffered U to judge the snapshot.
        """
        return self._state is State.BUFFERING and bool(self._buffer)

    def on_event(self, update: DepthDiff) -> Outcome:
        """Feed one diff-depth event: buffer it, apply it, or report a resync."""
        if update.symbol != self.symbol:
            raise ValueError(f"{update.symbol} event fed to the {self.symbol} book")
        if self._state is State.SYNCED:
            return self._apply(update)
        if self._state is State.BUFFERING:
            self._buffer.append(update)
            self._buffered_levels += len(update.bids) + len(update.asks)
            while len(self._buffer) > 1 and (len(self._buffer) > self._max_buffered or
                                             self._buffered_levels > self._max_buffered_levels):
                dropped = self._buffer.popleft()
                self._buffered_levels -= len(dropped.bids) + len(dropped.asks)
            return Outcome.BUFFERED
        return Outcome.RESYNC_PENDING

    def apply_depth(self, book: OrderBook, limit: int | None = None) -> Outcome:
        """Start from a REST snapshot and replay the buffered events (steps 3 to 6).

        REFETCH (still buffering, buffer kept) when `lastUpdateId` is smaller
        than the first buffered U. Otherwise the buffered events with
        `u <= lastUpdateId` are dropped and the rest go through the same rules
        as live events. The first of them normally straddles the snapshot
        (U <= lastUpdateId <= u); it may also start at exactly lastUpdateId + 1
        when the snapshot was taken at an event boundary, which the step-6 rule
        accepts and which is a complete, correct book. A first remaining event
        with U > lastUpdateId + 1 is a gap. No remaining event at all is fine:
        the snapshot is newer than everything buffered, and the next live event
        is checked against it.

        A snapshot applied with an empty buffer is accepted too (needs_depth()
        never asks for one): the gap rule on the following events still
        guarantees the book is complete.
        """
        if self._state is not State.BUFFERING:
            raise RuntimeError(
                f"{self.symbol}: apply_depth while {self._state.value}; reset() first"
            )
        snapshot_id = book.last_update_id
        if self._buffer and snapshot_id < self._buffer[0].first_update_id:
            return Outcome.REFETCH
        pending = [event for event in self._buffer if event.last_update_id > snapshot_id]
        self._buffer.clear()
        self._buffered_levels = 0
        self._bid_prices, self._bid_qty = side_from(book.bids)
        self._ask_prices, self._ask_qty = side_from(book.asks)
        cut = limit is not None
        self._bid_edge = book.bids[-1][0] if cut and len(book.bids) >= limit else None
        self._ask_edge = book.asks[-1][0] if cut and len(book.asks) >= limit else None
        self._local_id = snapshot_id
        self._state = State.SYNCED
        if self._crossed():
            self._state = State.OUT_OF_SYNC
            return Outcome.CROSSED
        for event in pending:
            outcome = self._apply(event)
            if outcome.needs_resync:
                return outcome
        return Outcome.SYNCED

    def reset(self) -> None:
        """Throw the book away and buffer again (step 1)."""
        self._state = State.BUFFERING
        self._buffer.clear()
        self._buffered_levels = 0
        self._bid_prices, self._bid_qty = [], []
        self._ask_prices, self._ask_qty = [], []
        self._local_id = None

    def _apply(self, update: DepthDiff) -> Outcome:
        """Step 6 for one event on a synced book."""
        local_id = self._local_id
        assert local_id is not None  # SYNCED always has a local id
        if update.last_update_id < local_id:
            return Outcome.IGNORED_OLD
        # Since 2025-11-12 the doc's gap test is U > local id + 1 (U == local
        # id + 1 is the normal next event, not a gap).
        if update.first_update_id > local_id + 1:
            self._state = State.OUT_OF_SYNC
            return Outcome.GAP
        set_levels(self._bid_prices, self._bid_qty, update.bids)
        set_levels(self._ask_prices, self._ask_qty, update.asks)
        self._local_id = update.last_update_id
        if self._crossed():
            # A real book never stays crossed: our copy is wrong somewhere.
            self._state = State.OUT_OF_SYNC
            return Outcome.CROSSED
        return Outcome.APPLIED

    def _crossed(self) -> bool:
        return bool(
            self._bid_prices and self._ask_prices and self._bid_prices[-1] >= self._ask_prices[0]
        )

    def _require_synced(self) -> None:
        if self._state is not State.SYNCED:
            raise NotSynced(f"{self.symbol}: order book is {self._state.value}")

    def best_bid(self) -> Level | None:
        """The highest bid, or None when the bid side is empty. Synced books only."""
        self._require_synced()
        if not self._bid_prices:
            return None
        return self._bid_prices[-1], self._bid_qty[-1]

    def best_ask(self) -> Level | None:
        """The lowest ask, or None when the ask side is empty. Synced books only."""
        self._require_synced()
        if not self._ask_prices:
            return None
        return self._ask_prices[0], self._ask_qty[0]

    def view(self, levels: int) -> OrderBook:
        """The top `levels` levels per side it can vouch for, in REST order (bids desc, asks asc).

        A side may come back shorter than `levels`; its `_cut` flag says
        whether more levels may exist beyond the last one given (the side
        was cut by `levels` or by the snapshot's limit). Raises NotSynced
        unless synced: a half-built or stale book must not be exported as if
        it were the market.
        """
        self._require_synced()
        if levels < 0:
            raise ValueError("levels must be >= 0")
        assert self._local_id is not None
        bids, bids_cut = best_levels(self._bid_prices, self._bid_qty, levels, self._bid_edge,
                                     bids=True)
        asks, asks_cut = best_levels(self._ask_prices, self._ask_qty, levels, self._ask_edge,
                                     bids=False)
        return OrderBook(self._local_id, bids, asks, bids_cut=bids_cut, asks_cut=asks_cut)
