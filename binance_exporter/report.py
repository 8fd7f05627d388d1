"""Human and machine readable reports of the answers (stdout, `--once`)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from binance_exporter.market.fills import Fill
from binance_exporter.market.numbers import CONTEXT
from binance_exporter.market.types import QUOTE_VOLUME
from binance_exporter.model import Analytics, Answers

EIGHT_PLACES = Decimal("1e-8")
MAX_LISTED = 20  # symbols a text report lists one by one


def plain(value: Decimal | None) -> str:
    """A Decimal as plain text, at most 8 decimals and no trailing zeros."""
    if value is None:
        return "n/a"
    # In the market's 60-digit context: the default 28 digits cannot hold 8
    # decimals of a notional in the billions of billions.
    text = format(value.quantize(EIGHT_PLACES, context=CONTEXT), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _sides(notional: Any, symbol: str) -> dict[str, float | None]:
    side = notional.get(symbol)
    return {"bids": _float(side.bids) if side else None,
            "asks": _float(side.asks) if side else None}


def to_json_dict(answers: Answers) -> dict[str, Any]:
    """The `--output json` document (missing values are null, never 0)."""
    return {
        "top_btc_by_volume": [
            {"symbol": t.symbol, "quote_volume": float(t.quote_volume), "volume": float(t.volume)}
            for t in answers.top_btc
        ],
        "top_usdt_by_trades": [{"symbol": t.symbol, "trades": t.trades} for t in answers.top_usdt],
        "notional": {t.symbol: _sides(answers.notional, t.symbol)
                     for t in answers.top_btc},
        "reference_asset": answers.reference_asset,
        "reference_prices": {a: float(r) for a, r in sorted(answers.reference_prices.items())},
        "notional_reference": {t.symbol: _sides(answers.notional_reference, t.symbol)
                               for t in answers.top_btc},
        "spread": {s: _float(answers.spreads.get(s)) for s in answers.spread_symbols},
    }


def _fill_dict(fill: Fill) -> dict[str, Any]:
    return {
        "average_price": _float(fill.average_price) if fill.complete else None,
        "slippage_ratio": _float(fill.slippage_ratio) if fill.complete else None,
        "quote_notional": float(fill.requested),
        "levels_used": fill.levels_used,
        "unfilled_notional": float(fill.unfilled_notional),
        "levels": [
            {"price": float(s.price), "qty": float(s.qty), "notional": float(s.notional)}
            for s in fill.splits
        ],
    }


def fills_json_dict(analytics: Analytics) -> dict[str, Any]:
    """The `fills` section: per symbol, side and reference notional, the split by level.

    Each order is keyed by its reference-currency amount; `quote_notional` is
    that amount in the symbol's quote asset at the rate of the fill.
    """
    fills: dict[str, Any] = {}
    for symbol, book in sorted(analytics.books.items()):
        sides: dict[str, Any] = {}
        for (side, notional), fill in sorted(book.fills.items()):
            sides.setdefault(side, {})[plain(notional)] = _fill_dict(fill)
        fills[symbol] = sides
    return fills


def to_json(answers: Answers, analytics: Analytics | None = None) -> str:
    """`to_json_dict` serialised, one document; with analytics, a `fills` section too."""
    document = to_json_dict(answers)
    if analytics is not None:
        document["fills"] = fills_json_dict(analytics)
        document["depth_reference"] = {
            symbol: {f"{side} {plain(band)}": float(value)
                     for (side, band), value in sorted(book.bands_reference.items())}
            for symbol, book in sorted(analytics.books.items())
        }
    return json.dumps(document, indent=2, ensure_ascii=False)


def fills_text(analytics: Analytics, answers: Answers | None = None) -> str:
    """The simulated market orders, level by level, as text.

    Each order is named by its reference amount and that amount in the quote asset.
    """
    reference = answers.reference_asset if answers is not None else ""
    quotes = answers.quote_assets if answers is not None else {}
    lines = ["Simulated market orders (no order is sent), split by price level:"]
    for symbol, book in sorted(analytics.books.items()):
        for (side, notional), fill in sorted(book.fills.items()):
            head = (f"  {symbol:<14} {side:<4} {plain(notional):>8} {reference}"
                    f" = {plain(fill.requested)} {quotes.get(symbol, '')}:")
            if fill.complete:
                head += (f" average={plain(fill.average_price)}"
                         f" slippage={plain(fill.slippage_ratio)} levels={fill.levels_used}")
            else:
                head += f" unfilled={plain(fill.unfilled_notional)} (book too thin)"
            lines.append(head)
            lines.extend(
                f"      {plain(split.price)} x {plain(split.qty)} = {plain(split.notional)}"
                for split in fill.splits[:MAX_LISTED]
            )
            if len(fill.splits) > MAX_LISTED:
                lines.append(f"      ... {len(fill.splits) - MAX_LISTED} more levels")
    return "\n".join(lines)


def to_text(answers: Answers, volume_field: str, depth_levels: int) -> str:
    """The start-up report: the four answers as aligned text."""
    volume_name = "quote volume" if volume_field == QUOTE_VOLUME else "base volume"
    lines = [f"Top {len(answers.top_btc)} BTC-quoted symbols by 24h {volume_name}:"]
    for rank, t in enumerate(answers.top_btc, 1):
        lines.append(
            f"  {rank}. {t.symbol:<14} quote_volume={plain(t.quote_volume)} BTC"
            f"  volume={plain(t.volume)}"
        )
    lines.append(f"Top {len(answers.top_usdt)} USDT-quoted symbols by 24h number of trades:")
    for rank, t in enumerate(answers.top_usdt, 1):
        lines.append(f"  {rank}. {t.symbol:<14} trades={t.trades}")
    reference = answers.reference_asset
    lines.append(f"Notional of the top {depth_levels} bids and asks (in the quote asset, "
                 f"and in {reference}):")
    for t in answers.top_btc:
        side = answers.notional.get(t.symbol)
        bids, asks = (side.bids, side.asks) if side else (None, None)
        side = answers.notional_reference.get(t.symbol)
        ref_bids, ref_asks = (side.bids, side.asks) if side else (None, None)
        lines.append(f"  {t.symbol:<14} bids={plain(bids)}  asks={plain(asks)}"
                     f"  ({reference}: bids={plain(ref_bids)}  asks={plain(ref_asks)})")
    prices = ", ".join(f"{asset}={plain(rate)}"
                       for asset, rate in sorted(answers.reference_prices.items()))
    lines.append(f"Reference prices ({reference} per unit): {prices or 'none'}")
    lines.append(f"Spread (best ask - best bid) of {len(answers.spread_symbols)} symbols:")
    for symbol in answers.spread_symbols[:MAX_LISTED]:
        lines.append(f"  {symbol:<14} {plain(answers.spreads.get(symbol))}")
    if len(answers.spread_symbols) > MAX_LISTED:
        lines.append(f"  ... and {len(answers.spread_symbols) - MAX_LISTED} more on /metrics")
    return "\n".join(lines)


def spreads_line(answers: Answers, when: float | None = None) -> str:
    """The periodic report: each spread and its absolute change since the last one.

    Watching the whole market, a line per refresh listing thousands of symbols
    helps nobody: past MAX_LISTED symbols it names the largest change instead.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    symbols = answers.spread_symbols
    if len(symbols) > MAX_LISTED:
        moved = max(answers.deltas.items(), key=lambda item: (item[1], item[0]), default=None)
        biggest = f"; largest delta {plain(moved[1])} on {moved[0]}" if moved else ""
        return f"{stamp} spreads of {len(answers.spreads)}/{len(symbols)} symbols{biggest}"
    parts = [
        f"{symbol} spread={plain(answers.spreads.get(symbol))}"
        f" delta={plain(answers.deltas.get(symbol))}"
        for symbol in symbols
    ]
    return f"{stamp} " + "; ".join(parts)
