"""A deliberately naive diff-depth feed: the baseline the stream case's feed is compared with.

What a first attempt does with each combined-stream message, kept that way
on purpose: `json.loads` the text, check the update ids, build a `Decimal`
per price and quantity in a Python loop, and set or delete the level in a
dict per side. It keeps no order between levels, so on the event path it
does less than the exporter's books, which keep the levels sorted; it pays
for that when the top levels are read (10 times a second in the exporter),
by sorting every side. The benchmark times both halves.
"""

from __future__ import annotations

import json
from decimal import Decimal


class NaiveBooks:
    """Books as {price: quantity} dicts, fed from text frames."""

    def __init__(self, snapshots: dict[str, dict]) -> None:
        self.books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self.ids: dict[str, int] = {}
        for symbol, answer in snapshots.items():
            self.books[symbol] = ({Decimal(p): Decimal(q) for p, q in answer["bids"]},
                                  {Decimal(p): Decimal(q) for p, q in answer["asks"]})
            self.ids[symbol] = answer["lastUpdateId"]
        self.gaps = 0

    def on_message(self, text: str) -> None:
        """Apply one combined-stream depth message."""
        data = json.loads(text)["data"]
        symbol = data["s"]
        if data["u"] < self.ids[symbol]:
            return
        if data["U"] > self.ids[symbol] + 1:
            self.gaps += 1
            return
        for side, levels in zip(self.books[symbol], (data["b"], data["a"])):
            for price_text, qty_text in levels:
                price, qty = Decimal(price_text), Decimal(qty_text)
                if not (price.is_finite() and qty.is_finite() and price > 0 and qty >= 0):
                    raise ValueError(f"impossible level {price_text} {qty_text}")
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.ids[symbol] = data["u"]

    def top(self, levels: int) -> dict[str, tuple[list, list]]:
        """The best `levels` levels of every book, bids descending, asks ascending."""
        return {symbol: ([(p, bids[p]) for p in sorted(bids, reverse=True)[:levels]],
                         [(p, asks[p]) for p in sorted(asks)[:levels]])
                for symbol, (bids, asks) in self.books.items()}
