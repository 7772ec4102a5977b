"""Inputs another recipe publishes: fetched through that recipe's own sources for the file.

The downstream input's pin still decides what enters the store. When the upstream recipe now
pins other bytes for the file (a dataset re-released), its sources deliver those, the pin
refuses them, and the message says so: the input is outdated (``weightpkg outdated``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..core.recipe import PathSource, Recipe, RecipeSource, Source
from ..errors import FetchError, RecipeError
from . import Candidate, FetchContext, Sink
from .path import resolve_inside

#: How deep a chain of recipes built from recipes may go before it is taken for a loop.
MAX_DEPTH = 32


def upstream_recipe(source: RecipeSource, recipe_dir: Path) -> Recipe:
    """The recipe ``source`` names, read and checked; FetchError says why it cannot be used."""
    from .. import load_recipe

    label = source.describe()
    path = resolve_inside(recipe_dir, source.recipe)
    try:
        return load_recipe(path)
    except RecipeError as exc:
        raise FetchError(label, [f"the recipe {path} is not valid: {exc.problems[0]}"]) from None


def candidates(source: RecipeSource, ctx: FetchContext) -> list[Candidate]:
    from . import candidates as source_candidates

    label = source.describe()
    try:
        path = resolve_inside(ctx.recipe_dir, source.recipe)
        if path in ctx.recipe_chain or len(ctx.recipe_chain) >= MAX_DEPTH:
            chain = " → ".join(p.name for p in (*ctx.recipe_chain, path))
            raise FetchError(label, [f"recipes are built from each other in a loop: {chain}"])
        upstream = upstream_recipe(source, ctx.recipe_dir)
        weight = upstream.published(source.output)
        if weight is None:
            published = ", ".join(w.path for w in upstream.weights)
            raise FetchError(label, [f"{path.name} publishes no {source.output!r}, only {published}"])
    except FetchError as exc:
        failure = exc

        def fail(sink: Sink) -> None:
            raise failure

        return [Candidate(label, fail)]
    inner = replace(ctx, recipe_dir=path.parent, recipe_chain=(*ctx.recipe_chain, path))
    inner._session, inner._cache = ctx._session, ctx._cache
    found = []
    for upstream_source in weight.sources:
        for candidate in source_candidates(upstream_source, inner):
            found.append(Candidate(f"{label} via {candidate.label}", candidate.fetch))
    return found


def expanded_sources(sources: Sequence[Source], recipe_dir: Path) -> list[Source]:
    """``sources`` with each recipe source replaced by the sources its upstream declares for
    that file (path sources re-based onto ``recipe_dir``): for exports to systems that fetch
    files, not recipes. A recipe source that cannot be followed is left out."""
    out: list[Source] = []
    for source in sources:
        if not isinstance(source, RecipeSource):
            out.append(source)
            continue
        try:
            upstream = upstream_recipe(source, recipe_dir)
        except FetchError:
            continue
        upstream_dir = resolve_inside(recipe_dir, source.recipe).parent
        weight = upstream.published(source.output)
        for inner in weight.sources if weight is not None else ():
            if isinstance(inner, PathSource):
                rebased = os.path.relpath(upstream_dir / inner.path, recipe_dir.resolve())
                inner = replace(inner, path=rebased)
            out.append(inner)
    return out
