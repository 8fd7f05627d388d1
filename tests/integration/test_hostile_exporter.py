"""The exporter process behind a hostile upstream: down within a deadline, then back.

The hostile server sits between the exporter and the fake Binance. While it
relays, the exporter is up; for each fault (a dripping answer, a huge one, a
redirect, a body out of range, odd 429s) the exporter must stay alive, drop
`binance_up` to 0 within a deadline, say so in one line, keep its threads and
file descriptors bounded, and recover once the upstream relays again.
"""

from __future__ import annotations

import time
import unittest
from pathlib import Path

from fake_binance.market import Market
from fake_binance.server import FakeBinance
from tests import hostile
from tests.support import Exporter, sample, wait_until

# Spreads every second; rankings rarely, so each fault is met by a spreads run.
FAST = ("--no-analytics", "--update-interval", "1", "--refresh-interval", "60")


def counts(pid: int) -> tuple[int, int, float]:
    """Threads, open file descriptors and resident memory (MB) of process `pid`."""
    proc = Path(f"/proc/{pid}")
    rss_pages = int((proc / "statm").read_text().split()[1])
    return (len(list((proc / "task").iterdir())), len(list((proc / "fd").iterdir())),
            rss_pages * 4096 / 1e6)


class HostileUpstreamTest(unittest.TestCase):
    """Each fault: binance_up 0 within a deadline, one clear line, bounded, then recovery."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeBinance(Market(seed=7)).start()
        cls.addClassCleanup(cls.fake.stop)
        cls.upstream = hostile.HostileServer(hostile.relay(cls.fake.url), lifetime=600).start()
        cls.addClassCleanup(cls.upstream.stop)
        cls.exporter = Exporter(cls.upstream.url, *FAST)
        cls.addClassCleanup(cls.exporter.close)
        cls.exporter.wait_ready(timeout=20)

    def setUp(self) -> None:
        self.upstream.behaviour = hostile.relay(self.fake.url)
        wait_until(lambda: sample(self.exporter.scrape(), "binance_up") == 1, timeout=20)

    def fault(self, behaviour: hostile.Behaviour, line: str, deadline: float = 10.0) -> None:
        """Apply `behaviour`; assert the exporter goes down, says `line`, and comes back."""
        before = counts(self.exporter.process.pid)
        logged = len(self.exporter.output()[1])
        self.upstream.behaviour = behaviour
        started = time.monotonic()
        wait_until(lambda: sample(self.exporter.scrape(), "binance_up") == 0, timeout=deadline)
        self.assertLess(time.monotonic() - started, deadline)
        wait_until(lambda: line in self.exporter.output()[1][logged:], timeout=deadline)
        self.assertIsNone(self.exporter.process.poll(), "the exporter exited")
        threads, fds, rss = counts(self.exporter.process.pid)
        self.assertLessEqual(threads, before[0] + 4)
        self.assertLessEqual(fds, before[1] + 8)
        self.assertLess(rss, before[2] + 100)  # no answer is held past its cap
        self.upstream.behaviour = hostile.relay(self.fake.url)
        wait_until(lambda: sample(self.exporter.scrape(), "binance_up") == 1, timeout=30)

    def test_a_dripping_body(self):
        # --timeout 2 bounds the whole request, whatever arrives in between.
        self.fault(hostile.drip_body(0.2), "deadline")

    def test_dripping_headers(self):
        self.fault(hostile.drip_head(0.2), "deadline")

    def test_a_huge_answer(self):
        self.fault(hostile.huge_body(200 * 1024 * 1024), "spreads refresh failed")

    def test_a_redirect_to_another_host(self):
        self.fault(hostile.redirect("http://elsewhere.invalid/api"), "elsewhere.invalid")

    def test_numbers_out_of_range(self):
        quote = {"symbol": "BTCUSDT", "bidPrice": "1e400", "bidQty": "1", "askPrice": "2",
                 "askQty": "-1"}
        self.fault(hostile.answer([quote]), "spreads refresh failed")

    def test_a_429_without_a_code_and_with_a_short_retry_after(self):
        self.fault(hostile.rate_limited(429, "2", code=None), "429")


if __name__ == "__main__":
    unittest.main()
