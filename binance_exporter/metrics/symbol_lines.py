"""The lines of the families with a series per followed symbol, kept between pages.

With `--spread-symbols all` four families hold a series for each of ~3,000
symbols: most of the page. prometheus_client builds, sorts, escapes and
formats every sample on every render, about 70 ms for the whole market, and
in stream mode the page changes ten times a second. Here each series' line is
kept with the value it shows, and a render formats only the lines whose value
changed.

What a line looks like is not written down here but learnt from the
library's own encoder, once per family and format: it renders the family
with one sample whose label values are markers, and the line is cut at the
markers. So names, label order and escaping scheme are the library's in
every format a scraper can negotiate; only the two steps the library applies
to every sample in both of its encoders are done here: a label value's
backslash, newline and quote escaped, and the value written as
`floatToGoString` writes it. A format whose line does not cut cleanly is rendered by
the library instead (`render` returns None).
"""

from __future__ import annotations

import math
from typing import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from binance_exporter.metrics.encoding import MAX_CACHED_FORMATS, Encoder, without_eof
from binance_exporter.metrics.families import Family
from binance_exporter.metrics.market import PER_SYMBOL, SymbolSeries, per_symbol_series
from binance_exporter.model import Answers

MARK = "\x00"  # around a label's index in the template sample; escaping leaves it alone
PROBE_VALUE = 0.0  # the template sample's value, written "0.0" by floatToGoString
PRUNE_SLACK = 64  # symbols gone from the page that a family's lines may keep
_NONE = object()  # the state of a line not written yet: equal to no state


def go_float(value: float) -> str:
    """`value` as `floatToGoString` writes it, its common case without the call.

    That case is a finite value whose repr needs no rewriting: the library
    rewrites only a positive value with more than six digits before the
    point (Go switches to an exponent sooner than Python) and spells the
    infinities and NaN its own way; those go to the library itself.
    """
    text = repr(value)
    if (value > 0 and text.find(".") > 6) or not math.isfinite(value):
        return floatToGoString(value)
    return text


def escape_label_value(value: str) -> str:
    """A label value as both of prometheus_client's encoders write it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _One:
    """A collector of one family, so the library's encoder can render just it."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> list[Metric]:
        """The one family."""
        return [self._metric]


class Template:
    """One family's header and sample line in one format, as the library writes them."""

    def __init__(self, head: bytes, literals: list[str], order: list[int]) -> None:
        self.head = head  # HELP, TYPE (and any other) lines
        self._literals = literals  # the line's text between label values
        self._order = order  # which label value goes after each literal but the last

    @classmethod
    def learn(cls, family: Family, encoder: Encoder) -> Template | None:
        """The template of `family` in `encoder`'s format, or None when it cannot be cut."""
        metric = family.new()
        metric.add_metric([f"{MARK}{i}{MARK}" for i in range(len(family.labels))], PROBE_VALUE)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_One(metric))  # type: ignore[arg-type]
        text = without_eof(encoder, registry).decode()
        head, _, line = text.rstrip("\n").rpartition("\n")
        value = " " + floatToGoString(PROBE_VALUE)
        parts = line.removesuffix(value).split(MARK)
        if not line.endswith(value) or len(parts) != 2 * len(family.labels) + 1:
            return None
        order = [int(index) for index in parts[1::2]]
        if sorted(order) != list(range(len(family.labels))):
            return None
        return cls(head.encode() + b"\n" if head else b"", parts[0::2], order)

    def prefix(self, labels: tuple[str, ...]) -> str:
        """A sample's line up to and including the space before its value."""
        literals = self._literals
        text = [literals[0]]
        for index, literal in zip(self._order, literals[1:]):
            text.append(escape_label_value(labels[index]))
            text.append(literal)
        text.append(" ")
        return "".join(text)


class _Kept:
    """One family's template and lines in one format, by symbol, with the state each shows."""

    def __init__(self, template: Template) -> None:
        self.template = template
        # Plain str keys, Decimal or bytes values (SymbolInfo states apart, few
        # and changing only with exchangeInfo): little here for the garbage
        # collector to scan, and nothing made for a line that stays.
        self.states: dict[str, object] = {}
        self.lines: dict[str, bytes] = {}
        self.prefixes: dict[tuple[str, ...], str] = {}  # by label values

    def render(self, series: SymbolSeries) -> bytes:
        """The family's header and lines, writing only those whose state changed."""
        states, lines = self.states, self.lines
        state_of, sample = series.state, series.sample
        out = [self.template.head]
        for symbol in series.symbols:
            state = state_of(symbol)
            kept = states.get(symbol, _NONE)
            if kept is not state and kept != state:
                lines[symbol] = self._line(*sample(symbol, state))
                states[symbol] = state
            out.append(lines[symbol])
        if max(len(lines), len(self.prefixes)) > 2 * len(series.symbols) + PRUNE_SLACK:
            self._prune(series.symbols)
        return b"".join(out)

    def _line(self, labels: tuple[str, ...], value: float) -> bytes:
        """One sample's line."""
        prefix = self.prefixes.get(labels)
        if prefix is None:
            prefix = self.prefixes[labels] = self.template.prefix(labels)
        return f"{prefix}{go_float(value)}\n".encode()

    def _prune(self, symbols: Sequence[str]) -> None:
        """Forget the symbols no longer shown."""
        self.states = {s: self.states[s] for s in symbols}
        self.lines = {s: self.lines[s] for s in symbols}
        self.prefixes = {}


class SymbolLines:
    """Renders the `PER_SYMBOL` families of a snapshot, keeping each line until it changes.

    Not for concurrent use: the exposition renders under its lock, one at a time.
    """

    def __init__(self) -> None:
        # By content type, least recently used first: each family's template and
        # kept lines, or None for a format that cannot be cut.
        self._formats: dict[str, dict[Family, _Kept] | None] = {}

    def render(self, answers: Answers | None, encoder: Encoder, content_type: str,
               ) -> bytes | None:
        """The families' lines for `answers` in this format; None when the library must."""
        kept = self._format(encoder, content_type)
        if kept is None:
            return None
        if answers is None:
            return b""  # no answers, no family: as MarketCollector
        return b"".join(kept[series.family].render(series)
                        for series in per_symbol_series(answers))

    def _format(self, encoder: Encoder, content_type: str) -> dict[Family, _Kept] | None:
        """This format's kept lines, its templates learnt on its first render. Past
        MAX_CACHED_FORMATS the least recently used is forgotten: the content type echoes the
        scraper's version and escaping, and odd ones must not crowd out Prometheus's."""
        if content_type in self._formats:
            kept = self._formats.pop(content_type)
        else:
            templates = _templates(encoder)
            kept = None if templates is None else {f: _Kept(t) for f, t in templates.items()}
        self._formats[content_type] = kept  # the most recently used, last
        while len(self._formats) > MAX_CACHED_FORMATS:
            del self._formats[next(iter(self._formats))]
        return kept


def _templates(encoder: Encoder) -> dict[Family, Template] | None:
    """Every `PER_SYMBOL` family's template, or None if any cannot be cut."""
    templates = {}
    for family in PER_SYMBOL:
        template = Template.learn(family, encoder)
        if template is None:
            return None
        templates[family] = template
    return templates
