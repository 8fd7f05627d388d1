"""The per-symbol families' kept lines: the library's page, family for family, in every format."""

import unittest
from dataclasses import replace
from decimal import Decimal as D

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from binance_exporter.binance.rest import ApiStats
from binance_exporter.market.types import SymbolInfo
from binance_exporter.metrics.exposition import build_exposition
from binance_exporter.metrics.market import PER_SYMBOL, MarketCollector
from binance_exporter.metrics.encoding import MAX_CACHED_FORMATS
from binance_exporter.metrics.symbol_lines import SymbolLines, go_float
from binance_exporter.model import Answers, Snapshot

STATS = ApiStats({}, 0, 6000, 0.0)
# What a scraper may negotiate: both formats, each escaping scheme of names.
ACCEPTS = (
    "",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "text/plain; version=1.0.0; escaping=dots",
    "text/plain; version=1.0.0; escaping=values",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=1.0.0; escaping=values",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
)
# Label values a line must escape as the library does (real symbols never have them).
ODD = 'A"B\\C\nD'


def answers(spreads: dict[str, str], status: str = "TRADING") -> Answers:
    """Answers following `spreads` (symbol: spread), with ratios, deltas and infos from it."""
    values = {s: D(v) for s, v in spreads.items()}
    return Answers(
        symbols={s: SymbolInfo(s, s[:3], s[3:], status) for s in spreads},
        top_btc=(), top_usdt=(), notional={}, spread_symbols=tuple(spreads),
        spreads=values,
        spread_ratios={s: v / 1000 for s, v in values.items()},
        # Some without a delta (0 on the page), one big enough for Go's exponent form.
        deltas={s: v * 10**9 for s, v in list(values.items())[::2]},
    )


def families(page: bytes) -> dict[str, str]:
    """A page's text by family (from its HELP line to the next), OpenMetrics' EOF apart."""
    found: dict[str, list[str]] = {}
    name = None
    for line in page.decode().splitlines(keepends=True):
        if line == "# EOF\n":
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in found, f"{name} twice on the page"
            found[name] = []
        found[name].append(line)
    return {name: "".join(lines) for name, lines in found.items()}


def library_page(accept: str, snapshot: Snapshot, encoder=None) -> dict[str, str]:
    """The market families exactly as prometheus_client renders them (with the encoder
    `accept` chooses, or `encoder`)."""
    registry = CollectorRegistry()
    registry.register(MarketCollector(lambda: snapshot))
    return families((encoder or choose_encoder(accept)[0])(registry))


