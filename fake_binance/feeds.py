"""What each market stream of `FakeStreams` sends, read from a `Market`.

One feed per stream name (shared by its subscribers); the hub in
`fake_binance.streams` polls the feeds and frames their payloads.  The
rules they follow are in that module's docstring.
"""

from __future__ import annotations

import collections
import math
from decimal import Decimal
from typing import Iterable, Union

from .market import BinanceError, Market, Top

ZERO = "0.00000000"
# Stream kind (the part after the first '@') -> (feed kind, seconds between events).
_KINDS = {"depth": ("depth", 1.0), "depth@1000ms": ("depth", 1.0),
          "depth@100ms": ("depth", 0.1), "bookTicker": ("bookTicker", 0.0),
          "aggTrade": ("aggTrade", 0.0)}
# All-market streams with data -> their feed (its period is FakeStreams' ticker_period).
_ARRAYS = {"!ticker_1d@arr": ("", "ticker_1d", 1.0)}
# `!ticker_1d@arr` letters -> the ticker_24hr fields they carry.
_WINDOW_FIELDS = (("p", "priceChange"), ("P", "priceChangePercent"), ("o", "openPrice"),
                  ("h", "highPrice"), ("l", "lowPrice"), ("c", "lastPrice"),
                  ("w", "weightedAvgPrice"), ("v", "volume"), ("q", "quoteVolume"),
                  ("O", "openTime"), ("C", "closeTime"), ("F", "firstId"), ("L", "lastId"),
                  ("n", "count"))

FeedKey = tuple[str, str, float]  # (SYMBOL or "" for all symbols, feed kind, period)
Levels = dict[str, str]  # price -> qty, both as 8-decimal strings
Payload = Union[dict, list]  # one event, or an array of them (`!...@arr`)


def feed_key(stream: str) -> FeedKey | None:
    """The feed behind a stream name, or None for a name that never carries data."""
    if stream in _ARRAYS:
        return _ARRAYS[stream]
    symbol, _, kind = stream.partition("@")
    known = _KINDS.get(kind)
    if known is None or not symbol or symbol.startswith("!") or symbol != symbol.lower():
        return None
    return symbol.upper(), known[0], known[1]


def _levels(levels: Iterable[tuple[Decimal, Decimal]]) -> Levels:
    return {f"{price:.8f}": f"{qty:.8f}" for price, qty in levels}


def _diff(old: Levels, new: Levels, descending: bool) -> list[list[str]]:
    """Levels to send: changed or new ones with their quantity, vanished ones with 0."""
    changed = [[price, qty] for price, qty in new.items() if old.get(price) != qty]
    changed += [[price, ZERO] for price in old if price not in new]
    changed.sort(key=lambda level: Decimal(level[0]), reverse=descending)
    return changed


def window_event(ticker: dict, now_ms: int) -> dict:
    """One `1dTicker` object of `!ticker_1d@arr` from a ticker_24hr object."""
    event = {"e": "1dTicker", "E": now_ms, "s": ticker["symbol"]}
    event.update((letter, ticker[name]) for letter, name in _WINDOW_FIELDS)
    return event


