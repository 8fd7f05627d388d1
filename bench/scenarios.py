"""The measurements: each starts its own fake Binance and exporter processes and tears them down.

`Target` says how to start the real exporter (`OURS`) or the naive baseline
(`NAIVE`) with the same settings, so every scenario runs both the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

from bench import request_log
from bench.probes import Child, cpu_seconds, get, median, rss_mb
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient
from binance_exporter.config import SPREADS_ALL, RankingConfig
from binance_exporter.jobs.quotes import QuotesJob
from binance_exporter.jobs.rankings import RankingsJob
from binance_exporter.metrics.exposition import build_exposition
from binance_exporter.model import SnapshotStore
from binance_exporter.sources.rest import RestSource
from fake_binance import FakeBinance, Market
from tests.support import ROOT, parse_samples

SEED = 7
# The naive client spends far more than Binance's 6000 weight a minute (that
# is the point); its fake must not answer 429/418, or it would measure the ban.
UNLIMITED_WEIGHT = 10**12
ANSWERS_MARKER = b"\nbinance_spread{"  # a page that carries the answers has spreads


@dataclass(frozen=True)
class Target:
    """How to run one exporter: the module and its arguments for common settings."""

    name: str
    module: str
    ours: bool

    def args(self, base_url: str, spread: str, update: float, refresh: float,
             analytics: bool = False) -> list[str]:
        """Command-line arguments (the port is added by `Child`)."""
        common = ["--base-url", base_url, "--spread-symbols", spread,
                  "--update-interval", f"{update:g}", "--refresh-interval", f"{refresh:g}"]
        if not self.ours:
            return common
        return common + ["--listen-address", "127.0.0.1", "--log-level", "warning"] + (
            [] if analytics else ["--no-analytics"])

    def start(self, fake: FakeBinance, spread: str, update: float, refresh: float,
              analytics: bool = False) -> Child:
        """Spawn it against `fake`."""
        return Child(self.module, *self.args(fake.url, spread, update, refresh, analytics))


OURS = Target("binance-exporter", "binance_exporter", ours=True)
NAIVE = Target("naive", "bench.naive_exporter", ours=False)


def start_fake(target: Target, extra_symbols: int = 0, latency: float = 0.0) -> FakeBinance:
    """A fresh market and fake for one target (the naive one gets no rate limit)."""
    market = Market(seed=SEED, extra_symbols=extra_symbols)
    if not target.ours:
        market.weight_limit = UNLIMITED_WEIGHT
    fake = FakeBinance(market).start()
    fake.set_latency(latency)
    return fake


def wait_for_answers(child: Child, timeout: float = 60.0) -> float:
    """Poll /metrics until the page carries the answers.

    Returns time.monotonic() when the first scrape that got them was sent (not
    when it finished: a server that renders per scrape is not late for that).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = time.monotonic()
        if ANSWERS_MARKER in get(child.url + "/metrics")[1]:
            return sent
        time.sleep(0.002)
    raise RuntimeError(f"{child.url}/metrics carried no answers within {timeout} s")


def rankings_duration(child: Child) -> float:
    """`binance_refresh_duration_seconds{job="rankings"}` as the child reports it."""
    samples = parse_samples(get(child.url + "/metrics")[1].decode())
    return samples[("binance_refresh_duration_seconds", (("job", "rankings"),))]


# --------------------------------------------------------------------------- imports

@dataclass(frozen=True)
class Imports:
    """A Python process that only imports the exporter: the part of start-up that is not I/O."""

    seconds: float  # spawn -> imports done
    rss_mb: float  # resident memory then


IMPORTS_CODE = """\
import time
import binance_exporter.cli
done = time.time()
rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]
print(done, rss)
"""


def measure_imports(runs: int) -> Imports:
    """Median time from spawn to `import binance_exporter.cli` done, and the RSS then."""
    seconds, memory = [], []
    for _ in range(runs):
        spawned = time.time()
        result = subprocess.run([sys.executable, "-c", IMPORTS_CODE], cwd=ROOT,
                                capture_output=True, text=True, check=True)
        done, rss_kib = result.stdout.split()
        seconds.append(float(done) - spawned)
        memory.append(int(rss_kib) * 1024 / 1e6)
    return Imports(median(seconds), median(memory))


# --------------------------------------------------------------------------- start-up

@dataclass(frozen=True)
class Startup:
    """Medians over the runs of one target's start-up against a slow fake."""

    to_ready: float  # process spawn -> /-/ready answers 200
    refresh: float  # the rankings run as the process timed it
    first_request: float  # process spawn -> first request arrives at the fake
    binance_span: float  # first request arrives -> last answer leaves the fake
    round_trips: int  # waves of requests, each waiting on the one before
    weight: int  # request weight up to /-/ready


