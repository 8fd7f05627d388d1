"""The local order book: parsing diff events, the §6 sync procedure, and a property test.

Update ids in the hand-made sequences are small so the arithmetic can be read
off the comments: a snapshot at lastUpdateId L, events [U..u].
"""

import json
import unittest
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_exporter.binance.payloads import PayloadError
from binance_exporter.market.types import OrderBook
from binance_exporter.binance.depth_events import DepthUpdate, decode_depth_update
from binance_exporter.market import book_sides
from binance_exporter.market.order_book import LocalBook, NotSynced, Outcome, State

SYMBOL = "BNBBTC"


def levels(*pairs: tuple[str, str]) -> tuple[tuple[D, D], ...]:
    """Levels from (price, qty) strings."""
    return tuple((D(price), D(qty)) for price, qty in pairs)


def event(first: int, last: int, bids=(), asks=()) -> DepthUpdate:
    """A parsed diff event for SYMBOL."""
    return DepthUpdate(SYMBOL, 1672515782136, first, last, levels(*bids), levels(*asks))


def snapshot(last_id: int, bids=(), asks=()) -> OrderBook:
    """A REST snapshot (bids desc, asks asc, like Binance sends them)."""
    return OrderBook(last_update_id=last_id, bids=levels(*bids), asks=levels(*asks))


def contents(book: LocalBook, depth: int = 100) -> tuple[list, list]:
    """Both sides as (price, qty) strings, best first."""
    top = book.view(depth)
    return ([(str(p), str(q)) for p, q in top.bids], [(str(p), str(q)) for p, q in top.asks])


# A snapshot at id 100: bids 10/9, asks 11/12.
SNAPSHOT_100 = snapshot(100, bids=[("10", "1"), ("9", "2")], asks=[("11", "3"), ("12", "4")])


def synced_book() -> LocalBook:
    """A book synced on SNAPSHOT_100 with nothing buffered after it."""
    book = LocalBook(SYMBOL)
    book.on_event(event(95, 100))
    assert book.apply_depth(SNAPSHOT_100) is Outcome.SYNCED
    return book


class DecodeDepthUpdateTest(unittest.TestCase):
    """The documented depthUpdate payload, from its JSON text, and what must be refused."""

    FRAME = {
        "e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC", "U": 157, "u": 160,
        "b": [["0.0024", "10"]], "a": [["0.0026", "100"], ["0.0027", "0.00000000"]],
    }

    def decode(self, payload) -> DepthUpdate:
        """Decode `payload` as the JSON text a stream would carry."""
        return decode_depth_update(json.dumps(payload))

    def test_documented_payload(self):
        update = self.decode(self.FRAME)
        self.assertEqual(update.symbol, "BNBBTC")
        self.assertEqual(update.event_time, 1672515782136)
        self.assertEqual((update.first_update_id, update.last_update_id), (157, 160))
        self.assertEqual(update.bids, ((D("0.0024"), D("10")),))
        self.assertEqual(update.asks, ((D("0.0026"), D("100")), (D("0.0027"), D(0))))

    def test_empty_sides(self):
        update = self.decode(dict(self.FRAME, b=[], a=[]))
        self.assertEqual((update.bids, update.asks), ((), ()))

    def test_unknown_fields_are_ignored_and_numbers_are_read_exactly(self):
        # A JSON number is read from its text, never through a float: 0.1 is 0.1.
        update = decode_depth_update(
            '{"e":"depthUpdate","E":1,"s":"X","U":1,"u":1,"b":[[0.1,"3"]],"a":[],"new":1}')
        self.assertEqual(update.bids, ((D("0.1"), D(3)),))
        self.assertEqual(str(update.bids[0][0]), "0.1")

    def test_malformed(self):
        bad = [
            None,
            [],
            dict(self.FRAME, e="trade"),
            {k: v for k, v in self.FRAME.items() if k != "U"},
            {k: v for k, v in self.FRAME.items() if k != "a"},
            dict(self.FRAME, s=""),
            dict(self.FRAME, s=5),
            dict(self.FRAME, U="157"),
            dict(self.FRAME, u=True),
            dict(self.FRAME, E=1.5),
            dict(self.FRAME, U=161),  # U > u
            dict(self.FRAME, b="0.0024"),
            dict(self.FRAME, b=[["0.0024"]]),
            dict(self.FRAME, b=[["0.0024", "10", "x"]]),
            dict(self.FRAME, b=[["abc", "10"]]),
            dict(self.FRAME, b=[["NaN", "10"]]),
            dict(self.FRAME, a=[["0.0026", "Infinity"]]),
            dict(self.FRAME, a=[["0.0026", "-1"]]),
            dict(self.FRAME, a=[["0", "1"]]),
        ]
        for payload in bad:
            with self.subTest(payload=payload), self.assertRaises(PayloadError):
                self.decode(payload)
        for text in ("", "not json", '{"e":"depthUpdate"', b"\xff"):
            with self.subTest(text=text), self.assertRaises(PayloadError):
                decode_depth_update(text)


