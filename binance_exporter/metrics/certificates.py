"""The server's TLS context, rebuilt when its certificate, key or client CA change.

cert-manager and similar tools rotate the files in place (often by swapping a
symlink). Every new connection asks for the context; a `stat` of each file
says whether it changed, so a rotation takes effect on the next handshake and
the listener is never dropped. A rebuild that fails (a key that does not
match yet, a half-written file) keeps the previous pair and logs one error
for that state of the files; the next change tries again.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

from binance_exporter.metrics.web_config import TlsConfig, WebConfigError

LOG = logging.getLogger(__name__)
Signature = tuple[tuple[int, int, int], ...]


class ReloadingContext:
    """`context()` is the SSLContext for the files' current contents, or the last good one."""

    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls
        self._signature = self._stat()
        self._failed: Signature | None = None
        self._context = tls.context()
        self._lock = threading.Lock()
        self.reloads = 0

    def _stat(self) -> Signature:
        signature = []
        for path in self.tls.files():
            try:
                info = os.stat(path)
                signature.append((info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                signature.append((-1, -1, -1))
        return tuple(signature)

    def context(self) -> ssl.SSLContext:
        """The context to wrap the next connection with."""
        signature = self._stat()
        with self._lock:
            if signature in (self._signature, self._failed):
                return self._context
            try:
                self._context = self.tls.context()
            except WebConfigError as exc:
                self._failed = signature
                LOG.error("TLS files changed but cannot be loaded, keeping the previous "
                          "certificate: %s", exc)
                return self._context
            self._signature, self._failed = signature, None
            self.reloads += 1
            LOG.info("TLS certificate reloaded from %s", self.tls.cert_file)
            return self._context
