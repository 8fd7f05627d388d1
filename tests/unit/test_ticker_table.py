"""The stream-fed 24 h ticker table: seeding, pushes, repairs, completeness."""

from __future__ import annotations

import json
import unittest
from decimal import Decimal as D

import msgspec

from binance_exporter.binance.payloads import PayloadError, parse_tickers_24h_timed
from binance_exporter.market.types import Ticker24h
from binance_exporter.sources.ticker_table import (
    SEED_GRACE,
    TICKER_STREAM,
    TIMING_TOLERANCE_MS,
    TickerTable,
)

T0 = 1_700_000_000_000  # ms: the seed answer's closeTime
LOGGER = "binance_exporter.sources.ticker_table"


def rest_item(symbol: str, volume: str, quote: str, count: int, close: int) -> dict:
    """One object of a REST `ticker/24hr` answer (the MINI fields)."""
    return {"symbol": symbol, "openPrice": "1.00000000", "highPrice": "2.00000000",
            "lowPrice": "0.50000000", "lastPrice": "1.50000000", "volume": volume,
            "quoteVolume": quote, "openTime": close - 86_400_000, "closeTime": close,
            "firstId": 1, "lastId": count, "count": count}


def push(symbol: str, volume: str, quote: str, count: int, close: int) -> dict:
    """One entry of a `!ticker_1d@arr` array, every documented field present."""
    return {"e": "1dTicker", "E": close + 5, "s": symbol, "p": "0.1", "P": "1.0", "o": "1.0",
            "h": "2.0", "l": "0.5", "c": "1.1", "w": "1.2", "v": volume, "q": quote,
            "O": close - 86_400_000, "C": close, "F": 1, "L": count, "n": count}


def message(*entries: dict) -> bytes:
    """A message's `data`: the JSON array as it arrives."""
    return json.dumps(list(entries)).encode()


def figures(table: TickerTable, symbol: str) -> tuple[D, D, int]:
    """A symbol's (volume, quote volume, trades) in the table."""
    ticker = table.tickers()[symbol]
    return ticker.volume, ticker.quote_volume, ticker.trades


SEED = [rest_item("BTCUSDT", "100", "6000000", 1000, T0),
        rest_item("ETHUSDT", "200", "600000", 2000, T0),
        rest_item("BNBBTC", "300", "3", 30, T0)]


