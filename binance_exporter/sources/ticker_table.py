"""The 24 h figures of every symbol, kept current by the `!ticker_1d@arr` stream.

The rankings need the rolling 24 h volumes and trade count of every symbol.
Asking REST `ticker/24hr` for all symbols costs 80 request weight each time;
the stream pushes the same rolling figures every second for free, but only
for the symbols whose figures changed. So one REST answer fills the table
(`seed`), the pushes keep it current, and a REST answer once in a while
(`repair`) puts right the entries whose pushes were lost.

Every entry keeps the time its figures describe: REST `closeTime`, or the
stream's `C`, the same moment seen from the other side (the end of the
rolling window). Which of two data wins is decided by that time alone, never
by arrival order: a REST answer computed before a push arrives later than
the push, and must not undo it.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Annotated, Callable, Sequence

import msgspec

from binance_exporter.binance.payloads import (
    MAX_DECIMAL,
    MAX_ID,
    MAX_NAME,
    PayloadError,
    parse_tickers_24h_timed,
)
from binance_exporter.market.numbers import ZERO
from binance_exporter.market.types import Ticker24h

LOG = logging.getLogger(__name__)
TICKER_STREAM = "!ticker_1d@arr"
SEED_GRACE = 10.0  # seconds an answer may predate the subscription and still serve
TICKER_EVENT = "1dTicker"
# A REST figure that differs from an entry older than this is a lost push,
# not a push still on its way (see `TickerTable.repair`).
TIMING_TOLERANCE_MS = 3_000

_Whole = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]  # times and counts: 64-bit, >= 0
_Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
Timed = dict[str, tuple[Ticker24h, int]]  # symbol -> (figures, the time they describe in ms)


def _volume(value: Decimal) -> bool:
    """True for a volume `to_decimal` would take: finite, in [0, 1e20)."""
    # is_finite first: comparing a NaN raises instead of answering.
    return value.is_finite() and ZERO <= value < MAX_DECIMAL


class TickerPush(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag=TICKER_EVENT):
    """One symbol's entry in a `!ticker_1d@arr` array, only the fields the table keeps.

    A msgspec Struct, so that a whole array of up to ~3,000 entries becomes
    these objects, Decimals included, in one pass of C code; the fields not
    named here are skipped without being built. The ints are checked by
    msgspec (no bools, floats or negatives), the decimals here: Decimal also
    reads "NaN" and "-1", which are no volumes. `E` is required because the
    documented event carries it, but the entry's time is `C`, the value REST
    calls `closeTime`, so that both sides are compared on the same clock.
    """

    symbol: _Symbol = msgspec.field(name="s")
    event_time: _Whole = msgspec.field(name="E")
    close_time: _Whole = msgspec.field(name="C")
    volume: Decimal = msgspec.field(name="v")
    quote_volume: Decimal = msgspec.field(name="q")
    trades: _Whole = msgspec.field(name="n")

    def __post_init__(self) -> None:
        # A ValueError here becomes a ValidationError of the whole array.
        if not (_volume(self.volume) and _volume(self.quote_volume)):
            raise ValueError(f"impossible volumes v={self.volume} q={self.quote_volume}")


_PUSHES = msgspec.json.Decoder(list[TickerPush])


def decode_ticker_pushes(raw: bytes | str | msgspec.Raw) -> list[TickerPush]:
    """Decode the `data` of one `!ticker_1d@arr` message.

    Raises PayloadError when the text is not JSON or any entry is not of the
    documented shape and values: one bad entry refuses the whole message, as
    a broken frame says nothing trustworthy about the other entries either.
    """
    try:
        return _PUSHES.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(f"{TICKER_EVENT}: {exc}") from exc


class TickerTable:
    """Every symbol's 24 h figures: a REST answer, then the stream's pushes on top.

    `on_data` runs on the stream reader thread, the rest on the scheduler
    thread; one lock guards the table, and decoding and parsing happen
    before taking it, so the reader never waits on a parse.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tickers: dict[str, Ticker24h] = {}
        self._times: dict[str, int] = {}  # symbol -> ms its figures describe
        # When the last full REST answer was merged; None until the first.
        self._answered_at: float | None = None
        self._live_since: float | None = None  # the ticker stream is live since (None: not)
        self._repairs = 0
        self._pushes = 0

    # REST answers (scheduler thread) ------------------------------------------

    def seed(self, answer: object) -> None:
        """Fill the table from a REST `ticker/24hr` answer (all symbols, already JSON-decoded).

        Raises PayloadError for an answer `parse_tickers_24h` would refuse,
        leaving the table as it was. Entries pushed after the answer was
        computed stay; nothing is counted as a repair.
        """
        timed = parse_tickers_24h_timed(answer)
        with self._lock:
            self._merge(timed)
            self._answered_at = self._clock()

    def repair(self, answer: object) -> int:
        """Merge a later REST answer; return how many entries it repaired.

        An entry is repaired when it differs from the answer (volume, quote
        volume or trade count) and is more than `TIMING_TOLERANCE_MS` older
        than it. The stream pushes a changed symbol within a second, so a
        figure Binance computed up to about a second before the answer is
        normally still on its way; 3 s adds room for the delivery delay and
        jitter. An entry that old and different has missed its push. A closer
        difference is only timing: the newer figures are kept, uncounted.
        Symbols the table lacks count as repaired; symbols the answer lacks
        are delisted and leave, uncounted. On a table never seeded, the answer
        is a seed: nothing was there to repair. Raises PayloadError like `seed`.

        What this cannot tell apart: a quiet symbol whose only change fell in
        the last second before the answer looks like a lost push, since a
        single answer does not say when a figure changed.
        """
        timed = parse_tickers_24h_timed(answer)
        with self._lock:
            repaired = self._merge(timed)
            if self._answered_at is None:  # the first answer seeds: nothing to repair
                repaired = 0
            self._answered_at = self._clock()
            self._repairs += repaired
        return repaired

    def _merge(self, timed: Timed) -> int:
        """Merge a full answer under the lock; return the lost pushes it repaired."""
        tickers, times = self._tickers, self._times
        repaired = 0
        for symbol, (ticker, at) in timed.items():
            held_at = times.get(symbol)
            if held_at is None:
                repaired += 1
            elif held_at >= at:
                continue  # pushed after the answer was computed: newer
            elif at - held_at > TIMING_TOLERANCE_MS and tickers[symbol] != ticker:
                repaired += 1
            tickers[symbol] = ticker
            times[symbol] = at
        # The answer's moment: a symbol missing from it is delisted, unless
        # it was pushed after that moment (a listing the answer predates).
        answered_at = max((at for _, at in timed.values()), default=int(self._clock() * 1000))
        for symbol in [s for s, at in times.items() if at <= answered_at and s not in timed]:
            del tickers[symbol], times[symbol]
        return repaired

    # The stream (reader thread for on_data) ------------------------------------

    def on_data(self, stream: str, data: bytes | str | msgspec.Raw) -> None:
        """Apply one `!ticker_1d@arr` message; other streams' messages are not ours.

        A malformed message is logged and ignored whole. Each entry replaces
        the table's unless the table's figures are newer.
        """
        if stream != TICKER_STREAM:
            return
        try:
            pushes = decode_ticker_pushes(data)
        except PayloadError as exc:
            LOG.warning("ignored a malformed %s message: %s", stream, exc)
            return
        updates = [(p.symbol, p.close_time, Ticker24h(p.symbol, p.volume, p.quote_volume,
                                                       p.trades)) for p in pushes]
        applied = 0
        with self._lock:
            tickers, times = self._tickers, self._times
            for symbol, at, ticker in updates:
                if at >= times.get(symbol, -1):
                    tickers[symbol] = ticker
                    times[symbol] = at
                    applied += 1
            self._pushes += applied

    def on_connect(self, streams: Sequence[str] | None = None) -> None:
        """A (re)connection opens; nothing is live before its subscriptions are acknowledged."""

    def on_live(self, streams: Sequence[str] | None = None) -> None:
        """The connection carrying the ticker stream is subscribed: pushes arrive from now on."""
        if self._carries(streams):
            with self._lock:
                self._live_since = self._clock()

    def on_disconnect(self, streams: Sequence[str] | None = None) -> None:
        """The connection for `streams` (all for None) dropped: pushes are being lost."""
        if self._carries(streams):
            with self._lock:
                self._live_since = None

    @staticmethod
    def _carries(streams: Sequence[str] | None) -> bool:
        """True when a connection of `streams` (None: every stream) carries the tickers."""
        return streams is None or TICKER_STREAM in streams

    # Readers (scheduler thread) ------------------------------------------------

    @property
    def complete(self) -> bool:
        """True when the stream is live and a full answer was merged since it went live,
        or at most `SEED_GRACE` seconds before.

        A push carries absolute figures: a symbol whose push fell between an
        answer and the subscription is right again at its next push, and the
        periodic repair catches one that stays quiet. So the start-up answer,
        asked for just before the first subscription, serves; an answer from
        long before a reconnect does not, and the next run asks again.
        """
        with self._lock:
            return (self._live_since is not None and self._answered_at is not None
                    and self._answered_at >= self._live_since - SEED_GRACE)

    def tickers(self) -> dict[str, Ticker24h]:
        """A copy of the table, for one rankings run."""
        with self._lock:
            return dict(self._tickers)

    def repairs(self) -> int:
        """Entries REST repaired since start: pushes the stream lost."""
        with self._lock:
            return self._repairs

    def pushes(self) -> int:
        """Stream entries applied since start (older ones ignored are not counted)."""
        with self._lock:
            return self._pushes
