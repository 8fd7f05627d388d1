"""What each market stream of `FakeStreams` sends, read from a `Market`.

One feed per stream name (shared by its subscribers); the hub in
`fake_binance.streams` polls the feeds and frames their payloads.  The
rules they follow are in that module's docstring.

A diff-depth event spanning several steps names every level that changed
during them, as Binance's do, not only the net change: a snapshot may have
been taken at any of those steps, and a level it holds that is gone by the
end must be removed by the event.  `BandLog` records each step's top bands
(all a step redraws); the deep levels rest at fixed prices, so the ones that
moved in or out of a book in between are drawn again when the event is made.
"""

from __future__ import annotations

import collections
import math
import operator
import sys
import threading
from bisect import bisect_right
from decimal import Decimal
from typing import Callable, Iterable, Union

from .market import Band, Bands, BinanceError, Market, Top, fmt, to_units

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
State = tuple[int, Band, Band]  # (lastUpdateId, bids, asks), read by a Market listener


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


def _diff(old: Levels, new: Levels, descending: bool,
          moved: Iterable[str] = ()) -> list[list[str]]:
    """Levels to send: changed or new ones with their quantity, vanished ones with 0,
    and those that `moved` in between with their quantity now (0: gone)."""
    changed = {price: qty for price, qty in new.items() if old.get(price) != qty}
    changed.update((price, ZERO) for price in old if price not in new)
    changed.update((price, new.get(price, ZERO)) for price in moved)
    return sorted(([price, qty] for price, qty in changed.items()),
                  key=lambda level: Decimal(level[0]), reverse=descending)


def _formatted(levels: Iterable[tuple[int, int]]) -> Levels:
    return {fmt(price): fmt(qty) for price, qty in levels}


def _moved(passed: list[Band], end: Band, levels: Levels,  # pylint: disable=too-many-locals
           outward: int) -> set[str]:
    """Prices of one side whose quantity at the state of one of the `passed` bands
    differs from the one in `levels`, the side at the state whose band is `end`.

    A state differs from the end only in its band and at the ends of its run
    of deep levels (`outward`: -1 for bids, whose prices fall away from the
    top, 1 for asks).
    """
    order = list(levels)
    end_top, run = order[:len(end.levels)], order[len(end.levels):]
    prices, drawn, (first, stop), spans = _stretch(run, passed, end.deep, outward)
    index = {price: at for at, price in enumerate(prices)}
    moved: set[str] = set()
    for band, (start, beyond) in zip(passed, spans):
        here = _formatted(band.levels)
        extra = prices[start:min(beyond, first)] + prices[max(start, stop):beyond]
        missing = prices[first:min(start, stop)] + prices[max(beyond, first):stop]
        moved.update(price for price, qty in here.items() if levels.get(price) != qty)
        moved.update(price for price in extra
                     if price not in here and levels.get(price) != drawn[price])
        moved.update(price for price in missing if price not in here)
        moved.update(price for price in end_top
                     if price not in here and not start <= index.get(price, -1) < beyond)
    return moved


def _stretch(run: list[str], bands: list[Band], draw: Callable[..., list[tuple[int, int]]],
             outward: int) -> tuple[list[str], Levels, tuple[int, int], list[tuple[int, int]]]:
    """The end's `run` of deep prices (best first) drawn on, inward and outward, as
    far as the runs of `bands` reach: (prices, the drawn ones' quantities, where
    `run` lies in prices, where each band's run does).

    Deep levels rest at fixed prices, so every run is a stretch of the same
    levels: only what lies beyond the end's run is drawn, once for all bands.
    """
    starts = [band.levels[-1][0] for band in bands if band.depth]  # runs begin past these
    if not starts:
        return run, {}, (0, len(run)), [(0, 0)] * len(bands)
    inner = min(starts, key=lambda price: outward * price)
    before, after = _ends(run, draw, inner, max(starts, key=lambda price: outward * price),
                          outward)
    prices, drawn = [*before, *run, *after], {**before, **after}
    spans = []
    for band in bands:
        start = (bisect_right(prices, outward * band.levels[-1][0],
                              key=lambda price: outward * to_units(price)) if band.depth else 0)
        spans.append((start, start + band.depth))
    more = _formatted(draw(to_units(prices[-1]) if prices else inner,
                           max(beyond for _, beyond in spans) - len(prices)))
    prices += more
    drawn.update(more)
    return prices, drawn, (len(before), len(before) + len(run)), spans


