"""The REST depth snapshots local books start from: fetched on the schedule, off the reader.

A book that keeps running out of what its snapshot covered (its price
walks faster than the levels last) is started over from the next weight
tier up: each costs the same per level, and the deeper one lasts longer.

A snapshot belongs to one connection of its symbol: `epoch_of` says which
one is current (None while the symbol's connection is down), and a fetch
planned, failed or answered for an older one is dropped. So a snapshot can
never make a book live while its stream is not, and a connection gets at
most one snapshot per book.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

from binance_exporter.binance.backoff import MAX_RETRY
from binance_exporter.binance.payloads import PayloadError, parse_depth
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.binance.weights import DEPTH_TIERS, MAX_DEPTH_LIMIT, depth_weight
from binance_exporter.market.types import OrderBook
from binance_exporter.sources.snapshot_schedule import SnapshotSchedule

LOG = logging.getLogger(__name__)
REFETCH_DELAY = 0.5  # seconds before asking again for a snapshot older than the stream


class DepthSnapshots:
    """Fetches each due snapshot on the pool and hands it over, if still wanted."""

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        client: BinanceClient,
        pool: DaemonPool,
        limit: int,
        epoch_of: Callable[[str], int | None],
        apply: Callable[[str, int, OrderBook, int], None],
        weight_per_minute: float = math.inf,
        on_depth: Callable[[str, int, object], None] | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.limit = limit  # the tier every book starts at
        self._limits: dict[str, int] = {}  # books moved to a deeper tier
        self._epoch_of = epoch_of
        self._apply = apply
        self.on_depth = on_depth  # sees every depth answer a book may start from
        self.schedule = SnapshotSchedule(self._submit,
                                         lambda symbol: depth_weight(self.limit_of(symbol)),
                                         weight_per_minute)

    def limit_of(self, symbol: str) -> int:
        """The `limit` of `symbol`'s next snapshot."""
        return self._limits.get(symbol, self.limit)

    def deeper(self, symbol: str) -> None:
        """`symbol`'s book ran out of what its snapshot covered: the next tier up from now."""
        limit = self.limit_of(symbol)
        self._limits[symbol] = next((t for t in DEPTH_TIERS if t > limit), MAX_DEPTH_LIMIT)

    def _submit(self, symbol: str) -> None:
        """Hand a due snapshot to the pool, marked with its connection's epoch."""
        epoch = self._epoch_of(symbol)
        if epoch is None:
            return  # its connection is down: the next one plans its own
        try:
            self.pool.submit(self._fetch, symbol, epoch)
        except RuntimeError:  # the pool is shut down: the exporter is stopping
            pass

    def _fetch(self, symbol: str, epoch: int) -> None:
        """Fetch a snapshot for `symbol`'s connection `epoch` (worker thread)."""
        if self._epoch_of(symbol) != epoch:
            return  # planned for a connection that is gone
        limit = self.limit_of(symbol)
        try:
            answer = self.client.depth(symbol, limit)
            if self.on_depth is not None:
                self.on_depth(symbol, limit, answer)
            snapshot = parse_depth(answer, symbol)
        except (BinanceError, PayloadError) as exc:
            # Waiting out a 429/418 or this minute's weight budget: try when it ends.
            wait = max(REFETCH_DELAY, getattr(exc, "retry_after", None) or 0.0)
            LOG.warning("%s: depth snapshot failed (%s); trying again in %.1f s", symbol, exc,
                        wait)
            self._again(symbol, epoch, wait)
            return
        except Exception:  # pylint: disable=broad-exception-caught
            # Nobody reads this worker's future: a book left waiting for a
            # snapshot that never comes would stay out of service for good.
            LOG.exception("%s: depth snapshot failed unexpectedly; trying again", symbol)
            self._again(symbol, epoch, MAX_RETRY)
            return
        self._apply(symbol, epoch, snapshot, limit)

    def _again(self, symbol: str, epoch: int, delay: float) -> None:
        """Plan the fetch again, unless its connection is gone meanwhile."""
        if self._epoch_of(symbol) == epoch:
            self.schedule.schedule(symbol, delay)