def measure_startup(target: Target, latency: float, runs: int) -> Startup:
    """Start the target `runs` times on the built-in market with `latency` per request."""
    results = []
    for _ in range(runs):
        fake = start_fake(target, latency=latency)
        child = target.start(fake, "top", update=600, refresh=600)
        try:
            ready = child.wait_status("/-/ready")
            ready_wall = child.spawned_wall + (ready - child.spawned)
            refresh = rankings_duration(child)
        finally:
            child.stop()
            fake.stop()
        records = [r for r in fake.requests if r.time <= ready_wall]
        waves = request_log.groups(records, latency / 2)
        results.append(Startup(
            to_ready=ready - child.spawned,
            refresh=refresh,
            first_request=records[0].time - child.spawned_wall,
            binance_span=records[-1].time + latency - records[0].time,
            round_trips=len(waves),
            weight=request_log.weight(records),
        ))
    return Startup(*(median([getattr(r, f.name) for r in results]) for f in fields(Startup)))


# --------------------------------------------------------------------------- spreads

def measure_spread_weights(target: Target, seconds: float = 2.0,
                           update: float = 0.25) -> list[int]:
    """bookTicker weight of every spread refresh in `seconds` after ready (5 top symbols)."""
    fake = start_fake(target)
    child = target.start(fake, "top", update=update, refresh=600)
    try:
        ready = child.wait_status("/-/ready")
        ready_wall = child.spawned_wall + (ready - child.spawned)
        time.sleep(seconds)
    finally:
        child.stop()
        fake.stop()
    after = [r for r in fake.requests if r.time > ready_wall]
    return request_log.spread_weights(after, update / 4)


# --------------------------------------------------------------------------- scrapes

@dataclass(frozen=True)
class Scrapes:
    """One burst of scrapes with one encoding."""

    latencies_ms: list[float]
    page_bytes: int
    distinct_bodies: int


@dataclass
class ScrapeRun:
    """Scrapes of one server between refreshes, and what they cost it."""

    by_encoding: dict[str, Scrapes] = field(default_factory=dict)
    binance_requests: int = 0  # requests the fake saw during the scrapes
    cpu_per_scrape_ms: float = 0.0  # the server's CPU time per scrape
    plain_page: bytes = b""
    ready_lag_ms: float = 0.0  # /-/ready said 200 this long before /metrics had the answers


