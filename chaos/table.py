"""The suite's table: one row per trial, the sums of its runs, and what went wrong in them."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.check import Outcome

HEADERS = (
    "trial", "runs", "correct", "wrong", "jobs lost", "started twice", "lines lost",
    "lines duplicated", "API 5xx", "crashes",
)  # fmt: skip
NOTES_PER_TRIAL = 14


@dataclass
class Row:
    trial: str
    runs: int = 0
    correct: int = 0
    wrong: int = 0
    jobs: int = 0
    lost: int = 0
    twice: int = 0
    lines_lost: int = 0
    lines_duplicated: int = 0
    api_5xx: int = 0
    crashes: int = 0
    notes: list[tuple[int, str]] = field(default_factory=list)  # (run, what went wrong)

    def add(self, number: int, outcome: Outcome) -> None:
        self.runs += 1
        self.jobs += outcome.jobs
        if outcome.correct:
            self.correct += 1
        else:
            self.wrong += 1
            self.notes += [(number, note) for note in outcome.notes]
        self.lost += outcome.lost
        self.twice += outcome.twice
        self.lines_lost += outcome.lines_lost
        self.lines_duplicated += outcome.lines_duplicated
        self.api_5xx += outcome.api_5xx
        self.crashes += outcome.crashes

    @property
    def clean(self) -> bool:
        return self.runs > 0 and self.wrong == 0

    def cells(self) -> tuple[str, ...]:
        numbers = (
            self.runs, self.correct, self.wrong, self.lost, self.twice, self.lines_lost,
            self.lines_duplicated, self.api_5xx, self.crashes,
        )  # fmt: skip
        return (self.trial, *map(str, numbers))


def render(rows: list[Row]) -> str:
    """A Markdown table, aligned so it reads as well in a terminal."""
    cells = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]

    def line(values: tuple[str, ...]) -> str:
        padded = [
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths))
    return "\n".join([line(HEADERS), rule + "|", *(line(row.cells()) for row in rows)])


def render_notes(rows: list[Row]) -> str:
    """What went wrong, per trial: each note once, with the runs it came up in."""
    out = []
    for row in rows:
        runs: dict[str, list[int]] = {}
        for number, note in row.notes:
            runs.setdefault(note, []).append(number)
        if not runs:
            continue
        out.append(f"{row.trial}:")
        for note, numbers in list(runs.items())[:NOTES_PER_TRIAL]:
            distinct = sorted(set(numbers))
            label = "run" if len(distinct) == 1 else "runs"
            out.append(f"  {label} {', '.join(map(str, distinct))}: {note}")
        if len(runs) > NOTES_PER_TRIAL:
            out.append(f"  … {len(runs) - NOTES_PER_TRIAL} more")
    return "\n".join(out)
