"""What each market stream of `FakeStreams` sends, read from a `Market`.

One feed per stream name (shared by its subscribers); the hub in
`fake_binance.streams` polls the feeds and frames their payloads.  The
rules they follow are in that module's docstring.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Iterable

from .market import BinanceError, Market

ZERO = "0.00000000"
# Stream kind (the part after the first '@') -> (feed kind, seconds between events).
_KINDS = {"depth": ("depth", 1.0), "depth@1000ms": ("depth", 1.0),
          "depth@100ms": ("depth", 0.1), "bookTicker": ("bookTicker", 0.0),
          "aggTrade": ("aggTrade", 0.0)}
RECHECK = 0.25  # seconds: look again without a step (set_book moves ids without one)

FeedKey = tuple[str, str, float]  # (SYMBOL, feed kind, period)
Levels = dict[str, str]  # price -> qty, both as 8-decimal strings


def feed_key(stream: str) -> FeedKey | None:
    """The feed behind a stream name, or None for a name that never carries data."""
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


class BookReader:
    """The market as seen during one poll: each symbol read at most once."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self._tops: dict[str, dict | None] = {}
        self._books: dict[str, tuple[int, Levels, Levels] | None] = {}

    def top(self, symbol: str) -> dict | None:
        """`depth(symbol, 1)`: lastUpdateId and the best levels; None if unknown."""
        if symbol not in self._tops:
            try:
                self._tops[symbol] = self.market.depth(symbol, 1)
            except BinanceError:
                self._tops[symbol] = None
        return self._tops[symbol]

    def book(self, symbol: str) -> tuple[int, Levels, Levels] | None:
        """(lastUpdateId, bids, asks) of one consistent state; None if unknown."""
        if symbol not in self._books:
            self._books[symbol] = None
            for _ in range(5):  # a step between the reads: read again
                try:
                    before = self.market.depth(symbol, 1)["lastUpdateId"]
                    bids, asks = self.market.book(symbol)
                    after = self.market.depth(symbol, 1)["lastUpdateId"]
                except BinanceError:
                    break
                if before == after:
                    self._books[symbol] = (after, _levels(bids), _levels(asks))
                    break
        return self._books[symbol]


class Feed:
    """What one stream sends; shared by every subscriber of that stream."""

    def __init__(self, symbol: str, period: float, steps: int, now: float) -> None:
        self.symbol = symbol
        self.period = period
        self.seen_steps = steps
        self.last_sent = -math.inf
        self.recheck_at = now + RECHECK

    def due(self, steps: int, now: float, force: bool) -> bool:
        """Whether to look at the market now (cheap: no market call)."""
        if force:
            return True
        if now < self.last_sent + self.period:
            return False
        return steps != self.seen_steps or now >= self.recheck_at

    def poll(self, reader: BookReader, now_ms: int) -> list[dict]:
        """Payloads to send now."""
        raise NotImplementedError


class DepthFeed(Feed):
    """`<sym>@depth[@100ms|@1000ms]`: diffs between consecutive books."""

    def __init__(self, symbol: str, period: float, steps: int, now: float,
                 reader: BookReader) -> None:
        super().__init__(symbol, period, steps, now)
        state = reader.book(symbol)
        self.update_id, self.bids, self.asks = state if state else (0, {}, {})
        self.known = state is not None
        self.skips = 0
        self.swaps = 0
        self.held: dict | None = None

    def poll(self, reader: BookReader, now_ms: int) -> list[dict]:
        top = reader.top(self.symbol)
        if top is None or (self.known and top["lastUpdateId"] == self.update_id):
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

    def _faulted(self, event: dict) -> list[dict]:
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

    def __init__(self, symbol: str, steps: int, now: float, reader: BookReader) -> None:
        super().__init__(symbol, 0.0, steps, now)
        self.update_id: int | None = None
        self.top: tuple[str, str, str, str] | None = None
        self.poll(reader, 0)  # baseline: Binance sends only changes

    def poll(self, reader: BookReader, now_ms: int) -> list[dict]:
        depth = reader.top(self.symbol)
        if depth is None or depth["lastUpdateId"] == self.update_id:
            return []
        first_look = self.update_id is None
        self.update_id = depth["lastUpdateId"]
        bid = depth["bids"][0] if depth["bids"] else [ZERO, ZERO]
        ask = depth["asks"][0] if depth["asks"] else [ZERO, ZERO]
        top = (bid[0], bid[1], ask[0], ask[1])
        if first_look or top == self.top:
            self.top = top
            return []
        self.top = top
        return [{"u": self.update_id, "s": self.symbol, "b": top[0], "B": top[1],
                 "a": top[2], "A": top[3]}]


class TradeFeed(Feed):
    """`<sym>@aggTrade`: each aggregate trade newer than the subscription."""

    def __init__(self, symbol: str, steps: int, now: float, reader: BookReader) -> None:
        super().__init__(symbol, 0.0, steps, now)
        self.last_id: int | None = None
        self.poll(reader, 0)  # baseline: trades before the subscription are not sent

    def poll(self, reader: BookReader, now_ms: int) -> list[dict]:
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
        return events