class SeedAndPushTest(unittest.TestCase):
    """A REST answer fills the table; pushes keep it current, newest first."""

    def setUp(self) -> None:
        self.table = TickerTable(clock=lambda: T0 / 1000)
        self.table.seed(SEED)

    def test_seed_fills_the_table_and_makes_it_complete_once_the_stream_is_live(self):
        self.assertFalse(self.table.complete)  # no stream yet: pushes are not arriving
        self.table.on_live([TICKER_STREAM])
        self.assertTrue(self.table.complete)
        self.assertEqual(self.table.tickers()["BTCUSDT"],
                         Ticker24h("BTCUSDT", D("100"), D("6000000"), 1000))
        self.assertEqual(sorted(self.table.tickers()), ["BNBBTC", "BTCUSDT", "ETHUSDT"])

    def test_a_table_starts_empty_and_incomplete(self):
        table = TickerTable()
        self.assertFalse(table.complete)
        self.assertEqual(table.tickers(), {})
        self.assertEqual((table.repairs(), table.pushes()), (0, 0))

    def test_pushes_update_only_the_pushed_symbols(self):
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "101", "6060000", 1010,
                                                       T0 + 1000)))
        self.assertEqual(figures(self.table, "BTCUSDT"), (D("101"), D("6060000"), 1010))
        self.assertEqual(figures(self.table, "ETHUSDT"), (D("200"), D("600000"), 2000))
        self.assertEqual(figures(self.table, "BNBBTC"), (D("300"), D("3"), 30))
        self.assertEqual(self.table.pushes(), 1)

    def test_a_push_for_a_new_symbol_adds_it(self):
        self.table.on_data(TICKER_STREAM, message(push("NEWUSDT", "1", "2", 3, T0 + 1000)))
        self.assertEqual(figures(self.table, "NEWUSDT"), (D("1"), D("2"), 3))

    def test_every_form_of_data_is_read(self):
        for close, data in ((T0 + 1, message(push("BTCUSDT", "1", "1", 1, T0 + 1)).decode()),
                            (T0 + 2, msgspec.Raw(message(push("BTCUSDT", "2", "2", 2, T0 + 2)))),
                            (T0 + 3, message(push("BTCUSDT", "3", "3", 3, T0 + 3)))):
            with self.subTest(type=type(data).__name__):
                self.table.on_data(TICKER_STREAM, data)
                self.assertEqual(self.table.tickers()["BTCUSDT"].trades, close - T0)

    def test_a_push_older_than_the_seed_is_ignored(self):
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "99", "5900000", 990,
                                                       T0 - 1)))
        self.assertEqual(figures(self.table, "BTCUSDT"), (D("100"), D("6000000"), 1000))
        self.assertEqual(self.table.pushes(), 0)

    def test_an_older_push_never_overwrites_a_newer_one(self):
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "102", "1", 1020, T0 + 2000),
                                                  push("BTCUSDT", "101", "1", 1010, T0 + 1000)))
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "100.5", "1", 1005,
                                                       T0 + 500)))
        self.assertEqual(self.table.tickers()["BTCUSDT"].trades, 1020)
        self.assertEqual(self.table.pushes(), 1)

    def test_a_push_for_the_same_moment_as_the_entry_replaces_it(self):
        # The same moment seen twice: the later message is the later word.
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "100", "6000000", 1001, T0)))
        self.assertEqual(self.table.tickers()["BTCUSDT"].trades, 1001)

    def test_a_rest_answer_computed_before_a_push_does_not_undo_it(self):
        self.table.on_data(TICKER_STREAM, message(push("ETHUSDT", "201", "1", 2010, T0 + 9000)))
        late = [rest_item("BTCUSDT", "100", "6000000", 1000, T0 + 8000),
                rest_item("ETHUSDT", "200.5", "1", 2005, T0 + 8000),
                rest_item("BNBBTC", "300", "3", 30, T0 + 8000)]
        for merge in (self.table.seed, self.table.repair):
            with self.subTest(merge=merge.__name__):
                merge(late)
                self.assertEqual(self.table.tickers()["ETHUSDT"].trades, 2010)
        self.assertEqual(self.table.repairs(), 0)

    def test_a_push_before_the_seed_survives_an_older_seed(self):
        table = TickerTable()
        table.on_data(TICKER_STREAM, message(push("BTCUSDT", "101", "1", 1010, T0 + 500)))
        table.seed(SEED)
        self.assertEqual(table.tickers()["BTCUSDT"].trades, 1010)
        self.assertEqual(table.tickers()["ETHUSDT"].trades, 2000)

    def test_tickers_is_a_copy(self):
        copy = self.table.tickers()
        copy.clear()
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "1", "1", 1, T0 + 1000)))
        self.assertEqual(copy, {})
        self.assertEqual(len(self.table.tickers()), 3)

    def test_other_streams_are_ignored(self):
        self.table.on_data("btcusdt@depth@100ms", message(push("BTCUSDT", "1", "1", 1,
                                                                T0 + 1000)))
        self.assertEqual(self.table.tickers()["BTCUSDT"].trades, 1000)
        self.assertEqual(self.table.pushes(), 0)

    def test_a_3000_entry_push_decodes_and_applies(self):
        entries = [push(f"SYM{i}USDT", f"{i}.5", f"{i * 3}.25", i, T0 + 1000)
                   for i in range(3000)]
        self.table.on_data(TICKER_STREAM, message(*entries))
        tickers = self.table.tickers()
        self.assertEqual(len(tickers), 3003)
        self.assertEqual(tickers["SYM2999USDT"],
                         Ticker24h("SYM2999USDT", D("2999.5"), D("8997.25"), 2999))
        self.assertEqual(self.table.pushes(), 3000)


