"""What a benchmark reports, and the one table ``python -m bench`` prints."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Result", "console", "log", "ms", "percentile", "render", "save"]

console = Console(stderr=True, highlight=False)
"""Progress goes to stderr, so stdout holds the table alone."""


def log(message: str) -> None:
    console.print(f"[dim]{message}[/]")


@dataclass(frozen=True, slots=True)
class Result:
    """One line of the table: a measured figure, the target it answers (if any), and the numbers
    behind it for the JSON record."""

    bench: str
    case: str
    measured: str
    target: str = ""
    met: bool | None = None
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile by linear interpolation (numpy's default), for small samples."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def summary(samples: Sequence[float]) -> tuple[float, float]:
    """(median, p95) of timings in seconds."""
    return statistics.median(samples), percentile(samples, 0.95)


def render(results: Sequence[Result], title: str) -> Table:
    table = Table(title=title, show_lines=False, title_justify="left")
    table.add_column("Benchmark", style="bold")
    table.add_column("Case")
    table.add_column("Measured", justify="right")
    table.add_column("Target")
    table.add_column("", justify="center")
    table.add_column("Notes", style="dim", overflow="fold")
    previous = None
    for result in results:
        verdict = {True: "[green]✓[/]", False: "[red]✗[/]", None: ""}[result.met]
        name = result.bench if result.bench != previous else ""
        previous = result.bench
        table.add_row(name, result.case, result.measured, result.target, verdict, result.notes)
    return table


def save(results: Sequence[Result], path: Path, meta: dict[str, Any]) -> None:
    """The run as JSON (bench/results/ is gitignored): the figures the docs quote come from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": [asdict(result) for result in results]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
