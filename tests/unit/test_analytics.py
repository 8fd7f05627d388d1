"""Market-quality analytics with hand-checked numbers: fills, depth bands, trade flow."""

import json
import unittest
from decimal import Decimal as D
from decimal import localcontext
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.binance import payloads
from binance_exporter.binance.payloads import PayloadError, parse_depth
from binance_exporter.market import fills
from binance_exporter.market import trades as trade_flow
from binance_exporter.market.fills import Split
from binance_exporter.market.trades import AggTrade, TradeFlow
from binance_exporter.market.types import OrderBook

FIXTURES = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "binance-spot-mainnet-2021-10-22"
)

# 150 / 101 = 1.(4851) repeating; kept to 50 significant digits, rounded down.
# 150 / 101 to 60 significant digits, rounded down (the policy of market.numbers).
QTY_150_AT_101 = D("1.48514851485148514851485148514851485148514851485148514851485")
TINY = D("1e-45")  # how far a result rounded at the 50th digit may be from the exact value


def levels(*pairs) -> tuple:
    """Levels from (price, qty) pairs written as strings or ints."""
    return tuple((D(price), D(qty)) for price, qty in pairs)


def book(bids=(), asks=()) -> OrderBook:
    """A depth snapshot from (price, qty) pairs, each side best first."""
    return OrderBook(last_update_id=1, bids=levels(*bids), asks=levels(*asks))


class MidPriceTest(unittest.TestCase):
    """The mid every other analytic measures from."""

    def test_mid_is_the_mean_of_best_bid_and_ask(self):
        self.assertEqual(fills.mid_price(book([(99, 1), (98, 1)], [(101, 1)])), D(100))
        # (60650.00 + 60650.01) / 2, exact
        self.assertEqual(
            fills.mid_price(book([("60650.00", 1)], [("60650.01", 1)])), D("60650.005")
        )

    def test_no_mid_for_empty_one_sided_crossed_or_locked_books(self):
        self.assertIsNone(fills.mid_price(book()))
        self.assertIsNone(fills.mid_price(book(bids=[(99, 1)])))
        self.assertIsNone(fills.mid_price(book(asks=[(101, 1)])))
        self.assertIsNone(fills.mid_price(book([(102, 1)], [(101, 1)])))
        self.assertIsNone(fills.mid_price(book([(101, 1)], [(101, 1)])))


