"""Prometheus metric families built from the current snapshot.

The collector keeps no series of its own: each `collect()` builds fresh
families from one snapshot, so a symbol that leaves a ranking loses its series
at once and no scrape can see a half-updated state. Values are those of the
last good refresh (HELP says so); samples carry no timestamps.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from binance_exporter import __version__
from binance_exporter.binance.rest import ApiStats
from binance_exporter.model import Analytics, Answers, Snapshot, StreamView


CACHED = "Cached from the last successful refresh."
FILL = "Simulated market order of `notional` quote asset walked through a GET /api/v3/depth " \
    "snapshot (buy: asks, sell: bids); no order is sent. "


def _label(value: Decimal) -> str:
    """A Decimal as a label value: plain digits, no exponent (1E+5 -> 100000)."""
    return format(value.normalize(), "f")


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class SnapshotCollector(Collector):
    """Yields the exporter's metrics from a snapshot and the client's accounting."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        api_stats: Callable[[], ApiStats],
        stream_stats: Callable[[], StreamView] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._api_stats = api_stats
        self._stream_stats = stream_stats

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        yield from self._exporter_families(snapshot)
        yield from self._api_families(self._api_stats())
        if self._stream_stats is not None:
            yield from self._stream_families(self._stream_stats())
        if snapshot.answers is not None:
            yield from self._ranking_families(snapshot.answers)
            yield from self._book_families(snapshot.answers)
        if snapshot.analytics is not None:
            yield from self._fill_families(snapshot.analytics)
            yield from self._flow_families(snapshot.analytics)

    @staticmethod
    def _exporter_families(snapshot: Snapshot) -> Iterator[Metric]:
        build = _gauge("binance_exporter_build_info", "Exporter version; always 1.", ("version",))
        build.add_metric([__version__], 1)
        yield build
        yield GaugeMetricFamily(
            "binance_up",
            "1 when the latest run of every refresh job succeeded, else 0.",
            value=1 if snapshot.up else 0,
        )
        success = _gauge(
            "binance_refresh_success", "1 when the latest run of the job succeeded.", ("job",)
        )
        last = _gauge(
            "binance_last_refresh_timestamp_seconds",
            "Unix time of the job's last successful refresh.",
            ("job",),
        )
        duration = _gauge(
            "binance_refresh_duration_seconds", "How long the job's latest run took.", ("job",)
        )
        for job, state in snapshot.jobs.items():
            success.add_metric([job], 1 if state.success else 0)
            if state.last_success is not None:
                last.add_metric([job], state.last_success)
            if state.duration is not None:
                duration.add_metric([job], state.duration)
        yield from (success, last, duration)
        skipped = CounterMetricFamily(
            "binance_skipped_values",
            "Values not exported because the book or quote was empty, one-sided, crossed "
            "or its symbol no longer exists.",
            labels=["job", "reason"],
        )
        for (job, reason), count in sorted(snapshot.skipped.items()):
            skipped.add_metric([job, reason], count)
        yield skipped

    @staticmethod
    def _api_families(stats: ApiStats) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "binance_api_requests",
            "Requests sent to the Binance REST API, by endpoint and HTTP status "
            "('error' when no status was received).",
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(stats.requests.items()):
            requests.add_metric([endpoint, code], count)
        yield requests
        if stats.weight_used is not None:
            yield GaugeMetricFamily(
                "binance_api_request_weight_used",
                "Request weight this IP used in the current minute (X-MBX-USED-WEIGHT-1M).",
                value=stats.weight_used,
            )
        yield GaugeMetricFamily(
            "binance_api_request_weight_limit",
            "REQUEST_WEIGHT limit per minute (exchangeInfo rateLimits).",
            value=stats.weight_limit,
        )
        yield GaugeMetricFamily(
            "binance_api_backoff_until_timestamp_seconds",
            "Unix time until which no request is sent after a 429/418 (0: never backed off).",
            value=stats.backoff_until,
        )

    @staticmethod
    def _stream_families(view: StreamView) -> Iterator[Metric]:
        stats, update_ids, resyncs = view, view.update_ids, view.resyncs
        messages = CounterMetricFamily(
            "binance_stream_messages", "Websocket market-stream messages received, by stream "
            "type (e.g. depth@100ms).", labels=["stream_type"])
        for kind, count in sorted(stats.messages.items()):
            messages.add_metric([kind], count)
        yield messages
        yield GaugeMetricFamily("binance_stream_connected",
                                "1 when every stream connection is open and subscribed.",
                                value=1 if stats.connected else 0)
        yield CounterMetricFamily("binance_stream_reconnects",
                                  "Stream connections re-established after a drop, a silence "
                                  "longer than the watchdog or the 24 h limit.",
                                  value=stats.reconnects)
        if stats.last_message is not None:
            yield GaugeMetricFamily("binance_stream_last_message_timestamp_seconds",
                                    "Unix time of the latest stream message.",
                                    value=stats.last_message)
        update = _gauge("binance_order_book_update_id",
                        "Final update id (u) of the last diff applied to the local book; absent "
                        "while the book is out of sync.", ("symbol",))
        for symbol, value in sorted(update_ids.items()):
            update.add_metric([symbol], value)
        yield update
        resync = CounterMetricFamily("binance_order_book_resyncs",
                                     "Times the local book was rebuilt from a REST snapshot after "
                                     "a gap, a crossed book or a reconnect.", labels=["symbol"])
        for symbol, count in sorted(resyncs.items()):
            resync.add_metric([symbol], count)
        yield resync

    @staticmethod
    def _ranking_families(answers: Answers) -> Iterator[Metric]:
        info = _gauge(
            "binance_symbol_info",
            "Tracked symbol, from GET /api/v3/exchangeInfo (baseAsset, quoteAsset, status); "
            "always 1. " + CACHED,
            ("symbol", "base_asset", "quote_asset", "status"),
        )
        for symbol in sorted(answers.symbols.values(), key=lambda s: s.symbol):
            labels = [symbol.symbol, symbol.base_asset, symbol.quote_asset, symbol.status]
            info.add_metric(labels, 1)
        yield info

        rank = _gauge(
            "binance_top_symbol_rank",
            "Rank of the symbol (1 = first) by 24h quote volume (BTC-quoted) or number of "
            "trades (USDT-quoted), from GET /api/v3/ticker/24hr. " + CACHED,
            ("symbol", "quote_asset", "ranking"),
        )
        quote_volume = _gauge(
            "binance_ticker_24h_quote_volume",
            "24h volume in the quote asset of the ranked BTC-quoted symbols, GET "
            "/api/v3/ticker/24hr field quoteVolume. " + CACHED,
            ("symbol",),
        )
        trades = _gauge(
            "binance_ticker_24h_trades",
            "24h number of trades of the ranked USDT-quoted symbols, GET /api/v3/ticker/24hr "
            "field count. " + CACHED,
            ("symbol",),
        )
        # `answers.symbols` holds only this shard's symbols: with --shard, each
        # ranked symbol is exported by exactly one exporter.
        for position, ticker in enumerate(answers.top_btc, 1):
            if (info_btc := answers.symbols.get(ticker.symbol)) is not None:
                rank.add_metric([ticker.symbol, info_btc.quote_asset, "quote_volume"], position)
                quote_volume.add_metric([ticker.symbol], float(ticker.quote_volume))
        for position, ticker in enumerate(answers.top_usdt, 1):
            if (info_usdt := answers.symbols.get(ticker.symbol)) is not None:
                rank.add_metric([ticker.symbol, info_usdt.quote_asset, "trades"], position)
                trades.add_metric([ticker.symbol], ticker.trades)
        yield from (rank, quote_volume, trades)

    @staticmethod
    def _book_families(answers: Answers) -> Iterator[Metric]:
        notional = _gauge(
            "binance_order_book_notional",
            "Sum of price x quantity over the top levels of one side of the book, in the "
            "quote asset, from GET /api/v3/depth (bids, asks). " + CACHED,
            ("symbol", "side"),
        )
        for symbol, sides in sorted(answers.notional.items()):
            if sides.bids is not None:
                notional.add_metric([symbol, "bid"], float(sides.bids))
            if sides.asks is not None:
                notional.add_metric([symbol, "ask"], float(sides.asks))
        yield notional

        spread = _gauge(
            "binance_spread",
            "Best ask minus best bid, in the quote asset, from GET /api/v3/ticker/bookTicker "
            "(askPrice - bidPrice). " + CACHED,
            ("symbol",),
        )
        ratio = _gauge(
            "binance_spread_ratio",
            "Spread divided by the mid price (askPrice + bidPrice) / 2, from GET "
            "/api/v3/ticker/bookTicker. " + CACHED,
            ("symbol",),
        )
        delta = _gauge(
            "binance_spread_delta",
            "Absolute change of binance_spread since the previous spread refresh "
            "(0 on the first). " + CACHED,
            ("symbol",),
        )
        for symbol, value in sorted(answers.spreads.items()):
            spread.add_metric([symbol], float(value))
            ratio.add_metric([symbol], float(answers.spread_ratios[symbol]))
            delta.add_metric([symbol], float(answers.deltas.get(symbol, 0)))
        yield from (spread, ratio, delta)

        vwap = _gauge(
            "binance_vwap_price",
            "(bid VWAP + ask VWAP) / 2 over the top --depth-levels levels, each side's VWAP "
            "being sum(price x qty) / sum(qty). " + CACHED,
            ("symbol",),
        )
        average = _gauge(
            "binance_vwap_price_average",
            "Time-weighted average of binance_vwap_price over the trailing window, from every "
            "value the exporter computed (stream mode: each book update, sampled at 10 Hz; REST "
            "mode: each rankings refresh, so much coarser). " + CACHED,
            ("symbol", "window"),
        )
        for symbol, value in sorted(answers.vwap.items()):
            vwap.add_metric([symbol], float(value))
        for (symbol, window), value in sorted(answers.vwap_averages.items()):
            average.add_metric([symbol, window], float(value))
        yield from (vwap, average)

    @staticmethod
    def _fill_families(analytics: Analytics) -> Iterator[Metric]:
        labels = ("symbol", "side", "notional")
        average = _gauge("binance_fill_average_price",
                         FILL + "Volume-weighted execution price. " + CACHED, labels)
        slippage = _gauge("binance_fill_slippage_ratio",
                          FILL + "|average price - mid| / mid, a ratio. " + CACHED, labels)
        levels = _gauge("binance_fill_levels",
                        FILL + "Price levels the order consumed. " + CACHED, labels)
        unfilled = _gauge(
            "binance_fill_unfilled_notional",
            FILL + "Quote notional the whole visible side could not fill; only for orders "
            "larger than the book. " + CACHED,
            labels,
        )
        depth = _gauge(
            "binance_order_book_depth_notional",
            "Quote notional resting within `band` (a ratio) of the mid price, edges included, "
            "from GET /api/v3/depth; band 0.02 is the '2% depth' listing sites quote. " + CACHED,
            ("symbol", "side", "band"),
        )
        for symbol, book in sorted(analytics.books.items()):
            for (side, notional), fill in sorted(book.fills.items()):
                key = [symbol, side, _label(notional)]
                levels.add_metric(key, fill.levels_used)
                if fill.complete and fill.average_price is not None:
                    average.add_metric(key, float(fill.average_price))
                    if fill.slippage_ratio is not None:
                        slippage.add_metric(key, float(fill.slippage_ratio))
                else:
                    unfilled.add_metric(key, float(fill.unfilled_notional))
            for (side, band), value in sorted(book.bands.items()):
                depth.add_metric([symbol, side, _label(band)], float(value))
        yield from (average, slippage, levels, unfilled, depth)

    @staticmethod
    def _flow_families(analytics: Analytics) -> Iterator[Metric]:
        source = "from GET /api/v3/aggTrades paged by id since the exporter started following " \
            "the symbol; taker side from the maker flag. "
        trades = CounterMetricFamily("binance_trades", "Trades " + source,
                                     labels=["symbol", "taker_side"])
        base = CounterMetricFamily("binance_traded_base_volume",
                                   "Traded quantity in the base asset, " + source,
                                   labels=["symbol", "taker_side"])
        quote = CounterMetricFamily("binance_traded_quote_volume",
                                    "Traded value (price x quantity) in the quote asset, " + source,
                                    labels=["symbol", "taker_side"])
        last = _gauge("binance_last_trade_price", "Price of the latest trade seen, GET "
                      "/api/v3/aggTrades field p. " + CACHED, ("symbol",))
        for symbol, flow in sorted(analytics.trades.items()):
            for side, totals in sorted(flow.by_side.items()):
                trades.add_metric([symbol, side], totals.trades)
                base.add_metric([symbol, side], float(totals.base_volume))
                quote.add_metric([symbol, side], float(totals.quote_volume))
            if flow.last_price is not None:
                last.add_metric([symbol], float(flow.last_price))
        yield from (trades, base, quote, last)