class MalformedMessageTest(unittest.TestCase):
    """A message with anything wrong in it changes nothing."""

    def setUp(self) -> None:
        self.table = TickerTable()
        self.table.seed(SEED)

    def test_malformed_messages_are_ignored_whole(self):
        good = push("BTCUSDT", "101", "6060000", 1010, T0 + 1000)
        cases = {
            "not JSON": b'[{"s": "BTCUSDT",',
            "not an array": json.dumps(good).encode(),
            "an entry not an object": b"[" + json.dumps(good).encode() + b", 5]",
            "other event": message(good, {**good, "s": "ETHUSDT", "e": "24hrTicker"}),
            "negative count": message(good, {**good, "s": "ETHUSDT", "n": -1}),
            "negative volume": message(good, {**good, "s": "ETHUSDT", "v": "-1"}),
            "negative quote volume": message(good, {**good, "s": "ETHUSDT", "q": "-0.1"}),
            "NaN volume": message(good, {**good, "s": "ETHUSDT", "v": "NaN"}),
            "infinite quote volume": message(good, {**good, "s": "ETHUSDT", "q": "Infinity"}),
            "volume at 1e20": message(good, {**good, "s": "ETHUSDT", "v": "1e20"}),
            "negative close time": message(good, {**good, "s": "ETHUSDT", "C": -1}),
            "bool event time": message(good, {**good, "s": "ETHUSDT", "E": True}),
            "float count": message(good, {**good, "s": "ETHUSDT", "n": 1.5}),
            "count as text": message(good, {**good, "s": "ETHUSDT", "n": "7"}),
            "no quote volume": message(good, {k: v for k, v in good.items() if k != "q"}),
            "no close time": message(good, {k: v for k, v in good.items() if k != "C"}),
            "empty symbol": message(good, {**good, "s": ""}),
        }
        for name, data in cases.items():
            with self.subTest(name), self.assertLogs(LOGGER, "WARNING"):
                self.table.on_data(TICKER_STREAM, data)
            self.assertEqual(figures(self.table, "BTCUSDT"), (D("100"), D("6000000"), 1000))
            self.assertEqual(self.table.pushes(), 0)

    def test_a_good_message_after_a_bad_one_applies(self):
        with self.assertLogs(LOGGER, "WARNING"):
            self.table.on_data(TICKER_STREAM, b"junk")
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "1", "1", 7, T0 + 1000)))
        self.assertEqual(self.table.tickers()["BTCUSDT"].trades, 7)


