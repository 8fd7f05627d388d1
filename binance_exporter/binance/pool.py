"""A small thread pool of daemon threads, for requests that may hang.

`concurrent.futures.ThreadPoolExecutor` joins its worker threads when the
interpreter exits, so one request stuck in its timeout would hold a SIGTERM
shutdown for up to `--timeout` seconds. These workers are daemon threads: the
process exits when the exporter has finished its own orderly shutdown, and an
abandoned request dies with it. Futures are the standard ones.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

_STOP = object()


class DaemonPool:
    """Runs callables on up to `workers` daemon threads; each gets its own thread-locals."""

    def __init__(self, workers: int, name: str = "worker") -> None:
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
            for index in range(workers)
        ]
        self._closed = False
        for thread in self._threads:
            thread.start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Schedule `function(*args)`; its result or exception lands in the Future."""
        if self._closed:
            raise RuntimeError("the pool is shut down")
        future: Future[Any] = Future()
        self._tasks.put((future, function, args))
        return future

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Stop taking work; queued work is cancelled, running work is abandoned."""
        del wait  # never waits: that is the point of this pool
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not _STOP:
                    task[0].cancel()
        for _ in self._threads:
            self._tasks.put(_STOP)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                return
            future, function, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # pylint: disable=broad-exception-caught
                future.set_exception(exc)
