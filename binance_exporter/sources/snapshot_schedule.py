"""When each local book's next depth snapshot is due, paced within a weight budget."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Sequence

LOG = logging.getLogger(__name__)


class SnapshotSchedule:
    """When each book's next depth answer is due, paced within a weight budget.

    One daemon thread submits the fetches that fall due, so no timer outlives
    a reconnect: `cancel` forgets what a dropped connection still had planned.
    At most `weight_per_minute` of request weight is spent on snapshots in
    any 60 s window (at least one snapshot a window), so a storm of gaps or
    reconnects cannot take the weight the rankings need.
    """

    WINDOW = 60.0

    def __init__(self, submit: Callable[[str], None], weight: Callable[[str], int],
                 weight_per_minute: float = math.inf,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._submit = submit
        self._weight = weight  # of one symbol's snapshot
        self._budget = weight_per_minute
        self._clock = clock
        self._due: dict[str, float] = {}
        self._changed = threading.Condition()
        self._window_start = -math.inf
        self._spent = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, symbol: str, delay: float = 0.0) -> None:
        """Fetch `symbol`'s snapshot in `delay` seconds (or earlier, if already planned so)."""
        with self._changed:
            if self._stopped:
                return
            when = self._clock() + delay
            self._due[symbol] = min(when, self._due.get(symbol, when))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="snapshot-schedule",
                                                daemon=True)
                self._thread.start()
            self._changed.notify()

    def cancel(self, symbols: Sequence[str]) -> None:
        """Forget the planned fetches of `symbols`."""
        with self._changed:
            for symbol in symbols:
                self._due.pop(symbol, None)

    def pending(self) -> dict[str, float]:
        """Planned fetches: symbol -> due time."""
        with self._changed:
            return dict(self._due)

    def stop(self) -> None:
        """Plan and submit nothing more."""
        with self._changed:
            self._stopped = True
            self._due.clear()
            self._changed.notify()

    def _next(self) -> str | None:
        """Wait for the next fetch that is due and within the budget (under the condition)."""
        while not self._stopped:
            if not self._due:
                self._changed.wait()
                continue
            now = self._clock()
            symbol, when = min(self._due.items(), key=lambda item: item[1])
            if when > now:
                self._changed.wait(when - now)
                continue
            if now - self._window_start >= self.WINDOW:
                self._window_start, self._spent = now, 0
            weight = self._weight(symbol)
            if self._spent and self._spent + weight > self._budget:
                # This window's snapshot weight is spent: everything waits for the next.
                resume = self._window_start + self.WINDOW
                self._due = {s: max(due, resume) for s, due in self._due.items()}
                continue
            self._spent += weight
            del self._due[symbol]
            return symbol
        return None

    def _run(self) -> None:
        while True:
            with self._changed:
                symbol = self._next()
            if symbol is None:
                return
            try:
                self._submit(symbol)
            except Exception:  # pylint: disable=broad-exception-caught
                # This thread serves every book: it must outlive any one fetch.
                LOG.exception("%s: could not start a depth snapshot", symbol)
