"""Soak: the exporter for N minutes against a ticking fake Binance with random faults.

`python -m tests.soak --minutes N` (`make soak`; not part of the default suite).

Phases: warm-up (no faults; the RSS baseline is taken at its end), faults
(a seeded random mix of 5xx, reset, truncate, slow, non_json, 429 with a
short Retry-After and pause/resume from the fake, and from a hostile relay
in front of it: answers dripped byte by byte, answers over the size cap,
redirects and numbers out of range, while the market ticks), recovery (faults
cleared, Binance reachable, market frozen: every gauge must equal what the
fake answers now within two refresh cycles), then quiet until N minutes are
up. Several threads scrape /metrics throughout.

It asserts that the process never exits, every scrape answers 200 with a
parsable page, no scrape takes over 100 ms, RSS grows by at most 10 MB and
the thread and file-descriptor counts by at most a few after warm-up, the
weight the fake charged per window stays within the exporter's share of the
limit, and the gauges recover in time. It prints a table of its
figures and exits 1 on any failed assertion.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import multiprocessing
import queue
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fake_binance.market import Market
from fake_binance.server import FakeBinance, RequestRecord
from tests import hostile
from tests.support import Exporter, Samples, http_get, parse_samples, sample
from tests.integration.test_end_to_end import expected_answers

PATHS = (None, "/api/v3/exchangeInfo", "/api/v3/ticker/24hr", "/api/v3/depth",
         "/api/v3/ticker/bookTicker", "/api/v3/ticker/bookTicker")
KINDS = ("5xx", "reset", "truncate", "slow", "non_json", "429", "pause",
         "drip", "oversized", "redirect", "out_of_range")
HOSTILE_KINDS = {  # faults of the relay in front of the fake, for up to 2 s at a time
    "drip": lambda: hostile.drip_body(0.05),
    "oversized": lambda: hostile.huge_body(64 * 1024 * 1024),  # refused by its length
    "redirect": lambda: hostile.redirect("http://elsewhere.invalid/api/v3"),
    "out_of_range": lambda: hostile.answer([{"symbol": "BTCUSDT", "bidPrice": "1e400",
                                             "bidQty": "1", "askPrice": "2", "askQty": "-1"}]),
}
MAX_THREAD_GROWTH = 4
MAX_FD_GROWTH = 8
MAX_SCRAPE_SECONDS = 0.1
MAX_RSS_GROWTH_KB = 10 * 1024
TIMEOUT = 1.0  # the exporter's --timeout; "slow" faults last longer
DEPTH_LEVELS = 50
WEIGHT_SHARE = 0.5


def rss_kb(pid: int) -> int:
    """Resident set size of a process in kB, from /proc/PID/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def handles(pid: int) -> tuple[int, int]:
    """Threads and open file descriptors of a process, from /proc/PID."""
    return (len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")))


def scrape_until(url: str, threads: int, pause: float, stop: Any, results: Any) -> None:
    """Scrape `url`/metrics from `threads` threads until `stop` is set; put the figures.

    Runs in a process of its own, so that the fake Binance and the fault
    injector (threads of the soak process) cannot delay a scrape's timing.
    """
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    bodies: dict[bytes, str] = {}  # digest -> page; a page repeats until a refresh

    def scrape() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status, _headers, body = http_get(url + "/metrics", timeout=2)
            except OSError as exc:
                status, body = None, repr(exc).encode()
            elapsed = time.monotonic() - started
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    failures.append(f"status {status}: {body[:80]!r}")
                else:
                    bodies.setdefault(hashlib.sha1(body).digest(), body.decode())
            stop.wait(pause)

    workers = [threading.Thread(target=scrape, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, failures, list(bodies.values())))


class Scrapers:
    """A process of threads that scrape /metrics back to back and keep every figure."""

    def __init__(self, url: str, threads: int, pause: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.results = context.Queue()
        self.process = context.Process(target=scrape_until, name="scrapers", daemon=True,
                                       args=(url, threads, pause, self.stop, self.results))
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.bodies: list[str] = []

    def start(self) -> None:
        """Start scraping."""
        self.process.start()

    def finish(self) -> None:
        """Stop scraping and collect the figures."""
        self.stop.set()
        try:
            self.latencies, self.failures, self.bodies = self.results.get(timeout=30)
        except queue.Empty:
            self.failures.append("the scraper process sent no figures")
        self.process.join(10)

    def unparsable(self) -> list[str]:
        """Distinct pages that do not parse or lack binance_up."""
        bad = []
        for body in self.bodies:
            try:
                if sample(parse_samples(body), "binance_up") is None:
                    bad.append("no binance_up: " + body[:80])
            except ValueError as exc:
                bad.append(f"unparsable page: {exc}")
        return bad


class FaultInjector:
    """Injects a seeded random mix of faults until stopped."""

    def __init__(self, fake: FakeBinance, relay: hostile.HostileServer, seed: int) -> None:
        self.fake = fake
        self.relay = relay
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def _run(self) -> None:
        rng = self.rng
        deck: list[str] = []  # every kind once per round, in random order
        while not self.stop.wait(rng.uniform(0.5, 2.5)):
            if not deck:
                deck = rng.sample(KINDS, len(KINDS))
            kind = deck.pop()
            self.injected[kind] += 1
            path, count = rng.choice(PATHS), rng.randint(1, 4)
            if kind in HOSTILE_KINDS:
                self.relay.behaviour = HOSTILE_KINDS[kind]()
                self.stop.wait(rng.uniform(0.5, 2.0))
                self.relay.behaviour = hostile.relay(self.fake.url)
            elif kind == "pause":
                self.fake.pause()
                self.stop.wait(rng.uniform(0.5, 3.0))
                self.fake.resume()
            elif kind == "5xx":
                self.fake.inject("status", path, count, status=rng.choice((500, 502, 503, 504)))
            elif kind == "429":
                self.fake.inject("status", path, 1, status=429, retry_after=rng.choice((1, 2)))
            elif kind == "slow":
                self.fake.inject("slow", path, count, seconds=TIMEOUT + 0.5)
            else:
                self.fake.inject(kind, path, count)

    def finish(self) -> None:
        """Stop injecting, drop pending faults, make Binance reachable."""
        self.stop.set()
        self.thread.join(10)
        self.relay.behaviour = hostile.relay(self.fake.url)
        self.fake.clear_faults()
        self.fake.resume()


def mismatches(samples: Samples, market: Market) -> list[str]:
    """Every gauge that differs from what the (frozen) fake answers now."""
    expected = expected_answers(market, levels=DEPTH_LEVELS)
    wrong = []

    def check(name: str, want: float, **labels: str) -> None:
        got = sample(samples, name, **labels)
        if got is None or abs(got - want) > 1e-9 * max(1.0, abs(want)):
            wrong.append(f"{name}{labels}: {got} != {want}")

    check("binance_up", 1)
    for job in ("rankings", "spreads"):
        check("binance_refresh_success", 1, job=job)
    for position, row in enumerate(expected["top_btc_by_volume"], 1):
        check("binance_top_symbol_rank", position, symbol=row["symbol"], quote_asset="BTC",
              ranking="quote_volume")
        check("binance_ticker_24h_quote_volume", row["quote_volume"], symbol=row["symbol"])
        for side, key in (("bid", "bids"), ("ask", "asks")):
            check("binance_order_book_notional", expected["notional"][row["symbol"]][key],
                  symbol=row["symbol"], side=side)
    for position, row in enumerate(expected["top_usdt_by_trades"], 1):
        check("binance_top_symbol_rank", position, symbol=row["symbol"], quote_asset="USDT",
              ranking="trades")
        check("binance_ticker_24h_trades", row["trades"], symbol=row["symbol"])
    for top in market.book_ticker(list(expected["spread"])):
        bid, ask = Decimal(top["bidPrice"]), Decimal(top["askPrice"])
        check("binance_spread", float(ask - bid), symbol=top["symbol"])
        check("binance_spread_ratio", float((ask - bid) / ((ask + bid) / 2)),
              symbol=top["symbol"])
        check("binance_spread_delta", 0, symbol=top["symbol"])  # the market stands still
    ranked = {labels for name, labels in samples if name == "binance_top_symbol_rank"}
    if len(ranked) != 10:
        wrong.append(f"{len(ranked)} ranked series, not 10")
    return wrong


def max_weight_per_window(records: list[RequestRecord], window: float = 60.0) -> int:
    """The most weight the fake charged in one of its fixed windows."""
    per_window: Counter[int] = Counter()
    for record in records:
        per_window[int(record.time // window)] += record.weight
    return max(per_window.values(), default=0)


@dataclass
class Soak:
    """One soak run's settings and figures."""

    minutes: float
    seed: int
    scrapers: int
    update_interval: float
    refresh_interval: float
    figures: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        """Record a failed assertion (the run goes on to report everything)."""
        if not ok:
            self.failures.append(message)

    def phases(self) -> tuple[float, float]:
        """Seconds of warm-up and of faults; recovery takes the rest."""
        total = self.minutes * 60
        warm_up = min(60.0, max(5.0, 0.15 * total))
        return warm_up, max(10.0, total - warm_up - 2 * self.refresh_interval - 5)

    def run(self) -> int:
        """Run the soak; 0 when every assertion held."""
        market = Market(seed=self.seed)
        fake = FakeBinance(market).start()
        relay = hostile.HostileServer(hostile.relay(fake.url),
                                      lifetime=self.minutes * 60 + 120).start()
        exporter = Exporter(
            relay.url, "--update-interval", str(self.update_interval),
            "--refresh-interval", str(self.refresh_interval),
            "--depth-levels", str(DEPTH_LEVELS), "--weight-share", str(WEIGHT_SHARE),
            "--timeout", str(TIMEOUT), "--no-analytics", "--log-level", "warning")
        try:
            return self._run(market, fake, relay, exporter)
        except AssertionError as exc:  # the exporter died or never became ready
            self.failures.append(str(exc))
            return 1
        finally:
            exporter.close()
            relay.stop()
            fake.stop()

    def _run(self, market: Market, fake: FakeBinance, relay: hostile.HostileServer,
             exporter: Exporter) -> int:
        started = time.monotonic()
        exporter.wait_ready(timeout=15)
        scrapers = Scrapers(exporter.url, self.scrapers, pause=0.01)
        scrapers.start()
        frozen = threading.Event()

        def tick() -> None:
            while not frozen.wait(0.25):
                market.step()

        ticker = threading.Thread(target=tick, name="ticker", daemon=True)
        ticker.start()
        rss: list[int] = []
        started_soak = time.monotonic()
        warm_up, fault_time = self.phases()
        self._watch(exporter, rss, warm_up)
        rss_start = rss[-1]
        handles_start = handles(exporter.process.pid)
        injector = FaultInjector(fake, relay, self.seed)
        injector.thread.start()
        self._watch(exporter, rss, fault_time)
        injector.finish()
        frozen.set()  # the answers are fixed from now on
        ticker.join(5)
        recovery = self._recover(exporter, market)
        # Fill the run up to its length, still scraping and watching.
        self._watch(exporter, rss, started_soak + self.minutes * 60 - time.monotonic())
        scrapers.finish()
        rss.append(rss_kb(exporter.process.pid))
        self._check_handles(handles_start, handles(exporter.process.pid))
        self._record(exporter, fake, scrapers, injector, rss, rss_start, recovery)
        self.figures["duration s"] = round(time.monotonic() - started, 1)
        self.check(recovery is not None and recovery <= 2 * self.refresh_interval,
                   f"gauges not correct within two cycles ({2 * self.refresh_interval:g} s)")
        return 1 if self.failures else 0

    def _check_handles(self, start: tuple[int, int], end: tuple[int, int]) -> None:
        """Threads and file descriptors: what faults cost must not stay behind."""
        self.figures["threads, fds after warm-up / at the end"] = (
            f"{start[0]}, {start[1]} / {end[0]}, {end[1]}")
        self.check(end[0] <= start[0] + MAX_THREAD_GROWTH,
                   f"threads grew from {start[0]} to {end[0]}")
        self.check(end[1] <= start[1] + MAX_FD_GROWTH,
                   f"file descriptors grew from {start[1]} to {end[1]}")

    def _watch(self, exporter: Exporter, rss: list[int], seconds: float) -> None:
        """Check the process once a second for `seconds`, sampling its RSS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            code = exporter.process.poll()
            if code is not None:
                raise AssertionError(f"the exporter exited with {code}: "
                                     + exporter.output()[1][-2000:])
            rss.append(rss_kb(exporter.process.pid))
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def _recover(self, exporter: Exporter, market: Market) -> float | None:
        """Seconds until every gauge is right again, or None if not within the wait."""
        started = time.monotonic()
        last: list[str] = []
        while time.monotonic() - started < 2 * self.refresh_interval + 5:
            last = mismatches(exporter.scrape(), market)
            if not last:
                return time.monotonic() - started
            time.sleep(0.05)
        self.failures.extend(last[:5])
        return None

    def _record(self, exporter: Exporter, fake: FakeBinance, scrapers: Scrapers,
                injector: FaultInjector, rss: list[int], rss_start: int,
                recovery: float | None) -> None:
        latencies = sorted(scrapers.latencies) or [float("inf")]
        records = fake.requests
        weight = max_weight_per_window(records)
        limit = fake.market.weight_limit
        statuses = Counter("reset" if r.status is None else str(r.status) for r in records)
        self.figures.update({
            "scrapes": len(scrapers.latencies),
            "failed scrapes": len(scrapers.failures),
            "distinct pages": len(scrapers.bodies),
            "max scrape ms": round(1000 * latencies[-1], 1),
            "p99 scrape ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
            "faults injected": dict(sorted(injector.injected.items())),
            "faulted requests": dict(sorted(Counter(r.fault for r in records if r.fault).items())),
            "requests by status": dict(sorted(statuses.items())),
            "RSS start/end/max kB": f"{rss_start} / {rss[-1]} / {max(rss)}",
            "max weight per window": f"{weight} (share {WEIGHT_SHARE:g} x {limit})",
            "recovery s": None if recovery is None else round(recovery, 2),
            "WARNING/ERROR log lines": sum(
                1 for line in exporter.output()[1].splitlines()
                if " WARNING " in line or " ERROR " in line),
        })
        self.check(exporter.process.poll() is None, "the exporter exited")
        self.check(not scrapers.failures, f"failed scrapes: {scrapers.failures[:3]}")
        self.check(not (bad := scrapers.unparsable()), f"bad pages: {bad[:3]}")
        self.check(latencies[-1] <= MAX_SCRAPE_SECONDS,
                   f"slowest scrape {1000 * latencies[-1]:.0f} ms > "
                   f"{1000 * MAX_SCRAPE_SECONDS:.0f} ms")
        self.check(max(rss) - rss_start <= MAX_RSS_GROWTH_KB,
                   f"RSS grew by {max(rss) - rss_start} kB after warm-up")
        self.check(weight <= WEIGHT_SHARE * limit, f"weight {weight} per window > share")
        self.check(sum(injector.injected.values()) > 0, "no fault was injected")
        self.check("Traceback" not in exporter.output()[1], "a traceback in the exporter's log")

    def report(self) -> None:
        """Print the figures and any failed assertion."""
        width = max((len(name) for name in self.figures), default=0)
        print(f"soak: {self.minutes:g} min, seed {self.seed}, {self.scrapers} scrapers, "
              f"update {self.update_interval:g} s, refresh {self.refresh_interval:g} s")
        for name, value in self.figures.items():
            print(f"  {name:<{width}}  {value}")
        for failure in self.failures:
            print(f"FAIL: {failure}")
        print("soak: " + ("FAILED" if self.failures else "passed"))


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the soak, print its table; 1 on any failed assertion."""
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.split(
        "\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the run (3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault mix (1)")
    parser.add_argument("--scrapers", type=int, default=4, help="scraping threads (4)")
    parser.add_argument("--update-interval", type=float, default=0.2,
                        help="the exporter's --update-interval (0.2)")
    parser.add_argument("--refresh-interval", type=float, default=5.0,
                        help="the exporter's --refresh-interval (5)")
    args = parser.parse_args(argv)
    soak = Soak(args.minutes, args.seed, args.scrapers, args.update_interval,
                args.refresh_interval)
    code = soak.run()
    soak.report()
    return code


if __name__ == "__main__":
    sys.exit(main())
