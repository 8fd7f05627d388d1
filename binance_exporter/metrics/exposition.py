"""The /metrics page: the snapshot part rendered lazily and cached, the live part per scrape.

Most of the page changes only when a job publishes a new snapshot, and in
stream mode that happens up to ten times a second, far more often than anyone
scrapes. So a publish renders nothing by itself: the first scrape of a
snapshot renders its families (exporter health, answers, analytics) in the format that scrape
negotiated, and later scrapes of the same snapshot reuse those bytes. The
families that move between snapshots (REST accounting, streams, the process)
are small and rendered on every scrape, then appended, so the page is one
document: for OpenMetrics only the live part's `# EOF` ends it.

Gzip works the same way: the snapshot part is compressed once, with a sync
flush so its bytes are complete, and each scrape continues a copy of that
compressor with the live part.

The families with a series per followed symbol (thousands with
`--spread-symbols all`) keep their lines between renders (`SymbolLines`):
a render writes only the lines whose value changed.

A scrape that comes within `max_lag` (1 s) of the last page rendered in its
format is given that page while a fresh one renders in the background, so
frequent scrapes never wait on a render (under a busy stream reader a render
takes many of its milliseconds waiting for the GIL). For such a scraper the
stream publisher asks for the render as soon as it publishes (`published`),
once per page the scraper took; otherwise renders are asked for by scrapes,
one at a time. Either way there are never more renders than scrapes; scrapes
further apart (Prometheus, every 10-60 s) always get a page rendered for them.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Protocol
from urllib.parse import parse_qs

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted

from binance_exporter.binance.rest import ApiStats
from binance_exporter.metrics.analytics import AnalyticsCollector
from binance_exporter.metrics.api import ApiCollector
from binance_exporter.metrics.encoding import MAX_CACHED_FORMATS, Encoder, without_eof
from binance_exporter.metrics.exporter import ExporterCollector
from binance_exporter.metrics.market import MarketCollector
from binance_exporter.metrics.stream import StreamCollector
from binance_exporter.metrics.symbol_lines import SymbolLines
from binance_exporter.model import Snapshot, StreamView

LOG = logging.getLogger(__name__)
# Level 6 is within a few percent of 9's size at a fraction of the CPU.
GZIP_LEVEL = 6
# How old a page a scraper may be served while its successor renders, and
# how old it may grow before a scrape asks for that successor.
MAX_LAG = 1.0
REFRESH_AFTER = 0.25


class _Compressor(Protocol):
    """The part of a zlib compression object the gzip cache uses."""

    def compress(self, data: bytes, /) -> bytes:
        """Compress more data; returns what is ready."""

    def flush(self, mode: int = zlib.Z_FINISH, /) -> bytes:
        """Emit what is pending; Z_FINISH also ends the stream."""

    def copy(self) -> _Compressor:
        """An independent compressor in the same state."""


class _Part:
    """The snapshot part of the page in one format, and its gzip form once asked for."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._lock = threading.Lock()
        # The compressed body and the compressor after a sync flush: the gzip
        # stream is still open, and every byte of `body` is in the head.
        self._gzip: tuple[bytes, _Compressor] | None = None

    def gzipped(self, live: bytes) -> bytes:
        """One gzip member holding `body` then `live`; `body` is compressed only once."""
        with self._lock:
            if self._gzip is None:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
                head = compressor.compress(self.body) + compressor.flush(zlib.Z_SYNC_FLUSH)
                self._gzip = head, compressor
            head, compressor = self._gzip
            tail = compressor.copy()  # the cached compressor itself is never advanced
        return head + tail.compress(live) + tail.flush()


def _snapshot_registry(snapshot: Snapshot, per_symbol: bool = True) -> CollectorRegistry:
    """The snapshot-derived collectors, all reading this one snapshot; without the
    per-symbol families (`SymbolLines` renders them) unless `per_symbol`."""

    def pinned() -> Snapshot:
        return snapshot

    registry = CollectorRegistry()
    registry.register(ExporterCollector(pinned))
    registry.register(MarketCollector(pinned, per_symbol=per_symbol))
    registry.register(AnalyticsCollector(pinned))
    return registry


@dataclass(frozen=True)
class _Served:
    """A whole page as served, and what it shows."""

    body: bytes
    snapshot: Snapshot
    rendered: float  # monotonic time