class BufferingTest(unittest.TestCase):
    """Steps 1 to 5: buffering, judging the snapshot, dropping, replaying."""

    def test_events_are_buffered_until_a_snapshot(self):
        book = LocalBook(SYMBOL)
        self.assertIs(book.state, State.BUFFERING)
        self.assertFalse(book.needs_depth())  # stream not proven open yet
        self.assertIs(book.on_event(event(95, 100)), Outcome.BUFFERED)
        self.assertTrue(book.needs_depth())
        self.assertEqual(book.buffered, 1)
        self.assertIsNone(book.last_update_id)
        self.assertFalse(book.synced)
        for read in (book.best_bid, book.best_ask, lambda: book.view(5)):
            with self.assertRaises(NotSynced):
                read()

    def test_snapshot_older_than_first_buffered_u_asks_for_a_refetch(self):
        book = LocalBook(SYMBOL)
        book.on_event(event(101, 103, bids=[("10", "5")]))
        # L = 100 < first U = 101: too old per step 3, even though 100 + 1 = 101
        # would chain; the doc says refetch, and the buffer is kept for the next one.
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.REFETCH)
        self.assertIs(book.state, State.BUFFERING)
        self.assertTrue(book.needs_depth())
        self.assertEqual(book.buffered, 1)
        book.on_event(event(104, 104, asks=[("11", "0")]))
        # A fresh snapshot at 103 has bid 10 at 5 already; [101..103] is dropped,
        # [104..104] removes ask 11.
        fresh = snapshot(103, bids=[("10", "5"), ("9", "2")], asks=[("11", "3"), ("12", "4")])
        self.assertIs(book.apply_depth(fresh), Outcome.SYNCED)
        self.assertEqual(contents(book), ([("10", "5"), ("9", "2")], [("12", "4")]))
        self.assertEqual(book.last_update_id, 104)

    def test_buffered_events_up_to_the_snapshot_are_dropped(self):
        book = LocalBook(SYMBOL)
        # [91..95] and [96..100] are inside the snapshot (u <= 100): dropped.
        # Were they applied, bid 8 and ask 13 would appear.
        book.on_event(event(91, 95, bids=[("8", "7")]))
        book.on_event(event(96, 100, asks=[("13", "7")]))
        book.on_event(event(101, 104, bids=[("10", "0"), ("9.5", "6")]))
        book.on_event(event(105, 105, asks=[("12", "1")]))
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.SYNCED)
        self.assertEqual(
            contents(book), ([("9.5", "6"), ("9", "2")], [("11", "3"), ("12", "1")])
        )
        self.assertEqual(book.last_update_id, 105)
        self.assertEqual(book.buffered, 0)

    def test_first_remaining_event_straddles_the_snapshot(self):
        # U = 98 <= L = 100 <= u = 102: the event is applied whole. Its
        # quantities are the absolute values at 102, so re-applying 98..100 on
        # top of the snapshot is harmless.
        for first in (98, 100):  # U < L and the exact U == L
            with self.subTest(first=first):
                book = LocalBook(SYMBOL)
                book.on_event(event(first, 102, bids=[("10", "4")], asks=[("11.5", "1")]))
                self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.SYNCED)
                self.assertEqual(
                    contents(book),
                    ([("10", "4"), ("9", "2")], [("11", "3"), ("11.5", "1"), ("12", "4")]),
                )
                self.assertEqual(book.last_update_id, 102)

    def test_snapshot_at_an_event_boundary(self):
        # L = 100 == u of [97..100] (dropped); the next event starts at
        # L + 1 = 101: not "U <= L" literally, but exactly the next update,
        # which the step-6 rule applies.
        book = LocalBook(SYMBOL)
        book.on_event(event(97, 100, bids=[("10", "1")]))
        book.on_event(event(101, 101, bids=[("10", "2")]))
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.SYNCED)
        self.assertEqual(book.best_bid(), (D(10), D(2)))
        self.assertEqual(book.last_update_id, 101)

    def test_no_buffered_event_remains(self):
        # Every buffered event is inside the snapshot: legit, the book starts at
        # L = 100 and the next live event must start at 101 at the latest.
        book = LocalBook(SYMBOL)
        book.on_event(event(93, 96, bids=[("8", "1")]))
        book.on_event(event(97, 99))
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.SYNCED)
        self.assertEqual(book.last_update_id, 100)
        self.assertEqual(contents(book), ([("10", "1"), ("9", "2")], [("11", "3"), ("12", "4")]))
        self.assertIs(book.on_event(event(101, 103, asks=[("12", "0")])), Outcome.APPLIED)
        self.assertEqual(contents(book)[1], [("11", "3")])

    def test_snapshot_with_an_empty_buffer_is_accepted(self):
        book = LocalBook(SYMBOL)
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.SYNCED)
        self.assertIs(book.on_event(event(105, 106)), Outcome.GAP)  # 105 > 100 + 1

    def test_gap_inside_the_buffer(self):
        # After dropping [96..100], the first remaining event starts at 103 > 101.
        book = LocalBook(SYMBOL)
        book.on_event(event(96, 100))
        book.on_event(event(103, 104))
        self.assertIs(book.apply_depth(SNAPSHOT_100), Outcome.GAP)
        self.assertIs(book.state, State.OUT_OF_SYNC)

    def test_crossed_snapshot(self):
        book = LocalBook(SYMBOL)
        book.on_event(event(99, 100))
        crossed = snapshot(100, bids=[("11", "1")], asks=[("11", "1")])  # locked: bid == ask
        self.assertIs(book.apply_depth(crossed), Outcome.CROSSED)
        self.assertTrue(Outcome.CROSSED.needs_resync)

    def test_buffer_is_bounded(self):
        book = LocalBook(SYMBOL, max_buffered=2)
        for first in (90, 95, 100):
            book.on_event(event(first, first + 4))
        self.assertEqual(book.buffered, 2)
        # [90..94] fell off: the first buffered U is now 95, so L = 94 is too old.
        self.assertIs(book.apply_depth(snapshot(94)), Outcome.REFETCH)
        self.assertIs(book.apply_depth(snapshot(96)), Outcome.SYNCED)
        self.assertEqual(book.last_update_id, 104)
        with self.assertRaises(ValueError):
            LocalBook(SYMBOL, max_buffered=0)

    def test_snapshot_levels_with_zero_quantity_are_skipped(self):
        book = LocalBook(SYMBOL)
        self.assertIs(
            book.apply_depth(snapshot(5, bids=[("2", "0"), ("1", "1")], asks=[("3", "0")])),
            Outcome.SYNCED,
        )
        self.assertEqual(contents(book), ([("1", "1")], []))


