"""Volume-weighted prices of a book, and their time-weighted average.

`vwap_price` answers "what is the price of this market, weighted by what is
actually on offer near the top", which a thin best level cannot distort the way
it moves a plain mid price. `TimeWeightedAverage` smooths such a price over a
time window as a step function: a value counts for as long as it was the latest
one, so a burst of samples does not outweigh a quiet period.

Pure code: no clock is read (time is passed in), no I/O; Decimal throughout.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping
from decimal import Decimal, localcontext
from itertools import islice, starmap
from operator import itemgetter, mul

from binance_exporter.market.numbers import CONTEXT, ZERO
from binance_exporter.market.quotes import quote_problem
from binance_exporter.market.types import Level, OrderBook


def _side_vwap(levels: list[Level]) -> Decimal | None:
    """Σ price × qty / Σ qty over the given levels; None when no quantity."""
    with localcontext(CONTEXT):
        # map/starmap keep the loops in C: this runs for every book, 10 times a second.
        notional = sum(starmap(mul, levels), ZERO)
        quantity = sum(map(itemgetter(1), levels), ZERO)
        if quantity <= ZERO:
            return None
        return notional / quantity  # the one rounding


def vwap_price(book: OrderBook, levels: int) -> Decimal | None:
    """(bid VWAP + ask VWAP) / 2 over the top `levels` levels of each side.

    A side with fewer levels uses what it has. None when either side is empty
    (or holds no quantity) and when the book is crossed or locked (best bid >=
    best ask): such a book has no meaningful price to publish.
    """
    if levels < 1:
        raise ValueError("levels must be >= 1")
    bids = list(islice(book.bids, levels))
    asks = list(islice(book.asks, levels))
    if not bids or not asks or quote_problem(bids[0][0], asks[0][0]) is not None:
        return None
    bid = _side_vwap(bids)
    ask = _side_vwap(asks)
    if bid is None or ask is None:
        return None
    with localcontext(CONTEXT):
        return (bid + ask) / 2


def _seconds(value: float, what: str) -> Decimal:
    """A time as an exact Decimal.

    A float goes through its shortest repr, so 0.1 s is 0.1 and not
    0.1000000000000000055…; durations are then exact Decimal differences.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{what} must be finite, not {value!r}")
    return number