class SimulateFillTest(unittest.TestCase):
    """Simulated market orders walked through one side of a book."""

    ASKS = levels((100, 1), (101, 2), (103, 5))

    def test_buy_splits_levels_exactly(self):
        fill = fills.simulate_fill(self.ASKS, D(250), D("99.5"))
        # 100 x 1 = 100 spent on the first level, 150 left; 150 < 101 x 2 = 202,
        # so the second level gives 150 / 101 and the third is never touched.
        self.assertEqual(
            fill.splits,
            (Split(D(100), D(1), D(100)), Split(D(101), QTY_150_AT_101, D(150))),
        )
        self.assertEqual(fill.levels_used, 2)
        self.assertEqual(fill.filled_notional, D(250))
        self.assertEqual(
            fill.filled_qty, D("2.48514851485148514851485148514851485148514851485148514851485"))
        self.assertEqual(fill.unfilled_notional, D(0))
        self.assertTrue(fill.complete)
        # average = 250 / (1 + 150/101) = 250 x 101 / 251 = 25250 / 251
        self.assertAlmostEqual(
            fill.average_price,
            D("100.59760956175298804780876494023904382470119521912"),
            delta=TINY,
        )
        # slippage = (25250/251 - 99.5) / 99.5 = 275.5 / 24974.5
        self.assertAlmostEqual(
            fill.slippage_ratio,
            D("0.011031251876914452741796632565216520851268293659532"),
            delta=TINY,
        )

    def test_partial_quantity_never_overspends(self):
        fill = fills.simulate_fill(self.ASKS, D(250), D("99.5"))
        last = fill.splits[-1]
        # rounded down: 101 x 1.48514...514 = 149.99999...9914 <= 150
        self.assertLessEqual(last.price * last.qty, last.notional)

    def test_slippage_with_a_hand_value(self):
        # mid (99 + 101) / 2 = 100; buy 205 = 101 x 1 + 104 x 1, qty 2, average 102.5
        fill = fills.simulate_market_order(
            book([(99, 1)], [(101, 1), (104, 1)]), fills.BUY, D(205)
        )
        self.assertEqual(fill.filled_qty, D(2))
        self.assertEqual(fill.average_price, D("102.5"))
        self.assertEqual(fill.slippage_ratio, D("0.025"))  # 2.5 / 100

    def test_sell_walks_the_bids(self):
        # mid 100; sell 296 = 99 x 2 + 98 x 1, qty 3, average 296/3 = 98.666...
        fill = fills.simulate_market_order(
            book([(99, 2), (98, 3), (50, 100)], [(101, 1)]), fills.SELL, D(296)
        )
        self.assertEqual(fill.splits, (Split(D(99), D(2), D(198)), Split(D(98), D(1), D(98))))
        self.assertEqual(fill.levels_used, 2)
        self.assertEqual(fill.filled_qty, D(3))
        self.assertAlmostEqual(
            fill.average_price, D("98.666666666666666666666666666666666666666666666667"), delta=TINY
        )
        # (100 - 296/3) / 100 = 4/300 = 0.01333...
        self.assertAlmostEqual(
            fill.slippage_ratio, D("0.013333333333333333333333333333333333333333333333333"),
            delta=TINY,
        )

    def test_thin_book_leaves_notional_unfilled(self):
        # the whole side is 100 + 202 = 302; 1000 - 302 = 698 unfilled
        fill = fills.simulate_fill(levels((100, 1), (101, 2)), D(1000), D(99))
        self.assertFalse(fill.complete)
        self.assertEqual(fill.filled_notional, D(302))
        self.assertEqual(fill.filled_qty, D(3))
        self.assertEqual(fill.unfilled_notional, D(698))
        self.assertEqual(fill.levels_used, 2)
        self.assertAlmostEqual(fill.average_price, D(302) / D(3), delta=D("1e-25"))

    def test_empty_side_fills_nothing(self):
        fill = fills.simulate_fill((), D(50), D(100))
        self.assertEqual(fill.requested, D(50))
        self.assertEqual(fill.filled_notional, D(0))
        self.assertEqual(fill.filled_qty, D(0))
        self.assertIsNone(fill.average_price)
        self.assertIsNone(fill.slippage_ratio)
        self.assertEqual(fill.levels_used, 0)
        self.assertEqual(fill.unfilled_notional, D(50))
        self.assertEqual(fill.splits, ())
        self.assertFalse(fill.complete)

    def test_an_order_that_empties_a_level_exactly_stops_there(self):
        fill = fills.simulate_fill(self.ASKS, D(100), D(99))
        self.assertEqual(fill.levels_used, 1)
        self.assertEqual(fill.splits, (Split(D(100), D(1), D(100)),))
        self.assertTrue(fill.complete)

    def test_levels_without_price_or_quantity_are_skipped(self):
        fill = fills.simulate_fill(levels((100, 0), (0, 5), (101, 1)), D("50.5"), D(100))
        # only 101 holds anything: 50.5 / 101 = 0.5
        self.assertEqual(fill.splits, (Split(D(101), D("0.5"), D("50.5")),))
        self.assertEqual(fill.levels_used, 1)

    def test_zero_notional_is_complete_with_nothing_filled(self):
        fill = fills.simulate_fill(self.ASKS, D(0), D(99))
        self.assertTrue(fill.complete)
        self.assertEqual(fill.levels_used, 0)
        self.assertIsNone(fill.average_price)

    def test_no_slippage_without_a_positive_mid(self):
        self.assertIsNone(fills.simulate_fill(self.ASKS, D(10), None).slippage_ratio)
        self.assertIsNone(fills.simulate_fill(self.ASKS, D(10), D(0)).slippage_ratio)
        crossed = book([(102, 1)], [(101, 1)])
        fill = fills.simulate_market_order(crossed, fills.BUY, D(101))
        self.assertEqual(fill.filled_qty, D(1))
        self.assertIsNone(fill.slippage_ratio)

    def test_bad_arguments_are_refused(self):
        with self.assertRaises(ValueError):
            fills.simulate_fill(self.ASKS, D(-1), D(99))
        with self.assertRaises(ValueError):
            fills.simulate_market_order(book(), "bid", D(1))

    def test_recorded_book(self):
        recorded = (FIXTURES / "depth_BTCUSDT_limit10.json").read_text(encoding="utf-8")
        depth = parse_depth(json.loads(recorded), "BTCUSDT")
        # sell 60650.00 x 0.00213 + 60648.08 x 0.06346 = 129.1845 + 3848.7271568
        fill = fills.simulate_market_order(depth, fills.SELL, D("3977.9116568"))
        self.assertEqual(fill.levels_used, 2)
        self.assertEqual(fill.filled_qty, D("0.06559"))
        self.assertTrue(fill.complete)
        # 3977.9116568 / 0.06559 = 60648.14235096813...; mid 60650.005
        self.assertEqual(fill.average_price.quantize(D("1e-8")), D("60648.14235097"))
        self.assertEqual(fill.slippage_ratio.quantize(D("1e-12")), D("0.000030711441"))