class SyncedTest(unittest.TestCase):
    """Step 6 on live events, and reading the book."""

    def test_consecutive_events_apply(self):
        book = synced_book()
        # U = local id + 1 is the normal next event; the pre-2025-11-12 test
        # "U > local id" would have called this a gap.
        self.assertIs(book.on_event(event(101, 101, bids=[("10", "1.5")])), Outcome.APPLIED)
        self.assertIs(book.on_event(event(102, 110, asks=[("11.5", "2")])), Outcome.APPLIED)
        self.assertEqual(book.last_update_id, 110)
        self.assertEqual(book.best_bid(), (D(10), D("1.5")))
        self.assertEqual(book.best_ask(), (D(11), D(3)))
        self.assertEqual(
            contents(book),
            ([("10", "1.5"), ("9", "2")], [("11", "3"), ("11.5", "2"), ("12", "4")]),
        )

    def test_zero_quantity_removes_levels(self):
        book = synced_book()
        # "0.00000000" equals 0: bid 10 and ask 11 go; deleting 7, never in the
        # book, is allowed by the doc and changes nothing.
        outcome = book.on_event(
            event(101, 102, bids=[("10", "0.00000000"), ("7", "0")], asks=[("11", "0")])
        )
        self.assertIs(outcome, Outcome.APPLIED)
        self.assertEqual(contents(book), ([("9", "2")], [("12", "4")]))
        book.on_event(event(103, 103, bids=[("9", "0")], asks=[("12", "0")]))
        self.assertEqual(contents(book), ([], []))
        self.assertIsNone(book.best_bid())
        self.assertIsNone(book.best_ask())

    def test_same_price_written_differently_is_one_level(self):
        book = synced_book()
        book.on_event(event(101, 101, bids=[("10.00000000", "3")]))
        self.assertEqual(book.view(1).bids, ((D(10), D(3)),))
        book.on_event(event(102, 102, bids=[("10.0", "0")]))
        self.assertEqual(book.best_bid(), (D(9), D(2)))

    def test_old_events_are_ignored(self):
        book = synced_book()
        book.on_event(event(101, 105, bids=[("10", "2")]))
        # u = 104 < local id 105: old. Its bid 10 at 9 must not come back.
        self.assertIs(book.on_event(event(99, 104, bids=[("10", "9")])), Outcome.IGNORED_OLD)
        self.assertEqual(book.best_bid(), (D(10), D(2)))
        self.assertEqual(book.last_update_id, 105)
        # u == local id is not "< local id": re-applied, and it changes nothing
        # because it carries the quantities as of 105.
        self.assertIs(book.on_event(event(103, 105, bids=[("10", "2")])), Outcome.APPLIED)
        self.assertEqual(book.best_bid(), (D(10), D(2)))

    def test_gap_needs_a_resync(self):
        book = synced_book()
        # local id 100; U = 102 > 100 + 1: update 101 was missed.
        outcome = book.on_event(event(102, 104, bids=[("10", "7")]))
        self.assertIs(outcome, Outcome.GAP)
        self.assertTrue(outcome.needs_resync)
        self.assertIs(book.state, State.OUT_OF_SYNC)
        self.assertFalse(book.synced)
        self.assertFalse(book.needs_depth())  # reset() first
        with self.assertRaises(NotSynced):
            book.view(5)
        self.assertIs(book.on_event(event(105, 105)), Outcome.RESYNC_PENDING)
        with self.assertRaises(RuntimeError):
            book.apply_depth(SNAPSHOT_100)
        book.reset()
        self.assertIs(book.state, State.BUFFERING)
        self.assertIsNone(book.last_update_id)
        # The second sync from scratch.
        self.assertIs(book.on_event(event(106, 107, asks=[("11", "0")])), Outcome.BUFFERED)
        fresh = snapshot(106, bids=[("10", "7")], asks=[("11", "1"), ("12", "4")])
        self.assertIs(book.apply_depth(fresh), Outcome.SYNCED)
        self.assertEqual(contents(book), ([("10", "7")], [("12", "4")]))
        book.reset()
        book.reset()  # still buffering: no book lost, not counted

    def test_crossed_result_needs_a_resync(self):
        book = synced_book()
        # A bid at 11 meets the best ask 11: locked, which a real book never shows.
        outcome = book.on_event(event(101, 101, bids=[("11", "1")]))
        self.assertIs(outcome, Outcome.CROSSED)
        self.assertIs(book.state, State.OUT_OF_SYNC)
        self.assertTrue(outcome.needs_resync)
        self.assertFalse(Outcome.APPLIED.needs_resync)
        self.assertFalse(Outcome.REFETCH.needs_resync)

    def test_apply_depth_only_while_buffering(self):
        with self.assertRaises(RuntimeError):
            synced_book().apply_depth(SNAPSHOT_100)

    def test_a_cut_snapshot_vouches_for_nothing_beyond_its_last_level(self):
        book = LocalBook(SYMBOL)
        book.on_event(event(95, 100))
        # Asked for 2 levels, got 2: both sides were cut at 9 and 12.
        self.assertIs(book.apply_depth(SNAPSHOT_100, limit=2), Outcome.SYNCED)
        # A diff adds levels beyond both edges, and takes the best bid away.
        book.on_event(event(101, 101, bids=[("10", "0"), ("5", "1")], asks=[("20", "1")]))
        top = book.view(5)
        self.assertEqual(top.bids, levels(("9", "2")))  # not 5: what lies between is unknown
        self.assertEqual(top.asks, levels(("11", "3"), ("12", "4")))
        self.assertTrue(top.bids_cut and top.asks_cut)
        # A side shorter than the limit was whole: it vouches for every level.
        whole = LocalBook(SYMBOL)
        whole.on_event(event(95, 100))
        whole.apply_depth(SNAPSHOT_100, limit=3)
        whole.on_event(event(101, 101, bids=[("5", "1")]))
        self.assertEqual(len(whole.view(5).bids), 3)
        self.assertFalse(whole.view(5).bids_cut)
        self.assertTrue(whole.view(1).asks_cut)

    def test_wrong_symbol(self):
        with self.assertRaises(ValueError):
            synced_book().on_event(DepthUpdate("ETHBTC", 0, 101, 101, (), ()))

    def test_snapshot_is_the_top_n_in_rest_order(self):
        book = synced_book()
        book.on_event(event(101, 101, bids=[("9.5", "1"), ("8", "1")], asks=[("13", "1")]))
        top = book.view(2)
        self.assertEqual(top.last_update_id, 101)
        self.assertEqual(top.bids, levels(("10", "1"), ("9.5", "1")))
        self.assertEqual(top.asks, levels(("11", "3"), ("12", "4")))
        self.assertEqual(book.view(0), OrderBook(101, (), (), bids_cut=True, asks_cut=True))
        whole = book.view(100)
        self.assertEqual(len(whole.bids), 4)
        self.assertFalse(whole.bids_cut or whole.asks_cut)  # no limit: the snapshot was whole
        with self.assertRaises(ValueError):
            book.view(-1)


