"""`python -m bench` (what `make bench` runs): the exporter's figures, ours against naive.

Prints one table (figure, ours, floor, ours/floor, goal, met, naive,
naive/ours) and the machine, then the market-scale table of stream mode
(`bench.market_scale`), and writes both into docs/benchmarks.md. About 11
minutes with the defaults; `--minutes 10` runs a 10-minute memory figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench import crowd, market_scale, report, scenarios, stream_follow
from bench.probes import percentile
from bench.report import Row, say
from tests.support import ROOT

from binance_exporter.config import RankingConfig, rankings_weight

RANKINGS_FLOOR_WEIGHT = rankings_weight(RankingConfig())  # 20 + 80 + 5 x 25 + 4 = 229
SPREAD_FLOOR_WEIGHT = 4  # one bookTicker request, whatever the number of symbols
SCRAPE_GOAL_MS = 10.0
MEMORY_GOAL_MB = 80.0
# Spreads every 1 s and rankings every 15 s: more churn per minute than the defaults (10 s, 60 s).
MEMORY_INTERVALS = (1.0, 15.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0,
                        help="length of the memory run (2)")
    parser.add_argument("--runs", type=int, default=5,
                        help="start-up runs of the exporter; the naive one gets about half (5)")
    parser.add_argument("--scrapes", type=int, default=1000,
                        help="scrapes per encoding of the exporter and the floor (1000)")
    parser.add_argument("--extra-symbols", type=int, default=3000,
                        help="synthetic symbols for the scale figures (3000)")
    parser.add_argument("--latency", type=float, default=0.1,
                        help="seconds the fake adds to every request at start-up (0.1)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="Markdown file to write the table into")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--exporter-module", default="binance_exporter",
                        help="module to run as the exporter (`python -m MODULE`), e.g. a "
                             "candidate build on PYTHONPATH (binance_exporter)")
    return parser


def _startup_rows(args: argparse.Namespace,
                  ours_target: scenarios.Target) -> tuple[list[Row], scenarios.Imports]:
    latency_ms = args.latency * 1000
    floor_ms = 2 * latency_ms  # two round trips
    goal_ms = 2.5 * latency_ms + 100
    say("imports ...")
    imports = scenarios.measure_imports(3)
    say(f"start-up, {args.latency * 1000:.0f} ms per request ...")
    ours = scenarios.measure_startup(ours_target, args.latency, args.runs)
    naive = scenarios.measure_startup(scenarios.NAIVE, args.latency, max(1, args.runs // 2 + 1))
    import_ms = imports.seconds * 1000
    return [
        Row("start-up: rankings run as timed in-process (goal judged here)",
            ours.refresh * 1000, "ms", floor_ms, naive.refresh * 1000,
            f"<= {goal_ms:.0f} ms", ours.refresh * 1000 <= goal_ms, 0),
        Row("start-up: fake's first request -> last answer", ours.binance_span * 1000, "ms",
            floor_ms, naive.binance_span * 1000, f"<= {goal_ms:.0f} ms",
            ours.binance_span * 1000 <= goal_ms, 0),
        Row("start-up: round trips (request waves at the fake)", ours.round_trips, "",
            2, naive.round_trips, "2", ours.round_trips <= 2, 0),
        Row("start-up: spawn -> first request (python, imports)", ours.first_request * 1000,
            "ms", import_ms, naive.first_request * 1000, decimals=0),
        Row("start-up: spawn -> /-/ready 200", ours.to_ready * 1000, "ms",
            import_ms + floor_ms, naive.to_ready * 1000, f"<= imports + {goal_ms:.0f} ms",
            ours.to_ready * 1000 <= import_ms + goal_ms, 0),
        Row("start-up: request weight up to ready", ours.weight, "", RANKINGS_FLOOR_WEIGHT,
            naive.weight, f"= {RANKINGS_FLOOR_WEIGHT}", ours.weight == RANKINGS_FLOOR_WEIGHT, 0),
    ], imports


def _spread_rows(ours_target: scenarios.Target, memory: dict[str, scenarios.MemoryRun],
                 symbols: int) -> list[Row]:
    say("spread refreshes, top 5 ...")
    ours_top = scenarios.measure_spread_weights(ours_target)
    naive_top = scenarios.measure_spread_weights(scenarios.NAIVE)
    ours_all = memory[scenarios.OURS.name].spread_weights
    naive_all = memory[scenarios.NAIVE.name].spread_weights
    return [
        Row(f"weight per spread refresh, top 5 ({len(ours_top)} refreshes)", max(ours_top), "",
            SPREAD_FLOOR_WEIGHT, max(naive_top), f"= {SPREAD_FLOOR_WEIGHT}",
            set(ours_top) == {SPREAD_FLOOR_WEIGHT}, 0),
        Row(f"weight per spread refresh, all {symbols} ({len(ours_all)} refreshes)",
            max(ours_all), "", SPREAD_FLOOR_WEIGHT, max(naive_all), f"= {SPREAD_FLOOR_WEIGHT}",
            set(ours_all) == {SPREAD_FLOOR_WEIGHT}, 0),
    ]


def _latency_rows(ours: scenarios.ScrapeRun, floor: scenarios.ScrapeRun,
                  naive: scenarios.ScrapeRun) -> list[Row]:
    """p50, p99 and max per encoding; the goal is on p99."""
    rows = []
    for encoding, label in (("gzip", "gzip, as Prometheus asks"), ("identity", "plain")):
        mine, best, slow = (run.by_encoding[encoding] for run in (ours, floor, naive))
        size = f"{mine.page_bytes / 1024:,.0f} KiB, {len(mine.latencies_ms)} scrapes"
        for name, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            value = percentile(mine.latencies_ms, share)
            judged = name == "p99"
            rows.append(Row(
                f"/metrics {name}, {label} ({size})", value, "ms",
                percentile(best.latencies_ms, share), percentile(slow.latencies_ms, share),
                f"< {SCRAPE_GOAL_MS:.0f} ms" if judged else "",
                value < SCRAPE_GOAL_MS if judged else None, 2))
    return rows


def _scrape_rows(args: argparse.Namespace, ours_target: scenarios.Target,
                 symbols: int) -> list[Row]:
    say(f"scrapes, {symbols} symbols ...")
    ours = scenarios.measure_scrapes(ours_target, args.extra_symbols, args.scrapes, 30)
    floor = scenarios.measure_static_floor(ours.plain_page, args.scrapes, 30)
    naive = scenarios.measure_scrapes(scenarios.NAIVE, args.extra_symbols,
                                      max(20, args.scrapes // 20), 20)
    render_ms, copy_ms = (seconds * 1000 for seconds in
                          scenarios.measure_render(args.extra_symbols))
    scrapes = sum(len(s.latencies_ms) for s in ours.by_encoding.values())
    same = all(s.distinct_bodies == 1 for s in ours.by_encoding.values())
    return _latency_rows(ours, floor, naive) + [
        Row("/-/ready 200 -> /metrics has the answers (lag)", ours.ready_lag_ms, "ms", 0,
            naive.ready_lag_ms, "~ 0 (polled every 2 ms)", ours.ready_lag_ms < 5, 0),
        Row(f"Binance requests during {scrapes} scrapes", ours.binance_requests, "", 0,
            naive.binance_requests, "= 0", ours.binance_requests == 0, 0),
        Row("exporter CPU per scrape" + ("" if same else " (page changed!)"),
            ours.cpu_per_scrape_ms, "ms", floor.cpu_per_scrape_ms, naive.cpu_per_scrape_ms,
            f"<< a render ({render_ms:.0f} ms)", ours.cpu_per_scrape_ms < render_ms / 10, 2),
        Row("one render + gzip of our page after a spreads refresh (per-scrape cost if "
            f"re-rendered; of an unchanged copy, its kept lines all reused: {copy_ms:.1f} ms)",
            render_ms, "ms", decimals=1),
    ]


def _crowd_rows(ours_target: scenarios.Target) -> list[Row]:
    """Scrapes and threads with 500 idle or trickling connections open."""
    say(f"crowd: {crowd.IDLE} idle and {crowd.TRICKLING} trickling connections ...")
    ours, naive = crowd.measure(ours_target), crowd.measure(scenarios.NAIVE)
    load = f"{crowd.IDLE} idle + {crowd.TRICKLING} trickling connections"
    return [
        Row(f"/metrics p50, gzip, {load} ({ours.scrapes} scrapes)", ours.scrape_p50_ms, "ms",
            naive=naive.scrape_p50_ms, decimals=2),
        Row(f"/metrics p99, gzip, {load} ({ours.scrapes} scrapes)", ours.scrape_p99_ms, "ms",
            naive=naive.scrape_p99_ms, goal="< 50 ms", met=ours.scrape_p99_ms < 50,
            decimals=2),
        Row(f"exporter threads with {load} (before: {ours.threads_before}; naive before: "
            f"{naive.threads_before})", ours.threads_during, "", naive=naive.threads_during,
            goal="flat (+ <= 2)", met=ours.threads_during <= ours.threads_before + 2,
            decimals=0),
    ]


def _memory_rows(memory: dict[str, scenarios.MemoryRun], imports: scenarios.Imports,
                 minutes: float, symbols: int) -> list[Row]:
    ours, naive = memory[scenarios.OURS.name], memory[scenarios.NAIVE.name]
    return [
        Row(f"RSS after {minutes:g} min, {symbols} symbols, {ours.scrapes} scrapes "
            "(--minutes 10 for 10 min)", ours.final, "MB",
            imports.rss_mb, naive.final, f"< {MEMORY_GOAL_MB:.0f} MB",
            ours.final < MEMORY_GOAL_MB, 1),
        Row(f"RSS peak over {minutes:g} min, sampled every 2 s", ours.peak, "MB",
            imports.rss_mb, naive.peak, f"< {MEMORY_GOAL_MB:.0f} MB",
            ours.peak < MEMORY_GOAL_MB, 1),
        # The kernel's high-water mark sees spikes shorter than the sampling:
        # a rankings run's answers and a render of the whole page at once.
        Row(f"RSS high-water mark over {minutes:g} min (VmHWM: every spike)", ours.high_water,
            "MB", imports.rss_mb, naive.high_water, decimals=1),
    ]


def _markdown(rows: list[Row], policy: str, machine: str, command: str,
              args: argparse.Namespace) -> str:
    missed = report.missed(rows)
    return DOC.format(
        date=machine.rsplit(", ", 1)[-1],
        command=command,
        machine=machine,
        table=report.markdown_table(rows),
        policy=policy,
        missed="\n".join(f"- {row.figure}: {row.cells()[1]} against {row.goal}"
                         for row in missed) or "- none",
        minutes=f"{args.minutes:g}",
        latency=f"{args.latency * 1000:.0f}",
        symbols=args.extra_symbols,
    )


def _ranged(figures: dict[str, float], key: str, decimals: int) -> str:
    """Median and range over the rounds, e.g. `60 (59–61)`."""
    low, mid, high = (f"{figures[f'{key}_{stat}']:,.{decimals}f}" for stat in ("min", "median",
                                                                              "max"))
    return f"{mid} ({low}–{high})"


def policy_table(figures: dict[str, float]) -> str:
    """Markdown: the old eager render policy beside the lazy exposition, same load, same run."""
    rows = [("page renders per minute", "renders_per_minute", 0, True),
            ("exporter CPU seconds per second", "cpu_per_second", 3, True),
            ("publishes per minute", "publishes_per_minute", 0, False),
            ("scrapes per minute", "scrapes_per_minute", 0, False)]
    lines = [f"| stream, 50 books moving ({figures['policy_rate']:.0f} events/s), a gzip "
             f"scrape every {figures['policy_scrape_interval']:g} s; median (range) of "
             f"{figures['rounds']:.0f} rounds of {figures['policy_seconds']:g} s "
             "| before: render + gzip on every publish (old eager policy) "
             "| after: lazy `Exposition` (renders when scraped) | before/after |",
             "|---|---:|---:|---:|"]
    for label, key, decimals, ratio in rows:
        lines.append(f"| {label} | {_ranged(figures, 'eager_' + key, decimals)} | "
                     f"{_ranged(figures, 'lazy_' + key, decimals)} | "
                     + (f"{figures[key + '_ratio']:.2f}× |" if ratio else "— |"))
    return "\n".join(lines)


def _policy_rows(figures: dict[str, float]) -> list[Row]:
    """The render policies in the main table: ours is the lazy page, naive the old eager one."""
    load = (f"50 books moving ({figures['policy_rate']:.0f} events/s), a scrape every "
            f"{figures['policy_scrape_interval']:g} s")
    scrapes = figures["lazy_scrapes_per_minute_median"]
    return [
        Row(f"stream: page renders per minute, {load} (naive: old render on every publish)",
            figures["lazy_renders_per_minute_median"], "/min",
            naive=figures["eager_renders_per_minute_median"],
            goal=f"<= scrapes ({scrapes:.0f}/min)",
            met=figures["lazy_renders_beyond_scrapes_max"] <= 1, decimals=0),
        Row(f"stream: exporter CPU seconds per second, {load} (naive: the same)",
            figures["lazy_cpu_per_second_median"], "s/s",
            naive=figures["eager_cpu_per_second_median"], decimals=3),
    ]


def _stream_rows() -> tuple[list[Row], str]:
    """The stream case, in its own process (it sets the GIL switch interval).

    Returns the rows and the render-policy table (before/after, with ranges).
    """
    say("stream: 3 rounds of 200,000 diff events over 50 symbols ...")
    code = ("import json, sys; from binance_exporter.app import STREAM_SWITCH_INTERVAL; "
            "sys.setswitchinterval(STREAM_SWITCH_INTERVAL); "
            "from bench import stream_case; print(json.dumps(stream_case.run()))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    say(f"  stream rounds: {figures['events_per_second_min']:,.0f} to "
         f"{figures['events_per_second_max']:,.0f} events/s; feed alone "
         f"{figures['feed_events_per_second']:,.0f}/s, naive feed "
         f"{figures['naive_feed_events_per_second']:,.0f}/s; full/feed "
         f"{figures['full_to_feed']:.2f} (the publisher's and scraper's share)")
    policy = policy_table(figures)
    say(policy)
    return [
        Row("stream: diff events/s on one core (50 symbols: parse, apply, publish; median of "
            f"{figures['rounds']:.0f})", figures["events_per_second"], "/s", goal=">= 50,000",
            met=figures["events_per_second"] >= 50_000, decimals=0),
        Row("stream: diff events/s, feed alone (parse and apply), vs a naive feed",
            figures["feed_events_per_second"], "/s",
            naive=figures["naive_feed_events_per_second"], decimals=0),
        Row("stream: one read of the top 200 levels of all 50 books (once per publish)",
            figures["read_ms"], "ms", naive=figures["naive_read_ms"], decimals=2),
        Row(f"stream: /metrics p99 during that load ({figures['scrapes']:.0f} scrapes, "
            f"{figures['publishes']:.0f} publishes, {figures['renders']:.0f} page renders)",
            figures["scrape_p99_ms"], "ms", goal="< 20 ms",
            met=figures["scrape_p99_ms"] < 20, decimals=2),
    ] + _policy_rows(figures) + _follow_rows(), policy


def _follow_rows() -> list[Row]:
    """Stream mode end to end: market step on the wire -> /metrics shows it."""
    say("stream: /metrics following the market, 15 steps ...")
    figures = stream_follow.run(steps=15)
    return [
        Row(f"stream: market move on the wire -> /metrics shows it, median of "
            f"{figures['steps']:.0f} steps", figures["median_s"] * 1000, "ms",
            goal="< 1 s", met=figures["median_s"] < 1, decimals=0),
        Row("stream: the same, slowest step", figures["max_s"] * 1000, "ms",
            goal="< 1 s", met=figures["max_s"] < 1, decimals=0),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every scenario, print the table, write docs/benchmarks.md."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    symbols = len(scenarios.Market(seed=scenarios.SEED, extra_symbols=args.extra_symbols)
                  .symbols("TRADING"))
    ours = dataclasses.replace(scenarios.OURS, module=args.exporter_module)
    rows, imports = _startup_rows(args, ours)
    rows += _scrape_rows(args, ours, symbols)
    rows += _crowd_rows(ours)
    say(f"memory, {args.minutes:g} min, both side by side ...")
    memory = scenarios.measure_memory([ours, scenarios.NAIVE], args.extra_symbols,
                                      args.minutes * 60, MEMORY_INTERVALS, say)
    rows += _spread_rows(ours, memory, symbols)
    rows += _memory_rows(memory, imports, args.minutes, symbols)
    stream_rows, policy = _stream_rows()
    rows += stream_rows
    scale = market_scale.run()
    scale_rows = market_scale.rows(scale)
    machine = report.machine()
    command = "python -m bench" + "".join(f" {shlex.quote(a)}"
                                                   for a in (argv or sys.argv[1:]))
    print(report.text_table(rows))
    print("\n" + policy)
    print("\n" + report.text_table(scale_rows))
    print("\nwhere the time goes at market scale:\n" + market_scale.where_the_time_goes(scale))
    print(f"\nmachine: {machine}; took {time.monotonic() - started:.0f} s; `{command}`")
    for row in report.missed(rows + scale_rows):
        print(f"MISSED: {row.figure}: {row.cells()[1]} against {row.goal}")
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(_markdown(rows, policy, machine, command, args) + "\n"
                               + market_scale.section(scale, machine, command),
                               encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


DOC = """\
# Benchmarks

