"""Figures the hardening tests report (faults tried, kill points survived, fuzz examples run):
counted while the tests run and printed in pytest's terminal summary."""

from __future__ import annotations

FIGURES: dict[str, int] = {}


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to the figure ``name`` (only after what it counts was checked)."""
    FIGURES[name] = FIGURES.get(name, 0) + n


def summary_lines() -> list[str]:
    return [f"{name}: {FIGURES[name]}" for name in sorted(FIGURES)]