class DepthBandTest(unittest.TestCase):
    """Liquidity within a band around the mid, edges included."""

    # mid (99 + 101) / 2 = 100; the 2 % edges are 98 (bids) and 102 (asks)
    BOOK = book(
        bids=[(99, 1), (98, 2), ("97.99", 5)],
        asks=[(101, 1), (102, 2), ("102.01", 5)],
    )

    def test_levels_on_the_edge_count_and_one_tick_beyond_does_not(self):
        # bids 99 x 1 + 98 x 2 = 295 (97.99 is beyond); asks 101 + 102 x 2 = 305
        self.assertEqual(fills.depth_within(self.BOOK.bids, D(100), D("0.02"), "bid"), D(295))
        self.assertEqual(fills.depth_within(self.BOOK.asks, D(100), D("0.02"), "ask"), D(305))

    def test_narrower_and_zero_bands(self):
        self.assertEqual(fills.depth_within(self.BOOK.bids, D(100), D("0.01"), "bid"), D(99))
        self.assertEqual(fills.depth_within(self.BOOK.asks, D(100), D("0.01"), "ask"), D(101))
        self.assertEqual(fills.depth_within(self.BOOK.bids, D(100), D(0), "bid"), D(0))

    def test_level_order_does_not_matter(self):
        reverse = tuple(reversed(self.BOOK.bids))
        self.assertEqual(fills.depth_within(reverse, D(100), D("0.02"), "bid"), D(295))

    def test_bands_for_the_whole_book(self):
        self.assertEqual(
            fills.depth_bands(self.BOOK, [D("0.01"), D("0.02"), D("0.05")]),
            {
                ("bid", D("0.01")): D(99),
                ("ask", D("0.01")): D(101),
                ("bid", D("0.02")): D(295),
                ("ask", D("0.02")): D(305),
                ("bid", D("0.05")): D("784.95"),  # 295 + 97.99 x 5 = 295 + 489.95
                ("ask", D("0.05")): D("815.05"),  # 305 + 102.01 x 5 = 305 + 510.05
            },
        )

    def test_no_bands_without_a_mid(self):
        self.assertEqual(fills.depth_bands(book(bids=[(99, 1)]), [D("0.02")]), {})

    def test_bad_arguments_are_refused(self):
        with self.assertRaises(ValueError):
            fills.depth_within(self.BOOK.bids, D(100), D("0.02"), "buy")
        with self.assertRaises(ValueError):
            fills.depth_within(self.BOOK.bids, D(100), D("-0.02"), "bid")


def trade(
    trade_id: int, price, qty, buyer_is_maker: bool, first: int = 0, count: int = 1
) -> AggTrade:
    """An aggregate trade covering `count` underlying trades (from id x 10 by default)."""
    first = first or trade_id * 10
    return AggTrade(
        id=trade_id,
        price=D(price),
        qty=D(qty),
        first_trade_id=first,
        last_trade_id=first + count - 1,
        time_ms=1_600_000_000_000 + trade_id,
        buyer_is_maker=buyer_is_maker,
    )


# taker buy when the buyer is not the maker, taker sell when it is
T1 = trade(1, "10", "2", False)  # buy, 1 trade, quote 20
T2 = trade(2, "11", "1", True, count=3)  # sell, 3 trades, quote 11
T3 = trade(3, "10.5", "4", False)  # buy, 1 trade, quote 42
T4 = trade(4, "10", "0.5", True, count=2)  # sell, 2 trades, quote 5
T5 = trade(5, "12", "1", False)  # buy, 1 trade, quote 12
T6 = trade(6, "11.5", "2", True)  # sell, 1 trade, quote 23


