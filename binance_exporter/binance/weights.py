"""Binance's endpoints and what each request costs in request weight.

Weights from Binance's REST documentation; the exporter plans its schedule and
checks its budget with them.
"""

from __future__ import annotations

DEFAULT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute until exchangeInfo says otherwise
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TICKER_24H = "/api/v3/ticker/24hr"
DEPTH = "/api/v3/depth"
BOOK_TICKER = "/api/v3/ticker/bookTicker"
AGG_TRADES = "/api/v3/aggTrades"

# Request weights from Binance's REST documentation.
EXCHANGE_INFO_WEIGHT = 20
TICKER_24H_ALL_WEIGHT = 80
BOOK_TICKER_MULTI_WEIGHT = 4
AGG_TRADES_WEIGHT = 4
MAX_DEPTH_LIMIT = 5000


def depth_weight(limit: int) -> int:
    """Weight of `GET /api/v3/depth` for a requested `limit`."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def depth_limit_for(depth_levels: int) -> int:
    """The `limit` to request so the answer covers `depth_levels` levels.

    Binance accepts any limit up to 5000 and charges weight by the limit asked
    for, so asking for exactly the levels needed is never dearer than any other
    limit that covers them.
    """
    return max(1, min(depth_levels, MAX_DEPTH_LIMIT))


# The top of each depth weight tier: asking for fewer levels costs as much.
DEPTH_TIERS = (100, 500, 1000, MAX_DEPTH_LIMIT)


def snapshot_limit_for(levels: int) -> int:
    """The cheapest `limit` tier that covers `levels`, asked for whole.

    Binance charges a depth request by the tier of its limit (1-100, 101-500,
    501-1000, 1001-5000), so within the tier the extra levels are free: a
    local book started from them can lose levels at the top for longer before
    it must be started again.
    """
    return next((top for top in DEPTH_TIERS if levels <= top), MAX_DEPTH_LIMIT)