class TimeWeightedAverage:
    """Time-weighted average of a step function over a sliding window.

    Each value holds from its time until the next value's time (the last one
    until `now`). `average(now)` integrates over [now - window, now].

    Decisions:
    - before any sample the average is None;
    - while the first sample is younger than the window, the average covers
      [first sample time, now] only: before it nothing is known, and counting
      that time as zero would drag the average towards 0;
    - `now` equal to the last sample time is fine (its value has held for 0 s);
      if the whole interval has zero length, the latest value is the answer;
    - a sample at the same time as the previous one replaces it (the old value
      held for 0 s); an earlier time raises ValueError, as does `average(now)`
      with `now` before the last sample: time is expected from a monotonic
      clock, and going backwards is a caller bug, not data;
    - memory stays bounded: `add` drops every sample that ended before the
      window start of its own time, keeping the one that straddles the window
      start. Since `now` never precedes the last sample, nothing dropped could
      count again.

    Cost: the area under the closed steps (every sample but the last) is kept
    as a running sum, exact in a 60-digit context, so `average` only adds the
    open last step and cuts what lies before the window start (normally one
    step) instead of walking the window: at 10 samples a second a 1 m window
    holds 600 of them, and the exporter asks for 2 windows of every symbol
    ten times a second.
    """

    def __init__(self, window_seconds: float) -> None:
        window = _seconds(window_seconds, "window_seconds")
        if window <= ZERO:
            raise ValueError("window_seconds must be > 0")
        self._window = window
        self._samples: deque[tuple[Decimal, Decimal]] = deque()
        self._area = ZERO  # Σ value × (next time − time) over consecutive samples

    def __len__(self) -> int:
        """Samples kept (the memory bound the tests check)."""
        return len(self._samples)

    def add(self, t: float, value: Decimal) -> None:
        """Record that the value is `value` from time `t` (seconds) on."""
        when = _seconds(t, "t")
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"value must be a finite Decimal, not {value!r}")
        samples = self._samples
        with localcontext(CONTEXT):  # value × seconds sums keep every digit
            if samples:
                last, last_value = samples[-1]
                if when < last:
                    raise ValueError(f"sample time {t} is before the last sample ({last})")
                if when == last:
                    samples[-1] = (when, value)  # the open step changes; no area yet
                    return
                self._area += last_value * (when - last)
            samples.append((when, value))
            start = when - self._window
            # Sample 0 no longer counts once sample 1 starts at or before the
            # window start: sample 1 (or a later one) covers the window start.
            while len(samples) > 1 and samples[1][0] <= start:
                began, old = samples.popleft()
                self._area -= old * (samples[0][0] - began)

    def average(self, now: float) -> Decimal | None:
        """Time-weighted average over [now - window, now]; None before any sample."""
        samples = self._samples
        if not samples:
            return None
        end = _seconds(now, "now")
        if end < samples[-1][0]:
            raise ValueError(f"now ({now}) is before the last sample ({samples[-1][0]})")
        start = max(end - self._window, samples[0][0])
        last, last_value = samples[-1]
        if end == start:
            return last_value
        with localcontext(CONTEXT):
            total = self._area + last_value * (end - last)
            # Cut the steps, or parts of steps, before the window start: since
            # `add` dropped what ended before its own window, that is the first
            # step, unless `now` has moved on since the last sample.
            for index, (began, value) in enumerate(samples):
                if began >= start:
                    break
                ended = samples[index + 1][0] if index + 1 < len(samples) else end
                total -= value * (min(ended, start) - began)
            return total / (end - start)


# The windows of `VwapTracker`: label value, seconds.
VWAP_WINDOWS = (("30s", 30.0), ("1m", 60.0))


class VwapTracker:
    """The VWAP mid of many books, and each one's time-weighted averages.

    A book's VWAP is recomputed only when the book moved (its update id
    changed): in stream mode most books are unchanged between two publishes.
    Time is passed in, so the averages are plain maths.
    """

    def __init__(self, levels: int, windows: tuple[tuple[str, float], ...] = VWAP_WINDOWS) -> None:
        self.levels = levels
        self.windows = windows
        self._latest: dict[str, tuple[int, Decimal | None]] = {}  # symbol -> (update id, vwap)
        self._averages: dict[str, dict[str, TimeWeightedAverage]] = {}

    def mid(self, symbol: str, book: OrderBook) -> Decimal | None:
        """`vwap_price` of `book` over `levels` levels, reused while its update id stands."""
        latest = self._latest.get(symbol)
        if latest is not None and latest[0] == book.last_update_id:
            return latest[1]
        value = vwap_price(book, self.levels)
        self._latest[symbol] = (book.last_update_id, value)
        return value

    def averages(self, vwaps: Mapping[str, Decimal],
                 now: float) -> dict[tuple[str, str], Decimal]:
        """Record `vwaps` at `now` (monotonic seconds); every (symbol, window) average.

        A symbol missing from `vwaps` is forgotten: its averages start over
        if it comes back.
        """
        for symbol in set(self._averages) - set(vwaps):
            del self._averages[symbol]
        for symbol in set(self._latest) - set(vwaps):
            del self._latest[symbol]
        averages: dict[tuple[str, str], Decimal] = {}
        for symbol, value in vwaps.items():
            windows = self._averages.setdefault(
                symbol, {name: TimeWeightedAverage(seconds) for name, seconds in self.windows}
            )
            for name, average in windows.items():
                average.add(now, value)
                if (result := average.average(now)) is not None:
                    averages[(symbol, name)] = result
        return averages
