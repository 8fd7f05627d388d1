"""Scrape `/metrics` over one keep-alive connection and time each scrape, in its own process.

`python -m bench.scrape_client URL --count N [--gzip] [--max-seconds S]
[--interval S]`
prints one JSON object: the latencies in milliseconds (request sent to last
body byte read), when each scrape started (Unix time), the body size and how
many different bodies were seen. SIGINT ends the run early and still prints. Its
own process, so the timings do not share a GIL with the fake Binance or with
the exporter. `--interval` waits between scrapes, as a scraper on a schedule
does, instead of scraping back to back.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import sys
import time
from urllib.parse import urlsplit


def _without_process(body: bytes, zipped: bool) -> bytes:
    """The page less the lines of the process's own families."""
    text = gzip.decompress(body) if zipped else body
    kept = []
    for line in text.split(b"\n"):
        words = line.split(b" ", 3)
        name = words[2] if line.startswith(b"# ") and len(words) > 2 else line
        if not name.startswith((b"process_", b"python_")):
            kept.append(line)
    return b"\n".join(kept)


def scrape(url: str, count: int, use_gzip: bool, max_seconds: float,
           interval: float = 0.0) -> dict:
    """Up to `count` scrapes (fewer if `max_seconds` runs out); latencies in ms."""
    split = urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
    # What Prometheus sends; identity asks for the plain page.
    headers = {"Accept-Encoding": "gzip" if use_gzip else "identity"}
    latencies: list[float] = []
    starts: list[float] = []
    digests: set[str] = set()
    size = 0
    deadline = time.monotonic() + max_seconds
    try:
        while len(latencies) < count and time.monotonic() < deadline:
            wall, started = time.time(), time.perf_counter()
            connection.request("GET", split.path or "/metrics", headers=headers)
            response = connection.getresponse()
            body = response.read()
            latencies.append((time.perf_counter() - started) * 1000.0)
            starts.append(wall)
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")
            size = len(body)
            digests.add(hashlib.sha1(_without_process(body, use_gzip)).hexdigest())
            if interval:
                time.sleep(interval)
    except KeyboardInterrupt:
        pass  # asked to stop: report what was measured
    connection.close()
    return {"latencies_ms": latencies, "started_unix": starts, "bytes": size,
            "distinct_bodies": len(digests)}


def main(argv: list[str] | None = None) -> int:
    """Scrape and print the JSON result on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.scrape_client")
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds to wait between scrapes")
    args = parser.parse_args(argv)
    print(json.dumps(scrape(args.url, args.count, args.gzip, args.max_seconds, args.interval)),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
