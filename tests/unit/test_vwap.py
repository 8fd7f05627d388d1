"""VWAP of a book and the time-weighted average, with hand-checked numbers."""

import unittest
from decimal import Decimal as D
from decimal import localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.market.numbers import CONTEXT
from binance_exporter.market.types import OrderBook
from binance_exporter.market.vwap import TimeWeightedAverage, VwapTracker, vwap_price


def book(bids, asks) -> OrderBook:
    """An OrderBook from (price, qty) strings, best first."""
    return OrderBook(
        last_update_id=1,
        bids=tuple((D(p), D(q)) for p, q in bids),
        asks=tuple((D(p), D(q)) for p, q in asks),
    )


# Bids 100 × 1, 99 × 3, 98 × 10; asks 101 × 2, 102 × 2, 110 × 100.
BOOK = book([("100", "1"), ("99", "3"), ("98", "10")], [("101", "2"), ("102", "2"), ("110", "100")])


class VwapPriceTest(unittest.TestCase):
    """VWAP mid over the top levels."""

    def test_two_levels(self):
        # bid (100×1 + 99×3) / 4 = 397/4 = 99.25; ask (101×2 + 102×2) / 4 = 101.5;
        # (99.25 + 101.5) / 2 = 100.375.
        self.assertEqual(vwap_price(BOOK, 2), D("100.375"))

    def test_one_level_is_the_mid(self):
        self.assertEqual(vwap_price(BOOK, 1), D("100.5"))  # (100 + 101) / 2

    def test_deep_levels_pull_the_price(self):
        # bid (100 + 297 + 980) / 14 = 1377/14 = 98.357142857142857142857142857…;
        # ask (202 + 204 + 11000) / 104 = 11406/104 = 109.67307692307692307692…;
        # the mean of the two, rounded once per division at 60 digits.
        with localcontext(CONTEXT):
            expected = (D(1377) / D(14) + D(11406) / D(104)) / 2
        self.assertEqual(vwap_price(BOOK, 3), expected)
        self.assertEqual(str(expected)[:12], "104.01510989")
        # Asking for more levels than there are uses what there is.
        self.assertEqual(vwap_price(BOOK, 500), expected)

    def test_exact_decimals(self):
        # 0.1 × 0.3 + 0.2 × 0.1 = 0.05 over 0.4 → 0.125; ask 0.3 alone;
        # (0.125 + 0.3) / 2 = 0.2125 exactly, which floats would not give.
        thin = book([("0.1", "0.3"), ("0.2", "0.1")], [("0.3", "7")])
        self.assertEqual(vwap_price(thin, 2), D("0.2125"))

    def test_no_price(self):
        cases = {
            "empty bids": book([], [("101", "1")]),
            "empty asks": book([("100", "1")], []),
            "crossed": book([("102", "1")], [("101", "1")]),
            "locked": book([("101", "1")], [("101", "1")]),
            "no quantity": book([("100", "0")], [("101", "1")]),
        }
        for name, case in cases.items():
            with self.subTest(name):
                self.assertIsNone(vwap_price(case, 5))

    def test_levels_must_be_positive(self):
        with self.assertRaises(ValueError):
            vwap_price(BOOK, 0)