# Property test: a "true" book evolves by single updates with consecutive ids;
# Binance batches them into events [U..u] whose levels carry the quantity at u.
START_ID = 1000


def _price(side: str, offset: int) -> D:
    # Bids 0.01..0.20 and asks 0.21..0.40 never cross, so CROSSED never fires.
    return D(offset + (1 if side == "b" else 21)).scaleb(-2)


def _replay(initial: dict, updates: list, starts: list) -> tuple[list, list]:
    """states[k] = the true book after k updates (id START_ID + k); the events."""
    states = [initial]
    events: list[dict] = []
    for index, (side, offset, qty) in enumerate(updates):
        state = {s: dict(levels_) for s, levels_ in states[-1].items()}
        price = _price(side, offset)
        if qty:
            state[side][price] = D(qty)
        else:
            state[side].pop(price, None)
        states.append(state)
        update_id = START_ID + index + 1
        if starts[index]:
            events.append({"U": update_id, "u": update_id, "b": {}, "a": {}})
        events[-1]["u"] = update_id
        events[-1][side][price] = D(qty)  # the last quantity in the event wins
    return states, events


@st.composite
def scenarios(draw):
    """The initial book, the events, the snapshot id and which events are buffered."""
    quantities = st.integers(min_value=0, max_value=4)
    initial = {
        side: {
            _price(side, offset): D(qty)
            for offset, qty in draw(st.dictionaries(st.integers(0, 19), st.integers(1, 4))).items()
        }
        for side in ("b", "a")
    }
    updates = draw(
        st.lists(
            st.tuples(st.sampled_from("ba"), st.integers(0, 19), quantities),
            min_size=1,
            max_size=40,
        )
    )
    # Cut the updates into events: each update starts a new event or joins the last.
    starts = [True] + [draw(st.booleans()) for _ in updates[1:]]
    states, events = _replay(initial, updates, starts)
    # The snapshot is taken after k >= 1 updates, possibly in the middle of an event.
    taken = draw(st.integers(1, len(updates)))
    snapshot_id = START_ID + taken
    # The buffer starts at an event whose U <= L (else the doc says refetch)
    # and runs for a while, before or past the snapshot.
    eligible = [i for i, e in enumerate(events) if e["U"] <= snapshot_id]
    first = draw(st.sampled_from(eligible))
    last = draw(st.integers(first, len(events) - 1))
    return states, events, taken, first, last


