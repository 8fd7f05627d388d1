"""A deterministic simulated Binance SPOT market: the data behind the fake REST API.

Pure (no I/O), behind one lock: handler threads read while `step()` moves it.
Numbers are held as ints of 1e-8 ("units"), the resolution of every price and
quantity Binance sends, and formatted as strings with 8 decimals, exactly like
the real answers (`"60650.00000000"`).  Nothing is ever a float.

Randomness is a splitmix64 hash of (seed, symbol, step, level), not a
`random.Random` per symbol: books are generated lazily (3000 extra symbols
cost nothing until asked for) and `Market(seed=s)` after `step(n)` is the
same whatever was queried. A book's top levels move with its mid; the
deeper ones rest at fixed prices, as real orders do.

The built-in symbols are traps for the exporter (see `BUILTIN_SYMBOLS`).  Their
24 h figures do not depend on the seed, so the expected rankings before any
`step()` are fixed:

- top 5 BTC-quoted TRADING by quoteVolume: ETHBTC, BNBBTC, SOLBTC, LINKBTC,
  DOTBTC (DOTBTC and LTCBTC tie at exactly 280 BTC; the tie breaks by name);
- top 5 BTC-quoted TRADING by base volume: ADABTC, DOGEBTC, XRPBTC, DOTBTC,
  LINKBTC (cheap coins, small quote volume);
- top 5 USDT-quoted TRADING by count: SOLUSDT, PEPEUSDT, BTCUSDT, DOGEUSDT,
  ETHUSDT; by quoteVolume: BTCUSDT, ETHUSDT, SOLUSDT, BNBUSDT, XRPUSDT.
- LUNABTC (BREAK) has the largest volume, quoteVolume and count of all;
  FTTUSDT (HALT) has a bigger count than any USDT TRADING symbol; USDTTRY,
  BTCTRY, ETHFDUSD and BTCUSDC have bigger counts than most USDT symbols but
  other quote assets.
- SOLBTC's book is shallow (120 bids, 150 asks); THINUSDT has no bids.

`step()` grows the 24 h figures a little (about 1e-5 per step), which breaks the
DOTBTC/LTCBTC tie but leaves the other orders alone for thousands of steps.
Aggregate trades (`agg_trades`, `agg_trade_history`): every symbol with a
price starts with the trades of one step (1-5 aggregate trades), and each
`step()` gives every TRADING symbol 1-5 more, drawn from (seed, symbol, step).
A taker buy executes at that step's best ask (`m` false), a taker sell at the
best bid (`m` true); a one-sided book trades on its only side, an empty one
not at all.  Aggregate ids are consecutive, each covers 1-3 consecutive
trade ids (`f`..`l`, continuing from the previous `l`), and `T` is the
market clock at the step (never decreasing).  Only the newest
`trade_history_size` (5000) aggregate trades are kept per symbol, as one
small record per step redrawn when asked for.  An extra symbol's trades
start at the first aggTrades query naming it (the one thing that depends on
what was queried).  The 24 h `count`/`lastId` are not tied to these ids.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from bisect import bisect_left, bisect_right
from collections import deque
import time
from decimal import Decimal
from functools import partial
from typing import Callable, Iterable, NamedTuple, Sequence, Union

UNITS = 100_000_000
"""1e8: every price and quantity is an int number of 1e-8."""

MAX_DEPTH_LIMIT = 5000
DEFAULT_DEPTH_LIMIT = 100
MAX_AGG_TRADES_LIMIT = 1000
DEFAULT_AGG_TRADES_LIMIT = 500
TRADE_HISTORY_SIZE = 5000
"""Aggregate trades kept per symbol (`Market.trade_history_size`)."""
STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
FILTERABLE_STATUSES = ("TRADING", "HALT", "BREAK")
DAY_MS = 86_400_000

_MASK = (1 << 64) - 1
_TOP_LEVELS = 20  # levels nearest the touch are redrawn on every step
_BID, _ASK = 1, 2
_DEEP = _MASK  # "step" used for deep levels, which do not change with steps
_SPREAD, _WALK, _STATS, _UPDATE, _TRADES = 11, 12, 13, 14, 15

Number = Union[str, int, Decimal]
Level = tuple[Decimal, Decimal]
Bands = Callable[[str], "tuple[int, Band, Band] | None"]  # what listeners read (see Market)

_MARGIN_SETS = (("SPOT", "MARGIN", "TRD_GRP_004", "TRD_GRP_005", "TRD_GRP_006",
                 "TRD_GRP_008", "TRD_GRP_009", "TRD_GRP_010"),)
_SPOT_SETS = (("SPOT",),)
_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
_STP_MODES = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"]
_ALLOWED = ("icebergAllowed", "ocoAllowed", "otoAllowed", "opoAllowed",  # all true
            "quoteOrderQtyMarketAllowed", "allowTrailingStop", "cancelReplaceAllowed",
            "amendAllowed", "pegInstructionsAllowed", "isSpotTradingAllowed")
_EXTRA_QUOTES = ("USDT", "BTC", "FDUSD")


class Top(NamedTuple):
    """lastUpdateId and the best levels (an empty side: zero price and qty)."""

    update_id: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str


class Band(NamedTuple):
    """One side at one step, drawn without scanning it (see `Market`): the top
    levels as (price, qty) units, best first (a set book: all of them), then
    `depth` deep levels, which rest at fixed prices: `deep(after, count, stop)`,
    safe on any thread, draws up to `count` outward from `after`, short of `stop`."""

    levels: list[tuple[int, int]]
    depth: int
    deep: Callable[..., list[tuple[int, int]]]


class BinanceError(Exception):
    """An error Binance answers with: HTTP status plus the `{"code", "msg"}` body."""

    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(http_status, code, msg)
        self.http_status = http_status
        self.code = code
        self.msg = msg

    def body(self) -> dict:
        """The JSON body Binance sends for this error."""
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> BinanceError:
    """-1121, the answer for any unknown (or delisted) symbol."""
    return BinanceError(400, -1121, "Invalid symbol.")


class SymbolSpec(NamedTuple):
    """One built-in symbol: its listing data, 24 h figures and book shape."""

    symbol: str
    base: str
    quote: str
    status: str
    price: str  # nominal mid price; "0" = a dead symbol with all-zero prices
    tick: str
    volume: str  # 24 h volume in the BASE asset
    quote_volume: str  # 24 h volume in the QUOTE asset
    count: int
    bid_levels: int = 1200
    ask_levels: int = 1200
    max_gap: int = 3  # price levels are 1..max_gap ticks apart
    margin: bool = True


# Listing order is deliberately neither by name nor by volume (LTCBTC comes
# before DOTBTC, which wins their quote-volume tie by name).
BUILTIN_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec("ETHBTC", "ETH", "BTC", "TRADING", "0.05123000", "0.00001000",
               "45000.00000000", "2305.35000000", 210_000, max_gap=2),
    SymbolSpec("LTCBTC", "LTC", "BTC", "TRADING", "0.00140000", "0.00000010",
               "200000.00000000", "280.00000000", 85_000),
    SymbolSpec("BNBBTC", "BNB", "BTC", "TRADING", "0.00912300", "0.00000100",
               "60000.00000000", "547.38000000", 150_000),
    SymbolSpec("BTCUSDT", "BTC", "USDT", "TRADING", "60650.00000000", "0.01000000",
               "25000.00000000", "1516250000.00000000", 1_200_000, 6000, 6000),
    SymbolSpec("ETHUSDT", "ETH", "USDT", "TRADING", "3850.00000000", "0.01000000",
               "300000.00000000", "1155000000.00000000", 900_000, 2000, 2000),
    SymbolSpec("LUNABTC", "LUNA", "BTC", "BREAK", "0.00010000", "0.00000001",
               "500000000.00000000", "50000.00000000", 9_999_999),
    SymbolSpec("XRPBTC", "XRP", "BTC", "TRADING", "0.00003150", "0.00000001",
               "8000000.00000000", "252.00000000", 70_000, 1000, 1000, max_gap=1),
    SymbolSpec("BNBUSDT", "BNB", "USDT", "TRADING", "600.00000000", "0.01000000",
               "600000.00000000", "360000000.00000000", 400_000, 1500, 1500),
    SymbolSpec("ADABTC", "ADA", "BTC", "TRADING", "0.00002000", "0.00000001",
               "10000000.00000000", "200.00000000", 50_000, 1000, 1000, max_gap=1),
    SymbolSpec("BTCTRY", "BTC", "TRY", "TRADING", "2080000.00000000", "1.00000000",
               "2000.00000000", "4160000000.00000000", 1_800_000, 1500, 1500,
               margin=False),
    SymbolSpec("SOLUSDT", "SOL", "USDT", "TRADING", "180.00000000", "0.01000000",
               "3000000.00000000", "540000000.00000000", 1_500_000, 1500, 1500),
    SymbolSpec("DOGEBTC", "DOGE", "BTC", "TRADING", "0.00002500", "0.00000001",
               "9000000.00000000", "225.00000000", 60_000, 1000, 1000, max_gap=1),
    SymbolSpec("XRPUSDT", "XRP", "USDT", "TRADING", "0.60000000", "0.00010000",
               "500000000.00000000", "300000000.00000000", 700_000, 1500, 1500, max_gap=2),
    SymbolSpec("BTCDOWNUSDT", "BTCDOWN", "USDT", "BREAK", "0", "0.00000100",
               "0.00000000", "0.00000000", 0, margin=False),
    SymbolSpec("SOLBTC", "SOL", "BTC", "TRADING", "0.00231500", "0.00000010",
               "180000.00000000", "416.70000000", 120_000, 120, 150),
    SymbolSpec("DOGEUSDT", "DOGE", "USDT", "TRADING", "0.15000000", "0.00001000",
               "1500000000.00000000", "225000000.00000000", 1_100_000, 1500, 1500),
    SymbolSpec("USDTTRY", "USDT", "TRY", "TRADING", "34.50000000", "0.01000000",
               "900000000.00000000", "31050000000.00000000", 1_600_000, 1000, 1000,
               max_gap=2, margin=False),
    SymbolSpec("LINKBTC", "LINK", "BTC", "TRADING", "0.00021450", "0.00000001",
               "1500000.00000000", "321.75000000", 90_000),
    SymbolSpec("ADAUSDT", "ADA", "USDT", "TRADING", "0.45000000", "0.00010000",
               "400000000.00000000", "180000000.00000000", 350_000, max_gap=2),
    SymbolSpec("FTTUSDT", "FTT", "USDT", "HALT", "1.20000000", "0.00010000",
               "40000000.00000000", "48000000.00000000", 5_000_000, 500, 500),
    SymbolSpec("ETHFDUSD", "ETH", "FDUSD", "TRADING", "3849.50000000", "0.01000000",
               "200000.00000000", "769900000.00000000", 1_400_000),
    SymbolSpec("PEPEUSDT", "PEPE", "USDT", "TRADING", "0.00001200", "0.00000001",
               "10000000000000.00000000", "120000000.00000000", 1_300_000, 1000, 1000,
               max_gap=1),
    SymbolSpec("DOTBTC", "DOT", "BTC", "TRADING", "0.00011200", "0.00000001",
               "2500000.00000000", "280.00000000", 80_000),
    SymbolSpec("BTCUSDC", "BTC", "USDC", "TRADING", "60650.00000000", "0.01000000",
               "10000.00000000", "606500000.00000000", 950_000),
    SymbolSpec("LINKUSDT", "LINK", "USDT", "TRADING", "15.00000000", "0.00100000",
               "5000000.00000000", "75000000.00000000", 250_000, 1000, 1000),
    SymbolSpec("THINUSDT", "THIN", "USDT", "TRADING", "0.05000000", "0.00001000",
               "100000.00000000", "5000.00000000", 1_000, 0, 40, margin=False),
    SymbolSpec("这是测试币456", "这是测试币", "456", "TRADING", "1.00000000", "0.00010000",
               "1000.00000000", "1000.00000000", 10, 60, 60, margin=False),
)


# --------------------------------------------------------------------------- numbers

def to_units(value: Number) -> int:
    """`"1.5"`/`Decimal`/int -> int of 1e-8; refuses more than 8 decimals (a test bug)."""
    dec = value if isinstance(value, Decimal) else Decimal(str(value))
    scaled = dec * UNITS
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} has more than 8 decimals")
    return int(scaled)


def fmt(units: int) -> str:
    """int of 1e-8 -> Binance's string form with exactly 8 decimals."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS)
    return f"{sign}{whole}.{frac:08d}"


