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
import threading
import time
from typing import Any, Callable

import requests
from binance.error import ClientError, ServerError
from binance.spot import Spot

from binance_exporter.binance.budget import (
    DEFAULT_RATE_LIMIT_BACKOFF,
    MAX_BANNED_BACKOFF,
    MAX_RATE_LIMITED_BACKOFF,
    MIN_RATE_LIMIT_BACKOFF,
    MIN_REFRESH_WEIGHT,
    ApiStats,
    WeightBudget,
    rate_limit_wait,
)
from binance_exporter.binance.errors import (
    BACKING_OFF,
    BAD_RESPONSE,
    BANNED,
    BUDGET,
    CLIENT,
    INVALID_SYMBOL,
    RATE_LIMITED,
    SERVER,
    TRANSPORT,
    BinanceError,
    clip,
)
from binance_exporter.binance.payloads import decode_exchange_info
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
    DEPTH,
    EXCHANGE_INFO,
    EXCHANGE_INFO_WEIGHT,
    TICKER_24H,
    TICKER_24H_ALL_WEIGHT,
    depth_weight,
)

LOG = logging.getLogger(__name__)
# What callers of this module use, wherever it is defined.
__all__ = [
    "BACKING_OFF", "BAD_RESPONSE", "BANNED", "BUDGET", "CLIENT", "DEFAULT_RATE_LIMIT_BACKOFF",
    "INVALID_SYMBOL", "MAX_BANNED_BACKOFF", "MAX_RATE_LIMITED_BACKOFF", "MIN_RATE_LIMIT_BACKOFF",
    "MIN_REFRESH_WEIGHT", "RATE_LIMITED", "SERVER", "TRANSPORT", "ApiStats", "BinanceClient",
    "BinanceError", "rate_limit_wait",
]


def _header(headers: Any, name: str) -> object:
    """One header's value from whatever mapping the connector handed over (or None)."""
    if headers is None:
        return None
    try:
        return headers.get(name)
    except AttributeError:
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
        self.max_answer_bytes = max_answer_bytes
        self.budget = WeightBudget(weight_share, refresh_weight, clock)
        self._clock = clock
        self._spot_factory = spot_factory
        self._local = threading.local()

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

    # State for the scheduler and the metrics (the budget's) -----------------

    @property
    def weight_floor(self) -> int:
        """The least weight limit budgeted with, whatever exchangeInfo announces."""
        return self.budget.weight_floor

    def set_weight_limit(self, limit: int | None) -> None:
        """Adopt the limit exchangeInfo announced (see `WeightBudget.set_weight_limit`)."""
        self.budget.set_weight_limit(limit)

    def blocked_for(self) -> float:
        """Seconds until a request may leave again after a 429/418 (0 when free)."""
        return self.budget.blocked_for()

    def stats(self) -> ApiStats:
        """A consistent copy of the request counters and weight state."""
        return self.budget.stats()

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
                bounded = BoundedSession(self.timeout, self.max_answer_bytes,
                                         decoders={EXCHANGE_INFO: decode_exchange_info})
                bounded.headers.update(plain.headers)
                plain.close()
                spot.session = bounded
            self._local.spot = spot
        return spot


    def _call(self, endpoint: str, weight: int, request: Callable[[Any], Any]) -> Any:
        self.budget.admit(endpoint, weight)
        try:
            result = request(self._spot())
        except ErrorAnswer as exc:
            self.budget.observe(endpoint, str(exc.status), exc.headers)
            raise self._status_error(
                endpoint, exc.status, exc.code, exc.message, exc.headers
            ) from None
        except ClientError as exc:
            self.budget.observe(endpoint, str(exc.status_code), exc.header)
            raise self._status_error(
                endpoint, exc.status_code, exc.error_code, exc.error_message, exc.header
            ) from None
        except ServerError as exc:
            self.budget.observe(endpoint, str(exc.status_code), None)
            raise self._status_error(endpoint, exc.status_code, None, exc.message, None) from None
        except RedirectRefused as exc:
            self.budget.observe(endpoint, str(exc.status), None)
            raise BinanceError(f"{endpoint}: {exc}", kind=BAD_RESPONSE, status=exc.status) from None
        except AnswerTooLarge as exc:
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: {exc}", kind=BAD_RESPONSE) from None
        except DeadlineExceeded as exc:
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: {exc}", kind=TRANSPORT) from None
        except requests.RequestException as exc:
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(
                f"{endpoint}: {type(exc).__name__}: {_short(exc)}", kind=TRANSPORT
            ) from None
        except RecursionError:
            # json gives up on arrays nested thousands deep with RecursionError,
            # which is not a ValueError.
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: answer nested too deeply", kind=BAD_RESPONSE) from None
        except (KeyError, ValueError, TypeError) as exc:
            # binance-connector raises KeyError('code') on a 4xx JSON body without
            # Binance's error fields; the HTTP status is lost on the way.
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(
                f"{endpoint}: unreadable error answer ({type(exc).__name__}: {exc})",
                kind=BAD_RESPONSE,
            ) from None
        if not isinstance(result, dict) or "data" not in result:
            self.budget.observe(endpoint, "error", None)
            raise BinanceError(f"{endpoint}: unexpected answer shape", kind=BAD_RESPONSE)
        self.budget.observe(endpoint, "200", result.get("limit_usage"))
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
            f"{endpoint}: HTTP {status} code {code}: {clip(message)}",
            kind=CLIENT, status=status, code=code,
        )

    def _rate_limited(
        self, endpoint: str, status: int, code: int | None, message: object, headers: Any
    ) -> BinanceError:
        raw = _header(headers, "Retry-After")
        wait = rate_limit_wait(status, raw)
        until = self.budget.back_off(wait)
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        if status == 418:
            LOG.error(
                "Binance has BANNED this IP (HTTP 418) for %s; no request will be sent "
                "for %.0f s, until %s (Retry-After %s). Lower the request rate before "
                "restarting.", endpoint, wait, ends, clip(raw, 40),
            )
        else:
            LOG.warning(
                "Binance rate-limited %s (HTTP 429); no request will be sent for %.0f s, "
                "until %s (Retry-After %s)", endpoint, wait, ends, clip(raw, 40),
            )
        return BinanceError(
            f"{endpoint}: HTTP {status} {clip(message)}",
            kind=BANNED if status == 418 else RATE_LIMITED, status=status, code=code,
            retry_after=until - self._clock(),
        )


def _short(exc: BaseException) -> str:
    """First line of an exception's text, trimmed: urllib3 messages are long."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:160]
