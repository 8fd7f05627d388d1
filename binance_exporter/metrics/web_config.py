"""`--web-config-file`: the exporter-toolkit YAML every Go exporter reads, checked whole.

The same keys with the same meaning as Prometheus's exporter-toolkit:

    tls_server_config:
      cert_file: server.crt          # paths are relative to this file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      min_version: TLS12             # TLS10 .. TLS13; TLS12 by default
      max_version: TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
      prefer_server_cipher_suites: true
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hashes

What Python's `ssl` cannot honour is refused rather than ignored: a client
certificate required but not verified (`RequireAnyClientCert`), curve
preferences, SAN allow-lists and inline keys. `cipher_suites` applies to TLS
1.2 and below, as in Go: TLS 1.3 suites cannot be chosen in either, and are
accepted and left as they are. `http2` is accepted; the exporter speaks
HTTP/1.1 only, which every scraper falls back to.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version", "cipher_suites", "prefer_server_cipher_suites"}
UNSUPPORTED_TLS_KEYS = {
    "cert": "inline certificates are not supported; use cert_file",
    "key": "inline keys are not supported; use key_file",
    "curve_preferences": "Python's ssl cannot take a list of curves",
    "client_allowed_sans": "a SAN allow-list is not supported",
}
# client_auth_type -> (ssl verify mode, needs client_ca_file). Requesting a
# certificate changes nothing the exporter serves, so RequestClientCert asks
# for none.
CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_NONE, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
UNSUPPORTED_CLIENT_AUTH = {
    "RequireAnyClientCert": "Python's ssl cannot require a certificate without verifying it; "
                            "use RequireAndVerifyClientCert with client_ca_file",
}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
            "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's names of the TLS 1.2 suites and OpenSSL's names for the same suites.
CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_CIPHERS = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                 "TLS_CHACHA20_POLY1305_SHA256"}
# The response headers exporter-toolkit lets an operator set.
HEADERS = {"strict-transport-security": "Strict-Transport-Security",
           "x-content-type-options": "X-Content-Type-Options",
           "x-frame-options": "X-Frame-Options",
           "x-xss-protection": "X-XSS-Protection",
           "content-security-policy": "Content-Security-Policy"}
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


class WebConfigError(ValueError):
    """A web config that cannot work; the message names the file and the problem."""


@dataclass(frozen=True)
class TlsConfig:
    """`tls_server_config`, paths resolved against the web config's folder."""

    cert_file: Path
    key_file: Path
    verify_mode: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ciphers: str | None = None  # OpenSSL's cipher string, TLS 1.2 and below
    prefer_server_ciphers: bool = False

    def files(self) -> tuple[Path, ...]:
        """Every file the context is built from (what a reload watches)."""
        return (self.cert_file, self.key_file) + (
            (self.client_ca_file,) if self.client_ca_file is not None else ())

    def context(self) -> ssl.SSLContext:
        """A server context from the files as they are now; WebConfigError if they cannot work."""
        for path in self.files():
            try:
                path.read_bytes()
            except OSError as exc:
                raise WebConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = self.min_version
        context.maximum_version = self.max_version
        if self.ciphers is not None:
            try:
                context.set_ciphers(self.ciphers)
            except ssl.SSLError:
                raise WebConfigError(f"no cipher suite of {self.ciphers} is available") from None
        if self.prefer_server_ciphers:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise WebConfigError(f"key_file {self.key_file} does not match cert_file "
                                     f"{self.cert_file}") from None
            raise WebConfigError(f"cert_file {self.cert_file} and key_file {self.key_file} "
                                 f"are not a PEM certificate and key: {exc.reason}") from None
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except ssl.SSLError as exc:
                raise WebConfigError(f"client_ca_file {self.client_ca_file} holds no PEM "
                                     f"certificate: {exc.reason}") from None
        context.verify_mode = self.verify_mode
        return context


