"""ExporterCollector: build info, binance_up, each job's outcome and skipped values."""

import unittest

from prometheus_client import CollectorRegistry

from binance_exporter import __version__
from binance_exporter.metrics.exporter import ExporterCollector
from binance_exporter.model import JobState, Snapshot
from tests.support import registry_with


def registry_of(snapshot: Snapshot) -> CollectorRegistry:
    """A registry holding only an ExporterCollector that reads `snapshot`."""
    return registry_with(ExporterCollector(lambda: snapshot))


class ExporterCollectorTest(unittest.TestCase):
    """What the exporter's health families show for hand-built snapshots."""

    def test_build_info_is_one_with_the_version(self):
        registry = registry_of(Snapshot())
        self.assertEqual(
            registry.get_sample_value("binance_exporter_build_info", {"version": __version__}), 1
        )

    def test_a_fresh_exporter_is_down_with_no_timestamps(self):
        registry = registry_of(Snapshot())
        self.assertEqual(registry.get_sample_value("binance_up"), 0)
        self.assertEqual(
            registry.get_sample_value("binance_refresh_success", {"job": "rankings"}), 0
        )
        self.assertIsNone(registry.get_sample_value(
            "binance_last_refresh_timestamp_seconds", {"job": "rankings"}))
        self.assertIsNone(
            registry.get_sample_value("binance_refresh_duration_seconds", {"job": "rankings"})
        )

    def test_thread_restarts_and_stuck_jobs(self):
        snapshot = Snapshot(jobs={"rankings": JobState(success=True, last_success=1.0),
                                  "spreads": JobState(error="hung", stuck=True)},
                            thread_restarts={"scheduler": 2, "publisher": 0})
        registry = registry_of(snapshot)
        self.assertEqual(registry.get_sample_value("binance_exporter_thread_restarts_total",
                                                   {"thread": "scheduler"}), 2)
        self.assertEqual(registry.get_sample_value("binance_exporter_thread_restarts_total",
                                                   {"thread": "publisher"}), 0)
        self.assertEqual(registry.get_sample_value("binance_refresh_stuck", {"job": "spreads"}), 1)
        self.assertEqual(registry.get_sample_value("binance_refresh_stuck", {"job": "rankings"}),
                         0)
        self.assertFalse(snapshot.ready)

    def test_each_job_shows_its_latest_run(self):
        snapshot = Snapshot(jobs={
            "rankings": JobState(success=True, last_success=1700000000.5, duration=0.25),
            "spreads": JobState(success=False, last_success=1699999990.0, duration=1.5),
        })
        registry = registry_of(snapshot)
        self.assertEqual(registry.get_sample_value("binance_up"), 0)
        self.assertEqual(
            registry.get_sample_value("binance_refresh_success", {"job": "rankings"}), 1
        )
        self.assertEqual(
            registry.get_sample_value("binance_refresh_success", {"job": "spreads"}), 0
        )
        self.assertEqual(registry.get_sample_value(
            "binance_last_refresh_timestamp_seconds", {"job": "spreads"}), 1699999990.0)
        self.assertEqual(
            registry.get_sample_value("binance_refresh_duration_seconds", {"job": "rankings"}), 0.25
        )

    def test_up_when_every_job_succeeded(self):
        snapshot = Snapshot(jobs={job: JobState(success=True) for job in ("rankings", "spreads")})
        self.assertEqual(registry_of(snapshot).get_sample_value("binance_up"), 1)

    def test_skipped_values_are_a_counter_by_job_and_reason(self):
        registry = registry_of(Snapshot(skipped={("spreads", "crossed"): 2}))
        self.assertEqual(registry.get_sample_value(
            "binance_skipped_values_total", {"job": "spreads", "reason": "crossed"}), 2)


if __name__ == "__main__":
    unittest.main()
