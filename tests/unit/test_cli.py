"""Option rules: every bad value is one line and exit 2, before anything starts."""

from __future__ import annotations

import unittest
from decimal import Decimal

from click.testing import CliRunner

from binance_exporter import report
from binance_exporter.cli import main

FLOAT_OPTIONS = ("--update-interval", "--refresh-interval", "--analytics-interval", "--timeout",
                 "--weight-share")


class OptionRulesTest(unittest.TestCase):
    """Values click would accept as floats but the exporter cannot use."""

    def refused(self, *args: str) -> str:
        """Run with `args`; assert exit 2 with a usage error, and return the message."""
        result = CliRunner().invoke(main, list(args))
        self.assertEqual(result.exit_code, 2, result.output)
        self.assertNotIn("Traceback", result.output)
        return result.output

    def test_nan_inf_and_out_of_range_floats(self):
        for option in FLOAT_OPTIONS:
            for value in ("nan", "inf", "-inf", "0", "-1", "1e999", "abc"):
                with self.subTest(option=option, value=value):
                    self.assertIn(option, self.refused(option, value))
        self.assertIn("at most 1", self.refused("--weight-share", "1.5"))
        self.assertIn("at most 86400", self.refused("--timeout", "1e9"))

    def test_number_lists(self):
        for option, value in (("--depth-bands", "1e999999"), ("--depth-bands", "2"),
                              ("--depth-bands", "nan"), ("--fill-notionals", "inf"),
                              ("--fill-notionals", "1e13"), ("--fill-notionals", "-5"),
                              ("--fill-notionals", "x")):
            with self.subTest(option=option, value=value):
                self.assertIn(option, self.refused(option, value))

    def test_urls(self):
        for value in ("http://[::1", "ftp://host", "http://", "https://host:99999",
                      "https://host:0", "https://host:port", "api.binance.com"):
            with self.subTest(value=value):
                self.assertIn("--base-url", self.refused("--base-url", value))
        for value in ("http://host", "wss://", "wss://host:70000"):
            with self.subTest(value=value):
                self.assertIn("--stream-url", self.refused("--stream-url", value))

    def test_record_needs_stream_mode(self):
        self.assertIn("--record needs --source stream", self.refused("--record", "/tmp/x.gz"))


class ReportTest(unittest.TestCase):
    """The text report never fails on a number Binance's ranges allow."""

    def test_eight_decimals_of_a_huge_value(self):
        huge = Decimal("99999999999999999999") * Decimal("99999999999999999999")
        self.assertTrue(report.plain(huge).startswith("99999999999999999998"))


if __name__ == "__main__":
    unittest.main()