class AggTradeParseTest(unittest.TestCase):
    """aggTrades objects as Binance documents them."""

    DOC_EXAMPLE = {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781,
                   "l": 27781, "T": 1498793709153, "m": True, "M": True}

    def test_documented_example(self):
        (parsed,) = payloads.parse_agg_trades([self.DOC_EXAMPLE])
        self.assertEqual(
            parsed,
            AggTrade(26129, D("0.01633102"), D("4.70443515"), 27781, 27781, 1498793709153, True),
        )
        self.assertEqual(parsed.taker_side, "sell")  # the buyer was the maker
        self.assertEqual(parsed.trade_count, 1)

    def test_stream_event_has_the_same_fields(self):
        event = {"e": "aggTrade", "E": 1, "s": "BNBBTC", **self.DOC_EXAMPLE, "m": False}
        parsed = payloads.parse_agg_trade(event)
        self.assertEqual(parsed.taker_side, "buy")

    def test_quote_quantity_is_exact_beyond_28_digits(self):
        big = trade(1, "123456789.12345678", "98765432.12345678", False)
        # exact integer maths, parsed from a string: D(...).scaleb(-16) would round at 28 digits
        expected = D(f"{12345678912345678 * 9876543212345678}E-16")
        self.assertEqual(big.quote_qty, expected)

    def test_malformed_trades_are_refused(self):
        good = self.DOC_EXAMPLE
        cases = [
            {"a": 1},
            [good],
            "x",
            {**good, "p": "abc"},
            {**good, "p": "0"},
            {**good, "q": "-1"},
            {**good, "a": "26129"},
            {**good, "a": True},
            {**good, "m": "true"},
            {**good, "l": 27780},
        ]
        for item in cases:
            with self.subTest(item=item):
                with self.assertRaises(PayloadError):
                    payloads.parse_agg_trades([item])
        with self.assertRaises(PayloadError):
            payloads.parse_agg_trades(good)


class TradeFlowTest(unittest.TestCase):
    """Taker flow counters that never count a trade twice."""

    def test_replays_duplicates_and_out_of_order_ids_count_once(self):
        flow = TradeFlow("BNBBTC")
        seen = []
        # first page; then a reconnect replays 2-3 with 4 new, out of order and
        # with 3 twice; then 6 before 5 with 5 duplicated; then everything again
        for batch, new in (
            ([T1, T2, T3], 3),
            ([T4, T3, T2, T3], 1),
            ([T6, T5, T5], 2),
            ([T1, T2, T3, T4, T5, T6], 0),
            ([], 0),
        ):
            self.assertEqual(flow.apply(batch), new)
            seen.append(flow.by_side())
        buys, sells = flow.totals("buy"), flow.totals("sell")
        # buys T1 T3 T5: 3 trades, base 2 + 4 + 1 = 7, quote 20 + 42 + 12 = 74
        self.assertEqual(buys, trade_flow.SideTotals(3, 3, D(7), D(74)))
        # sells T2 T4 T6: 3 + 2 + 1 = 6 trades in 3 aggregates, base 3.5, quote 11 + 5 + 23 = 39
        self.assertEqual(sells, trade_flow.SideTotals(6, 3, D("3.5"), D(39)))
        self.assertEqual(flow.last_id, 6)
        self.assertEqual(flow.last_price, D("11.5"))  # id 6's price, though 5 came last
        self.assertEqual(flow.last_time_ms, 1_600_000_000_006)
        self.assertEqual(flow.missed_ids, 0)
        for before, after in zip(seen, seen[1:]):
            for side in fills.TAKER_SIDES:
                self.assertLessEqual(before[side].trades, after[side].trades)
                self.assertLessEqual(before[side].base_volume, after[side].base_volume)
                self.assertLessEqual(before[side].quote_volume, after[side].quote_volume)

    def test_skipped_ids_are_reported_and_never_filled_in_later(self):
        flow = TradeFlow()
        self.assertEqual(flow.apply([T1, T2, T5]), 3)
        self.assertEqual(flow.missed_ids, 2)  # 3 and 4
        self.assertEqual(flow.apply([T3, T4]), 0)
        self.assertEqual(flow.totals("buy").aggregate_trades, 2)

    def test_a_starting_id_counts_as_seen(self):
        flow = TradeFlow(last_id=4)
        self.assertEqual(flow.apply([T3, T4, T5]), 1)
        self.assertEqual(flow.totals("buy"), trade_flow.SideTotals(1, 1, D(1), D(12)))

    def test_fresh_flow_is_zero(self):
        flow = TradeFlow()
        self.assertIsNone(flow.last_id)
        self.assertIsNone(flow.last_price)
        self.assertEqual(flow.totals("sell"), trade_flow.SideTotals())
        with self.assertRaises(ValueError):
            flow.totals("bid")

    def test_by_side_is_a_copy(self):
        flow = TradeFlow()
        kept = flow.by_side()
        flow.apply([T1])
        self.assertEqual(kept["buy"].trades, 0)
        self.assertEqual(flow.by_side()["buy"].trades, 1)

    def test_bad_trades_cannot_be_built(self):
        with self.assertRaises(ValueError):
            trade(1, "1", "1", False, first=5, count=0)
        with self.assertRaises(ValueError):
            trade(1, "-1", "1", False)