def _to_update(raw: dict) -> DepthUpdate:
    return DepthUpdate(
        SYMBOL, 0, raw["U"], raw["u"], tuple(raw["b"].items()), tuple(raw["a"].items())
    )


def _as_rest(state: dict, last_id: int) -> OrderBook:
    return OrderBook(
        last_update_id=last_id,
        bids=tuple(sorted(state["b"].items(), reverse=True)),
        asks=tuple(sorted(state["a"].items())),
    )


class PropertyTest(unittest.TestCase):
    """Random books and event streams: the local copy never differs from the truth."""

    @settings(max_examples=300, deadline=None)
    @given(scenarios())
    def test_local_book_equals_true_book_after_every_event(self, scenario):
        states, events, taken, first, last = scenario
        snapshot_id = START_ID + taken
        book = LocalBook(SYMBOL)
        for raw in events[first:last + 1]:
            self.assertIs(book.on_event(_to_update(raw)), Outcome.BUFFERED)
        self.assertIs(book.apply_depth(_as_rest(states[taken], snapshot_id)), Outcome.SYNCED)
        # In the book: the snapshot, plus every buffered event past it.
        seen = max(snapshot_id, events[last]["u"])
        self.assertEqual(book.view(100), _as_rest(states[seen - START_ID], seen))
        for raw in events[last + 1:]:
            outcome = book.on_event(_to_update(raw))
            self.assertIn(outcome, (Outcome.APPLIED, Outcome.IGNORED_OLD))
            # An event that ends before the snapshot leaves the snapshot's book.
            seen = max(snapshot_id, raw["u"])
            self.assertEqual(book.view(100), _as_rest(states[seen - START_ID], seen))
        self.assertTrue(book.synced)


