"""Change propagation: rebuild every recipe downstream of a changed one, and say what changed.

When a data recipe re-releases its dataset (ImageNet with faces blurred) or a base model is
updated, the recipes built from the old bytes are outdated. ``rebuild --dependents`` rebuilds
them in topological order, each with its recipe-sourced inputs taken from what the upstream
publishes now (or from the upstream's output rebuilt earlier in the same run), and challenges
each result against the weights it published before: tensor by tensor, and the functional
metric before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .builder import EnvMode, Log, Substitution, find_build, substituted
from .challenges import ChallengeReport, challenge_lines, challenge_recipe
from .core.digest import Digest
from .core.recipe import Recipe, RecipeSource
from .errors import FetchError, UsageError
from .sources.path import resolve_inside
from .sources.recipe import upstream_recipe
from .store import Store


@dataclass
class DependentOutcome:
    """One downstream recipe: what it was rebuilt with, and how the result compares."""

    recipe: Recipe
    substitutions: list[Substitution]
    challenge: ChallengeReport | None
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.origin,
            "id": self.recipe.id,
            "substitutions": [s.to_json() for s in self.substitutions],
            "challenge": self.challenge.to_json() if self.challenge else None,
            "skipped": self.skipped,
        }


@dataclass
class DependentsReport:
    upstream: str
    order: list[str]
    outcomes: list[DependentOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.challenge is None or not o.challenge.problems for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "order": self.order,
            "dependents": [o.to_json() for o in self.outcomes],
            "ok": self.ok,
        }


def rebuild_dependents(
    upstream_path: str | Path,
    store: Store,
    *,
    search: Sequence[str | Path] = (),
    env_mode: EnvMode = "venv",
    functional: bool = True,
    log: Log | None = None,
) -> DependentsReport:
    """Rebuild and challenge, in topological order, every recipe in ``search`` (default: the
    upstream recipe's folder) that is built, directly or not, from the upstream recipe."""
    from . import load_recipe
    from .lineage import build_lineage, collect, dependents

    say: Log = log or (lambda line: None)
    upstream = load_recipe(upstream_path)
    folders = list(search) or [Path(upstream_path).parent]
    found = collect([*folders, upstream_path])
    by_id = {r.id: r for r in found.recipes}
    lineage = build_lineage(found.recipes, located=found.located, unloadable=found.unloadable)
    order = dependents(lineage, upstream.id)
    report = DependentsReport(upstream.origin, order)
    #: (resolved recipe file, output path) → the output rebuilt in this run.
    rebuilt: dict[tuple[Path, str], tuple[Digest, int, str]] = {}
    for recipe_id in order:
        recipe = by_id[recipe_id]
        variant, changes = _with_upstream_outputs(recipe, rebuilt)
        if recipe.reproducibility.level == "unavailable" or recipe.build is None:
            why = recipe.reproducibility.reason or "it declares no build"
            report.outcomes.append(DependentOutcome(recipe, changes, None, f"cannot be rebuilt: {why}"))
            continue
        say(f"rebuilding {recipe.id} ({recipe.origin})")
        challenged = challenge_recipe(
            recipe,
            store,
            env_mode=env_mode,
            functional=functional,
            log=log,
            variant=variant if changes else None,
            substitutions=changes,
        )
        report.outcomes.append(DependentOutcome(recipe, changes, challenged))
        built = find_build(variant, store, env_mode, substitutions=changes)
        if built is not None:
            origin = Path(recipe.origin).resolve()
            for output in built.outputs:
                rebuilt[(origin, output.path)] = (output.sha256, output.size, recipe.id)
    return report


def _with_upstream_outputs(
    recipe: Recipe, rebuilt: dict[tuple[Path, str], tuple[Digest, int, str]]
) -> tuple[Recipe, list[Substitution]]:
    """``recipe`` with each recipe-sourced input pinned to what its upstream gives now: the
    output rebuilt in this run if there is one, else what the upstream recipe publishes."""
    folder = Path(recipe.origin).parent
    variant, changes = recipe, []
    for item in recipe.inputs:
        source = next((s for s in item.sources if isinstance(s, RecipeSource)), None)
        if source is None:
            continue
        try:
            upstream_file = resolve_inside(folder, source.recipe)
            fresh = rebuilt.get((upstream_file.resolve(), source.output))
            if fresh is not None:
                sha256, size, built_by = fresh
                origin = f"{source.output} of {built_by}, rebuilt in this run"
            else:
                upstream = upstream_recipe(source, folder)
                weight = upstream.published(source.output)
                if weight is None:
                    raise UsageError(f"{recipe.origin}: {upstream.origin} publishes no {source.output!r}")
                sha256, size = weight.sha256, weight.size
                origin = f"{source.output} as {upstream.id} publishes it now"
        except FetchError as exc:
            raise UsageError(f"{recipe.origin}: input {item.name!r}: {exc}") from None
        if sha256 == item.sha256 and size == item.size:
            continue
        variant = substituted(variant, item.name, sha256, size, keep_sources=fresh is None)
        changes.append(
            Substitution(
                item.name,
                item.sha256.hex if item.sha256 else None,
                item.size,
                sha256,
                size,
                origin,
            )
        )
    return variant, changes


def dependents_lines(report: DependentsReport) -> list[str]:
    """Per dependent: its challenge against what it published before, and the metric's change."""
    if not report.order:
        return [f"{report.upstream}: no recipe is built from it"]
    lines = [f"{report.upstream}: {len(report.order)} dependent(s), in order: {', '.join(report.order)}"]
    for outcome in report.outcomes:
        if outcome.skipped:
            lines.append(f"{outcome.recipe.origin}: skipped: {outcome.skipped}")
            continue
        assert outcome.challenge is not None
        if not outcome.substitutions:
            lines.append(f"{outcome.recipe.origin}: its inputs already match what its upstreams publish")
        lines.extend(challenge_lines(outcome.challenge))
    return lines
