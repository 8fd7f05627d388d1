"""Stream mode's publisher: republish the book answers soon after the local books change.

The stream reader thread calls `changed()` for every applied event; the
publisher thread runs the quotes job's `refresh_books` at most every
`PUBLISH_INTERVAL`, and less often when a publish is slow, so that with many
symbols it slows down instead of starving the stream reader of the GIL.

A publish's cost is its thread's CPU time, not its wall time: under a busy
stream reader a 20 ms publish spends as long again waiting for the GIL, and
that waiting costs the reader nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

PUBLISH_INTERVAL = 0.1  # seconds from one publish's start to the next's, at least
# The publisher may take at most this share of one core: a whole-market
# publish is 13-30 ms of CPU (more under load), so a fifth keeps the 0.1 s
# interval for publishes of up to 20 ms.
PUBLISH_SHARE = 0.2


class Republisher:
    """Runs a publish after the books changed, at most every PUBLISH_INTERVAL.

    A publish whose CPU time is more than PUBLISH_SHARE of that interval
    stretches the wait to keep its share: a publish of 30 ms of CPU is
    followed by 120 ms.
    """

    def __init__(self) -> None:
        self._changed = threading.Event()

    def changed(self) -> None:
        """Called by the stream thread for every applied event.

        Between two publishes only the first event finds the flag down; the
        others cost one read instead of a trip through the Event's lock.
        """
        if not self._changed.is_set():
            self._changed.set()

    def run(self, publish: Callable[[], object], stop: threading.Event) -> None:
        """Call `publish` after changes until `stop` is set (publisher thread)."""
        while not stop.is_set():
            if self._changed.wait(0.5):
                self._changed.clear()
                started, cpu = time.monotonic(), time.thread_time()
                publish()
                took, cpu = time.monotonic() - started, time.thread_time() - cpu
                stop.wait(max(PUBLISH_INTERVAL - took, cpu * (1 - PUBLISH_SHARE) / PUBLISH_SHARE))