class BookReader:
    """The market as seen during one poll: each symbol read at most once."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self._tops: dict[str, Top | None] = {}
        self._books: dict[str, tuple[int, Levels, Levels] | None] = {}

    def top(self, symbol: str) -> Top | None:
        """`market.top`: lastUpdateId and the best levels; None if unknown.  Not
        `depth(symbol, 1)`, which builds a side of the book for one level."""
        if symbol not in self._tops:
            try:
                self._tops[symbol] = self.market.top(symbol)
            except BinanceError:
                self._tops[symbol] = None
        return self._tops[symbol]

    def book(self, symbol: str) -> tuple[int, Levels, Levels] | None:
        """(lastUpdateId, bids, asks) of one consistent state; None if unknown."""
        if symbol not in self._books:
            self._books[symbol] = None
            for _ in range(5):  # a step between the reads: read again
                try:
                    before = self.market.top(symbol).update_id
                    bids, asks = self.market.book(symbol)
                    after = self.market.top(symbol).update_id
                except BinanceError:
                    break
                if before == after:
                    self._books[symbol] = (after, _levels(bids), _levels(asks))
                    break
        return self._books[symbol]


class Feed:
    """What one stream sends; shared by every subscriber of that stream."""

    def __init__(self, symbol: str, period: float, revision: int) -> None:
        self.symbol = symbol
        self.period = period
        self.seen = revision  # the market's revision when this feed last looked
        self.last_sent = -math.inf

    def due(self, revision: int, now: float, force: bool) -> bool:
        """Whether to look at the market now (cheap: no market call)."""
        if force:
            return True
        return revision != self.seen and now >= self.last_sent + self.period

    def poll(self, reader: BookReader, now_ms: int) -> list[Payload]:
        """Payloads to send now."""
        raise NotImplementedError


class DepthFeed(Feed):
    """`<sym>@depth[@100ms|@1000ms]`: diffs between consecutive books."""

    def __init__(self, symbol: str, period: float, revision: int, reader: BookReader) -> None:
        super().__init__(symbol, period, revision)
        state = reader.book(symbol)
        self.update_id, self.bids, self.asks = state if state else (0, {}, {})
        self.known = state is not None
        self.skips = 0
        self.swaps = 0
        self.held: dict | None = None

    def poll(self, reader: BookReader, now_ms: int) -> list[Payload]:
        top = reader.top(self.symbol)
        if top is None or (self.known and top.update_id == self.update_id):
            return []
        state = reader.book(self.symbol)
        if state is None:
            return []
        update_id, bids, asks = state
        event = {"e": "depthUpdate", "E": now_ms, "s": self.symbol, "U": self.update_id + 1,
                 "u": update_id, "b": _diff(self.bids, bids, True),
                 "a": _diff(self.asks, asks, False)}
        first_look = not self.known
        self.update_id, self.bids, self.asks, self.known = update_id, bids, asks, True
        if first_look or event["U"] > event["u"]:
            return []
        return self._faulted(event)

    def _faulted(self, event: dict) -> list[Payload]:
        if self.skips:
            self.skips -= 1
            return []
        if self.held is not None:
            held, self.held = self.held, None
            return [event, held]
        if self.swaps:
            self.swaps -= 1
            self.held = event
            return []
        return [event]


class TickerFeed(Feed):
    """`<sym>@bookTicker`: the best levels whenever they change."""

    def __init__(self, symbol: str, revision: int, reader: BookReader) -> None:
        super().__init__(symbol, 0.0, revision)
        self.top: Top | None = None
        self.poll(reader, 0)  # baseline: Binance sends only changes

    def poll(self, reader: BookReader, now_ms: int) -> list[Payload]:
        top = reader.top(self.symbol)
        if top is None or (self.top is not None and top.update_id == self.top.update_id):
            return []
        before, self.top = self.top, top
        if before is None or top[1:] == before[1:]:
            return []  # the first look, or only the id moved
        return [{"u": top.update_id, "s": self.symbol, "b": top.bid_price, "B": top.bid_qty,
                 "a": top.ask_price, "A": top.ask_qty}]


class TradeFeed(Feed):
    """`<sym>@aggTrade`: each aggregate trade newer than the subscription."""

    def __init__(self, symbol: str, revision: int, reader: BookReader) -> None:
        super().__init__(symbol, 0.0, revision)
        self.last_id: int | None = None
        self.duplicates = 0
        self.skips = 0
        self.poll(reader, 0)  # baseline: trades before the subscription are not sent

    def poll(self, reader: BookReader, now_ms: int) -> list[Payload]:
        history_of = getattr(reader.market, "agg_trade_history", None)
        if history_of is None:
            return []  # a Market without trades yet: subscribed, silent
        try:  # only the new trades, once the baseline is known
            history = (history_of(self.symbol) if self.last_id is None
                       else history_of(self.symbol, from_id=self.last_id + 1))
        except BinanceError:
            return []
        if self.last_id is None:
            self.last_id = history[-1]["a"] if history else -1
            return []
        events = [{"e": "aggTrade", "E": now_ms, "s": self.symbol, "a": trade["a"],
                   "p": trade["p"], "q": trade["q"], "f": trade["f"], "l": trade["l"],
                   "T": trade["T"], "m": trade["m"], "M": trade.get("M", True)}
                  for trade in history if trade["a"] > self.last_id]
        if events:
            self.last_id = events[-1]["a"]
        return self._faulted(events)

    def _faulted(self, events: list[dict]) -> list[Payload]:
        """Each armed fault takes the next event: a skip drops it (the trade
        stays in REST aggTrades), a duplicate sends it twice in a row."""
        sent: list[Payload] = []
        for event in events:
            if self.skips:
                self.skips -= 1
            elif self.duplicates:
                self.duplicates -= 1
                sent += [event, event]
            else:
                sent.append(event)
        return sent


class WindowFeed(Feed):
    """`!ticker_1d@arr`: every `period`, one array of the symbols whose 24 h
    figures changed since the previous push (no array when none did)."""

    def __init__(self, period: float, revision: int, drops: collections.Counter[str]) -> None:
        super().__init__("", period, revision)
        self.since = revision
        self.drops = drops  # the hub's: armed faults outlive a feed without subscribers

    def poll(self, reader: BookReader, now_ms: int) -> list[Payload]:
        self.since, tickers = reader.market.ticker_changes(self.since)
        events = []
        for ticker in tickers:
            if self.drops[ticker["symbol"]] > 0:
                self.drops[ticker["symbol"]] -= 1  # missed: sent again only once it moves
            else:
                events.append(window_event(ticker, now_ms))
        self.drops += collections.Counter()  # forget the spent ones
        return [events] if events else []