@dataclass(frozen=True)
class WebConfig:
    """The whole web config: TLS (None: plain HTTP), extra headers, bcrypt users."""

    path: Path
    tls: TlsConfig | None = None
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check `path`; WebConfigError("<path>: <problem>") when it cannot work.

    Everything is checked before serving: the YAML and its keys, every
    hash, and the TLS files, by building the context they make.
    """
    path = Path(path)
    try:
        return _parse(path)
    except WebConfigError as exc:
        raise WebConfigError(f"{path}: {exc}") from None


def _parse(path: Path) -> WebConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WebConfigError(f"not valid YAML{where}") from None
    document = _mapping(document if document is not None else {}, "the file")
    _known(document, {"tls_server_config", "http_server_config", "basic_auth_users"}, "")
    tls = None
    if document.get("tls_server_config") is not None:
        tls = _tls(_mapping(document["tls_server_config"], "tls_server_config"), path.parent)
        tls.context()
    server = _mapping(document.get("http_server_config") or {}, "http_server_config")
    _known(server, {"headers", "http2"}, "http_server_config.")
    if not isinstance(server.get("http2", True), bool):
        raise WebConfigError("http_server_config.http2 must be true or false")
    return WebConfig(path, tls, _headers(server.get("headers") or {}),
                     _users(document.get("basic_auth_users") or {}))


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise WebConfigError(f"{what} must be a mapping of names to values")
    return value


def _known(section: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise WebConfigError(f"unknown key {prefix}{unknown[0]} "
                             f"(known: {', '.join(sorted(known))})")


def _string(section: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = section.get(key, default)
    if value is not None and not isinstance(value, str):
        raise WebConfigError(f"tls_server_config.{key} must be a string")
    return value or default


def _tls(section: dict[str, Any], folder: Path) -> TlsConfig:
    for key, why in UNSUPPORTED_TLS_KEYS.items():
        if key in section:
            raise WebConfigError(f"tls_server_config.{key}: {why}")
    _known(section, TLS_KEYS, "tls_server_config.")
    cert, key = _string(section, "cert_file"), _string(section, "key_file")
    if not cert or not key:
        raise WebConfigError("tls_server_config needs both cert_file and key_file")
    auth = _string(section, "client_auth_type", "NoClientCert") or "NoClientCert"
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise WebConfigError(f"client_auth_type {auth}: {UNSUPPORTED_CLIENT_AUTH[auth]}")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"unknown client_auth_type {auth!r} "
                             f"(one of {', '.join([*CLIENT_AUTH, *UNSUPPORTED_CLIENT_AUTH])})")
    verify_mode, needs_ca = CLIENT_AUTH[auth]
    ca_name = _string(section, "client_ca_file")
    if needs_ca and not ca_name:
        raise WebConfigError(f"client_auth_type {auth} needs client_ca_file")
    if ca_name and not needs_ca:
        raise WebConfigError(f"client_ca_file is set but client_auth_type {auth} verifies "
                             "no client certificate")
    versions = [_version(section, "min_version", "TLS12"), _version(section, "max_version", None)]
    if versions[1] is not None and versions[1] < versions[0]:
        raise WebConfigError("tls_server_config.max_version is below min_version")
    prefer = section.get("prefer_server_cipher_suites", False)
    if not isinstance(prefer, bool):
        raise WebConfigError("tls_server_config.prefer_server_cipher_suites must be true or false")
    return TlsConfig(
        cert_file=folder / cert, key_file=folder / key, verify_mode=verify_mode,
        client_ca_file=folder / ca_name if ca_name else None,
        min_version=versions[0] or ssl.TLSVersion.TLSv1_2,
        max_version=versions[1] or ssl.TLSVersion.MAXIMUM_SUPPORTED,
        ciphers=_ciphers(section.get("cipher_suites")), prefer_server_ciphers=prefer,
    )


def _version(section: dict[str, Any], key: str, default: str | None) -> ssl.TLSVersion | None:
    name = _string(section, key, default)
    if name is None:
        return None
    if name not in VERSIONS:
        raise WebConfigError(f"tls_server_config.{key} {name!r} is not one of "
                             f"{', '.join(VERSIONS)}")
    return VERSIONS[name]


def _ciphers(names: Any) -> str | None:
    if names is None:
        return None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise WebConfigError("tls_server_config.cipher_suites must be a list of suite names")
    unknown = [name for name in names if name not in CIPHERS and name not in TLS13_CIPHERS]
    if unknown:
        raise WebConfigError(f"unknown or unsupported cipher suite {unknown[0]}")
    chosen = [CIPHERS[name] for name in names if name in CIPHERS]
    return ":".join(chosen) if chosen else None


def _headers(section: Any) -> dict[str, str]:
    headers = {}
    for name, value in _mapping(section, "http_server_config.headers").items():
        canonical = HEADERS.get(name.lower())
        if canonical is None:
            raise WebConfigError(f"header {name} cannot be set (allowed: "
                                 f"{', '.join(HEADERS.values())})")
        if not isinstance(value, str) or not HEADER_VALUE.match(value):
            raise WebConfigError(f"header {name} needs a printable string value")
        headers[canonical] = value
    return headers


def _users(section: Any) -> dict[str, bytes]:
    users = {}
    for user, hashed in _mapping(section, "basic_auth_users").items():
        if ":" in user or not user:
            raise WebConfigError(f"basic_auth_users: user name {user!r} is empty or has a colon")
        if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            raise WebConfigError(f"basic_auth_users: the password of {user} is not a bcrypt "
                                 "hash ($2a$, $2b$ or $2y$, cost 04-31)")
        users[user] = hashed.encode("ascii")
    return users