def scrape_burst(url: str, count: int, gzip: bool, max_seconds: float) -> Scrapes:
    """Run the scrape client in its own process."""
    command = [sys.executable, "-m", "bench.scrape_client", url,
               "--count", str(count), "--max-seconds", str(max_seconds)]
    result = subprocess.run(command + (["--gzip"] if gzip else []), cwd=ROOT,
                            capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    return Scrapes(data["latencies_ms"], data["bytes"], data["distinct_bodies"])


def scrape_server(pid: int, url: str, count: int, max_seconds: float,
                  fake: FakeBinance | None = None) -> ScrapeRun:
    """Scrape gzip then plain; count the fake's requests and the server's CPU meanwhile."""
    run = ScrapeRun()
    requests_before = len(fake.requests) if fake is not None else 0
    cpu_before = cpu_seconds(pid)
    for encoding in ("gzip", "identity"):
        run.by_encoding[encoding] = scrape_burst(url + "/metrics", count, encoding == "gzip",
                                                 max_seconds)
    scrapes = sum(len(s.latencies_ms) for s in run.by_encoding.values())
    run.cpu_per_scrape_ms = (cpu_seconds(pid) - cpu_before) * 1000.0 / scrapes
    run.binance_requests = len(fake.requests) - requests_before if fake is not None else 0
    run.plain_page = get(url + "/metrics", {"Accept-Encoding": "identity"})[1]
    return run


def measure_scrapes(target: Target, extra_symbols: int, count: int,
                    max_seconds: float) -> ScrapeRun:
    """Scrape `target` tracking every symbol, with no refresh due during the scrapes."""
    fake = start_fake(target, extra_symbols)
    child = target.start(fake, SPREADS_ALL, update=3600, refresh=3600)
    try:
        ready = child.wait_status("/-/ready")
        answered = wait_for_answers(child)
        run = scrape_server(child.pid, child.url, count, max_seconds, fake)
        run.ready_lag_ms = (answered - ready) * 1000.0
        return run
    finally:
        child.stop()
        fake.stop()


def measure_static_floor(page: bytes, count: int, max_seconds: float) -> ScrapeRun:
    """Scrape a server that only sends `page` (the floor for serving pre-rendered bytes)."""
    with tempfile.NamedTemporaryFile(suffix=".prom") as file:
        Path(file.name).write_bytes(page)
        child = Child("bench.static_page_server", "--page", file.name)
        try:
            child.wait_status("/metrics")
            return scrape_server(child.pid, child.url, count, max_seconds)
        finally:
            child.stop()


def measure_render(extra_symbols: int, runs: int = 5) -> tuple[float, float]:
    """Median seconds of one render + gzip of the exporter's page, tracking every symbol:
    after a spreads refresh of a moved market, and of a copy of the same snapshot.

    The exporter's own code (RankingsJob and QuotesJob over a RestSource, as
    `app.App` composes them, and `build_exposition`) in this process, against
    a fake: what each scrape would cost if it re-rendered. The exposition
    renders once per published snapshot, so each run publishes a new one
    first and times the gzip scrape that renders it. After a refresh every
    spread is new, as in use; a copy (same content, a new object) rewrites
    none of the kept per-symbol lines, the least a render can cost.
    """
    fake = start_fake(OURS, extra_symbols)
    client = BinanceClient(fake.url, timeout=30)
    pool = DaemonPool(8)
    store = SnapshotStore()
    config = RankingConfig(spread_symbols=SPREADS_ALL)
    try:
        ranking = RankingsJob(client, pool, store, config).run()
        if ranking is None:
            raise RuntimeError(f"the rankings run failed: {store.current().jobs}")
        quotes = QuotesJob(RestSource(client, pool, all_symbols=True), pool, store, config)
        quotes.with_ranking(ranking)
        # No lag: each timed scrape renders for the snapshot just published.
        exposition = build_exposition(store.current, client.stats, max_lag=0.0)
        times: dict[str, list[float]] = {"refreshed": [], "copied": []}
        for _ in range(runs):
            for kind, publish in (("refreshed", quotes.refresh_spreads),
                                  ("copied", lambda: store.publish(replace(store.current())))):
                fake.market.step()
                publish()
                started = time.perf_counter()
                exposition.render("", "gzip", "")
                times[kind].append(time.perf_counter() - started)
        return median(times["refreshed"]), median(times["copied"])
    finally:
        pool.shutdown()
        fake.stop()


# --------------------------------------------------------------------------- memory

@dataclass
class MemoryRun:
    """Resident memory over a long run with refreshes and scrapes going on."""

    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    spread_weights: list[int] = field(default_factory=list)
    scrapes: int = 0
    high_water: float = 0.0  # VmHWM at the end of the run, MB

    @property
    def final(self) -> float:
        """MB at the end of the run."""
        return self.samples[-1][1]

    @property
    def peak(self) -> float:
        """Largest MB among the samples (every 2 s: a spike shorter than that may fall between)."""
        return max(mib for _, mib in self.samples)


def _scrape_every(child: Child, period: float, stop: threading.Event,
                  counter: Callable[[], None]) -> None:
    """Scrape like Prometheus would (gzip) every `period` seconds until `stop`."""
    while not stop.wait(period):
        try:
            get(child.url + "/metrics", {"Accept-Encoding": "gzip"})
            counter()
        except OSError:
            pass


def _step_every(fakes: list[FakeBinance], period: float, stop: threading.Event) -> None:
    """Move the markets, so books, quotes and 24 h figures change between refreshes."""
    while not stop.wait(period):
        for fake in fakes:
            fake.market.step()


def _sample(children: dict[str, Child], runs: dict[str, MemoryRun], seconds: float,
            progress: Callable[[str], None]) -> None:
    """Record every child's RSS every 2 s for `seconds`, reporting every 30 s."""
    started = time.monotonic()
    next_report = started + 30
    while True:
        elapsed = time.monotonic() - started
        for name, child in children.items():
            runs[name].samples.append((elapsed, rss_mb(child.pid)))
        if elapsed >= seconds:
            return
        if time.monotonic() >= next_report:
            progress(f"  memory: {elapsed:.0f}/{seconds:.0f} s, " + ", ".join(
                f"{name} {run.samples[-1][1]:.1f} MB" for name, run in runs.items()))
            next_report += 30
        time.sleep(min(2.0, seconds - elapsed))


def measure_memory(targets: list[Target], extra_symbols: int, seconds: float,
                   intervals: tuple[float, float],
                   progress: Callable[[str], None]) -> dict[str, MemoryRun]:
    """Run every target side by side for `seconds`, tracking every symbol; sample RSS.

    `intervals` are the (update, refresh) intervals in seconds.
    """
    update, refresh = intervals
    fakes = {t.name: start_fake(t, extra_symbols) for t in targets}
    # Ours with its default analytics on: the configuration people run.
    children = {t.name: t.start(fakes[t.name], SPREADS_ALL, update, refresh, analytics=True)
                for t in targets}
    runs = {t.name: MemoryRun() for t in targets}
    stop = threading.Event()
    threads = [threading.Thread(target=_step_every, args=(list(fakes.values()), 1.0, stop),
                                daemon=True)]
    try:
        for name, child in children.items():
            child.wait_status("/-/ready", timeout=120)
            run = runs[name]
            threads.append(threading.Thread(
                target=_scrape_every, daemon=True,
                args=(child, 1.0, stop, lambda run=run: setattr(run, "scrapes", run.scrapes + 1))))
        for thread in threads:
            thread.start()
        _sample(children, runs, seconds, progress)
    finally:
        stop.set()
        for name, child in children.items():
            try:
                runs[name].high_water = rss_mb(child.pid, "VmHWM")
            except (OSError, RuntimeError):
                pass  # the process is already gone: the samples stand
            child.stop()
        for fake in fakes.values():
            fake.stop()
    for name, run in runs.items():
        run.spread_weights = request_log.spread_weights(fakes[name].requests, update / 4)
    return runs