class Exposition:  # pylint: disable=too-many-instance-attributes
    """Renders /metrics for one scrape; see the module docstring for what is cached.

    `renders` counts renderings of the snapshot part into the cache: one per
    snapshot and format that a scrape asked for, itself or through `published`.
    """

    def __init__(self, snapshot: Callable[[], Snapshot], live: CollectorRegistry,
                 max_lag: float = MAX_LAG, clock: Callable[[], float] = time.monotonic) -> None:
        self._snapshot = snapshot
        self._live = live
        self._max_lag = max_lag
        self._clock = clock
        self._lock = threading.Lock()
        self._cached_snapshot: Snapshot | None = None  # the snapshot `_parts` show
        self._parts: dict[str, _Part] = {}  # by content type
        self._served: dict[tuple[str, bool], _Served] = {}  # by content type and gzip
        self._wanted: dict[tuple[str, bool], Encoder] = {}  # pages to render in the background
        # The pages served from the cache, and when each was last scraped.
        self._scraped: dict[tuple[str, bool], tuple[Encoder, float]] = {}
        self._refresh = threading.Condition()
        self._refresher: threading.Thread | None = None
        self._lines = SymbolLines()
        self.renders = 0

    def render(self, accept: str, accept_encoding: str, query: str) -> tuple[bytes, dict[str, str]]:
        """The page for these request headers and query string, and its response headers.

        OpenMetrics when `accept` asks for it, else the text format; gzip when
        `accept_encoding` allows it; only the samples named by `name[]`
        parameters when the query has any.
        """
        encoder, content_type = choose_encoder(accept)
        zipped = gzip_accepted(accept_encoding)
        headers = {"Content-Type": content_type}
        if zipped:
            headers["Content-Encoding"] = "gzip"
        names = parse_qs(query).get("name[]")
        if names:
            body = self._filtered(encoder, names)
            return (gzip.compress(body, GZIP_LEVEL, mtime=0) if zipped else body), headers
        key = (content_type, zipped)
        served = self._served.get(key)
        if served is not None:
            self._scraped[key] = (encoder, self._clock())
        if served is not None and self._clock() - served.rendered <= self._max_lag:
            if (served.snapshot is not self._snapshot()
                    or self._clock() - served.rendered > REFRESH_AFTER):
                self._ask(key, encoder)
            return served.body, headers
        return self._page(key, encoder).body, headers

    def published(self) -> None:
        """A new snapshot is out: a page scraped since it was rendered, within
        `max_lag`, renders now, aside.

        A scraper that comes back within `max_lag` is served the page it had
        until its successor is rendered; started by the publish, not by that
        scrape, the render is done sooner, and runs while the publisher rests
        instead of beside the next publish. Only a page that was taken since
        it was rendered is rendered again, so there are never more renders
        than scrapes however often the publisher runs; pages nobody scrapes
        that often are rendered for their scrape, as before.
        """
        now = self._clock()
        for key, (encoder, when) in list(self._scraped.items()):
            served = self._served.get(key)
            if served is not None and when >= served.rendered and now - when <= self._max_lag:
                self._ask(key, encoder)

    def _page(self, key: tuple[str, bool], encoder: Encoder) -> _Served:
        """Render the whole page in this format now, and keep it for the next scrapes."""
        content_type, zipped = key
        started = self._clock()  # a page is as old as the snapshot read when it began
        snapshot, part = self._part(encoder, content_type)
        live = encoder(self._live)
        served = _Served(part.gzipped(live) if zipped else part.body + live, snapshot, started)
        with self._lock:
            old = self._served.get(key)
            # A slower render that began earlier must not replace a newer page.
            if old is None or old.rendered <= served.rendered:
                self._served.pop(key, None)  # last rendered last: least recently used first
                self._served[key] = served
            while len(self._served) > MAX_CACHED_FORMATS:
                oldest = next(iter(self._served))
                del self._served[oldest]
                self._scraped.pop(oldest, None)
        return served

    def _ask(self, key: tuple[str, bool], encoder: Encoder) -> None:
        """Have the background thread render this page (once, however many scrapes ask)."""
        with self._refresh:
            self._wanted[key] = encoder
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_loop,
                                                   name="metrics-render", daemon=True)
                self._refresher.start()
            self._refresh.notify()

    def _refresh_loop(self) -> None:
        while True:
            with self._refresh:
                while not self._wanted:
                    self._refresh.wait()
                key, encoder = self._wanted.popitem()
            try:
                self._page(key, encoder)
            except Exception:  # pylint: disable=broad-exception-caught
                # The scrapes go on with the page they have, or render it themselves
                # once it is older than max_lag; this thread must go on too.
                LOG.exception("could not render the metrics page")

    def _part(self, encoder: Encoder, content_type: str) -> tuple[Snapshot, _Part]:
        """The current snapshot and its part in this format, rendered now if not yet."""
        with self._lock:
            # Read under the lock: a scrape holding an older snapshot must not
            # replace the cache of a newer one.
            snapshot = self._snapshot()
            if snapshot is not self._cached_snapshot:
                self._cached_snapshot, self._parts = snapshot, {}
            part = self._parts.get(content_type)
            if part is None:
                part = _Part(self._snapshot_part(snapshot, encoder, content_type))
                self.renders += 1
                if len(self._parts) < MAX_CACHED_FORMATS:
                    self._parts[content_type] = part
            return snapshot, part

    def _snapshot_part(self, snapshot: Snapshot, encoder: Encoder, content_type: str) -> bytes:
        """The snapshot's families: the per-symbol ones from their kept lines, the
        others (and every one in a format whose lines cannot be kept) by the library.
        Under the lock, as `SymbolLines` needs: one render at a time."""
        lines = self._lines.render(snapshot.answers, encoder, content_type)
        if lines is None:
            return without_eof(encoder, _snapshot_registry(snapshot))
        return without_eof(encoder, _snapshot_registry(snapshot, per_symbol=False)) + lines

    def _filtered(self, encoder: Encoder, names: list[str]) -> bytes:
        """Only the named samples, rendered for this scrape alone."""
        restricted = _snapshot_registry(self._snapshot()).restricted_registry(names)
        return without_eof(encoder, restricted) + encoder(self._live.restricted_registry(names))


def build_exposition(
    snapshot: Callable[[], Snapshot],
    api_stats: Callable[[], ApiStats],
    stream_view: Callable[[], StreamView] | None = None,
    max_lag: float = MAX_LAG,
) -> Exposition:
    """The exporter's page: every collector, process metrics included.

    `stream_view` is given in stream mode only. The process, platform and GC
    collectors go on the exposition's own registry, never the global one, so
    two expositions in one process (tests, benchmarks) do not clash.
    """
    # auto_describe lets name[] find the process collectors, which have no describe().
    live = CollectorRegistry(auto_describe=True)
    live.register(ApiCollector(api_stats))
    if stream_view is not None:
        live.register(StreamCollector(stream_view))
    ProcessCollector(registry=live)
    PlatformCollector(registry=live)
    GCCollector(registry=live)
    return Exposition(snapshot, live, max_lag=max_lag)