class TimeWeightedAverageTest(unittest.TestCase):
    """The step-function average over a sliding window."""

    def test_step_function_weighting(self):
        average = TimeWeightedAverage(30)
        average.add(0, D(10))
        average.add(20, D(40))
        # 10 for 20 s, then 40 for 10 s: (200 + 400) / 30 = 20.
        self.assertEqual(average.average(30), D(20))

    def test_window_slides(self):
        average = TimeWeightedAverage(30)
        average.add(0, D(10))
        average.add(20, D(40))
        # [10, 40]: 10 for 10 s, 40 for 20 s → (100 + 800) / 30 = 30.
        self.assertEqual(average.average(40), D(30))
        # [20, 50]: 40 all the way.
        self.assertEqual(average.average(50), D(40))
        average.add(55, D(-20))
        # [30, 60]: 40 for 25 s, -20 for 5 s → (1000 - 100) / 30 = 30.
        self.assertEqual(average.average(60), D(30))

    def test_younger_than_the_window(self):
        average = TimeWeightedAverage(60)
        self.assertIsNone(average.average(100))  # nothing yet
        average.add(100, D(10))
        average.add(110, D(40))
        # Only [100, 115] is known: (10×10 + 40×5) / 15 = 300/15 = 20, not a
        # 60 s average that counts 45 unknown seconds as 0.
        self.assertEqual(average.average(115), D(20))

    def test_now_at_the_last_sample(self):
        average = TimeWeightedAverage(30)
        average.add(0, D(10))
        self.assertEqual(average.average(0), D(10))  # zero-length interval: the value
        average.add(20, D(40))
        # 40 has held for 0 s: [0, 20] is all 10.
        self.assertEqual(average.average(20), D(10))

    def test_float_times_are_exact(self):
        average = TimeWeightedAverage(0.3)
        average.add(0.1, D(1))
        average.add(0.3, D(3))
        # [0.1, 0.4]: 1 for 0.2 s, 3 for 0.1 s → 0.5 / 0.3 = 5/3, with no
        # 0.30000000000000004 from float subtraction.
        self.assertEqual(average.average(0.4), CONTEXT.divide(D(5), D(3)))

    def test_same_time_replaces(self):
        average = TimeWeightedAverage(30)
        average.add(0, D(10))
        average.add(0, D(30))  # 10 held for 0 s
        self.assertEqual(average.average(10), D(30))
        self.assertEqual(len(average), 1)

    def test_time_going_backwards_is_an_error(self):
        average = TimeWeightedAverage(30)
        average.add(10, D(1))
        with self.assertRaises(ValueError):
            average.add(9.5, D(2))
        with self.assertRaises(ValueError):
            average.average(9)
        self.assertEqual(average.average(10), D(1))

    def test_bad_arguments(self):
        for window in (0, -1, float("inf")):
            with self.subTest(window=window), self.assertRaises(ValueError):
                TimeWeightedAverage(window)
        with self.assertRaises(TypeError):
            TimeWeightedAverage("30")
        average = TimeWeightedAverage(30)
        with self.assertRaises(ValueError):
            average.add(float("nan"), D(1))
        with self.assertRaises(TypeError):
            average.add(True, D(1))
        for value in (1.5, D("NaN"), D("Infinity")):
            with self.subTest(value=value), self.assertRaises(ValueError):
                average.add(1, value)
        average.add(D("1.5"), D(2))  # a Decimal time is fine
        self.assertEqual(average.average(2), D(2))

    def test_memory_is_bounded(self):
        average = TimeWeightedAverage(10)
        for second in range(1000):
            average.add(second, D(second))
        # At t = 999 the window is [989, 999]: samples 989…999 are kept (11);
        # 988 ended at 989, the window start, and is gone.
        self.assertEqual(len(average), 11)
        # Mean of the step function over [989, 999]: 989…998 for 1 s each, 999
        # for 0 s → (989 + … + 998) / 10 = 993.5.
        self.assertEqual(average.average(999), D("993.5"))

    def test_straddling_sample_is_kept(self):
        average = TimeWeightedAverage(10)
        average.add(0, D(5))
        average.add(100, D(7))
        # The window at 100 is [90, 100]: sample 0 still holds at 90, so it stays.
        self.assertEqual(len(average), 2)
        # [95, 105]: 5 for 5 s, 7 for 5 s → 6.
        self.assertEqual(average.average(105), D(6))
        average.add(110, D(9))
        # Window [100, 110]: the 100 sample covers its start; 0 is dropped.
        self.assertEqual(len(average), 2)


def integrate(history: list[tuple[D, D]], window: D, now: D) -> D:
    """The average over the window by walking the whole history: the definition."""
    with localcontext(CONTEXT):
        return _integrate(history, window, now)


def _integrate(history: list[tuple[D, D]], window: D, now: D) -> D:
    start = max(now - window, history[0][0])
    if now == start:
        return history[-1][1]
    ends = [when for when, _ in history[1:]] + [now]
    total = sum((value * (min(until, now) - max(when, start))
                 for (when, value), until in zip(history, ends) if until > start), D(0))
    return total / (now - start)


# Times in tenths of a second, values with 8 decimals, as the exporter has them.
STEPS = st.lists(st.tuples(st.integers(0, 40), st.integers(1, 10**12), st.integers(0, 30)),
                 min_size=1, max_size=60)


class RunningAreaTest(unittest.TestCase):
    """The running sum `average` uses gives exactly what a walk over every sample gives."""

    @settings(max_examples=200, deadline=None)
    @given(window=st.integers(1, 100), steps=STEPS)
    def test_equals_the_definition(self, window, steps):
        average = TimeWeightedAverage(window / 10)
        history: list[tuple[D, D]] = []
        when = D(0)
        for gap, value, wait in steps:
            when += D(gap) / 10
            price = D(value).scaleb(-8)
            average.add(when, price)
            if history and history[-1][0] == when:
                history[-1] = (when, price)
            else:
                history.append((when, price))
            now = when + D(wait) / 10  # asked later than the last sample, sometimes much later
            self.assertEqual(average.average(now), integrate(history, D(window) / 10, now))


if __name__ == "__main__":
    unittest.main()


class VwapTrackerTest(unittest.TestCase):
    """Many books' VWAP mids: reused while a book stands still, averaged over windows."""

    def test_a_book_that_did_not_move_is_not_recomputed(self):
        tracker = VwapTracker(levels=2)
        self.assertEqual(tracker.mid("X", BOOK), D("100.375"))
        moved = OrderBook(BOOK.last_update_id, BOOK.bids[:1], BOOK.asks[:1])
        self.assertEqual(tracker.mid("X", moved), D("100.375"))  # same update id: reused
        changed = OrderBook(BOOK.last_update_id + 1, BOOK.bids[:1], BOOK.asks[:1])
        self.assertEqual(tracker.mid("X", changed), D("100.5"))

    def test_averages_per_window_and_forgetting(self):
        tracker = VwapTracker(levels=1, windows=(("10s", 10.0),))
        self.assertEqual(tracker.averages({"X": D(1)}, 0.0), {("X", "10s"): D(1)})
        self.assertEqual(tracker.averages({"X": D(3)}, 5.0), {("X", "10s"): D(1)})
        self.assertEqual(tracker.averages({"X": D(3)}, 10.0), {("X", "10s"): D(2)})
        self.assertEqual(tracker.averages({}, 11.0), {})
        self.assertEqual(tracker.averages({"X": D(7)}, 12.0), {("X", "10s"): D(7)})