if __name__ == "__main__":
    unittest.main()


class LargeEventTest(unittest.TestCase):
    """Huge events: merged in one pass, and a buffer bounded by levels."""

    @settings(max_examples=100, deadline=None)
    @given(book=st.lists(st.integers(1, 400), unique=True, max_size=150),
           update=st.lists(st.tuples(st.integers(1, 400), st.integers(0, 3)), min_size=64,
                           max_size=300))
    def test_merge_equals_applying_level_by_level(self, book, update):
        prices = sorted(D(p) for p in book)
        quantities = [D(1)] * len(prices)
        expected: dict[D, D] = dict(zip(prices, quantities))
        for price, qty in update:
            if qty:
                expected[D(price)] = D(qty)
            else:
                expected.pop(D(price), None)
        book_sides.merge_levels(prices, quantities, [(D(p), D(q)) for p, q in update])
        self.assertEqual(list(zip(prices, quantities)), sorted(expected.items()))

    def test_a_million_level_event_is_applied_in_one_pass(self):
        book = synced_book()
        asks = tuple((D(200 + i), D(1)) for i in range(1_000_000))
        update = DepthUpdate(SYMBOL, 1672515782136, 101, 101, (), asks)
        self.assertIs(book.on_event(update), Outcome.APPLIED)
        self.assertEqual(book.view(3).asks[0], (D(11), D(3)))  # the old best ask stays
        self.assertEqual(len(book.view(2_000_000).asks), 1_000_002)

    def test_the_buffer_drops_the_oldest_events_past_its_level_bound(self):
        book = LocalBook(SYMBOL, max_buffered_levels=5)
        for first in range(1, 5):
            book.on_event(event(first, first, bids=[("1", "1"), ("2", "1")]))
        self.assertEqual(book.buffered, 2)  # 4 levels kept, a third event would make 6
        # The first kept event is U=3: an older snapshot is asked again.
        self.assertIs(book.apply_depth(snapshot(1)), Outcome.REFETCH)
        self.assertIs(book.apply_depth(snapshot(3)), Outcome.SYNCED)