The exporter's figures, measured against the fake Binance (`fake_binance/`) on
127.0.0.1, each next to the same figure for a deliberately naive exporter run
in the same benchmark (`bench/naive_exporter.py`: one request after
another, depth at limit 5000, one `bookTicker?symbol=` request per symbol,
prometheus_client's default registry rendered and gzipped on every scrape).
The ratio naive/ours is what survives a noisy machine.

Run it with `make bench` (about 11 minutes), or
`python -m bench --minutes 10` for a 10-minute memory figure; `--no-write` prints without rewriting this file, and
`--exporter-module MODULE` benchmarks another build of the exporter (any
module runnable as `python -m MODULE` with the exporter's options, e.g. a
candidate on `PYTHONPATH`) against the same floors and the same naive run.
`python -m bench.market_scale` (about 3½ minutes) runs and rewrites only the
last section, stream mode at market scale.

## Latest run

{date}, `{command}`

Machine: {machine}

{table}

Goals missed in this run:

{missed}

### Render policy in stream mode: before and after the lazy exposition

The same stream case (`stream_case.py`) in the same run, once with the old
policy (the whole page rendered and gzipped after every publish, as the
pre-redesign exposition did from its store subscriber; reproduced by
`stream_case.eager_render_on_publish`) and once with the exporter's lazy
`Exposition` (the snapshot part rendered at most once per published snapshot
and format, and only when a scrape asks; a scraper back within 1 s gets its
last page at once while the next renders aside). The two alternate within
each round; the ratio is the median of the per-round ratios.

{policy}

## What each figure is

- **Start-up** (the built-in market, {latency} ms added by the fake to every
  request, `--no-analytics`, medians of the runs). The floor is two round
  trips: exchangeInfo ∥ 24 h tickers, then the depths ∥ one bookTicker. The
  goal (≤ 2.5 × RTT + 100 ms) is judged on the rankings run as the exporter
  times it (`binance_refresh_duration_seconds{{job="rankings"}}`: from the
  moment it is ready to send to the published snapshot), and cross-checked on
  the fake's own timestamps (first request's arrival to the last answer
  leaving). Spawn → `/-/ready` also counts Python start-up and imports, whose
  cost the "imports" floor measures in a process that only imports the
  exporter. Round trips are the waves of requests the fake saw: requests that
  arrive within half the latency of the one before belong to one wave.