def _ends(run: list[str], draw: Callable[..., list[tuple[int, int]]], inner: int, outer: int,
          outward: int) -> tuple[Levels, Levels]:
    """The deep levels from past price `inner` up to `run`, and from past `run` on
    to the first one at or past price `outer`, best first."""
    edge = to_units(run[0]) if run else outer
    inside = draw(inner, sys.maxsize, edge) if outward * (edge - inner) > 0 else []
    last = to_units(run[-1]) if run else (inside[-1][0] if inside else inner)
    outside = []
    if outward * (outer - last) > 0:  # through any level at `outer`, which no run there holds
        outside = draw(last, sys.maxsize, outer)
        outside += draw(outside[-1][0] if outside else last, 1)
    return _formatted(inside), _formatted(outside)


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


class BandLog:
    """The bands of the books that depth feeds follow, at each of their lastUpdateIds.

    `record` is a `Market` listener, registered while a feed follows a book: it
    runs on the thread that moves the market (market lock held), the feeds
    take what it recorded on the event loop.
    """

    def __init__(self, market: Market) -> None:
        self.market = market
        self._lock = threading.Lock()
        self._traces: dict[str, list[list[State]]] = {}

    def follow(self, symbol: str) -> list[State]:
        """A new trace of `symbol`'s book: every state from now on."""
        trace: list[State] = []
        with self._lock:
            self._traces.setdefault(symbol, []).append(trace)
            self._listen()
        return trace

    def forget(self, symbol: str, trace: list[State]) -> None:
        """Stop filling `trace`; the last one gone, stop listening."""
        with self._lock:
            traces = [kept for kept in self._traces.pop(symbol, []) if kept is not trace]
            if traces:
                self._traces[symbol] = traces
            self._listen()

    def close(self) -> None:
        """Stop filling every trace and stop listening (the hub stops)."""
        with self._lock:
            self._traces.clear()
            self._listen()

    def _listen(self) -> None:
        """Be a listener of the market exactly while some trace is followed."""
        listening = self.record in self.market.listeners
        if self._traces and not listening:
            self.market.listeners.append(self.record)
        elif listening and not self._traces:
            self.market.listeners.remove(self.record)

    def record(self, bands: Bands) -> None:
        """Append the followed books' states, as `bands` reads them, to their traces."""
        with self._lock:
            for symbol, traces in self._traces.items():
                state = bands(symbol)
                if state is not None:  # no book: nothing to trace
                    for trace in traces:
                        trace.append(state)

    def take(self, trace: list[State], update_id: int) -> list[State]:
        """The states of `trace` up to `update_id`, removed from it."""
        with self._lock:
            cut = bisect_right(trace, update_id, key=operator.itemgetter(0))
            taken = trace[:cut]
            del trace[:cut]
        return taken


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

    def close(self) -> None:
        """Let go of the market: the last subscriber left."""


class DepthFeed(Feed):
    """`<sym>@depth[@100ms|@1000ms]`: what changed since the previous event, every
    level the `bands` log shows moving in between included."""

    def __init__(self, symbol: str, period: float, revision: int, reader: BookReader,
                 bands: BandLog | None = None) -> None:
        super().__init__(symbol, period, revision)
        self.bands = bands  # None: only the net change between polls
        # Followed before the first look, so no later state goes unrecorded.
        self.trace = bands.follow(symbol) if bands else []
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
        moved = self._in_between(update_id, bids, asks)
        event = {"e": "depthUpdate", "E": now_ms, "s": self.symbol, "U": self.update_id + 1,
                 "u": update_id, "b": _diff(self.bids, bids, True, moved[0]),
                 "a": _diff(self.asks, asks, False, moved[1])}
        first_look = not self.known
        self.update_id, self.bids, self.asks, self.known = update_id, bids, asks, True
        if first_look or event["U"] > event["u"]:
            return []
        return self._faulted(event)

    def _in_between(self, update_id: int, bids: Levels,
                    asks: Levels) -> tuple[Iterable[str], Iterable[str]]:
        """The prices of each side that moved at the states between the previous
        event and this one (at `update_id`), whatever their net change."""
        states = self.bands.take(self.trace, update_id) if self.bands else []
        passed = [past for past in states[:-1] if past[0] > self.update_id]
        if not (self.known and passed and states[-1][0] == update_id):
            return (), ()  # one step (or no record of the end): the net change is all
        end = states[-1]
        return (_moved([past[1] for past in passed], end[1], bids, -1),
                _moved([past[2] for past in passed], end[2], asks, 1))

    def close(self) -> None:
        if self.bands:
            self.bands.forget(self.symbol, self.trace)

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
