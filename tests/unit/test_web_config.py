"""The web config's checks, the TLS context it builds, and basic auth's cache."""

from __future__ import annotations

import base64
import logging
import ssl
import tempfile
import unittest
from pathlib import Path

from click.testing import CliRunner

from binance_exporter.cli import main
from binance_exporter.metrics.basic_auth import BasicAuth
from binance_exporter.metrics.certificates import ReloadingContext
from binance_exporter.metrics.web_config import WebConfigError, load_web_config
from tests.certs import Authority, bcrypt_hash, serial_of


def basic(user: str, password: str) -> str:
    """An Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class WebConfigCase(unittest.TestCase):
    """A folder with a CA, a server certificate and its key."""

    def setUp(self) -> None:
        folder = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)
        self.ca = Authority()
        self.ca_file = self.folder / "ca.crt"
        self.ca_file.write_bytes(self.ca.pem)
        self.cert, self.key = self.ca.issue("127.0.0.1", server=True).write(self.folder, "server")

    def write(self, text: str) -> Path:
        """The web config file with `text`."""
        path = self.folder / "web.yml"
        path.write_text(text, encoding="utf-8")
        return path

    def refused(self, text: str) -> str:
        """The one-line problem of a config that cannot work."""
        path = self.write(text)
        with self.assertRaises(WebConfigError) as caught:
            load_web_config(path)
        message = str(caught.exception)
        self.assertTrue(message.startswith(f"{path}: "), message)
        self.assertNotIn("\n", message)
        return message


class ParseTest(WebConfigCase):
    """What is accepted, and the line for what is not."""

    def test_the_full_format(self):
        config = load_web_config(self.write(f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {bcrypt_hash("secret")}
"""))
        assert config.tls is not None
        self.assertEqual(config.tls.cert_file, self.cert)  # relative to the file's folder
        self.assertEqual(config.tls.verify_mode, ssl.CERT_REQUIRED)
        self.assertEqual(config.tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(config.headers, {"Strict-Transport-Security": "max-age=31536000"})
        self.assertEqual(list(config.users), ["prometheus"])
        context = config.tls.context()
        self.assertEqual(context.minimum_version, ssl.TLSVersion.TLSv1_2)

    def test_empty_file_is_plain_http(self):
        config = load_web_config(self.write(""))
        self.assertIsNone(config.tls)
        self.assertEqual((config.headers, config.users), ({}, {}))

    def test_problems_name_the_file_and_the_problem(self):
        other = Authority().issue("127.0.0.1", server=True).write(self.folder, "other")
        tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: {key}\n"
        cases = {
            "tls_server_config: {cert_fil: x}": "unknown key tls_server_config.cert_fil",
            "basic_auth: {}": "unknown key basic_auth",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n":
                "cannot read " + str(self.folder / "nope.crt"),
            tls.format(key=other[1].name): "does not match cert_file",
            "basic_auth_users: {u: plaintext}": "the password of u is not a bcrypt hash",
            "basic_auth_users: {u: $2b$12$short}": "not a bcrypt hash",
            tls.format(key="server.key") + "  client_auth_type: RequireAnyClientCert\n":
                "cannot require a certificate without verifying it",
            tls.format(key="server.key") + "  client_auth_type: RequireAndVerifyClientCert\n":
                "needs client_ca_file",
            tls.format(key="server.key") + "  min_version: TLS14\n": "min_version 'TLS14'",
            tls.format(key="server.key") + "  cipher_suites: [RC4]\n": "cipher suite RC4",
            tls.format(key="server.key") + "  curve_preferences: [X25519]\n": "list of curves",
            "http_server_config: {headers: {Server: x}}": "header Server cannot be set",
            "[1, 2]": "must be a mapping",
            "a: [": "not valid YAML",
        }
        for text, problem in cases.items():
            with self.subTest(problem=problem):
                self.assertIn(problem, self.refused(text))

    def test_unreadable_file(self):
        with self.assertRaises(WebConfigError) as caught:
            load_web_config(self.folder / "missing.yml")
        self.assertIn("missing.yml: cannot read it", str(caught.exception))

    def test_cli_exits_2_with_one_line(self):
        path = self.write("basic_auth_users: {u: plaintext}")
        result = CliRunner().invoke(main, ["--web-config-file", str(path), "--once"])
        self.assertEqual(result.exit_code, 2)
        lines = result.output.strip().splitlines()
        self.assertEqual(len(lines), 1, result.output)
        self.assertTrue(lines[0].startswith(f"error: --web-config-file {path}: "), lines[0])


class ReloadTest(WebConfigCase):
    """The context follows its files; a bad change keeps the last good pair."""

    def test_reload_on_change_and_keep_the_old_pair_on_failure(self):
        config = load_web_config(self.write("tls_server_config: {cert_file: server.crt, "
                                            "key_file: server.key}"))
        assert config.tls is not None
        reloading = ReloadingContext(config.tls)
        first = reloading.context()
        self.assertIs(reloading.context(), first)  # unchanged files: the same context
        issued = self.ca.issue("127.0.0.1", server=True)
        issued.write(self.folder, "server")
        second = reloading.context()
        self.assertIsNot(second, first)
        self.assertEqual(reloading.reloads, 1)
        self.assertEqual(serial_of(self.cert.read_bytes()), serial_of(issued.cert))
        # Half a rotation: a new certificate, the old key. One error, the old pair kept.
        self.ca.issue("127.0.0.1", server=True).write(self.folder, "next")
        self.cert.write_bytes((self.folder / "next.crt").read_bytes())
        with self.assertLogs("binance_exporter.metrics.certificates", logging.ERROR) as logs:
            self.assertIs(reloading.context(), second)
            self.assertIs(reloading.context(), second)
        self.assertEqual(len(logs.records), 1)
        self.assertIn("does not match", logs.records[0].getMessage())
        self.key.write_bytes((self.folder / "next.key").read_bytes())
        self.assertIsNot(reloading.context(), second)


class BasicAuthTest(unittest.TestCase):
    """Credentials checked once per pair."""

    def test_cached_pairs_cost_one_bcrypt_round(self):
        auth = BasicAuth({"prometheus": bcrypt_hash("secret").encode()})
        for _ in range(5):
            self.assertTrue(auth.allows(basic("prometheus", "secret")))
        self.assertEqual(auth.bcrypt_rounds, 1)
        self.assertFalse(auth.allows(basic("prometheus", "wrong")))
        self.assertFalse(auth.allows(basic("nobody", "secret")))
        self.assertEqual(auth.bcrypt_rounds, 3)

    def test_malformed_headers_are_refused_without_bcrypt(self):
        auth = BasicAuth({"u": bcrypt_hash("p").encode()})
        for header in (None, "", "Bearer abc", "Basic !!!", "Basic " +
                       base64.b64encode(b"no colon").decode()):
            with self.subTest(header=header):
                self.assertFalse(auth.allows(header))
        self.assertEqual(auth.bcrypt_rounds, 0)

    def test_the_cache_is_bounded(self):
        auth = BasicAuth({"u": bcrypt_hash("p").encode()}, cache_size=2)
        for attempt in range(4):
            auth.allows(basic("u", f"guess{attempt}"))
        self.assertTrue(auth.allows(basic("u", "p")))
        self.assertTrue(auth.allows(basic("u", "p")))
        self.assertEqual(auth.bcrypt_rounds, 5)


if __name__ == "__main__":
    unittest.main()
