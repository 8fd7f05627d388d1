"""The one place that talks to Binance's REST API.

binance-connector (`binance.spot.Spot`) does the HTTP, but it has no timeout by
default, never retries, never honours `Retry-After`, and fails in five different
ways (ClientError, ServerError, bare `requests` exceptions, KeyError on a 4xx
body without `code`, a plain string for a non-JSON 2xx body). This module adds
what an unattended exporter needs and gives callers one error type:

* one deadline and one size cap per request, redirects refused, and every
  HTTP error status read from the status line whatever the body
  (`session.BoundedSession`, which each `Spot` sends through);
* one `Spot` (one `requests.Session`) per thread, since a Session is not
  documented as thread-safe;
* request-weight accounting from `X-MBX-USED-WEIGHT-1M`, and a budget so the
  exporter never plans more than a share of the limit, with a floor under the
  limit so a bogus announcement cannot lock the exporter out;
* a back-off gate: after a 429 or 418 no request leaves until `Retry-After` has
  passed (60 s when the header is missing or unreadable; at most 1 hour for a
  429 and 3 days, Binance's longest ban, for a 418);
* counters of requests by endpoint and outcome for the exporter's own metrics.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import requests
from binance.error import ClientError, ServerError
from binance.spot import Spot

from binance_exporter.binance.session import (
    MAX_ANSWER_BYTES,
    AnswerTooLarge,
    BoundedSession,
    DeadlineExceeded,
    ErrorAnswer,
    RedirectRefused,
)
from binance_exporter.binance.weights import (
    AGG_TRADES,
    AGG_TRADES_WEIGHT,
    BOOK_TICKER,
    BOOK_TICKER_MULTI_WEIGHT,
    DEFAULT_WEIGHT_LIMIT,
    DEPTH,
    EXCHANGE_INFO,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H,
    TICKER_24H_ALL_WEIGHT,
    depth_weight,
)

LOG = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_BACKOFF = 60.0  # seconds to wait after a 429/418 without a usable Retry-After
MIN_RATE_LIMIT_BACKOFF = 1.0  # a 429/418 never lets the next request leave at once
MAX_RATE_LIMITED_BACKOFF = 3600.0  # a 429's wait, at most: one hour
MAX_BANNED_BACKOFF = 3 * 86400.0  # a 418's wait, at most: Binance's longest ban, three days
# The part of a refresh that does not depend on the settings: exchangeInfo
# (where a corrected limit comes from), the 24 h tickers and one bookTicker.
MIN_REFRESH_WEIGHT = EXCHANGE_INFO_WEIGHT + TICKER_24H_ALL_WEIGHT + BOOK_TICKER_MULTI_WEIGHT
INVALID_SYMBOL = -1121


# Kinds of failure, so callers can decide without knowing binance-connector.
TRANSPORT = "transport"  # connection refused, reset, timeout, truncated body
SERVER = "server"  # HTTP 5xx: Binance's side, outcome unknown
CLIENT = "client"  # other HTTP 4xx, e.g. -1121 invalid symbol
RATE_LIMITED = "rate_limited"  # HTTP 429
BANNED = "banned"  # HTTP 418
BAD_RESPONSE = "bad_response"  # a body that is not what the API documents
BACKING_OFF = "backing_off"  # refused locally: waiting out a 429/418
BUDGET = "budget"  # refused locally: the weight budget for this minute is spent


class BinanceError(Exception):
    """Any failure to get an answer from Binance.

    `retry_after` (seconds) is set when waiting is the right response: after a
    429/418, or when the local weight budget or back-off refused the request.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def invalid_symbol(self) -> bool:
        """True for Binance's `-1121 Invalid symbol` (e.g. a delisted symbol)."""
        return self.code == INVALID_SYMBOL

    @property
    def local(self) -> bool:
        """True when the request was never sent (back-off or budget)."""
        return self.kind in (BACKING_OFF, BUDGET)


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


def _header(headers: Any, name: str) -> object:
    """One header's value from whatever mapping the connector handed over (or None)."""
    if headers is None:
        return None
    try:
        return headers.get(name)
    except AttributeError:
        return None


