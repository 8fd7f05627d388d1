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
snapshot when `needs_snapshot()` says so, and calls `reset()` when an outcome
says the book must be resynchronised.

Speed: an exporter following 50 symbols at 100 ms must apply tens of thousands
of events a second on one core. Each side is a dict price → quantity (O(1)
updates of an existing level) plus an ascending list of its prices kept sorted
with `bisect`, so a new or removed level costs one binary search and one
memmove, the best price is an index, and the top N levels are a slice. Nothing
re-sorts a whole book per event. Prices and quantities stay `Decimal`: exact,
and parsing them is done in C.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from .market import ZERO, Level, OrderBook, PayloadError

DEPTH_UPDATE = "depthUpdate"
# 10 000 events is 1000 s of a 100 ms stream: far longer than a snapshot takes,
# yet a stream whose snapshot never comes cannot grow the buffer without end.
DEFAULT_MAX_BUFFERED = 10_000


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """One diff-depth event: absolute new quantities for update ids U..u."""

    symbol: str
    event_time: int
    first_update_id: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


def _is_int(value: Any) -> bool:
    # JSON true/false parse to bool, a subclass of int; an id is never one.
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_diff_levels(raw: Any, symbol: str, side: str) -> tuple[Level, ...]:
    """Parse `[[price, qty], ...]`; prices > 0, quantities >= 0 (0 deletes).

    This runs for every level of every event, so it calls `Decimal` directly
    and builds error text only on the error path.
    """
    if not isinstance(raw, list):
        raise PayloadError(f"depthUpdate {symbol} {side}: expected a list of levels")
    levels = []
    append = levels.append
    for item in raw:
        # Binance sends decimal strings; a JSON float would already be inexact.
        if item.__class__ is not list or len(item) != 2:
            raise PayloadError(f"depthUpdate {symbol} {side}: malformed level {item!r}")
        price_text, qty_text = item
        if price_text.__class__ is not str or qty_text.__class__ is not str:
            raise PayloadError(f"depthUpdate {symbol} {side}: level is not strings {item!r}")
        try:
            price, qty = Decimal(price_text), Decimal(qty_text)
        except InvalidOperation as exc:
            raise PayloadError(f"depthUpdate {symbol} {side}: not a number {item!r}") from exc
        if not (price.is_finite() and qty.is_finite() and price > ZERO and qty >= ZERO):
            raise PayloadError(f"depthUpdate {symbol} {side}: impossible level {item!r}")
        append((price, qty))
    return tuple(levels)


def parse_depth_update(data: Any) -> DepthUpdate:
    """Parse a `<symbol>@depth` / `@depth@100ms` payload (binance-api.md §4.4).

    Raises PayloadError when the event is not a depthUpdate or does not have
    the documented shape, so a broken frame never touches a book.
    """
    if not isinstance(data, dict) or data.get("e") != DEPTH_UPDATE:
        raise PayloadError(f"depthUpdate: not a depthUpdate event: {data!r:.200}")
    try:
        symbol, event_time = data["s"], data["E"]
        first, last = data["U"], data["u"]
        raw_bids, raw_asks = data["b"], data["a"]
    except KeyError as exc:
        raise PayloadError(f"depthUpdate: missing field {exc}") from exc
    if not isinstance(symbol, str) or not symbol:
        raise PayloadError(f"depthUpdate: bad symbol {symbol!r}")
    for name, value in (("E", event_time), ("U", first), ("u", last)):
        if not _is_int(value):
            raise PayloadError(f"depthUpdate {symbol}: {name} is not an integer: {value!r}")
    if first > last:
        raise PayloadError(f"depthUpdate {symbol}: U {first} > u {last}")
    return DepthUpdate(
        symbol=symbol,
        event_time=event_time,
        first_update_id=first,
        last_update_id=last,
        bids=_parse_diff_levels(raw_bids, symbol, "b"),
        asks=_parse_diff_levels(raw_asks, symbol, "a"),
    )


class State(enum.Enum):
    """Where a LocalBook is in the sync procedure."""

    BUFFERING = "buffering"  # no snapshot applied yet; events are kept
    SYNCED = "synced"  # the book follows the stream
    OUT_OF_SYNC = "out_of_sync"  # a gap or a crossed book: reset() and start again


class Outcome(enum.Enum):
    """What `on_event` or `apply_snapshot` did, so the caller knows what to do next."""

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


class NotSyncedError(RuntimeError):
    """The book was read while it does not follow the stream."""


def _set_levels(
    quantities: dict[Decimal, Decimal], prices: list[Decimal], levels: Iterable[Level]
) -> None:
    """Set each level's absolute quantity; 0 deletes it. `prices` stays ascending."""
    for price, qty in levels:
        if qty:
            if price not in quantities:
                insort(prices, price)
            quantities[price] = qty
        # Deleting a level the book never had is normal (docs): beyond the
        # snapshot's depth, or already gone.
        elif quantities.pop(price, None) is not None:
            del prices[bisect_left(prices, price)]


