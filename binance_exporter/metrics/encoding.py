"""prometheus_client's encoders as the page uses them: parts of one document.

The page is put together from parts rendered apart (the snapshot's families,
the kept per-symbol lines, the live families), so every part but the last is
rendered without the `# EOF` that ends an OpenMetrics document.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.registry import RestrictedRegistry

EOF_LINE = b"# EOF\n"  # what ends an OpenMetrics document
# Formats cached (pages, kept lines): the content type echoes the scraper's
# version and escaping, so a bound keeps odd Accept headers from growing a cache.
MAX_CACHED_FORMATS = 4

Encoder = Callable[[CollectorRegistry | RestrictedRegistry], bytes]


def without_eof(encoder: Encoder, registry: CollectorRegistry | RestrictedRegistry) -> bytes:
    """Families rendered to be followed by more: no OpenMetrics `# EOF` yet."""
    return encoder(registry).removesuffix(EOF_LINE)
