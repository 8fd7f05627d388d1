"""A deliberately naive Binance exporter: the baseline every benchmark figure is compared with.

It answers the same four questions the way a first attempt would, and is kept
that way on purpose:

* one request after another, never two at once;
* the FULL 24 h ticker of every symbol (weight 80, several times MINI's size);
* each order book at the biggest limit, 5000 (weight 250), to be "sure" the
  200 levels are there;
* one `bookTicker?symbol=` request (weight 2) per watched symbol;
* prometheus_client's default registry (with its process and GC collectors),
  rendered by `generate_latest` on every scrape and gzipped on every scrape.

Run as `python -m bench.naive_exporter --base-url URL --port P`.
It serves `/metrics` and `/-/ready` over HTTP/1.1 with the same response
writing as the real exporter, so the scrape comparison isolates the
render-per-scrape cost. Its rankings duration is exported under the real
exporter's name, `binance_refresh_duration_seconds{job="rankings"}`.
"""

from __future__ import annotations

import argparse
import gzip
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from binance.spot import Spot
from prometheus_client import REGISTRY, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

NAIVE_DEPTH_LIMIT = 5000

SYMBOL_INFO = Gauge("binance_symbol_info", "Tracked symbol; always 1.",
                    ["symbol", "base_asset", "quote_asset", "status"])
RANK = Gauge("binance_top_symbol_rank", "Rank of the symbol.", ["symbol", "quote_asset", "ranking"])
NOTIONAL = Gauge("binance_order_book_notional", "Notional of the top levels.", ["symbol", "side"])
SPREAD = Gauge("binance_spread", "Best ask minus best bid.", ["symbol"])
SPREAD_RATIO = Gauge("binance_spread_ratio", "Spread over mid.", ["symbol"])
SPREAD_DELTA = Gauge("binance_spread_delta", "Change of the spread.", ["symbol"])
DURATION = Gauge("binance_refresh_duration_seconds", "How long the job's latest run took.",
                 ["job"])


class NaiveExporter:
    """Everything in one object, refreshed by one thread, one request at a time."""

    def __init__(self, spot: Any, spread_symbols: str, top_n: int, depth_levels: int) -> None:
        self.spot = spot
        self.spread_mode = spread_symbols
        self.top_n = top_n
        self.depth_levels = depth_levels
        self.info: dict[str, dict] = {}
        self.spread_symbols: list[str] = []
        self.spreads: dict[str, float] = {}
        self.ready = False

    def refresh_rankings(self) -> None:
        """exchangeInfo, the FULL 24 h tickers, each depth at 5000, then every spread."""
        started = time.monotonic()
        self.info = {s["symbol"]: s for s in self.spot.exchange_info()["symbols"]}
        tickers = self.spot.ticker_24hr()
        trading = [t for t in tickers if self.info.get(t["symbol"], {}).get("status") == "TRADING"]
        btc = sorted((t for t in trading if self.info[t["symbol"]]["quoteAsset"] == "BTC"),
                     key=lambda t: (-float(t["quoteVolume"]), t["symbol"]))[: self.top_n]
        usdt = sorted((t for t in trading if self.info[t["symbol"]]["quoteAsset"] == "USDT"),
                      key=lambda t: (-int(t["count"]), t["symbol"]))[: self.top_n]
        RANK.clear()
        NOTIONAL.clear()
        for position, ticker in enumerate(btc, 1):
            RANK.labels(ticker["symbol"], "BTC", "quote_volume").set(position)
            book = self.spot.depth(ticker["symbol"], limit=NAIVE_DEPTH_LIMIT)
            for side, key in (("bid", "bids"), ("ask", "asks")):
                levels = book[key][: self.depth_levels]
                NOTIONAL.labels(ticker["symbol"], side).set(
                    sum(float(price) * float(qty) for price, qty in levels))
        for position, ticker in enumerate(usdt, 1):
            RANK.labels(ticker["symbol"], "USDT", "trades").set(position)
        if self.spread_mode == "all":
            self.spread_symbols = sorted(s for s, i in self.info.items()
                                         if i["status"] == "TRADING")
        else:
            self.spread_symbols = [t["symbol"] for t in usdt]
        SYMBOL_INFO.clear()
        for symbol in {t["symbol"] for t in btc + usdt} | set(self.spread_symbols):
            item = self.info[symbol]
            SYMBOL_INFO.labels(symbol, item["baseAsset"], item["quoteAsset"],
                               item["status"]).set(1)
        self.refresh_spreads()
        DURATION.labels("rankings").set(time.monotonic() - started)
        self.ready = True

    def refresh_spreads(self) -> None:
        """One bookTicker request per symbol, one after another."""
        for symbol in self.spread_symbols:
            top = self.spot.book_ticker(symbol=symbol)
            bid, ask = float(top["bidPrice"]), float(top["askPrice"])
            spread = ask - bid
            SPREAD.labels(symbol).set(spread)
            SPREAD_RATIO.labels(symbol).set(spread / ((ask + bid) / 2) if ask + bid else 0)
            SPREAD_DELTA.labels(symbol).set(abs(spread - self.spreads.get(symbol, spread)))
            self.spreads[symbol] = spread


class NaiveHandler(BaseHTTPRequestHandler):
    """Renders the default registry on every /metrics request."""

    protocol_version = "HTTP/1.1"
    exporter: NaiveExporter  # set on the class before serving

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        """`/metrics` (rendered now) and `/-/ready`."""
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = generate_latest(REGISTRY)
            headers = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, headers)
        elif path == "/-/ready":
            self._send(200 if self.exporter.ready else 503, b"ready\n" if self.exporter.ready
                       else b"not ready\n", {})
        else:
            self._send(404, b"not found\n", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        # Written like binance_exporter.metrics.http: headers, then the body.
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # pylint: disable=redefined-builtin
        """Quiet, like the real exporter."""


def main(argv: list[str] | None = None) -> int:
    """Refresh forever: rankings every --refresh-interval, spreads every --update-interval."""
    parser = argparse.ArgumentParser(prog="python -m bench.naive_exporter")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spread-symbols", choices=("top", "all"), default="top")
    parser.add_argument("--top-n", type=int, default=5)
    parser.add_argument("--depth-levels", type=int, default=200)
    parser.add_argument("--update-interval", type=float, default=10.0)
    parser.add_argument("--refresh-interval", type=float, default=60.0)
    args = parser.parse_args(argv)
    exporter = NaiveExporter(Spot(base_url=args.base_url, timeout=10), args.spread_symbols,
                             args.top_n, args.depth_levels)
    NaiveHandler.exporter = exporter
    server = ThreadingHTTPServer(("127.0.0.1", args.port), NaiveHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    next_rankings = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_rankings:
            exporter.refresh_rankings()
            next_rankings = time.monotonic() + args.refresh_interval
        else:
            exporter.refresh_spreads()
        # Naive: sleep the whole interval after the work, however long the work took.
        stop.wait(args.update_interval)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
