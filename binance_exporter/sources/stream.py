"""Local order books fed by diff-depth streams and synchronised from REST snapshots.

`StreamBooks` is the glue between the stream supervisor (raw events from the
reader thread), the order-book logic of `order_book.LocalBook` (Binance's
documented procedure) and the REST client (the snapshot each book starts
from, `depth_snapshots`). A book that is buffering or out of sync is never
handed out: callers only see synced books, so a series is absent rather than
wrong. A book whose connection is down takes no event and no snapshot.

Only the books whose depth is needed are kept (the ranked symbols and the
analytics symbols); every other symbol's best quotes come from its
bookTicker stream (`book_tickers`). Each book starts from one snapshot per
(re)connect, asked for once every SUBSCRIBE of the connection is
acknowledged (so it cannot predate the stream), at `snapshot_limit` levels:
the cheapest weight tier covering what the book must answer
(`config.snapshot_limit`). A book whose top levels have thinned out until
it can no longer vouch for what is asked of it starts over from a new
snapshot: the levels of `books`, three quarters of the limit of `depths`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from typing import Callable, Sequence

import msgspec

from binance_exporter.binance.depth_events import DepthUpdate, decode_depth_update
from binance_exporter.binance.payloads import PayloadError
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.market.order_book import LocalBook, NotSynced, Outcome
from binance_exporter.market.types import OrderBook
from binance_exporter.sources.base import followed_among
from binance_exporter.sources.depth_snapshots import REFETCH_DELAY, DepthSnapshots

LOG = logging.getLogger(__name__)
DEPTH_STREAM = "depth@100ms"
LIVE_DELAY = 0.25  # seconds after the subscriptions are acknowledged before each snapshot


def depth_stream(symbol: str) -> str:
    """The diff-depth stream name of `symbol` (stream names are lower case)."""
    return f"{symbol.lower()}@{DEPTH_STREAM}"


def _view(book: LocalBook | None, symbol: str, levels: int) -> OrderBook | Exception:
    """The top `levels` of a book, or NotSynced when it does not follow the stream."""
    if book is None or not book.synced:
        return NotSynced(f"{symbol}: local order book not in sync")
    return book.view(levels)


def _short(view: OrderBook, levels: int) -> bool:
    """True when a side of `view` goes on beyond what it shows, yet shows fewer than `levels`."""
    return ((view.bids_cut and len(view.bids) < levels)
            or (view.asks_cut and len(view.asks) < levels))


class StreamBooks:
    """One `LocalBook` per tracked symbol, kept in sync while its connection is up."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        client: BinanceClient,
        pool: DaemonPool,
        snapshot_limit: int,
        on_change: Callable[[], None] = lambda: None,
        on_depth: Callable[[str, int, object], None] | None = None,
        snapshot_weight_per_minute: float = math.inf,
    ) -> None:
        self.on_change = on_change
        self._lock = threading.Lock()
        self._books: dict[str, LocalBook] = {}
        self._open: set[str] = set()  # whose connection is subscribing or live
        self._fetching: set[str] = set()  # a snapshot is planned or in flight
        # Bumped when a symbol's connection drops or reconnects: older snapshots are dropped.
        self._epochs: Counter[str] = Counter()
        self._resyncs: Counter[str] = Counter()
        self.snapshots = DepthSnapshots(client, pool, snapshot_limit, self._epoch_of,
                                        self._apply, snapshot_weight_per_minute, on_depth)
        self.schedule = self.snapshots.schedule

    # Which symbols ------------------------------------------------------------

    def track(self, symbols: list[str]) -> list[str]:
        """Follow exactly `symbols` from now on; returns their stream names."""
        with self._lock:
            for symbol in set(self._books) - set(symbols):
                del self._books[symbol]
                self._open.discard(symbol)
                self._resyncs.pop(symbol, None)  # its series leave the page with the book
            for symbol in symbols:
                self._books.setdefault(symbol, LocalBook(symbol))
        return [depth_stream(s) for s in symbols]

    def on_connect(self, streams: Sequence[str] | None = None) -> None:
        """A new connection (for `streams`, or all): each of its books starts over.

        Called before the connection subscribes, so every event it carries
        lands in a fresh buffer; the snapshot waits for `on_live`.
        """
        with self._lock:
            for symbol in self._symbols_of(streams):
                self._start_over(symbol)
                self._fetching.add(symbol)  # events alone ask for none until then
                self._open.add(symbol)

    def on_live(self, streams: Sequence[str] | None = None) -> None:
        """Every SUBSCRIBE of the connection is acknowledged: one snapshot per book now.

        Even with no event yet: a quiet symbol may send none for a long time.
        """
        with self._lock:
            symbols = [s for s in self._symbols_of(streams) if s in self._open]
        for symbol in symbols:
            self.schedule.schedule(symbol, LIVE_DELAY)

    def on_disconnect(self, streams: Sequence[str] | None = None) -> None:
        """A connection dropped: its books are no longer live, at once, until resynced."""
        with self._lock:
            symbols = self._symbols_of(streams)
            for symbol in symbols:
                self._start_over(symbol)
                self._fetching.discard(symbol)
                self._open.discard(symbol)
        self.schedule.cancel(symbols)
        self.on_change()

    def _symbols_of(self, streams: Sequence[str] | None) -> list[str]:
        """The tracked symbols whose depth streams are among `streams` (all for None)."""
        return followed_among(streams, self._books, depth_stream)

    def _start_over(self, symbol: str) -> None:
        """Throw a book away (counted when it was synced); under the lock."""
        book = self._books[symbol]
        if book.last_update_id is not None:
            self._resyncs[symbol] += 1
        book.reset()
        self._epochs[symbol] += 1

    def _epoch_of(self, symbol: str) -> int | None:
        """The current connection's epoch of `symbol`; None while its connection is down."""
        with self._lock:
            return self._epochs[symbol] if symbol in self._open else None

    # Events (stream reader thread) -----------------------------------------

    def on_data(self, stream: str, data: bytes | str | msgspec.Raw) -> None:
        """Handle the JSON `data` of one combined-stream message for a depth stream."""
        if not stream.endswith(DEPTH_STREAM):
            return
        try:
            update = decode_depth_update(data)
        except PayloadError as exc:
            LOG.warning("ignored a malformed depth event on %s: %s", stream, exc)
            return
        with self._lock:
            book = self._books.get(update.symbol)
            if book is None or update.symbol not in self._open:
                return  # not followed, or from a connection being torn down
            outcome = book.on_event(update)
            # An event applied to a synced book, nearly every event, needs nothing more.
            fetch = outcome is not Outcome.APPLIED and self._not_applied(book, update, outcome)
        if fetch:
            self.schedule.schedule(update.symbol)
        elif outcome is Outcome.APPLIED:
            self.on_change()

    def _not_applied(self, book: LocalBook, update: DepthUpdate, outcome: Outcome) -> bool:
        """Resync on a gap or a crossed book; True when a snapshot must be fetched now.

        Runs under the lock, for an event `book.on_event` did not apply.
        """
        if outcome.needs_resync:
            LOG.info("%s: %s in the depth stream; resynchronising", update.symbol,
                     outcome.name.lower())
            self._resyncs[update.symbol] += 1
            book.reset()
            book.on_event(update)  # the event that showed the gap starts the new buffer
        if book.needs_depth() and update.symbol not in self._fetching:
            self._fetching.add(update.symbol)
            return True
        return False

    def _apply(self, symbol: str, epoch: int, snapshot: OrderBook, limit: int) -> None:
        """Start `symbol`'s book from a snapshot of its connection `epoch`, asked for at
        `limit` (worker thread)."""
        with self._lock:
            if symbol not in self._open or self._epochs[symbol] != epoch:
                return  # the connection dropped while the answer was on its way
            self._fetching.discard(symbol)
            book = self._books.get(symbol)
            if book is None or book.synced:
                return
            outcome = book.apply_depth(snapshot, limit)
            if outcome is Outcome.REFETCH:
                # Taken before the first buffered event: the stream is ahead.
                self._fetching.add(symbol)
            elif outcome.needs_resync:
                self._resyncs[symbol] += 1
                book.reset()
        if outcome is Outcome.REFETCH:
            self.schedule.schedule(symbol, REFETCH_DELAY)
        elif outcome is Outcome.SYNCED:
            self.on_change()

    # Reading ----------------------------------------------------------------

    def books(self, symbols: Sequence[str], levels: int) -> dict[str, OrderBook | Exception]:
        """The top `levels` of each book; NotSynced where it does not follow the stream or
        can no longer vouch for `levels` levels (then it starts over from a snapshot)."""
        return self._read(symbols, levels, levels)

    def depths(self, symbols: Sequence[str], limit: int) -> dict[str, OrderBook | Exception]:
        """Up to `limit` levels of each book, as far as it can vouch for them; a book
        down to fewer than three quarters of `limit` starts over from a snapshot."""
        return self._read(symbols, limit, limit - limit // 4)

    def _read(self, symbols: Sequence[str], levels: int,
              least: int) -> dict[str, OrderBook | Exception]:
        answers: dict[str, OrderBook | Exception] = {}
        shallow: list[str] = []
        with self._lock:
            for symbol in symbols:
                view = answers[symbol] = _view(self._books.get(symbol), symbol, levels)
                if isinstance(view, OrderBook) and _short(view, least):
                    known = min(len(view.bids), len(view.asks))
                    answers[symbol] = NotSynced(f"{symbol}: only {known} of {least} levels "
                                                "known; resynchronising")
                    self._start_over(symbol)
                    self._fetching.add(symbol)
                    self.snapshots.deeper(symbol)
                    shallow.append(symbol)
        for symbol in shallow:
            self.schedule.schedule(symbol)
        return answers

    def stats(self) -> tuple[dict[str, int], dict[str, int]]:
        """Last applied final update id (`u`) of every synced book; resyncs by symbol."""
        with self._lock:
            return ({s: b.last_update_id for s, b in self._books.items()
                     if b.synced and b.last_update_id is not None}, dict(self._resyncs))
