"""The fixed parts of a metric family, and the collector base that describes them.

Each collector lists its families once, as `Family` values: `collect()` makes
fresh, empty families from them and fills them, and `describe()` returns them
empty, so a registry learns the names without calling `collect()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterable, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CACHED = "Cached from the last successful refresh."


@dataclass(frozen=True)
class Family:
    """Name, HELP, type and label names of one family; `new()` makes it empty."""

    name: str
    doc: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...] = ()

    def new(self) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh family with no samples (a counter's samples get `_total`)."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.doc, labels=list(self.labels))
        return GaugeMetricFamily(self.name, self.doc, labels=list(self.labels))

    def single(self, value: float) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh unlabelled family holding one sample."""
        family = self.new()
        family.add_metric([], value)
        return family


def gauge(name: str, doc: str, *labels: str) -> Family:
    """A gauge family's fixed parts."""
    return Family(name, doc, "gauge", labels)


def counter(name: str, doc: str, *labels: str) -> Family:
    """A counter family's fixed parts; `name` has no `_total`."""
    return Family(name, doc, "counter", labels)


class FamilyCollector(ABC):
    """A collector whose `families` are every family its `collect()` may yield."""

    families: ClassVar[tuple[Family, ...]]

    def describe(self) -> Iterable[Metric]:
        """Every family this collector may yield, without samples."""
        return [family.new() for family in self.families]

    @abstractmethod
    def collect(self) -> Iterable[Metric]:
        """Fresh families with their current samples."""