- **Request weight** comes from the fake's log (the weight Binance would
  charge), up to the moment `/-/ready` answered 200.
- **Spread refresh weight**: bookTicker weight of each burst of requests after
  start-up, with the top 5 USDT symbols and with `--spread-symbols all` over
  every TRADING symbol of a market with {symbols} extra symbols (taken from the
  memory run).
- **Scrapes**: `--spread-symbols all` on that market, no refresh due during
  the scrapes, from a separate process over one keep-alive connection (time
  from sending the request to the last body byte). The floor is a server that
  only sends the same bytes (`static_page_server.py`: TCP_NODELAY, headers and
  body in one write). "Binance requests" is the change in the fake's request
  count across all the scrapes; "CPU per scrape" is the exporter's CPU time
  (/proc) over the scrapes divided by their number, next to the cost of one
  render of the same page, so a scrape that re-rendered would show.
- **Memory**: resident set size (VmRSS, MB of 10⁶ bytes) of the exporter with
  `--spread-symbols all` on that market, analytics on (the default), spreads
  every 1 s and rankings every 15 s (faster than the defaults, to churn more
  in a short run), the market moving every second and a gzip scrape every
  second, for {minutes} min (`--minutes
  10`). The naive exporter runs beside it the same way, without analytics.
  The floor is a process that only imports the exporter.
