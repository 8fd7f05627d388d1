"""Local order books fed by diff-depth streams and synchronised from REST snapshots.

`StreamBooks` is the glue between the stream supervisor (raw events from the
reader thread), the order-book logic of `order_book.LocalBook` (Binance's
documented procedure) and the REST client (the snapshot each book starts
from). A book that is buffering or out of sync is never handed out: callers
only see synced books, so a series is absent rather than wrong.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Callable

import msgspec

from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.binance.payloads import PayloadError, parse_depth
from binance_exporter.market.types import OrderBook
from binance_exporter.binance.depth_events import DepthUpdate, decode_depth_update
from binance_exporter.market.order_book import LocalBook, Outcome
from binance_exporter.jobs.pool import DaemonPool

LOG = logging.getLogger(__name__)
DEPTH_STREAM = "depth@100ms"
REFETCH_DELAY = 0.5  # seconds before asking again for a snapshot older than the stream


def depth_stream(symbol: str) -> str:
    """The diff-depth stream name of `symbol` (stream names are lower case)."""
    return f"{symbol.lower()}@{DEPTH_STREAM}"


class StreamBooks:
    """One `LocalBook` per tracked symbol, kept in sync."""

    def __init__(
        self,
        client: BinanceClient,
        pool: DaemonPool,
        snapshot_limit: int,
        on_change: Callable[[], None] = lambda: None,
        on_snapshot: Callable[[str, int, object], None] | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.snapshot_limit = snapshot_limit
        self.on_change = on_change
        self.on_snapshot = on_snapshot  # sees every depth answer a book may start from
        self._lock = threading.Lock()
        self._books: dict[str, LocalBook] = {}
        self._fetching: set[str] = set()
        self._resyncs: Counter[str] = Counter()

    # Which symbols ------------------------------------------------------------

    def track(self, symbols: list[str]) -> list[str]:
        """Follow exactly `symbols` from now on; returns their stream names."""
        with self._lock:
            for symbol in set(self._books) - set(symbols):
                del self._books[symbol]
            for symbol in symbols:
                self._books.setdefault(symbol, LocalBook(symbol))
        return [depth_stream(s) for s in symbols]

    def on_connect(self) -> None:
        """A new connection: every book starts over from a fresh snapshot.

        The snapshots are fetched shortly after subscribing even if no event
        has arrived yet: a quiet symbol may send none for a long time. A
        snapshot older than the subscription shows up as a gap at the first
        event, and that book simply starts over.
        """
        with self._lock:
            for symbol, book in self._books.items():
                if book.last_update_id is not None:
                    self._resyncs[symbol] += 1
                book.reset()
                self._fetching.add(symbol)
            symbols = list(self._books)
        for symbol in symbols:
            self._later(symbol)

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
            if book is None:
                return
            outcome = book.on_event(update)
            # An event applied to a synced book, nearly every event, needs nothing more.
            fetch = outcome is not Outcome.APPLIED and self._not_applied(book, update, outcome)
        if fetch:
            self.pool.submit(self._snapshot, update.symbol)
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
        if book.needs_snapshot() and update.symbol not in self._fetching:
            self._fetching.add(update.symbol)
            return True
        return False

    def _snapshot(self, symbol: str) -> None:
        """Fetch a REST snapshot and start `symbol`'s book from it (worker thread)."""
        try:
            answer = self.client.depth(symbol, self.snapshot_limit)
            if self.on_snapshot is not None:
                self.on_snapshot(symbol, self.snapshot_limit, answer)
            snapshot = parse_depth(answer, symbol)
        except (BinanceError, PayloadError) as exc:
            # Waiting out a 429/418 or this minute's weight budget: try when it ends.
            wait = max(REFETCH_DELAY, getattr(exc, "retry_after", None) or 0.0)
            LOG.warning("%s: depth snapshot failed (%s); trying again in %.1f s", symbol, exc,
                        wait)
            self._later(symbol, wait)
            return
        with self._lock:
            self._fetching.discard(symbol)
            book = self._books.get(symbol)
            if book is None or book.synced:
                return
            outcome = book.apply_snapshot(snapshot)
            if outcome is Outcome.REFETCH:
                # Taken before the first buffered event: the stream is ahead.
                self._fetching.add(symbol)
            elif outcome.needs_resync:
                self._resyncs[symbol] += 1
                book.reset()
        if outcome is Outcome.REFETCH:
            self._later(symbol)
        elif outcome is Outcome.SYNCED:
            self.on_change()

    def _later(self, symbol: str, delay: float = REFETCH_DELAY) -> None:
        timer = threading.Timer(delay, self._resubmit, args=(symbol,))
        timer.daemon = True
        timer.start()

    def _resubmit(self, symbol: str) -> None:
        try:
            self.pool.submit(self._snapshot, symbol)
        except RuntimeError:  # the pool is shut down: the exporter is stopping
            pass

    # Reading ----------------------------------------------------------------

    def synced_books(self, levels: int) -> dict[str, OrderBook]:
        """The top `levels` of every synced book; out-of-sync books are left out."""
        with self._lock:
            return {s: b.snapshot(levels) for s, b in self._books.items() if b.synced}

    def update_ids(self) -> dict[str, int]:
        """Last applied final update id (`u`) of every synced book."""
        with self._lock:
            return {s: b.last_update_id for s, b in self._books.items()
                    if b.synced and b.last_update_id is not None}

    def resyncs(self) -> dict[str, int]:
        """Resynchronisations by symbol since start."""
        with self._lock:
            return dict(self._resyncs)
