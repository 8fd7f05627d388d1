"""ApiCollector: the REST client's requests, request weight and back-off."""

import unittest

from prometheus_client import CollectorRegistry

from binance_exporter.binance.rest import ApiStats
from binance_exporter.metrics.api import ApiCollector
from tests.support import registry_with


def registry_of(stats: ApiStats) -> CollectorRegistry:
    """A registry holding only an ApiCollector that reads `stats`."""
    return registry_with(ApiCollector(lambda: stats))


class ApiCollectorTest(unittest.TestCase):
    """What the client's accounting looks like as metrics."""

    def test_requests_by_endpoint_and_code(self):
        requests = {("/api/v3/depth", "200"): 5, ("/api/v3/depth", "error"): 1}
        stats = ApiStats(requests, 12, 6000, 0.0)
        registry = registry_of(stats)
        self.assertEqual(registry.get_sample_value(
            "binance_api_requests_total", {"endpoint": "/api/v3/depth", "code": "200"}), 5)
        self.assertEqual(registry.get_sample_value(
            "binance_api_requests_total", {"endpoint": "/api/v3/depth", "code": "error"}), 1)

    def test_weight_and_backoff(self):
        registry = registry_of(ApiStats({}, 12, 6000, 1700000060.0))
        self.assertEqual(registry.get_sample_value("binance_api_request_weight_used"), 12)
        self.assertEqual(registry.get_sample_value("binance_api_request_weight_limit"), 6000)
        self.assertEqual(
            registry.get_sample_value("binance_api_backoff_until_timestamp_seconds"), 1700000060.0
        )

    def test_no_used_weight_before_a_response_carried_it(self):
        registry = registry_of(ApiStats({}, None, 6000, 0.0))
        self.assertIsNone(registry.get_sample_value("binance_api_request_weight_used"))
        names = [family.name for family in registry.collect()]
        self.assertNotIn("binance_api_request_weight_used", names)

    def test_every_collect_reads_the_stats_again(self):
        current = [ApiStats({}, 1, 6000, 0.0)]
        registry = CollectorRegistry()
        registry.register(ApiCollector(lambda: current[0]))
        current[0] = ApiStats({}, 7, 6000, 0.0)
        self.assertEqual(registry.get_sample_value("binance_api_request_weight_used"), 7)


if __name__ == "__main__":
    unittest.main()
