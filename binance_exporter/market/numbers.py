"""The one Decimal policy of the market maths, stated once.

Binance sends prices and quantities as decimal strings. They are parsed once
into `decimal.Decimal` and every sum, product and difference is done in
Decimal, so a spread of "60650.01" - "60650.00" is exactly 0.01 and a
notional is the exact sum of its products. Values become floats only at the
edge (gauges, JSON), where Prometheus stores float64 anyway.

All of it runs in `CONTEXT`: 60 significant digits, half-even rounding. A
price or quantity has at most 10 integer and 8 decimal digits, so a product
has at most 36 digits and a sum of 5000 of them at most 40: sums and products
of Binance values are exact, and only true divisions (averages, ratios, a
partial level's quantity) round, at the 60th digit. Python's default of 28
digits would round some products silently. `DOWN` is the same precision
rounding toward zero, for the few places where a result must never overstate
(the quantity a simulated order can afford).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal

PRECISION = 60
ZERO = Decimal(0)
CONTEXT = Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)
DOWN = Context(prec=PRECISION, rounding=ROUND_DOWN)
