"""The REST client's own accounting: requests by outcome, request weight, back-off."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client.core import Metric

from binance_exporter.binance.rest import ApiStats
from binance_exporter.metrics.families import FamilyCollector, counter, gauge

REQUESTS = counter(
    "binance_api_requests",
    "Requests sent to the Binance REST API, by endpoint and HTTP status "
    "('error' when no status was received).",
    "endpoint",
    "code",
)
WEIGHT_USED = gauge(
    "binance_api_request_weight_used",
    "Request weight this IP used in the current minute (X-MBX-USED-WEIGHT-1M).",
)
WEIGHT_LIMIT = gauge(
    "binance_api_request_weight_limit",
    "REQUEST_WEIGHT limit per minute (exchangeInfo rateLimits).",
)
BACKOFF_UNTIL = gauge(
    "binance_api_backoff_until_timestamp_seconds",
    "Unix time until which no request is sent after a 429/418 (0: never backed off).",
)


class ApiCollector(FamilyCollector):
    """The client's counters as they are at scrape time (they move between snapshots).

    The used weight is absent until a response carried the header::

        binance_api_requests_total{code="200",endpoint="/api/v3/depth"} 5.0
        binance_api_requests_total{code="error",endpoint="/api/v3/depth"} 1.0
        binance_api_request_weight_used 12.0
        binance_api_request_weight_limit 6000.0
        binance_api_backoff_until_timestamp_seconds 0.0
    """

    families = (REQUESTS, WEIGHT_USED, WEIGHT_LIMIT, BACKOFF_UNTIL)

    def __init__(self, stats: Callable[[], ApiStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        requests = REQUESTS.new()
        for (endpoint, code), count in sorted(stats.requests.items()):
            requests.add_metric([endpoint, code], count)
        yield requests
        if stats.weight_used is not None:
            yield WEIGHT_USED.single(stats.weight_used)
        yield WEIGHT_LIMIT.single(stats.weight_limit)
        yield BACKOFF_UNTIL.single(stats.backoff_until)