class LocalBook:
    """One symbol's order book, rebuilt from a snapshot and kept current by diffs.

    Typical use::

        outcome = book.on_event(parse_depth_update(frame))
        if outcome.needs_resync:
            book.reset()
            book.on_event(update)   # the event that revealed the gap starts the new buffer
        if book.needs_snapshot():
            outcome = book.apply_snapshot(parse_depth(rest_answer))   # REFETCH: ask again
    """

    def __init__(self, symbol: str, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        if max_buffered < 1:
            raise ValueError("max_buffered must be at least 1")
        self.symbol = symbol
        self._state = State.BUFFERING
        # Oldest events fall off a full buffer; the first buffered U then moves
        # on with it, which keeps the snapshot check of step 3 correct.
        self._buffer: deque[DepthUpdate] = deque(maxlen=max_buffered)
        # Both price lists ascend: the best bid is the last, the best ask the first.
        self._bid_qty: dict[Decimal, Decimal] = {}
        self._bid_prices: list[Decimal] = []
        self._ask_qty: dict[Decimal, Decimal] = {}
        self._ask_prices: list[Decimal] = []
        self._local_id: int | None = None
        self._resyncs = 0

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
    def resyncs(self) -> int:
        """How many times a snapshot-based book was thrown away by `reset()`."""
        return self._resyncs

    @property
    def buffered(self) -> int:
        """Events waiting for a snapshot."""
        return len(self._buffer)

    def needs_snapshot(self) -> bool:
        """True when a REST snapshot should be fetched now.

        Only once an event is buffered: the stream must be known to be open
        before the snapshot is taken (step 1 before step 2), and step 3 needs
        the first buffered U to judge the snapshot.
        """
        return self._state is State.BUFFERING and bool(self._buffer)

    def on_event(self, update: DepthUpdate) -> Outcome:
        """Feed one diff-depth event: buffer it, apply it, or report a resync."""
        if update.symbol != self.symbol:
            raise ValueError(f"{update.symbol} event fed to the {self.symbol} book")
        if self._state is State.SYNCED:
            return self._apply(update)
        if self._state is State.BUFFERING:
            self._buffer.append(update)
            return Outcome.BUFFERED
        return Outcome.RESYNC_PENDING

    def apply_snapshot(self, book: OrderBook) -> Outcome:
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

        A snapshot applied with an empty buffer is accepted too (needs_snapshot()
        never asks for one): the gap rule on the following events still
        guarantees the book is complete.
        """
        if self._state is not State.BUFFERING:
            raise RuntimeError(
                f"{self.symbol}: apply_snapshot while {self._state.value}; reset() first"
            )
        snapshot_id = book.last_update_id
        if self._buffer and snapshot_id < self._buffer[0].first_update_id:
            return Outcome.REFETCH
        pending = [event for event in self._buffer if event.last_update_id > snapshot_id]
        self._buffer.clear()
        self._bid_qty = {price: qty for price, qty in book.bids if qty}
        self._ask_qty = {price: qty for price, qty in book.asks if qty}
        self._bid_prices = sorted(self._bid_qty)
        self._ask_prices = sorted(self._ask_qty)
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
        """Throw the book away and buffer again (step 1); counts a resync.

        A reset while still buffering only empties the buffer and is not
        counted: no book was lost.
        """
        if self._state is not State.BUFFERING:
            self._resyncs += 1
        self._state = State.BUFFERING
        self._buffer.clear()
        self._bid_qty, self._bid_prices = {}, []
        self._ask_qty, self._ask_prices = {}, []
        self._local_id = None

    def _apply(self, update: DepthUpdate) -> Outcome:
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
        _set_levels(self._bid_qty, self._bid_prices, update.bids)
        _set_levels(self._ask_qty, self._ask_prices, update.asks)
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
            raise NotSyncedError(f"{self.symbol}: order book is {self._state.value}")

    def best_bid(self) -> Level | None:
        """The highest bid, or None when the bid side is empty. Synced books only."""
        self._require_synced()
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        return price, self._bid_qty[price]

    def best_ask(self) -> Level | None:
        """The lowest ask, or None when the ask side is empty. Synced books only."""
        self._require_synced()
        if not self._ask_prices:
            return None
        price = self._ask_prices[0]
        return price, self._ask_qty[price]

    def snapshot(self, levels: int) -> OrderBook:
        """The top `levels` levels per side, in REST order (bids desc, asks asc).

        Raises NotSyncedError unless synced: a half-built or stale book must
        not be exported as if it were the market.
        """
        self._require_synced()
        if levels < 0:
            raise ValueError("levels must be >= 0")
        assert self._local_id is not None
        bid_prices = self._bid_prices[max(len(self._bid_prices) - levels, 0):]
        bid_prices.reverse()
        bids = self._bid_qty
        asks = self._ask_qty
        return OrderBook(
            last_update_id=self._local_id,
            bids=tuple((price, bids[price]) for price in bid_prices),
            asks=tuple((price, asks[price]) for price in self._ask_prices[:levels]),
        )