def to_decimal(units: int) -> Decimal:
    """int of 1e-8 -> Decimal with 8 decimals, as a client would parse it."""
    return Decimal(fmt(units))


def _mix(value: int) -> int:
    """splitmix64 finaliser: a fast, well-spread, platform-independent hash step."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _hash(*parts: int) -> int:
    acc = 0
    for part in parts:
        acc = _mix(acc ^ (part & _MASK))
    return acc


def _name_key(seed: int, name: str) -> int:
    """Stable per-(seed, symbol) key; unlike hash(), independent of PYTHONHASHSEED."""
    digest = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _pow10_below(units: int, digits: int) -> int:
    """A power of ten leaving about `digits` significant digits of `units`."""
    return 10 ** max(0, len(str(max(units, 1))) - 1 - digits)


# --------------------------------------------------------------------------- model

class _Book:
    """The order book of one symbol.

    The top `_TOP_LEVELS` levels are offsets from the best price, redrawn from
    the step number on every step (so levels and quantities move); deeper
    ones rest at fixed prices and quantities, as real orders do. A book set
    by `Market.set_book` (`explicit`) replaces the model until `reset_book`.

    `_hash(key, salt, step)` is `_mix(_hash(key, salt) ^ step)`, so the
    per-salt prefixes are computed once here: a step then costs one `_mix` per
    draw instead of three, which is what keeps 3000 symbols cheap to step.
    """

    def __init__(self, key: int, spec: SymbolSpec, price: int, level_qty: int) -> None:
        self.key = key
        self.tick = to_units(spec.tick)
        self.anchor = max(price // self.tick, 2)  # the walk reverts to it
        self.mid = self.anchor  # in ticks
        self.levels = {_BID: spec.bid_levels, _ASK: spec.ask_levels}
        self.max_gap = spec.max_gap
        self.lot = _pow10_below(level_qty, 4)
        self.level_lots = max(level_qty // self.lot, 1)
        self.half_spreads = (0, 1)
        self.update_id = 1_000_000_000 + _hash(key, _UPDATE) % 9_000_000_000
        self.explicit: dict[int, list[tuple[int, int]]] | None = None
        self._cache: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._tops: dict[tuple[int, int], tuple[int, int] | None] = {}  # (side, step)
        self.prefixes = {salt: _hash(key, salt) for salt in (_BID, _ASK, _SPREAD, _WALK, _STATS)}
        self.set_spread(0)

    def draw(self, salt: int, step: int) -> int:
        """`_hash(key, salt, step)` from the stored prefix."""
        return _mix(self.prefixes[salt] ^ (step & _MASK))

    def set_spread(self, step: int) -> None:
        """Half-spreads (bid, ask) in ticks for this step; the spread is >= 1 tick."""
        draw = self.draw(_SPREAD, step)
        self.half_spreads = (draw % 3, 1 + (draw >> 8) % 3)

    def advance(self, step: int) -> None:
        """Mean-reverting random walk of the mid price, new spread, new top levels."""
        draw = self.draw(_WALK, step)
        # About 0.005 % per step: a step a second is a lively market (BTC $3 a
        # second), and books keep their depth around the touch as the mid walks.
        scale = max(1, self.anchor // 20000)
        delta = ((draw % 2001) - 1000) * scale // 1000 + (self.anchor - self.mid) // 20
        self.mid = max(self.mid + delta, 2)
        self.set_spread(step)
        self.update_id += 1 + (draw >> 16) % 20
        self._cache.clear()
        self._tops.clear()

    def best_price(self, side: int) -> int:
        """Best price in units of the modelled book (ignores `explicit`)."""
        if side == _BID:
            return (self.mid - self.half_spreads[0]) * self.tick
        return (self.mid + self.half_spreads[1]) * self.tick

    def _qty(self, draw: int) -> int:
        # 0.05x .. 2x the typical level size, in whole lots.
        return self.lot * max(1, self.level_lots * (500 + (draw >> 20) % 19_501) // 10_000)

    def side(self, side: int, step: int, limit: int | None = None) -> list[tuple[int, int]]:
        """Levels of one side, best first, as (price units, qty units)."""
        if self.explicit is not None:
            return self.explicit[side][:limit]
        cached = self._cache.get((side, step))
        if cached is None:
            levels, depth = self.band(side, step)
            cached = levels + self.deep(side, levels[-1][0], depth) if depth else levels
            self._cache[(side, step)] = cached
        return cached[:limit]

    def top(self, side: int, step: int) -> tuple[int, int] | None:
        """The best level without generating the whole side (for tickers).

        Kept until the next `advance`: a step, the trade tape and every
        bookTicker stream all ask for the same top.
        """
        if self.explicit is not None:
            levels = self.explicit[side]
            return levels[0] if levels else None
        level = self._tops.get((side, step), False)
        if level is False:
            price = self.best_price(side)
            level = (None if self.levels[side] == 0 or price <= 0
                     else (price, self._qty(_mix(self.draw(side, step)))))
            if len(self._tops) > 1:
                self._tops.clear()  # a book that never advances (BREAK) asks with new steps
            self._tops[(side, step)] = level
        return level

    def band(self, side: int, step: int) -> tuple[list[tuple[int, int]], int]:
        """The top levels alone (what a step redraws) and how many deep ones follow."""
        if self.explicit is not None:
            return self.explicit[side], 0
        top_seed = self.draw(side, step)
        price = self.best_price(side) // self.tick
        direction = -1 if side == _BID else 1
        levels: list[tuple[int, int]] = []
        for index in range(min(self.levels[side], _TOP_LEVELS)):
            draw = _mix(top_seed ^ index)
            if index:
                price += direction * (1 + draw % self.max_gap)
            if price <= 0:
                return levels, 0  # a cheap coin's bids cannot go below zero
            levels.append((price * self.tick, self._qty(draw)))
        return levels, self.levels[side] - len(levels)

    def deep(self, side: int, after: int, count: int, stop: int = 0) -> list[tuple[int, int]]:
        """Up to `count` levels outward from price `after`, short of `stop` if given
        (units).  Beyond the top a tick holds a level when its own draw says so (two
        in max_gap + 1: the offsets' mean gap), whatever the mid does."""
        deep_seed, odds = _hash(self.key, side, _DEEP), self.max_gap + 1
        direction = -1 if side == _BID else 1
        price, end = after // self.tick + direction, stop // self.tick
        levels: list[tuple[int, int]] = []
        while len(levels) < count and 0 < price != end:
            draw = _mix(deep_seed ^ price)
            if draw % odds < 2:
                levels.append((price * self.tick, self._qty(draw)))
            price += direction
        return levels


class _Stats:
    """Rolling 24 h figures of one symbol, in units (prices, volumes) and ints."""

    def __init__(self, key: int, spec: SymbolSpec, price: int) -> None:
        draw = _hash(key, _STATS)
        tick = to_units(spec.tick)
        self.volume = to_units(spec.volume)
        self.quote_volume = to_units(spec.quote_volume)
        self.count = spec.count
        self.first_id = 100_000_000 + (draw >> 8) % 900_000_000 if spec.count else -1
        # Open within +-5 % of the price; high and low a little outside.
        # Rounded down to the tick grid, where every real price sits.
        self.open = price * (10_000 + draw % 1001 - 500) // 10_000 // tick * tick
        self.last = price
        self.high = max(self.open, price) * (10_000 + (draw >> 40) % 300) // 10_000 // tick * tick
        self.low = min(self.open, price) * (10_000 - (draw >> 50) % 300) // 10_000 // tick * tick
        self.last_qty = 0
        self.revision = 0  # the Market.revision of the last change

    def figures(self) -> tuple[int, ...]:
        """Everything a 24 h ticker is computed from (to tell whether it changed)."""
        return (self.volume, self.quote_volume, self.count, self.first_id, self.open,
                self.last, self.high, self.low, self.last_qty)

    @property
    def last_id(self) -> int:
        """Binance's lastId: firstId + count - 1, or -1 for a window without trades."""
        return self.first_id + self.count - 1 if self.count else -1

    def record_trades(self, draw: int, price: int, qty: int) -> bool:
        """A step's worth of trades at `price`: figures grow by about 1e-5.

        True if the figures changed (always, unless the symbol is dead).
        """
        if not self.count or price <= 0:
            return False  # a dead symbol stays dead
        self.count += 1 + self.count * (draw % 11) // 1_000_000
        added = self.volume * ((draw >> 8) % 11) // 1_000_000
        self.volume += added
        self.quote_volume += added * price // UNITS
        self.last = price
        self.last_qty = qty
        self.high = max(self.high, price)
        self.low = min(self.low, price) if self.low else price
        return True


class _TradeRecord(NamedTuple):
    """One step's aggregate trades, before they are drawn: what they depend on."""

    first_id: int
    first_trade_id: int
    step: int
    time: int  # ms
    bid: int  # best bid of the step in units, 0 = no bids
    ask: int  # best ask, 0 = no asks


# One aggregate trade: (a, price units, qty units, f, l, T ms, buyer is maker).
_Trade = tuple[int, int, int, int, int, int, bool]


class _Tape:
    """The aggregate trades of one symbol: one `_TradeRecord` per step that traded.

    A step's trades are redrawn from (key, step) and the record whenever they
    are read, so a retained trade costs tens of bytes.  Trades with an id below
    `floor` (the newest `size` are kept) are gone, as if never retained.
    """

    def __init__(self, key: int, lot: int, level_lots: int) -> None:
        draw = _hash(key, _TRADES)
        self.key = key
        self.lot, self.level_lots = lot, level_lots
        self.next_id = 100_000_000 + draw % 900_000_000
        self.next_trade_id = 2 * self.next_id + (draw >> 32) % 1_000_000
        self.floor = self.next_id
        self.last_time = 0
        self.records: deque[_TradeRecord] = deque()

    def record(self, step: int, now_ms: int, bid: int, ask: int, size: int) -> None:
        """The trades of `step` at these best prices (none if both sides are empty)."""
        if bid <= 0 and ask <= 0:
            return
        self.last_time = max(now_ms, self.last_time)
        record = _TradeRecord(self.next_id, self.next_trade_id, step, self.last_time,
                              max(bid, 0), max(ask, 0))
        last = self.expand(record)[-1]
        self.records.append(record)
        self.next_id, self.next_trade_id = last[0] + 1, last[4] + 1
        self.floor = max(self.floor, self.next_id - size)
        while len(self.records) > 1 and self.records[1].first_id <= self.floor:
            self.records.popleft()

    def expand(self, record: _TradeRecord) -> list[_Trade]:
        """The 1-5 aggregate trades of one record, oldest first."""
        draw = _hash(self.key, _TRADES, record.step)
        trades: list[_Trade] = []
        agg_id, trade_id = record.first_id, record.first_trade_id
        for index in range(1 + draw % 5):
            pick = _mix(draw ^ (index + 1))
            buy = record.ask > 0 and (record.bid <= 0 or bool(pick & 1))
            count = 1 + (pick >> 1) % 3
            # 0.1 % .. 20 % of a typical book level, in whole lots.
            qty = self.lot * max(1, self.level_lots * (1 + (pick >> 8) % 200) // 1000)
            trades.append((agg_id, record.ask if buy else record.bid, qty, trade_id,
                           trade_id + count - 1, record.time, not buy))
            agg_id, trade_id = agg_id + 1, trade_id + count
        return trades

    def _from(self, index: int) -> Iterable[_Trade]:
        """Retained trades from the record at `index` on, oldest first."""
        for record in itertools.islice(self.records, max(index, 0), None):
            for trade in self.expand(record):
                if trade[0] >= self.floor:
                    yield trade

    def from_id(self, from_id: int, limit: int | None) -> list[_Trade]:
        """Up to `limit` trades with an id >= from_id, oldest first."""
        index = bisect_right(self.records, from_id, key=lambda r: r.first_id) - 1
        return list(itertools.islice((t for t in self._from(index) if t[0] >= from_id),
                                     limit))

    def between(self, start_ms: int, end_ms: int | None, limit: int) -> list[_Trade]:
        """Up to `limit` trades with start_ms <= T (<= end_ms), oldest first."""
        index = bisect_left(self.records, start_ms, key=lambda r: r.time)
        chosen = itertools.takewhile(lambda t: end_ms is None or t[5] <= end_ms,
                                     self._from(index))
        return list(itertools.islice(chosen, limit))

    def recent(self, limit: int, end_ms: int | None = None) -> list[_Trade]:
        """The newest `limit` trades (with T <= end_ms), oldest first."""
        chosen: list[_Trade] = []
        for record in reversed(self.records):
            if end_ms is not None and record.time > end_ms:
                continue
            for trade in reversed(self.expand(record)):
                if trade[0] < self.floor or len(chosen) == limit:
                    return chosen[::-1]
                chosen.append(trade)
        return chosen[::-1]


def _agg_trade(trade: _Trade) -> dict:
    """One aggTrades object, keys in Binance's order."""
    agg_id, price, qty, first_id, last_id, time_ms, maker = trade
    return {"a": agg_id, "p": fmt(price), "q": fmt(qty), "f": first_id, "l": last_id,
            "T": time_ms, "m": maker, "M": True}


class _Symbol:
    """A listed symbol: exchangeInfo data plus its book and 24 h figures."""

    def __init__(self, seed: int, spec: SymbolSpec) -> None:
        self.name = spec.symbol
        self.base = spec.base
        self.quote = spec.quote
        self.status = spec.status
        self.listed = True
        self.permission_sets = _MARGIN_SETS if spec.margin else _SPOT_SETS
        price = to_units(spec.price)
        key = _name_key(seed, spec.symbol)
        level_qty = to_units(spec.quote_volume) * UNITS // (20_000 * price) if price else UNITS
        self.book = _Book(key, spec, price, level_qty)
        self.stats = _Stats(key, spec, price)
        self.dead = not price  # never traded: aggTrades is empty
        self.tape: _Tape | None = None  # created by Market._tape
        if price:
            top = self.book.top(_BID if key & 1 else _ASK, 0)
            if top is not None:
                self.stats.last, self.stats.last_qty = top
            else:
                self.stats.last_qty = self.book.lot

    def sides(self, step: int, limit: int | None = None) -> tuple[list, list]:
        """(bids, asks) in units; BREAK symbols produce no market data at all."""
        if self.status == "BREAK":
            return [], []
        return self.book.side(_BID, step, limit), self.book.side(_ASK, step, limit)

    def record_trades(self, step: int, now_ms: int, size: int) -> None:
        """Add this step's aggregate trades at the book's best bid/ask (if taped)."""
        if self.tape is not None:
            bid, ask = self.book.top(_BID, step), self.book.top(_ASK, step)
            self.tape.record(step, now_ms, bid[0] if bid else 0, ask[0] if ask else 0, size)

    def tops(self, step: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Best bid and ask; an empty side is (0, 0), as Binance sends it."""
        if self.status == "BREAK":
            return (0, 0), (0, 0)
        return self.book.top(_BID, step) or (0, 0), self.book.top(_ASK, step) or (0, 0)


def _extra_spec(index: int) -> SymbolSpec:
    """A small synthetic TRADING symbol; its figures never reach the built-in top 5s."""
    quote = _EXTRA_QUOTES[(index - 1) % len(_EXTRA_QUOTES)]
    base = f"SYM{index:04d}"
    draw = _hash(_name_key(0, base + quote))
    if quote == "BTC":
        price = 10_000 * 10 ** (draw % 3) * (1 + (draw >> 8) % 9)  # 0.0001 .. 0.09 BTC
        quote_volume = 10_000_000 * (1 + (draw >> 16) % 50)  # 0.1 .. 5 BTC
    else:
        price = 10 ** (6 + draw % 4) * (1 + (draw >> 8) % 9)  # 0.01 .. 900
        quote_volume = 1_000 * UNITS * (1 + (draw >> 16) % 5000)  # 1e3 .. 5e6
    return SymbolSpec(
        symbol=base + quote, base=base, quote=quote, status="TRADING",
        price=fmt(price), tick=fmt(_pow10_below(price, 3)),
        volume=fmt(quote_volume * UNITS // price), quote_volume=fmt(quote_volume),
        count=50 + (draw >> 32) % 50_000,
        bid_levels=50 + (draw >> 40) % 250, ask_levels=50 + (draw >> 48) % 250,
        max_gap=2, margin=False)


# --------------------------------------------------------------------------- answers

def _filters(sym: _Symbol) -> list[dict]:
    tick, lot = sym.book.tick, sym.book.lot
    min_notional = {"BTC": UNITS // 10_000, "TRY": 100 * UNITS}.get(sym.quote, 5 * UNITS)
    return [
        {"filterType": "PRICE_FILTER", "minPrice": fmt(tick), "maxPrice": fmt(tick * 10 ** 8),
         "tickSize": fmt(tick)},
        {"filterType": "LOT_SIZE", "minQty": fmt(lot), "maxQty": fmt(lot * 10 ** 10),
         "stepSize": fmt(lot)},
        {"filterType": "ICEBERG_PARTS", "limit": 100},
        {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(0), "maxQty": fmt(lot * 10 ** 9),
         "stepSize": fmt(0)},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
         "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
         "maxTrailingBelowDelta": 2000},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
         "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
         "avgPriceMins": 5},
        {"filterType": "NOTIONAL", "minNotional": fmt(min_notional), "applyMinToMarket": True,
         "maxNotional": fmt(9_000_000 * UNITS), "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10},
    ]


def _symbol_info(sym: _Symbol, show_permission_sets: bool) -> dict:
    margin = any("MARGIN" in group for group in sym.permission_sets)
    return {"symbol": sym.name, "status": sym.status, "baseAsset": sym.base,
            "baseAssetPrecision": 8, "quoteAsset": sym.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": list(_ORDER_TYPES),
            **dict.fromkeys(_ALLOWED, True), "isMarginTradingAllowed": margin,
            "filters": _filters(sym), "permissions": [],
            "permissionSets": ([list(group) for group in sym.permission_sets]
                               if show_permission_sets else []),
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": list(_STP_MODES)}


def _percent(change: int, base: int) -> str:
    """priceChangePercent: 3 decimals, rounded half up like the real answers."""
    if not base:
        return "0.000"
    return f"{(Decimal(change) * 100 / Decimal(base)).quantize(Decimal('0.001'), 'ROUND_HALF_UP')}"


def _ticker(sym: _Symbol, step: int, now_ms: int, mini: bool) -> dict:
    stats = sym.stats
    prices = {"openPrice": fmt(stats.open), "highPrice": fmt(stats.high),
              "lowPrice": fmt(stats.low)}
    window = {"volume": fmt(stats.volume), "quoteVolume": fmt(stats.quote_volume),
              "openTime": now_ms - DAY_MS, "closeTime": now_ms, "firstId": stats.first_id,
              "lastId": stats.last_id, "count": stats.count}
    if mini:
        return {"symbol": sym.name, **prices, "lastPrice": fmt(stats.last), **window}
    (bid, bid_qty), (ask, ask_qty) = sym.tops(step)
    average = ((stats.quote_volume * UNITS * 2 + stats.volume) // (2 * stats.volume)
               if stats.volume else 0)
    return {"symbol": sym.name, "priceChange": fmt(stats.last - stats.open),
            "priceChangePercent": _percent(stats.last - stats.open, stats.open),
            "weightedAvgPrice": fmt(average), "prevClosePrice": fmt(stats.open),
            "lastPrice": fmt(stats.last), "lastQty": fmt(stats.last_qty),
            "bidPrice": fmt(bid), "bidQty": fmt(bid_qty), "askPrice": fmt(ask),
            "askQty": fmt(ask_qty), **prices, **window}


def _book_ticker(sym: _Symbol, step: int) -> dict:
    (bid, bid_qty), (ask, ask_qty) = sym.tops(step)
    return {"symbol": sym.name, "bidPrice": fmt(bid), "bidQty": fmt(bid_qty),
            "askPrice": fmt(ask), "askQty": fmt(ask_qty)}


def _check_status_filter(symbol_status: str | None) -> None:
    if symbol_status is not None and symbol_status not in FILTERABLE_STATUSES:
        raise BinanceError(400, -1122, "Invalid symbolStatus.")


def _parse_levels(levels: Iterable[tuple[Number, Number]], descending: bool) -> list:
    parsed = [(to_units(price), to_units(qty)) for price, qty in levels]
    return sorted(parsed, key=lambda level: level[0], reverse=descending)


class Market:
    """The simulated exchange; see the module docstring for the built-in traps.

    `weight_limit` is the REQUEST_WEIGHT per window that exchangeInfo reports
    and that `FakeBinance` enforces; tests lower it to reach 429 quickly.
    Each of `listeners` is called, lock held, after every change of a lastUpdateId
    (each step of `step(n)`, `set_book`, `reset_book`) with `bands`, which reads a
    book as it is then: `bands(symbol)` is (lastUpdateId, bid Band, ask Band), or
    None for a symbol without a book (unknown, delisted, BREAK).
    """

    def __init__(self, seed: int = 7, extra_symbols: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.weight_limit = 6000
        self.trade_history_size = TRADE_HISTORY_SIZE
        self._seed = seed
        self._clock = clock
        self._steps = 0
        self._revision = 0
        self._lock = threading.RLock()
        self.listeners: list[Callable[[Bands], None]] = []
        specs = list(BUILTIN_SYMBOLS) + [_extra_spec(i) for i in range(1, extra_symbols + 1)]
        self._symbols: dict[str, _Symbol] = {spec.symbol: _Symbol(seed, spec) for spec in specs}
        for spec in BUILTIN_SYMBOLS:
            self._tape(self._symbols[spec.symbol])

    # ----------------------------------------------------------------- basics
    @property
    def seed(self) -> int:
        """The seed the books and price walks derive from."""
        return self._seed

    @property
    def steps(self) -> int:
        """How many times the market has moved (`step()` calls times n)."""
        return self._steps

    @property
    def revision(self) -> int:
        """Moves with every change a stream can show (step, set_*, reset_book,
        delist): streams look at the market again only when it moved."""
        return self._revision

    def server_time(self) -> int:
        """Milliseconds since the epoch from the injected clock, like /api/v3/time."""
        return int(self._clock() * 1000)

    def symbols(self, status: str | None = None, quote: str | None = None) -> list[str]:
        """Listed symbol names in listing order, optionally filtered."""
        with self._lock:
            return [s.name for s in self._symbols.values()
                    if s.listed and (status is None or s.status == status)
                    and (quote is None or s.quote == quote)]

    def _get(self, name: str) -> _Symbol:
        sym = self._symbols.get(name)
        if sym is None or not sym.listed:
            raise invalid_symbol()
        return sym

    def _select(self, names: Sequence[str] | None,
                symbol_status: str | None = None) -> list[_Symbol]:
        """Symbols for a `symbols` list (request order) or all listed ones."""
        _check_status_filter(symbol_status)
        if names is None:
            chosen = [s for s in self._symbols.values() if s.listed]
        else:
            if len(set(names)) != len(names):
                raise BinanceError(400, -1151, "Symbol is present multiple times in the list.")
            chosen = [self._get(name) for name in names]
        return [s for s in chosen if symbol_status is None or s.status == symbol_status]

    def _tape(self, sym: _Symbol) -> _Tape | None:
        """The symbol's trade tape, started (with this step's trades) on first use."""
        if sym.tape is None and not sym.dead:
            sym.tape = _Tape(sym.book.key, sym.book.lot, sym.book.level_lots)
            sym.record_trades(self._steps, self.server_time(), self.trade_history_size)
        return sym.tape

    def _single(self, name: str, symbol_status: str | None) -> _Symbol:
        _check_status_filter(symbol_status)
        sym = self._get(name)
        if symbol_status is not None and sym.status != symbol_status:
            raise BinanceError(400, -1220,
                               "The symbol's status does not match the requested symbolStatus.")
        return sym

    # ----------------------------------------------------------------- queries
    def exchange_info(self, symbols: Sequence[str] | None = None, *,
                      symbol_status: str | None = None,
                      permissions: Sequence[str] | None = None,
                      show_permission_sets: bool = True) -> dict:
        """GET /api/v3/exchangeInfo; `symbols` keeps the request order."""
        with self._lock:
            chosen = self._select(symbols, symbol_status)
            if permissions is not None:
                wanted = set(permissions)
                chosen = [s for s in chosen
                          if any(wanted.intersection(group) for group in s.permission_sets)]
            limit = self.weight_limit
            return {
                "timezone": "UTC",
                "serverTime": self.server_time(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                     "intervalNum": 1, "limit": limit},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": 50},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                     "limit": 160000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                     "limit": 300000},
                ],
                "exchangeFilters": [],
                "symbols": [_symbol_info(s, show_permission_sets) for s in chosen],
            }

    def ticker_24hr(self, symbols: Sequence[str] | None = None, mini: bool = False, *,
                    symbol: str | None = None,
                    symbol_status: str | None = None) -> dict | list[dict]:
        """GET /api/v3/ticker/24hr: one object for `symbol`, else an array."""
        with self._lock:
            now_ms = self.server_time()
            if symbol is not None:
                return _ticker(self._single(symbol, symbol_status), self._steps, now_ms, mini)
            return [_ticker(s, self._steps, now_ms, mini)
                    for s in self._select(symbols, symbol_status)]

    def book_ticker(self, symbols: Sequence[str] | None = None, *,
                    symbol: str | None = None,
                    symbol_status: str | None = None) -> dict | list[dict]:
        """GET /api/v3/ticker/bookTicker; an empty side is zero price and zero qty."""
        with self._lock:
            if symbol is not None:
                return _book_ticker(self._single(symbol, symbol_status), self._steps)
            return [_book_ticker(s, self._steps) for s in self._select(symbols, symbol_status)]

    def depth(self, symbol: str, limit: int = DEFAULT_DEPTH_LIMIT, *,
              symbol_status: str | None = None) -> dict:
        """GET /api/v3/depth: at most `limit` levels a side (clamped to 5000)."""
        if limit < 1:
            raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        with self._lock:
            sym = self._single(symbol, symbol_status)
            bids, asks = sym.sides(self._steps, min(limit, MAX_DEPTH_LIMIT))
            return {
                "lastUpdateId": sym.book.update_id,
                "bids": [[fmt(price), fmt(qty)] for price, qty in bids],
                "asks": [[fmt(price), fmt(qty)] for price, qty in asks],
            }

    def top(self, symbol: str) -> Top:
        """lastUpdateId and the best levels, as `depth(symbol, 1)` has them but
        without building a depth answer: one bookTicker stream per symbol reads
        this after every step."""
        with self._lock:
            sym = self._get(symbol)
            (bid, bid_qty), (ask, ask_qty) = sym.tops(self._steps)
            return Top(sym.book.update_id, fmt(bid), fmt(bid_qty), fmt(ask), fmt(ask_qty))

    def ticker_changes(self, since: int) -> tuple[int, list[dict]]:
        """(revision, ticker_24hr objects of the symbols whose 24 h figures changed
        after revision `since`): what `!ticker_1d@arr` sends, so it equals REST."""
        with self._lock:
            now_ms = self.server_time()
            return self._revision, [_ticker(s, self._steps, now_ms, False)
                                    for s in self._symbols.values()
                                    if s.listed and s.stats.revision > since]

    def agg_trades(self, symbol: str, from_id: int | None = None,
                   limit: int = DEFAULT_AGG_TRADES_LIMIT, *, start_time: int | None = None,
                   end_time: int | None = None) -> list[dict]:
        """GET /api/v3/aggTrades, oldest first; `limit` is clamped to 1000.

        `from_id`: trades with an id >= from_id (from the oldest retained one
        if older).  `start_time`/`end_time` (ms, inclusive): trades in that
        range, the first `limit` from start_time, or the newest `limit` up to
        end_time if only that is given.  Neither: the newest `limit` trades.
        from_id together with a time: -1128.
        """
        if limit < 1:
            raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        if from_id is not None and (start_time is not None or end_time is not None):
            raise BinanceError(400, -1128, "Combination of optional parameters invalid.")
        limit = min(limit, MAX_AGG_TRADES_LIMIT)
        with self._lock:
            tape = self._tape(self._get(symbol))
            if tape is None:
                trades: list[_Trade] = []
            elif from_id is not None:
                trades = tape.from_id(from_id, limit)
            elif start_time is not None:
                trades = tape.between(start_time, end_time, limit)
            else:
                trades = tape.recent(limit, end_time)
            return [_agg_trade(trade) for trade in trades]

    def agg_trade_history(self, symbol: str, from_id: int | None = None) -> list[dict]:
        """Every retained aggregate trade (id >= from_id if given), oldest first.

        The objects are those agg_trades sends; tests use this to compute what
        a client should have counted.  An extra symbol's trades start here or
        at its first agg_trades call.
        """
        with self._lock:
            tape = self._tape(self._get(symbol))
            if tape is None:
                return []
            return [_agg_trade(trade) for trade in tape.from_id(from_id or 0, None)]

    def book(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """The whole current book as Decimals (bids descending, asks ascending)."""
        with self._lock:
            bids, asks = self._get(symbol).sides(self._steps)
            return ([(to_decimal(p), to_decimal(q)) for p, q in bids],
                    [(to_decimal(p), to_decimal(q)) for p, q in asks])

    # ----------------------------------------------------------------- movement
    def step(self, n: int = 1) -> None:
        """Move every symbol n times: mid, spread, top levels, lastUpdateId, 24 h figures.

        TRADING symbols with a trade tape also get this step's aggregate trades.
        """
        with self._lock:
            for _ in range(n):
                self._steps += 1
                self._revision += 1
                now_ms = self.server_time()
                for sym in self._symbols.values():
                    if sym.status == "BREAK":
                        continue  # no market data is produced
                    sym.book.advance(self._steps)
                    if sym.status != "TRADING":
                        continue  # HALT etc.: the book moves, nothing trades
                    draw = sym.book.draw(_STATS, self._steps)
                    top = sym.book.top(_BID if draw & 1 else _ASK, self._steps)
                    if top is not None and sym.stats.record_trades(draw >> 1, top[0], top[1]):
                        sym.stats.revision = self._revision
                    sym.record_trades(self._steps, now_ms, self.trade_history_size)
                self._changed()

    # ----------------------------------------------------------------- mutators
    def set_status(self, symbol: str, status: str) -> None:
        """Change a symbol's status (exchangeInfo, symbolStatus filters, BREAK = no data)."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {STATUSES}")
        with self._lock:
            self._get(symbol).status = status
            self._revision += 1

    def delist(self, symbol: str) -> None:
        """Remove a symbol entirely: every later request naming it gets -1121."""
        with self._lock:
            self._get(symbol).listed = False
            self._revision += 1

    def set_book(self, symbol: str, bids: Iterable[tuple[Number, Number]],
                 asks: Iterable[tuple[Number, Number]]) -> None:
        """Replace the book with these levels (sorted, not validated: crossed is allowed).

        The book then stays as set through `step()` (only lastUpdateId moves)
        until `reset_book()`.
        """
        with self._lock:
            book = self._get(symbol).book
            book.explicit = {_BID: _parse_levels(bids, True), _ASK: _parse_levels(asks, False)}
            book.update_id += 1
            self._revision += 1
            self._changed()

    def reset_book(self, symbol: str) -> None:
        """Go back to the simulated book after `set_book`."""
        with self._lock:
            book = self._get(symbol).book
            book.explicit = None
            book.update_id += 1
            self._revision += 1
            self._changed()

    def _changed(self) -> None:
        for listener in tuple(self.listeners):
            listener(self._bands)

    def _bands(self, symbol: str) -> tuple[int, Band, Band] | None:
        """What listeners read: no side is scanned, so it is about as cheap as `top`."""
        sym = self._symbols.get(symbol)
        if sym is None or not sym.listed or sym.status == "BREAK":
            return None
        book, step = sym.book, self._steps
        return (book.update_id, Band(*book.band(_BID, step), partial(book.deep, _BID)),
                Band(*book.band(_ASK, step), partial(book.deep, _ASK)))

    def set_ticker(self, symbol: str, *, volume: Number | None = None,
                   quote_volume: Number | None = None, count: int | None = None) -> None:
        """Overwrite 24 h figures; count 0 gives firstId/lastId -1 like a dead symbol."""
        with self._lock:
            stats = self._get(symbol).stats
            if count is not None and count < 0:
                raise ValueError("count must be >= 0")
            before = stats.figures()
            if volume is not None:
                stats.volume = to_units(volume)
            if quote_volume is not None:
                stats.quote_volume = to_units(quote_volume)
            if count is not None:
                if count and stats.first_id < 0:
                    stats.first_id = 100_000_000
                stats.count = count
                if not count:
                    stats.first_id = -1
            if stats.figures() != before:  # unchanged figures are not pushed again
                self._revision += 1
                stats.revision = self._revision