class RepairTest(unittest.TestCase):
    """A later REST answer repairs exactly what lost pushes left wrong."""

    def setUp(self) -> None:
        self.table = TickerTable()
        self.table.seed(SEED)

    def answer(self, close: int, **changes: tuple[str, str, int]) -> list[dict]:
        """The seed's symbols at `close`, with `changes` as symbol=(volume, quote, count)."""
        base = {"BTCUSDT": ("100", "6000000", 1000), "ETHUSDT": ("200", "600000", 2000),
                "BNBBTC": ("300", "3", 30)}
        base.update(changes)
        return [rest_item(symbol, *values, close) for symbol, values in base.items()]

    def test_missed_pushes_are_repaired_and_counted_exactly(self):
        # BTCUSDT's push arrives; ETHUSDT's and BNBBTC's are lost.
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "105", "6300000", 1050,
                                                       T0 + 59_500)))
        later = self.answer(T0 + 60_000, BTCUSDT=("105", "6300000", 1050),
                            ETHUSDT=("210", "630000", 2100), BNBBTC=("300", "3", 31))
        self.assertEqual(self.table.repair(later), 2)
        self.assertEqual(self.table.repairs(), 2)
        self.assertEqual(figures(self.table, "ETHUSDT"), (D("210"), D("630000"), 2100))
        self.assertEqual(figures(self.table, "BNBBTC"), (D("300"), D("3"), 31))
        self.assertEqual(self.table.repair(self.answer(T0 + 120_000, BTCUSDT=(
            "105", "6300000", 1050), ETHUSDT=("210", "630000", 2100), BNBBTC=("300", "3", 31))),
            0)
        self.assertEqual(self.table.repairs(), 2)

    def test_each_figure_is_compared(self):
        later = self.answer(T0 + 60_000, BTCUSDT=("101", "6000000", 1000),
                            ETHUSDT=("200", "600001", 2000), BNBBTC=("300", "3", 31))
        self.assertEqual(self.table.repair(later), 3)

    def test_unchanged_figures_are_not_repairs(self):
        self.assertEqual(self.table.repair(self.answer(T0 + 3_600_000)), 0)
        self.assertEqual(self.table.repairs(), 0)

    def test_timing_only_differences_are_not_counted(self):
        near = T0 + TIMING_TOLERANCE_MS
        self.assertEqual(self.table.repair(self.answer(near, ETHUSDT=("201", "1", 2001))), 0)
        self.assertEqual(self.table.repairs(), 0)
        # The newer figures are still the ones kept.
        self.assertEqual(figures(self.table, "ETHUSDT"), (D("201"), D("1"), 2001))
        self.assertEqual(self.table.repair(self.answer(near + TIMING_TOLERANCE_MS + 1,
                                                       ETHUSDT=("202", "1", 2002))), 1)

    def test_a_push_newer_than_the_answer_is_kept_uncounted(self):
        self.table.on_data(TICKER_STREAM, message(push("ETHUSDT", "220", "1", 2200,
                                                       T0 + 61_000)))
        self.assertEqual(self.table.repair(self.answer(T0 + 60_000,
                                                       ETHUSDT=("219", "1", 2190))), 0)
        self.assertEqual(self.table.tickers()["ETHUSDT"].trades, 2200)

    def test_symbols_new_to_the_table_are_added_as_repairs(self):
        later = self.answer(T0 + 60_000) + [rest_item("NEWUSDT", "5", "6", 7, T0 + 60_000)]
        self.assertEqual(self.table.repair(later), 1)
        self.assertEqual(figures(self.table, "NEWUSDT"), (D("5"), D("6"), 7))

    def test_delisted_symbols_leave_uncounted(self):
        later = [item for item in self.answer(T0 + 60_000) if item["symbol"] != "BNBBTC"]
        for merge in (self.table.repair, self.table.seed):
            with self.subTest(merge=merge.__name__):
                self.table.on_data(TICKER_STREAM, message(push("BNBBTC", "1", "1", 1,
                                                               T0 + 1000)))
                merge(later)
                self.assertEqual(sorted(self.table.tickers()), ["BTCUSDT", "ETHUSDT"])
        self.assertEqual(self.table.repairs(), 0)

    def test_a_symbol_pushed_after_the_answer_stays(self):
        self.table.on_data(TICKER_STREAM, message(push("NEWUSDT", "1", "1", 1, T0 + 61_000)))
        self.table.repair(self.answer(T0 + 60_000))
        self.assertIn("NEWUSDT", self.table.tickers())

    def test_an_empty_answer_delists_what_is_older_than_now(self):
        table = TickerTable(clock=lambda: (T0 + 60_000) / 1000)
        table.seed(SEED)
        table.on_data(TICKER_STREAM, message(push("NEWUSDT", "1", "1", 1, T0 + 61_000)))
        table.repair([])
        self.assertEqual(list(table.tickers()), ["NEWUSDT"])

    def test_repair_of_a_table_never_seeded_is_a_seed(self):
        table = TickerTable()
        table.on_live()
        self.assertEqual(table.repair(SEED), 0)
        self.assertEqual(table.repairs(), 0)
        self.assertTrue(table.complete)
        self.assertEqual(len(table.tickers()), 3)
        self.assertEqual(table.repair(self.answer(T0 + 60_000, BNBBTC=("1", "1", 1))), 1)

    def test_a_refused_answer_leaves_the_table_alone(self):
        bad = self.answer(T0 + 60_000, ETHUSDT=("-1", "1", 1))
        for merge in (self.table.seed, self.table.repair):
            with self.subTest(merge=merge.__name__), self.assertRaises(PayloadError):
                merge(bad)
            self.assertEqual(self.table.tickers()["ETHUSDT"].trades, 2000)