- **Stream** (`stream_case.py`, in its own process with the
  exporter's 0.5 ms GIL switch interval): 200,000 combined-stream depth
  messages over 50 symbols (1000-level books, 10 changed levels per message,
  a quarter of them deletions), fed as text to the callback the websocket
  reader calls, through the exporter's own decoding, books, and `Republisher`
  (`QuotesJob.refresh_books` over a `StreamSource`: spreads, notionals and
  VWAP, at most every 100 ms). A scraper in its own process fetches /metrics
  (gzip) every 50 ms; only scrapes that start during the feed count. The page
  is rendered by the scrapes, at most once per published snapshot: the p99
  row counts the publishes and page renders of all rounds. Three rounds, median shown: this machine's
  speed drifts by up to 2x within minutes, so each round's range is printed
  too. The feed-alone row (no publisher, no scraper) and the read row (top
  200 levels of every book, which each publish does once) each run the naive
  feed (`naive_stream.py`: `json`, a Decimal per level in Python, a dict per
  side, sorting at read time) right after ours, on the same messages.
- **Render policy** (`stream_case.py`, same process and rig): the feed paced
  at 500 events/s over the 50 symbols (each book moving about ten times a
  second, as depth@100ms streams do), the `Republisher` publishing, a gzip
  scrape every 1 s from its own process, 20 s per policy per round. "Page
  renders" are `Exposition.renders` (renders of the snapshot-derived part;
  under the old policy each publish makes one, whether or not anyone
  scrapes). "Exporter CPU" is the benchmark process's CPU time
  (`time.process_time()`: the reader, publisher and HTTP threads) over the
  wall time of the feed. The goal row allows one render beyond the scrapes
  per round, for a scrape begun just before the window.
- **Stream follow** (`stream_follow.py`): the exporter process in stream mode
  on the fake; after each market step's diffs are on the wire, /metrics is
  polled every 10 ms until every served spread equals the market's. The fake
  rewrites every level of its books each step (thousands of levels per
  message), much heavier than Binance's 100 ms diffs.
"""

if __name__ == "__main__":
    sys.exit(main())
