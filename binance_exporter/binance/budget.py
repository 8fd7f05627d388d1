"""Request weight and rate-limit back-off: what the exporter may still send this minute.

Binance counts request weight per IP per minute and answers 429, then 418 (a
ban), when it is exceeded. `WeightBudget` keeps the exporter within a share of
the limit before Binance has to say so: it reserves each request's weight
before it leaves, takes the `X-MBX-USED-WEIGHT-1M` header as the truth when
it arrives (other programs on the same IP count too), and after a 429 or 418
lets nothing leave until `Retry-After` has passed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from binance_exporter.binance.errors import BACKING_OFF, BUDGET, BinanceError
from binance_exporter.binance.weights import (
    BOOK_TICKER_MULTI_WEIGHT,
    DEFAULT_WEIGHT_LIMIT,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H_ALL_WEIGHT,
)

LOG = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_BACKOFF = 60.0  # seconds to wait after a 429/418 without a usable Retry-After
MIN_RATE_LIMIT_BACKOFF = 1.0  # a 429/418 never lets the next request leave at once
MAX_RATE_LIMITED_BACKOFF = 3600.0  # a 429's wait, at most: one hour
MAX_BANNED_BACKOFF = 3 * 86400.0  # a 418's wait, at most: Binance's longest ban, three days
# The part of a refresh that does not depend on the settings: exchangeInfo
# (where a corrected limit comes from), the 24 h tickers and one bookTicker.
MIN_REFRESH_WEIGHT = EXCHANGE_INFO_WEIGHT + TICKER_24H_ALL_WEIGHT + BOOK_TICKER_MULTI_WEIGHT


@dataclass(frozen=True)
class ApiStats:
    """A consistent copy of the client's own accounting, for the metrics."""

    requests: dict[tuple[str, str], int]
    weight_used: int | None
    weight_limit: int
    backoff_until: float

def rate_limit_wait(status: int, retry_after: object) -> float:
    """Seconds to send nothing after a 429 (`status` 429) or a ban (418).

    `retry_after` is the header's raw value. Binance sends whole seconds; any
    other value is read defensively: missing, non-numeric, negative or NaN
    means `DEFAULT_RATE_LIMIT_BACKOFF`; the rest is held between
    `MIN_RATE_LIMIT_BACKOFF` and the cap for the status (an hour for a 429,
    three days for a 418), so infinity or 1e10 still gives a date the clock
    and the logs can represent.
    """
    cap = MAX_BANNED_BACKOFF if status == 418 else MAX_RATE_LIMITED_BACKOFF
    try:
        seconds = float(str(retry_after).strip()) if retry_after is not None else math.nan
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        seconds = DEFAULT_RATE_LIMIT_BACKOFF
    return min(cap, max(MIN_RATE_LIMIT_BACKOFF, seconds))


def used_weight(headers: Any) -> int | None:
    """The used weight `X-MBX-USED-WEIGHT-1M` reports, or None if absent or unreadable."""
    if headers is None:
        return None
    for name, value in headers.items():
        if name.lower() == "x-mbx-used-weight-1m":
            text = str(value).strip()
            # A plain count of at most 18 digits: int() would also take "1_0",
            # and a 4,000-digit header would cost a long conversion.
            return int(text) if text.isdigit() and len(text) <= 18 else None
    return None


class WeightBudget:  # pylint: disable=too-many-instance-attributes
    """The weight this minute, the limit with its floor, the back-off gate and request counts."""

    def __init__(self, weight_share: float, refresh_weight: int = MIN_REFRESH_WEIGHT,
                 clock: Callable[[], float] = time.time) -> None:
        self.weight_share = weight_share
        self.weight_floor = math.ceil(refresh_weight / weight_share)
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._weight_used: int | None = None  # last known use in the current window
        self._weight_window = -1  # the minute `_weight_used` belongs to
        self._weight_limit = DEFAULT_WEIGHT_LIMIT
        self._backoff_until = 0.0

    def set_weight_limit(self, limit: int | None) -> None:
        """Adopt the REQUEST_WEIGHT per-minute limit that exchangeInfo announced.

        A limit whose share cannot pay for one refresh (below `weight_floor`)
        would refuse every request, exchangeInfo included, so the exporter
        could never learn a corrected limit: it is logged once and the floor
        is used instead. The floor is the least that keeps one refresh a
        minute possible; if Binance's real limit were lower, its 429s and
        their `Retry-After` still hold the exporter back. None, a bool or a
        non-positive value is not a limit and changes nothing.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            return
        with self._lock:
            if limit < self.weight_floor:
                if self._weight_limit != self.weight_floor:  # not already on the floor
                    LOG.warning(
                        "exchangeInfo announces a request-weight limit of %d per minute, too "
                        "low for one refresh at a %.0f%% share; budgeting with %d instead",
                        limit, self.weight_share * 100, self.weight_floor,
                    )
                limit = self.weight_floor
            self._weight_limit = limit

    def blocked_for(self) -> float:
        """Seconds until a request may leave again after a 429/418 (0 when free)."""
        with self._lock:
            return max(0.0, self._backoff_until - self._clock())

    def stats(self) -> ApiStats:
        """A consistent copy of the request counters and weight state."""
        with self._lock:
            used = self._weight_used if self._current_window() == self._weight_window else 0
            return ApiStats(
                requests=dict(self._requests),
                weight_used=used if self._weight_window >= 0 else None,
                weight_limit=self._weight_limit,
                backoff_until=self._backoff_until,
            )

    def _current_window(self) -> int:
        # Binance does not document whether the minute is fixed or sliding; the
        # header resets at wall-clock minute boundaries in practice, so the
        # budget treats each UTC minute as one window.
        return int(self._clock() // 60)

    def admit(self, endpoint: str, weight: int) -> None:
        """Refuse locally instead of sending a request Binance would punish."""
        with self._lock:
            now = self._clock()
            if now < self._backoff_until:
                raise BinanceError(
                    f"{endpoint}: not sent, backing off after a rate-limit answer",
                    kind=BACKING_OFF,
                    retry_after=self._backoff_until - now,
                )
            window = self._current_window()
            used = (self._weight_used or 0) if window == self._weight_window else 0
            budget = self.weight_share * self._weight_limit
            if used + weight > budget:
                raise BinanceError(
                    f"{endpoint}: not sent, weight budget spent "
                    f"({used} + {weight} > {budget:.0f} of {self._weight_limit} this minute)",
                    kind=BUDGET,
                    retry_after=60.0 - now % 60.0,
                )
            # Reserve the weight now so concurrent requests see it before the
            # header arrives; the header then replaces the estimate.
            self._weight_window = window
            self._weight_used = used + weight

    def observe(self, endpoint: str, code: str, headers: Any) -> None:
        """Count one answer by endpoint and code, and take its used-weight header."""
        with self._lock:
            self._requests[(endpoint, code)] += 1
            used = used_weight(headers)
            if used is not None:
                window = self._current_window()
                if window != self._weight_window:
                    self._weight_window, self._weight_used = window, used
                else:
                    self._weight_used = max(used, self._weight_used or 0)

    def back_off(self, seconds: float) -> float:
        """Send nothing for `seconds` from now (or longer, if already so); the end time."""
        with self._lock:
            self._backoff_until = max(self._backoff_until, self._clock() + seconds)
            return self._backoff_until
