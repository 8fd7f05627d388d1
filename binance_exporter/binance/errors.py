"""One error type for every way a request to Binance can fail.

Callers decide by `kind` (and `invalid_symbol`, `local`) without knowing how
binance-connector or requests reported the failure.
"""

from __future__ import annotations

INVALID_SYMBOL = -1121


# Kinds of failure, so callers can decide without knowing binance-connector.
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


def clip(text: object, limit: int = 160) -> str:
    """One line of at most `limit` characters: error bodies can be whole HTML pages."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