class CompletenessTest(unittest.TestCase):
    """Complete means: the stream is live, and a full answer came since, or just before."""

    def setUp(self) -> None:
        self.now = [1000.0]
        self.table = TickerTable(clock=lambda: self.now[0])
        self.table.seed(SEED)

    def test_the_start_up_answer_serves_the_first_subscription(self):
        self.now[0] += 2  # connecting and subscribing
        self.table.on_connect([TICKER_STREAM])
        self.assertFalse(self.table.complete)  # not acknowledged yet
        self.table.on_live(["btcusdt@depth@100ms", TICKER_STREAM])
        self.assertTrue(self.table.complete)

    def test_a_stream_that_never_comes_up_leaves_it_incomplete(self):
        self.table.repair(SEED)
        self.assertFalse(self.table.complete)

    def test_a_drop_makes_it_incomplete_until_an_answer_after_the_reconnect(self):
        self.table.on_live([TICKER_STREAM])
        self.table.on_disconnect([TICKER_STREAM])
        self.assertFalse(self.table.complete)
        self.table.seed(SEED)  # during the outage
        self.now[0] += 60  # the reconnect comes a minute later
        self.table.on_live([TICKER_STREAM])
        self.assertFalse(self.table.complete)  # pushes of that minute may be lost
        for merge in (self.table.seed, self.table.repair):
            with self.subTest(merge=merge.__name__):
                merge(SEED)
                self.assertTrue(self.table.complete)

    def test_an_answer_just_before_the_reconnect_serves(self):
        self.table.on_live([TICKER_STREAM])
        self.table.on_disconnect([TICKER_STREAM])
        self.now[0] += 60
        self.table.seed(SEED)
        self.now[0] += SEED_GRACE - 1
        self.table.on_live([TICKER_STREAM])
        self.assertTrue(self.table.complete)

    def test_pushes_do_not_complete_the_table(self):
        self.table.on_live([TICKER_STREAM])
        self.table.on_disconnect()
        self.now[0] += 60
        self.table.on_live()
        self.table.on_data(TICKER_STREAM, message(push("BTCUSDT", "1", "1", 1, T0 + 1000)))
        self.assertFalse(self.table.complete)

    def test_connections_without_the_ticker_stream_change_nothing(self):
        self.table.on_live([TICKER_STREAM])
        self.table.on_disconnect(["btcusdt@depth@100ms"])
        self.table.on_live(["btcusdt@depth@100ms"])
        self.assertTrue(self.table.complete)


class TimedParseTest(unittest.TestCase):
    """The REST parse that keeps closeTime checks what parse_tickers_24h checks, and more."""

    def test_each_ticker_comes_with_its_close_time(self):
        parsed = parse_tickers_24h_timed([rest_item("BTCUSDT", "1.5", "90", 3, T0)])
        self.assertEqual(parsed, {"BTCUSDT": (Ticker24h("BTCUSDT", D("1.5"), D("90"), 3), T0)})

    def test_a_bad_close_time_or_figure_is_refused(self):
        good = rest_item("BTCUSDT", "1", "1", 1, T0)
        for name, answer in {
            "no closeTime": [{k: v for k, v in good.items() if k != "closeTime"}],
            "negative closeTime": [{**good, "closeTime": -1}],
            "closeTime as text": [{**good, "closeTime": str(T0)}],
            "negative volume": [{**good, "volume": "-1"}],
            "not an array": good,
        }.items():
            with self.subTest(name), self.assertRaises(PayloadError):
                parse_tickers_24h_timed(answer)


if __name__ == "__main__":
    unittest.main()