class PagingTest(unittest.TestCase):
    """aggTrades paging parameters."""

    def test_first_call_asks_for_the_latest_trades_only(self):
        self.assertEqual(trade_flow.next_page_params(None), {"limit": 1000})
        self.assertEqual(trade_flow.next_page_params(None, 200), {"limit": 200})

    def test_later_calls_page_on_by_id(self):
        self.assertEqual(trade_flow.next_page_params(41), {"fromId": 42, "limit": 1000})
        self.assertEqual(trade_flow.next_page_params(0, 1), {"fromId": 1, "limit": 1})

    def test_limit_is_what_binance_accepts(self):
        for limit in (0, 1001):
            with self.subTest(limit=limit), self.assertRaises(ValueError):
                trade_flow.next_page_params(None, limit)

    def test_a_full_page_means_page_again(self):
        self.assertTrue(trade_flow.gap_possible(1000, 1000))
        self.assertFalse(trade_flow.gap_possible(999, 1000))
        self.assertFalse(trade_flow.gap_possible(0, 1000))


PRICES = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
QUANTITIES = st.decimals(min_value=D("0"), max_value=D("1000"), places=8)


@st.composite
def trade_sequences(draw) -> list:
    """Consecutive aggregate ids from 1, random prices, sizes, sides and counts."""
    size = draw(st.integers(min_value=0, max_value=25))
    return [
        trade(
            trade_id,
            draw(PRICES),
            draw(QUANTITIES),
            draw(st.booleans()),
            count=draw(st.integers(min_value=1, max_value=4)),
        )
        for trade_id in range(1, size + 1)
    ]


def state(flow: TradeFlow) -> tuple:
    """Everything a TradeFlow reports, for comparing two of them."""
    return (flow.by_side(), flow.last_id, flow.last_price, flow.missed_ids)


class PropertyTest(unittest.TestCase):
    """Invariants over generated books and trade sequences."""

    @settings(max_examples=150, deadline=None)
    @given(trades=trade_sequences(), data=st.data())
    def test_overlapping_shuffled_batches_give_the_same_totals(self, trades, data):
        once = TradeFlow()
        self.assertEqual(once.apply(trades), len(trades))
        # cut the sequence into chunks; each batch is its chunk plus some of the
        # trades before it (a replay), shuffled, with random duplicates
        cuts = sorted(data.draw(st.lists(st.integers(0, len(trades)), max_size=6)))
        bounds = list(zip([0, *cuts], [*cuts, len(trades)]))
        batched = TradeFlow()
        applied = 0
        previous = batched.by_side()
        for start, end in bounds:
            overlap = data.draw(st.integers(0, start))
            batch = trades[start - overlap:end]
            if batch:
                batch = batch + data.draw(st.lists(st.sampled_from(batch), max_size=3))
            applied += batched.apply(data.draw(st.permutations(batch)))
            current = batched.by_side()
            for side in fills.TAKER_SIDES:
                self.assertLessEqual(previous[side].trades, current[side].trades)
                self.assertLessEqual(previous[side].base_volume, current[side].base_volume)
                self.assertLessEqual(previous[side].quote_volume, current[side].quote_volume)
            previous = current
        self.assertEqual(applied, len(trades))
        self.assertEqual(state(batched), state(once))
        self.assertEqual(batched.missed_ids, 0)

    @settings(max_examples=150, deadline=None)
    @given(
        side=st.lists(st.tuples(PRICES, QUANTITIES), max_size=8),
        notional=st.decimals(min_value=D(0), max_value=D("1e7"), places=4),
    )
    def test_a_fill_accounts_for_every_unit_of_notional(self, side, notional):
        side.sort()  # asks, best (lowest) first
        fill = fills.simulate_fill(side, notional, side[0][0] if side else None)
        self.assertEqual(fill.levels_used, len(fill.splits))
        with localcontext() as exact:
            exact.prec = 120  # so the checks themselves never round
            self.assertEqual(fill.filled_notional + fill.unfilled_notional, notional)
            self.assertEqual(fill.filled_notional, sum((s.notional for s in fill.splits), D(0)))
            self.assertEqual(fill.complete, sum((p * q for p, q in side), D(0)) >= notional)
            for split in fill.splits:
                self.assertLessEqual(split.price * split.qty, split.notional)
            if fill.splits:
                # between the best and worst price used; the last level's quantity
                # is rounded down, which can lift the average by a 50th-digit hair
                self.assertLessEqual(fill.splits[0].price, fill.average_price)
                self.assertLessEqual(fill.average_price, fill.splits[-1].price * (1 + TINY))
                self.assertGreaterEqual(fill.slippage_ratio, D(0))
            else:
                self.assertIsNone(fill.average_price)

if __name__ == "__main__":
    unittest.main()
