"""The benchmark table: one row per figure, printed as text and written as Markdown."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One figure: ours, its floor and goal, and the naive baseline's value."""

    figure: str
    value: float
    unit: str
    floor: float | None = None
    naive: float | None = None
    goal: str = ""  # the target, e.g. "<= 350 ms"
    met: bool | None = None  # None: no goal for this row
    decimals: int = 1

    def cells(self) -> list[str]:
        """Figure, value, floor, ratio to floor, goal, met, naive, naive/ours."""
        return [
            self.figure,
            self._number(self.value),
            "—" if self.floor is None else self._number(self.floor),
            _ratio(self.value, self.floor),
            self.goal or "—",
            "—" if self.met is None else ("yes" if self.met else "NO"),
            "—" if self.naive is None else self._number(self.naive),
            _ratio(self.naive, self.value),
        ]

    def _number(self, number: float) -> str:
        text = f"{number:,.{self.decimals}f}"
        return f"{text} {self.unit}".rstrip()


HEADER = ["figure", "ours", "floor", "ours/floor", "goal", "met", "naive", "naive/ours"]


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None:
        return "—"
    if denominator == 0:
        # Against a floor of zero a ratio means nothing; the value says it all.
        return "=" if numerator == 0 else "—"
    return f"{numerator / denominator:,.2f}×"


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of the rounds."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def say(text: str) -> None:
    """A progress line, on stderr so that stdout stays the result."""
    print(text, file=sys.stderr, flush=True)


def machine() -> str:
    """Cores, CPU model, Python version and the date, for the line under the table."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                          if line.startswith("model name")), "")
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{os.cpu_count()} cores{' ' + model if model else ''}, "
            f"Python {platform.python_version()} ({platform.system()} {platform.release()}), "
            f"{now}")


def text_table(rows: list[Row]) -> str:
    """Aligned plain-text table."""
    table = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADER), rule] + [line(cells) for cells in table[1:]])


def markdown_table(rows: list[Row]) -> str:
    """GitHub Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row.cells()) + " |"
              for row in rows]
    return "\n".join(lines)


def missed(rows: list[Row]) -> list[Row]:
    """Rows whose goal was not met."""
    return [row for row in rows if row.met is False]