def _used_weight(headers: Any) -> int | None:
    if headers is None:
        return None
    for name, value in headers.items():
        if name.lower() == "x-mbx-used-weight-1m":
            text = str(value).strip()
            # A plain count of at most 18 digits: int() would also take "1_0",
            # and a 4,000-digit header would cost a long conversion.
            return int(text) if text.isdigit() and len(text) <= 18 else None
    return None


class BinanceClient:
    """Thread-safe access to the market-data endpoints the exporter uses.

    `timeout` bounds each request as a whole (connect, headers and body) and
    `max_answer_bytes` its answer. `refresh_weight` is the weight the exporter
    must be able to spend in one minute to refresh at all; it sets the floor
    under the weight limit (see `set_weight_limit`).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        weight_share: float = 0.5,
        clock: Callable[[], float] = time.time,
        spot_factory: Callable[..., Any] = Spot,
        *,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        refresh_weight: int = MIN_REFRESH_WEIGHT,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.weight_share = weight_share
        self.max_answer_bytes = max_answer_bytes
        self.weight_floor = math.ceil(refresh_weight / weight_share)
        self._clock = clock
        self._spot_factory = spot_factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._weight_used: int | None = None  # last known use in the current window
        self._weight_window = -1  # the minute `_weight_used` belongs to
        self._weight_limit = DEFAULT_WEIGHT_LIMIT
        self._backoff_until = 0.0

    # Public endpoints -------------------------------------------------------

    def exchange_info(self) -> Any:
        """`GET /api/v3/exchangeInfo` (weight 20)."""
        return self._call(EXCHANGE_INFO, EXCHANGE_INFO_WEIGHT, lambda spot: spot.exchange_info())

    def tickers_24h(self) -> Any:
        """All symbols' 24 h statistics, MINI form (weight 80, a fraction of FULL's size)."""
        return self._call(
            TICKER_24H, TICKER_24H_ALL_WEIGHT, lambda spot: spot.ticker_24hr(type="MINI")
        )

    def depth(self, symbol: str, limit: int) -> Any:
        """`GET /api/v3/depth` for one symbol (weight by `limit`)."""
        return self._call(DEPTH, depth_weight(limit), lambda spot: spot.depth(symbol, limit=limit))

    def book_tickers(self, symbols: list[str] | None) -> Any:
        """Best bid/ask for `symbols` in one request, or for all symbols (weight 4 either way)."""
        wanted = list(symbols) if symbols else None
        return self._call(
            BOOK_TICKER, BOOK_TICKER_MULTI_WEIGHT, lambda spot: spot.book_ticker(symbols=wanted)
        )

    def agg_trades(self, symbol: str, **params: int) -> Any:
        """`GET /api/v3/aggTrades` (weight 4): `limit`, and `fromId` to page by id."""
        return self._call(
            AGG_TRADES, AGG_TRADES_WEIGHT, lambda spot: spot.agg_trades(symbol, **params)
        )

    # State for the scheduler and the metrics -------------------------------

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

    # Internals ---------------------------------------------------------------

    def _spot(self) -> Any:
        spot = getattr(self._local, "spot", None)
        if spot is None:
            spot = self._spot_factory(
                base_url=self.base_url, timeout=self.timeout, show_limit_usage=True
            )
            plain = getattr(spot, "session", None)
            if isinstance(plain, requests.Session) and not isinstance(plain, BoundedSession):
                # The connector sends through `spot.session`; keep its headers.
                bounded = BoundedSession(self.timeout, self.max_answer_bytes)
                bounded.headers.update(plain.headers)
                plain.close()
                spot.session = bounded
            self._local.spot = spot
        return spot

    def _current_window(self) -> int:
        # Binance does not document whether the minute is fixed or sliding; the
        # header resets at wall-clock minute boundaries in practice, so the
        # budget treats each UTC minute as one window.
        return int(self._clock() // 60)

    def _admit(self, endpoint: str, weight: int) -> None:
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

    def _observe(self, endpoint: str, code: str, headers: Any) -> None:
        with self._lock:
            self._requests[(endpoint, code)] += 1
            used = _used_weight(headers)
            if used is not None:
                window = self._current_window()
                if window != self._weight_window:
                    self._weight_window, self._weight_used = window, used
                else:
                    self._weight_used = max(used, self._weight_used or 0)

    def _back_off(self, seconds: float) -> float:
        with self._lock:
            self._backoff_until = max(self._backoff_until, self._clock() + seconds)
            return self._backoff_until

    def _call(self, endpoint: str, weight: int, request: Callable[[Any], Any]) -> Any:
        self._admit(endpoint, weight)
        try:
            result = request(self._spot())
        except ErrorAnswer as exc:
            self._observe(endpoint, str(exc.status), exc.headers)
            raise self._status_error(
                endpoint, exc.status, exc.code, exc.message, exc.headers
            ) from None
        except ClientError as exc:
            self._observe(endpoint, str(exc.status_code), exc.header)
            raise self._status_error(
                endpoint, exc.status_code, exc.error_code, exc.error_message, exc.header
            ) from None
        except ServerError as exc:
            self._observe(endpoint, str(exc.status_code), None)
            raise self._status_error(endpoint, exc.status_code, None, exc.message, None) from None
        except RedirectRefused as exc:
            self._observe(endpoint, str(exc.status), None)
            raise BinanceError(f"{endpoint}: {exc}", kind=BAD_RESPONSE, status=exc.status) from None
        except AnswerTooLarge as exc:
            self._observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: {exc}", kind=BAD_RESPONSE) from None
        except DeadlineExceeded as exc:
            self._observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: {exc}", kind=TRANSPORT) from None
        except requests.RequestException as exc:
            self._observe(endpoint, "error", None)
            raise BinanceError(
                f"{endpoint}: {type(exc).__name__}: {_short(exc)}", kind=TRANSPORT
            ) from None
        except RecursionError:
            # json gives up on arrays nested thousands deep with RecursionError,
            # which is not a ValueError.
            self._observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: answer nested too deeply", kind=BAD_RESPONSE) from None
        except (KeyError, ValueError, TypeError) as exc:
            # binance-connector raises KeyError('code') on a 4xx JSON body without
            # Binance's error fields; the HTTP status is lost on the way.
            self._observe(endpoint, "error", None)
            raise BinanceError(
                f"{endpoint}: unreadable error answer ({type(exc).__name__}: {exc})",
                kind=BAD_RESPONSE,
            ) from None
        if not isinstance(result, dict) or "data" not in result:
            self._observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: unexpected answer shape", kind=BAD_RESPONSE)
        self._observe(endpoint, "200", result.get("limit_usage"))
        data = result["data"]
        if isinstance(data, str):
            raise BinanceError(f"{endpoint}: answer is not JSON: {data[:60]!r}", kind=BAD_RESPONSE)
        return data

    def _status_error(
        self, endpoint: str, status: int, code: int | None, message: object, headers: Any
    ) -> BinanceError:
        """The BinanceError for an HTTP error status; a 429/418 also closes the gate."""
        if status in (418, 429):
            return self._rate_limited(endpoint, status, code, message, headers)
        if status >= 500:
            return BinanceError(f"{endpoint}: HTTP {status} from Binance", kind=SERVER,
                                status=status)
        return BinanceError(
            f"{endpoint}: HTTP {status} code {code}: {_clip(message)}",
            kind=CLIENT, status=status, code=code,
        )

    def _rate_limited(
        self, endpoint: str, status: int, code: int | None, message: object, headers: Any
    ) -> BinanceError:
        raw = _header(headers, "Retry-After")
        wait = rate_limit_wait(status, raw)
        until = self._back_off(wait)
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        if status == 418:
            LOG.error(
                "Binance has BANNED this IP (HTTP 418) for %s; no request will be sent "
                "for %.0f s, until %s (Retry-After %s). Lower the request rate before "
                "restarting.", endpoint, wait, ends, _clip(raw, 40),
            )
        else:
            LOG.warning(
                "Binance rate-limited %s (HTTP 429); no request will be sent for %.0f s, "
                "until %s (Retry-After %s)", endpoint, wait, ends, _clip(raw, 40),
            )
        return BinanceError(
            f"{endpoint}: HTTP {status} {_clip(message)}",
            kind=BANNED if status == 418 else RATE_LIMITED, status=status, code=code,
            retry_after=until - self._clock(),
        )


def _clip(text: object, limit: int = 160) -> str:
    """One line of at most `limit` characters: error bodies can be whole HTML pages."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _short(exc: BaseException) -> str:
    """First line of an exception's text, trimmed: urllib3 messages are long."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:160]
