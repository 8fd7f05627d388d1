"""The TLS + basic auth variant: the shipped files, and the real Prometheus scraping over HTTPS.

Prometheus gets the scrape config of docker/prometheus/prometheus-tls.yml,
pointed at an exporter (on the fake market) that serves with a web config made
from docker/web-config.yml and certificates made for this run. A second job
sends a wrong password. Needs Debian's `prometheus`; skipped without it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from binance_exporter.metrics.web_config import load_web_config
from fake_binance.market import Market
from fake_binance.server import FakeBinance
from tests.certs import Authority
from tests.stack.test_prometheus_stack import (
    DOCKER, JOB, NO_PROMETHEUS, NO_PROMTOOL, PROMETHEUS, PROMTOOL, load_yaml, promtool,
)
from tests.support import Exporter, free_port, http_get, wait_until

TLS_COMPOSE_YML = DOCKER / "docker-compose.tls.yml"
TLS_PROMETHEUS_YML = DOCKER / "prometheus" / "prometheus-tls.yml"
WEB_CONFIG_YML = DOCKER / "web-config.yml"
SHIPPED_PASSWORD = "change-me"


def tls_material(folder: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 in `folder`; the CA's path."""
    authority = Authority()
    (folder / "ca.crt").write_bytes(authority.pem)
    authority.issue("127.0.0.1", server=True).write(folder, "tls")
    return folder / "ca.crt"


def local_web_config(folder: Path) -> Path:
    """docker/web-config.yml with its certificate paths in `folder`."""
    config = load_yaml(WEB_CONFIG_YML)
    config["tls_server_config"]["cert_file"] = str(folder / "tls.crt")
    config["tls_server_config"]["key_file"] = str(folder / "tls.key")
    path = folder / "web-config.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def scrape_configs(target: str, ca_file: Path, interval: str) -> list[dict[str, Any]]:
    """The shipped HTTPS job pointed at `target`, and a copy of it with a wrong password."""
    (shipped,) = [s for s in load_yaml(TLS_PROMETHEUS_YML)["scrape_configs"]
                  if s["job_name"] == JOB]
    shipped = {key: value for key, value in shipped.items()
               if key not in ("dns_sd_configs", "relabel_configs")}
    shipped.update(static_configs=[{"targets": [target]}], scrape_interval=interval)
    shipped["tls_config"]["ca_file"] = str(ca_file)
    wrong = copy.deepcopy(shipped)
    wrong["job_name"] = "wrong-password"
    wrong["basic_auth"]["password"] = "not-the-password"
    return [shipped, wrong]


class ShippedFilesTest(unittest.TestCase):
    """docker-compose.tls.yml, web-config.yml and prometheus-tls.yml agree."""

    def test_web_config_is_valid_and_matches_prometheus(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            tls_material(folder)
            web = load_web_config(local_web_config(folder))
        (scrape,) = load_yaml(TLS_PROMETHEUS_YML)["scrape_configs"]
        self.assertEqual(scrape["scheme"], "https")
        user, password = scrape["basic_auth"]["username"], scrape["basic_auth"]["password"]
        self.assertEqual(password, SHIPPED_PASSWORD)
        self.assertTrue(bcrypt.checkpw(password.encode(), web.users[user]))

    def test_prometheus_tls_differs_only_in_scheme_tls_and_auth(self):
        plain, tls = load_yaml(DOCKER / "prometheus" / "prometheus.yml"), \
            load_yaml(TLS_PROMETHEUS_YML)
        for scrape in tls["scrape_configs"]:
            for key in ("scheme", "tls_config", "basic_auth"):
                scrape.pop(key)
        self.assertEqual(tls, plain)

    def test_compose_override_mounts_what_it_names(self):
        services = load_yaml(TLS_COMPOSE_YML)["services"]
        for name in ("exporter", "exporter-demo"):
            with self.subTest(service=name):
                service = services[name]
                mounted = {volume.split(":")[1]: volume.split(":")[0]
                           for volume in service["volumes"]}
                self.assertEqual(mounted[service["environment"]
                                         ["BINANCE_EXPORTER_WEB_CONFIG_FILE"]],
                                 "./web-config.yml")
                self.assertIn("https://", " ".join(service["healthcheck"]["test"]))
        self.assertEqual(services["exporter-demo"]["environment"]["BINANCE_EXPORTER_BASE_URL"],
                         "http://fake-market:9900")
        prometheus = services["prometheus"]["volumes"]
        self.assertIn("./prometheus/prometheus-tls.yml:/etc/prometheus/prometheus.yml:ro",
                      prometheus)
        (scrape,) = load_yaml(TLS_PROMETHEUS_YML)["scrape_configs"]
        self.assertIn(f"./tls/ca.crt:{scrape['tls_config']['ca_file']}:ro", prometheus)

    @unittest.skipUnless(PROMTOOL, NO_PROMTOOL)
    def test_promtool_accepts_the_tls_scrape(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = load_yaml(TLS_PROMETHEUS_YML)
            config["rule_files"] = []
            config["scrape_configs"] = scrape_configs("127.0.0.1:8080", tls_material(folder), "1s")
            path = folder / "prometheus.yml"
            path.write_text(json.dumps(config), encoding="utf-8")
            result = promtool("check", "config", str(path))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


@unittest.skipUnless(PROMETHEUS and PROMTOOL, NO_PROMETHEUS)
class LiveTlsTest(unittest.TestCase):
    """Prometheus's `up` over HTTPS with basic auth: 1 with the password, 0 without."""

    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(tmp.cleanup)
        folder = Path(tmp.name)
        ca_file = tls_material(folder)
        fake = FakeBinance(Market(seed=7), port=0).start()
        self.addCleanup(fake.stop)
        exporter = Exporter(fake.url, "--no-analytics", "--web-config-file",
                            str(local_web_config(folder)))
        self.addCleanup(exporter.close)
        self.exporter = exporter
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": scrape_configs(f"127.0.0.1:{exporter.port}", ca_file, "1s")}
        (folder / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
        port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self.log = folder / "prometheus.log"
        with open(self.log, "w", encoding="utf-8") as log:
            prometheus = subprocess.Popen(  # pylint: disable=consider-using-with
                [PROMETHEUS or "prometheus", f"--config.file={folder / 'prometheus.yml'}",
                 f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        self.addCleanup(self._stop, prometheus)

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def up(self) -> dict[str, float]:
        """`up` by job, as Prometheus stores it now."""
        try:
            status, _, body = http_get(f"{self.prometheus_url}/api/v1/query?query=up", timeout=2)
        except OSError:
            return {}
        if status != 200:
            return {}
        return {sample["metric"]["job"]: float(sample["value"][1])
                for sample in json.loads(body)["data"]["result"]}

    def test_up_with_the_password_and_down_without(self):
        try:
            wait_until(lambda: self.up() == {JOB: 1.0, "wrong-password": 0.0}, 60, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: up {self.up()}; prometheus: "
                                 f"{self.log.read_text(encoding='utf-8')[-2000:]}; exporter: "
                                 f"{self.exporter.output()[1][-2000:]}") from exc


if __name__ == "__main__":
    unittest.main()
