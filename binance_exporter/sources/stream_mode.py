"""Stream mode's parts, put together: books, connections, refresher, publisher, recording.

Only `cli` imports this module, and only for `--source stream`: the REST
mode never loads the websocket client or msgspec.
"""

from __future__ import annotations

import threading

from binance_exporter.binance.rest import BinanceClient
from binance_exporter.binance.recorder import Recorder
from binance_exporter.jobs.quotes import Settings
from binance_exporter.model import SnapshotStore, StreamView
from binance_exporter.jobs.republisher import Republisher, StreamRefresher
from binance_exporter.sources.stream import StreamBooks
from binance_exporter.binance.websocket import StreamFeed
from binance_exporter.jobs.pool import DaemonPool



class StreamMode:
    """Local books fed by the streams, the refresher that reads them, and their publisher.

    `record` opens the `--record` file first, so a path that cannot be
    written raises OSError before anything starts.
    """

    def __init__(  # pylint: disable=too-many-arguments,too-many-positional-arguments
        self,
        client: BinanceClient,
        store: SnapshotStore,
        settings: Settings,
        url: str,
        snapshot_limit: int,
        record: str | None = None,
    ) -> None:
        self.recorder = Recorder(record) if record is not None else None
        recorder = self.recorder
        self.republisher = Republisher()
        self.pool = DaemonPool(4, name="snapshots")
        self.books = StreamBooks(client, self.pool, snapshot_limit,
                                 on_change=self.republisher.changed,
                                 on_snapshot=recorder.snapshot if recorder else None)
        self.connections = StreamFeed(url, self.books.on_data, self.books.on_connect,
                                      on_raw=recorder.message if recorder else None)
        self.refresher = StreamRefresher(client, store, settings, self.books, self.track)

    def track(self, symbols: list[str]) -> None:
        """Keep books and streams for exactly `symbols`."""
        self.connections.track(self.books.track(symbols))

    def view(self) -> StreamView:
        """What the stream metrics show."""
        stats = self.connections.stats()
        return StreamView(stats.connected, stats.reconnects, stats.messages, stats.last_message,
                          self.books.update_ids(), self.books.resyncs())

    def start_publisher(self, stop: threading.Event) -> None:
        """Republish the book answers after changes until `stop` (daemon thread)."""
        threading.Thread(target=self.republisher.run, args=(self.refresher, stop),
                         name="publisher", daemon=True).start()

    def close(self) -> None:
        """Close the connections, the snapshot workers and the recording."""
        self.connections.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.recorder is not None:
            self.recorder.close()