class KeptLinesTest(unittest.TestCase):
    """The exposition's page holds exactly the library's per-symbol families."""

    def assert_library_page(self, exposition, accept: str, snapshot: Snapshot) -> None:
        """Every market family of the served page equals the library's rendering."""
        served = families(exposition.render(accept, "", "")[0])
        expected = library_page(accept, snapshot)
        self.assertTrue(expected)
        for name, text in expected.items():
            self.assertEqual(served.get(name), text, f"{name} in {accept!r}")
        # Nothing the library would not write: the page without answers, plus these.
        bare = build_exposition(Snapshot, lambda: STATS).render(accept, "", "")[0]
        self.assertEqual(set(served), set(families(bare)) | set(expected))

    def test_every_format_and_every_change(self):
        first = {"BTCUSDT": "0.01", "ETHBTC": "0.000001", ODD: "12345678.9", "LTCUSDT": "1"}
        steps = [
            first,
            {**first, "BTCUSDT": "0.02"},  # a value changes
            {s: v for s, v in first.items() if s != "ETHBTC"},  # a symbol leaves
            {**first, "NEWUSDT": "3.5"},  # a symbol comes
        ]
        for accept in ACCEPTS:
            # The kept lines serve this format (the library is not standing in).
            self.assertIsNotNone(SymbolLines().render(answers(first), *choose_encoder(accept)))
            current = [Snapshot(answers=answers(steps[0]))]  # what the page shows next
            exposition = build_exposition(lambda shown=current: shown[0], lambda: STATS,
                                          max_lag=0.0)
            for step in steps:
                current[0] = Snapshot(answers=answers(step))
                with self.subTest(accept=accept, symbols=sorted(step)):
                    self.assert_library_page(exposition, accept, current[0])
            # Only the labels change: the info line follows them.
            current[0] = Snapshot(answers=answers(steps[-1], status="BREAK"))
            self.assert_library_page(exposition, accept, current[0])

    def test_nothing_before_the_first_answers(self):
        exposition = build_exposition(Snapshot, lambda: STATS)
        page = families(exposition.render("", "", "")[0])
        self.assertFalse({family.name for family in PER_SYMBOL} & set(page))

    def test_a_line_is_written_again_only_when_its_value_changed(self):
        lines = SymbolLines()
        encoder, content_type = choose_encoder("")
        before = answers({"BTCUSDT": "0.01", "ETHBTC": "0.02"})
        first = lines.render(before, encoder, content_type)
        kept = lines._formats[content_type]  # pylint: disable=protected-access
        spread_lines = next(k for f, k in kept.items() if f.name == "binance_spread").lines
        eth = spread_lines["ETHBTC"]
        after = replace(before, spreads={**before.spreads, "BTCUSDT": D("0.03")})
        second = lines.render(after, encoder, content_type)
        self.assertIs(spread_lines["ETHBTC"], eth)  # the same bytes object, not rewritten
        self.assertIn(b'binance_spread{symbol="BTCUSDT"} 0.03\n', second)
        self.assertNotEqual(first, second)

    def test_values_are_written_as_the_library_writes_them(self):
        values = [0.0, -0.0, 1.0, 0.01, 2e-07, 1.6e-05, 123456.7, 1234567.8, 12345678.9,
                  1e15, 1.5e16, 1e20, 1e22, -1234567.8, 3.141592653589793, float("inf"),
                  float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308]
        values += [float(D(n) / D(7) ** k) for n in (1, 22, 333_333) for k in range(-12, 12)]
        for value in values:
            self.assertEqual(go_float(value), floatToGoString(value), value)

    def test_symbols_gone_are_forgotten_and_lines_stay_right(self):
        lines = SymbolLines()
        encoder, content_type = choose_encoder("")
        many = {f"S{i:03d}USDT": f"{i + 1}" for i in range(100)}
        few = dict(list(many.items())[:10])
        for step in (many, few, many):
            page = lines.render(answers(step), encoder, content_type)
            expected = "".join(library_page("", Snapshot(answers=answers(step)))[f.name]
                               for f in PER_SYMBOL)
            self.assertEqual(page.decode(), expected)
        lines.render(answers(few), encoder, content_type)
        kept = lines._formats[content_type]  # pylint: disable=protected-access
        self.assertTrue(all(len(k.lines) == 10 for k in kept.values()))  # the 90 are gone

    def test_odd_formats_do_not_crowd_out_a_scraper_that_keeps_coming(self):
        lines = SymbolLines()
        encoder, prometheus = choose_encoder("")
        odd = [f"application/openmetrics-text; version=1.0.{n}" for n in range(1, 9)]
        for content_type in odd:
            lines.render(answers({"BTCUSDT": "1"}), encoder, prometheus)
            lines.render(answers({"BTCUSDT": "1"}), encoder, content_type)
        formats = lines._formats  # pylint: disable=protected-access
        self.assertIn(prometheus, formats)
        self.assertEqual(len(formats), MAX_CACHED_FORMATS)
        self.assertNotIn(odd[0], formats)  # the least recently used went first

    def test_a_format_whose_line_cannot_be_cut_is_left_to_the_library(self):
        def stamped(registry: CollectorRegistry) -> bytes:
            # A format that writes something after the value: no template.
            return choose_encoder("")[0](registry).replace(b" 0.0\n", b" 0.0 1700000000\n")

        self.assertIsNone(SymbolLines().render(answers({"BTCUSDT": "1"}), stamped, "odd"))
        # The exposition then renders every family through the library in that format.
        snapshot = Snapshot(answers=answers({"BTCUSDT": "1", "ETHBTC": "2"}))
        exposition = build_exposition(lambda: snapshot, lambda: STATS)
        part = exposition._snapshot_part(snapshot, stamped, "odd")  # pylint: disable=protected-access
        expected = library_page("", snapshot, stamped)
        for name, text in expected.items():
            self.assertEqual(families(part)[name], text)


if __name__ == "__main__":
    unittest.main()
