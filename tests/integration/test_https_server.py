"""The endpoint over TLS with basic auth, client certificates and rotation, on loopback."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import tempfile
import unittest
from pathlib import Path

from binance_exporter.metrics.http import ExporterServer
from binance_exporter.metrics.web_config import load_web_config
from tests.certs import Authority, bcrypt_hash, serial_of
from tests.integration.test_http_server import exposition

AUTH = "Basic " + base64.b64encode(b"prometheus:secret").decode()
WRONG = "Basic " + base64.b64encode(b"prometheus:guess").decode()


class TlsCase(unittest.TestCase):
    """A CA, a server certificate for 127.0.0.1 and a server using them."""

    def setUp(self) -> None:
        folder = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.addCleanup(folder.cleanup)
        self.folder = Path(folder.name)
        self.ca = Authority()
        (self.folder / "ca.crt").write_bytes(self.ca.pem)
        self.ca.issue("127.0.0.1", server=True).write(self.folder, "server")
        self.ca.issue("scraper", server=False).write(self.folder, "client")

    def serve(self, extra: str = "") -> int:
        """A server with TLS, one user and HSTS (plus `extra` TLS keys); its port."""
        path = self.folder / "web.yml"
        path.write_text(f"""tls_server_config:
  cert_file: server.crt
  key_file: server.key
{extra}http_server_config:
  headers: {{Strict-Transport-Security: max-age=31536000}}
basic_auth_users:
  prometheus: {bcrypt_hash("secret")}
""", encoding="utf-8")
        server = ExporterServer(("127.0.0.1", 0), exposition(), lambda: True, "test",
                                web=load_web_config(path))
        server.serve_in_thread()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[1]

    def client_context(self, client: str | None = None) -> ssl.SSLContext:
        """Trusts the test CA; presents `<client>.crt` when given."""
        context = ssl.create_default_context(cafile=str(self.folder / "ca.crt"))
        if client is not None:
            context.load_cert_chain(self.folder / f"{client}.crt", self.folder / f"{client}.key")
        return context

    def get(self, port: int, path: str, auth: str | None = AUTH,
            context: ssl.SSLContext | None = None) -> http.client.HTTPResponse:
        """One HTTPS GET; the response, read."""
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                                 context=context or self.client_context())
        self.addCleanup(connection.close)
        connection.request("GET", path, headers={"Authorization": auth} if auth else {})
        response = connection.getresponse()
        response.read()
        return response


class HttpsTest(TlsCase):
    """HTTPS answers, with the operator's headers; auth on every path but /-/healthy."""

    def test_https_with_the_right_password(self):
        port = self.serve()
        response = self.get(port, "/metrics")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Strict-Transport-Security"], "max-age=31536000")

    def test_wrong_or_missing_password_is_401(self):
        port = self.serve()
        for auth in (WRONG, None):
            for path in ("/metrics", "/", "/-/ready"):
                with self.subTest(auth=auth, path=path):
                    response = self.get(port, path, auth=auth)
                    self.assertEqual(response.status, 401)
                    self.assertTrue(response.headers["WWW-Authenticate"].startswith("Basic "))
        self.assertEqual(self.get(port, "/-/healthy", auth=None).status, 200)

    def test_plain_http_on_the_tls_port_fails(self):
        port = self.serve()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.addCleanup(connection.close)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            connection.request("GET", "/-/healthy")
            connection.getresponse()

    def test_client_certificates_under_require_and_verify(self):
        port = self.serve("  client_auth_type: RequireAndVerifyClientCert\n"
                          "  client_ca_file: ca.crt\n")
        self.assertEqual(self.get(port, "/metrics", context=self.client_context("client")).status,
                         200)
        Authority("another CA").issue("scraper", server=False).write(self.folder, "stranger")
        for client in ("stranger", None):
            with self.subTest(client=client), \
                    self.assertRaises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                self.get(port, "/metrics", context=self.client_context(client))

    def test_rotation_reaches_the_next_handshake(self):
        port = self.serve()
        before = self.presented(port)
        rotated = self.ca.issue("127.0.0.1", server=True)
        rotated.write(self.folder, "server")
        after = self.presented(port)
        self.assertNotEqual(after, before)
        self.assertEqual(after, serial_of(rotated.cert))
        self.assertEqual(self.get(port, "/metrics").status, 200)

    def presented(self, port: int) -> int:
        """The serial of the certificate the server presents in a new handshake."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                self.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return serial_of(der)


if __name__ == "__main__":
    unittest.main()
