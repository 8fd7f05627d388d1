"""Trade flow paged from Binance's REST `aggTrades`, for REST mode's analytics.

Each read pages every followed symbol's aggregate trades by id from where the
previous read stopped, all symbols in flight together; `TradeFlow` counts
each id once, so overlapping pages never double-count. A symbol seen for the
first time starts from its latest trade: counters begin at start-up.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Sequence

from binance_exporter.binance.payloads import PayloadError, parse_agg_trades
from binance_exporter.binance.pool import DaemonPool
from binance_exporter.binance.rest import BinanceClient, BinanceError
from binance_exporter.market.trades import TradeFlow, gap_possible, next_page_params
from binance_exporter.model import TradeTotals

TRADE_PAGE = 1000  # aggTrades limit per page (Binance's maximum)
MAX_PAGES = 5  # pages per symbol and read; the rest waits for the next read


class RestTrades:
    """A `TradeSource` that pages aggTrades on every read (weight 4 a page)."""

    def __init__(self, client: BinanceClient, pool: DaemonPool) -> None:
        self.client = client
        self.pool = pool
        self._flows: dict[str, TradeFlow] = {}

    def flows(self, symbols: Sequence[str]) -> dict[str, TradeTotals | Exception]:
        """Page every symbol on; forget the symbols not asked for any more."""
        for symbol in set(self._flows) - set(symbols):
            del self._flows[symbol]
        futures: dict[str, Future[None]] = {
            s: self.pool.submit(self._follow, s) for s in symbols
        }
        answers: dict[str, TradeTotals | Exception] = {}
        for symbol, future in futures.items():
            try:
                future.result()
            except (BinanceError, PayloadError) as exc:
                if isinstance(exc, BinanceError) and exc.invalid_symbol:
                    self._flows.pop(symbol, None)  # delisted: followed no more
                answers[symbol] = exc
                continue
            flow = self._flows[symbol]
            answers[symbol] = TradeTotals(by_side=flow.by_side(), last_price=flow.last_price)
        return answers

    def _follow(self, symbol: str) -> None:
        """Page aggTrades by id from where the last read stopped (worker thread)."""
        flow = self._flows.get(symbol)
        if flow is None:
            first = parse_agg_trades(self.client.agg_trades(symbol, **next_page_params(None, 1)))
            flow = TradeFlow(symbol)
            flow.apply(first)
            self._flows[symbol] = flow
            return
        for _ in range(MAX_PAGES):
            page = parse_agg_trades(
                self.client.agg_trades(symbol, **next_page_params(flow.last_id, TRADE_PAGE)))
            flow.apply(page)
            if not gap_possible(len(page), TRADE_PAGE):
                return
