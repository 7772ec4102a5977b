"""The provenance graph of a set of recipes: which files each one is built from, which it publishes,
and which recipes are built from files another recipe publishes.

Files are identified by their sha256, so an input another recipe publishes *is* that recipe's
published file when both pin the same bytes. When the upstream recipe now publishes other bytes
(a dataset re-released), the downstream input still names the old ones: the downstream recipe is
**outdated**, and so is every recipe built from it, once it is rebuilt.

Only :func:`collect` (and the helpers built on it) reads files; everything else is pure.

Graph vocabulary (also the JSON's):

* recipe nodes, id ``name-version``; file nodes, id ``sha256:<hex>``, or
  ``input:<recipe id>/<input name>`` for an input that pins no bytes (an unavailable one);
* edges ``input`` (file → recipe that is built from it), ``publishes`` (recipe → file) and
  ``supersedes`` (the file an upstream recipe publishes now → the older bytes a downstream
  recipe's input still pins);
* dependencies: downstream recipe → upstream recipe, one per recipe source of an input, with
  ``status`` ``current`` (pins agree), ``outdated`` (they differ) or ``unpinned``.
"""

from __future__ import annotations

import heapq
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from .core.recipe import Input, Recipe, RecipeSource, WeightFile
from .errors import FetchError, UsageError, WeightpkgError
from .sources.path import resolve_inside

#: How many hex digits of a sha256 the messages and views show.
SHORT = 12

DependencyStatus = Literal["current", "outdated", "unpinned"]
EdgeKind = Literal["input", "publishes", "supersedes"]


def short(sha256: str) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell files apart when reading."""
    return f"sha256:{sha256[:SHORT]}"


# --- the graph ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecipeNode:
    """One recipe, with what a reader of the graph wants to see without opening the file."""

    id: str
    name: str
    version: str
    kind: str
    origin: str
    license: str
    data_license: str | None
    code_license: str | None
    level: str
    seeds: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "origin": self.origin,
            "license": {"weights": self.license, "data": self.data_license, "code": self.code_license},
            "level": self.level,
            "seeds": self.seeds,
        }


@dataclass(frozen=True, kw_only=True)
class FileNode:
    """One file, by its bytes: every name, format, licence and role any recipe gives it.

    ``pinned`` is False for an input that names no sha256 (its id is then per recipe and input);
    ``superseded_by`` lists the sha256 of files an upstream recipe publishes now in its place.
    """

    id: str
    sha256: str | None
    size: int | None
    names: tuple[str, ...]
    formats: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    available: bool = True
    unavailable_reason: str | None = None
    superseded_by: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None

    @property
    def outdated(self) -> bool:
        """Whether an upstream recipe no longer publishes these bytes where an input expects them."""
        return bool(self.superseded_by)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "size": self.size,
            "names": list(self.names),
            "formats": list(self.formats),
            "licenses": list(self.licenses),
            "roles": list(self.roles),
            "available": self.available,
            "unavailable_reason": self.unavailable_reason,
            "outdated": self.outdated,
            "superseded_by": list(self.superseded_by),
        }


@dataclass(frozen=True, kw_only=True)
class Edge:
    """``input``: file → recipe (``name`` the input, with its role and licence, ``upstream`` the
    recipe it comes from if any); ``publishes``: recipe → file (``name`` the published path);
    ``supersedes``: current file → older bytes (``upstream`` the recipe, ``name`` the output).
    ``outdated`` marks an input whose pin is not what its upstream publishes now, and every
    ``supersedes`` edge."""

    source: str
    target: str
    kind: EdgeKind
    name: str
    role: str | None = None
    license: str | None = None
    format: str | None = None
    upstream: str | None = None
    outdated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "kind": self.kind,
            "name": self.name,
            "role": self.role,
            "license": self.license,
            "format": self.format,
            "upstream": self.upstream,
            "outdated": self.outdated,
        }


@dataclass(frozen=True, kw_only=True)
class Dependency:
    """``recipe`` is built from ``output`` of ``upstream`` (its input ``input``): ``pinned`` is
    what the input pins, ``published`` what the upstream publishes now."""

    recipe: str
    upstream: str
    input: str
    output: str
    pinned: str | None
    published: str

    @property
    def status(self) -> DependencyStatus:
        if self.pinned is None:
            return "unpinned"
        return "current" if self.pinned == self.published else "outdated"

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "upstream": self.upstream,
            "input": self.input,
            "output": self.output,
            "pinned": self.pinned,
            "published": self.published,
            "status": self.status,
        }


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """The graph; every list sorted, so two lineages of the same recipes are equal."""

    recipes: tuple[RecipeNode, ...]
    files: tuple[FileNode, ...]
    edges: tuple[Edge, ...]
    dependencies: tuple[Dependency, ...]
    problems: tuple[str, ...] = ()

    @cached_property
    def _recipe_index(self) -> Mapping[str, RecipeNode]:
        return {r.id: r for r in self.recipes}

    @cached_property
    def _file_index(self) -> Mapping[str, FileNode]:
        return {f.id: f for f in self.files}

    def recipe(self, recipe_id: str) -> RecipeNode:
        """The recipe node ``recipe_id``; UsageError naming the known ones if there is none."""
        try:
            return self._recipe_index[recipe_id]
        except KeyError:
            known = ", ".join(r.id for r in self.recipes) or "none"
            raise UsageError(f"no recipe {recipe_id!r} in the lineage (recipes: {known})") from None

    def file(self, file_id: str) -> FileNode:
        return self._file_index[file_id]

    def inputs_of(self, recipe_id: str) -> list[Edge]:
        return [e for e in self.edges if e.kind == "input" and e.target == recipe_id]

    def published_by(self, recipe_id: str) -> list[Edge]:
        return [e for e in self.edges if e.kind == "publishes" and e.source == recipe_id]

    def upstreams_of(self, recipe_id: str) -> list[str]:
        return sorted({d.upstream for d in self.dependencies if d.recipe == recipe_id})

    def to_json(self) -> dict[str, Any]:
        """Plain data, every list sorted: dump it with ``sort_keys=True`` for a stable text."""
        return {
            "lineage": 1,
            "recipes": [r.to_json() for r in self.recipes],
            "files": [f.to_json() for f in self.files],
            "edges": [e.to_json() for e in self.edges],
            "dependencies": [d.to_json() for d in self.dependencies],
            "outdated": [o.to_json() for o in outdated(self)],
            "problems": list(self.problems),
        }


# --- reading recipes (the only I/O) -------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    """Recipes read from disk, and what :func:`build_lineage` cannot work out without the disk.

    ``located``: (recipe origin, recipe source's ``recipe`` as written) → origin of the recipe it
    names, matched by resolved path (so two spellings of one file are one recipe).
    ``unloadable``: origin of a named recipe that could not be read → why.
    """

    recipes: tuple[Recipe, ...]
    located: Mapping[tuple[str, str], str]
    unloadable: Mapping[str, str]


def recipe_sources(recipe: Recipe) -> list[tuple[Input, RecipeSource]]:
    """Every (input, recipe source) of ``recipe``: the edges to other recipes."""
    return [(i, s) for i in recipe.inputs for s in i.sources if isinstance(s, RecipeSource)]


def collect(paths: Sequence[str | Path]) -> Collected:
    """The recipes at ``paths`` (files, or folders of ``*.toml``), and every recipe they are
    built from, followed breadth-first (each file once, so a loop ends). RecipeError for a given
    recipe that is invalid; a named recipe that cannot be read is recorded, not raised."""
    from . import find_recipes, load_recipe

    recipes: list[Recipe] = []
    by_file: dict[Path, str] = {}  # resolved path → origin as first spelled
    located: dict[tuple[str, str], str] = {}
    unloadable: dict[str, str] = {}
    for path in find_recipes(paths):
        resolved = path.resolve()
        if resolved in by_file:
            continue
        recipe = load_recipe(path)
        by_file[resolved] = recipe.origin
        recipes.append(recipe)
    queue = deque(recipes)
    while queue:
        recipe = queue.popleft()
        folder = Path(recipe.origin).parent
        for _, source in recipe_sources(recipe):
            spelled = str(folder / source.recipe)
            try:
                resolved = resolve_inside(folder, source.recipe)
            except FetchError as exc:
                located[(recipe.origin, source.recipe)] = spelled
                unloadable[spelled] = "; ".join(exc.attempts)
                continue
            if resolved in by_file:
                located[(recipe.origin, source.recipe)] = by_file[resolved]
                continue
            by_file[resolved] = spelled
            located[(recipe.origin, source.recipe)] = spelled
            try:
                upstream = load_recipe(spelled)
            except WeightpkgError as exc:
                unloadable[spelled] = _first_line(exc)
                continue
            recipes.append(upstream)
            queue.append(upstream)
    return Collected(tuple(recipes), located, unloadable)


def collect_recipes(paths: Sequence[str | Path]) -> list[Recipe]:
    """The recipes at ``paths`` and every recipe they are built from (see :func:`collect`)."""
    return list(collect(paths).recipes)


def lineage_of(paths: Sequence[str | Path]) -> Lineage:
    """Read the recipes at ``paths`` (and those they are built from) and build their lineage;
    a named recipe that cannot be read is a problem of the lineage, with the reason."""
    found = collect(paths)
    return build_lineage(found.recipes, located=found.located, unloadable=found.unloadable)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- building the graph (pure) ------------------------------------------------------------------


@dataclass
class _FileFacts:
    """What the recipes say about one file, gathered before the frozen node is made."""

    sha256: str | None
    size: int | None = None
    names: set[str] = field(default_factory=set)
    formats: set[str] = field(default_factory=set)
    licenses: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    available: bool = True
    unavailable_reason: str | None = None
    superseded_by: set[str] = field(default_factory=set)


def _normal(path: str) -> str:
    return os.path.normpath(path)


def build_lineage(
    recipes: Sequence[Recipe],
    *,
    located: Mapping[tuple[str, str], str] | None = None,
    unloadable: Mapping[str, str] | None = None,
) -> Lineage:
    """The lineage graph of ``recipes``. A recipe source's recipe is matched by path relative to
    the downstream recipe's origin (or through ``located``, from :func:`collect`); what cannot be
    matched, an output the upstream does not publish, duplicate packages and loops are problems."""
    located = located or {}
    unloadable = unloadable or {}
    problems: list[str] = []
    kept: dict[str, Recipe] = {}
    by_origin: dict[str, Recipe] = {}
    for recipe in recipes:
        if recipe.id in kept:
            if _normal(kept[recipe.id].origin) != _normal(recipe.origin):
                problems.append(f"{recipe.origin}: {recipe.id} is also defined by {kept[recipe.id].origin}")
            continue
        kept[recipe.id] = recipe
        by_origin[_normal(recipe.origin)] = recipe

    files: dict[str, _FileFacts] = {}
    edges: set[Edge] = set()
    dependencies: set[Dependency] = set()

    def facts(file_id: str, sha256: str | None) -> _FileFacts:
        return files.setdefault(file_id, _FileFacts(sha256=sha256))

    for recipe in kept.values():
        for weight in recipe.weights:
            sha = weight.sha256.hex
            f = facts(f"sha256:{sha}", sha)
            f.size = weight.size
            f.names.add(weight.path)
            f.formats.add(weight.format)
            f.licenses.add(recipe.license.weights)
            edges.add(
                Edge(
                    source=recipe.id,
                    target=f"sha256:{sha}",
                    kind="publishes",
                    name=weight.path,
                    license=recipe.license.weights,
                    format=weight.format,
                )
            )
    for recipe in kept.values():
        for item in recipe.inputs:
            if item.sha256 is not None:
                file_id = f"sha256:{item.sha256.hex}"
                f = facts(file_id, item.sha256.hex)
                if f.size is None:
                    f.size = item.size
            else:
                file_id = f"input:{recipe.id}/{item.name}"
                f = facts(file_id, None)
                f.size = item.size
            f.names.add(item.name)
            f.roles.add(item.role)
            if item.license is not None:
                f.licenses.add(item.license)
            if not item.available:
                f.available = False
                f.unavailable_reason = f.unavailable_reason or item.unavailable_reason
            stale = False
            upstream_ids: list[str] = []
            for source in (s for s in item.sources if isinstance(s, RecipeSource)):
                found = _upstream(recipe, item, source, by_origin, located, unloadable, problems)
                if found is None:
                    continue
                upstream, weight = found
                current = weight.sha256.hex
                pinned = item.sha256.hex if item.sha256 is not None else None
                dependencies.add(
                    Dependency(
                        recipe=recipe.id,
                        upstream=upstream.id,
                        input=item.name,
                        output=source.output,
                        pinned=pinned,
                        published=current,
                    )
                )
                upstream_ids.append(upstream.id)
                if pinned is not None and pinned != current:
                    stale = True
                    f.superseded_by.add(current)
                    edges.add(
                        Edge(
                            source=f"sha256:{current}",
                            target=file_id,
                            kind="supersedes",
                            name=source.output,
                            upstream=upstream.id,
                            outdated=True,
                        )
                    )
                elif pinned is not None and item.size is not None and item.size != weight.size:
                    problems.append(
                        f"{recipe.origin}: input {item.name!r} pins size {item.size}, but {upstream.id} "
                        f"publishes {source.output!r} ({short(current)}) with size {weight.size}"
                    )
            edges.add(
                Edge(
                    source=file_id,
                    target=recipe.id,
                    kind="input",
                    name=item.name,
                    role=item.role,
                    license=item.license,
                    upstream=", ".join(sorted(set(upstream_ids))) or None,
                    outdated=stale,
                )
            )
    nodes = tuple(_recipe_node(r) for r in sorted(kept.values(), key=lambda r: r.id))
    cycle = _find_cycle([n.id for n in nodes], dependencies)
    if cycle:
        problems.append(f"recipes are built from each other in a loop: {' → '.join(cycle)}")
    return Lineage(
        recipes=nodes,
        files=tuple(_file_node(i, f) for i, f in sorted(files.items())),
        edges=tuple(sorted(edges, key=_sort_key)),
        dependencies=tuple(sorted(dependencies, key=_sort_key)),
        problems=tuple(sorted(set(problems))),
    )


def _sort_key(value: Edge | Dependency) -> tuple[tuple[bool, str], ...]:
    """Field order, None first: sorting must not compare None with a string."""
    return tuple((v is not None, "" if v is None else str(v)) for v in astuple(value))


def _upstream(
    recipe: Recipe,
    item: Input,
    source: RecipeSource,
    by_origin: Mapping[str, Recipe],
    located: Mapping[tuple[str, str], str],
    unloadable: Mapping[str, str],
    problems: list[str],
) -> tuple[Recipe, WeightFile] | None:
    """The upstream recipe and its published file that ``source`` names, or None (with a problem)."""
    where = f"{recipe.origin}: input {item.name!r} comes from recipe {source.recipe}"
    target = located.get((recipe.origin, source.recipe))
    if target is None:
        target = os.path.join(os.path.dirname(recipe.origin), source.recipe)
    upstream = by_origin.get(_normal(target))
    if upstream is None:
        if target in unloadable:
            problems.append(f"{where}, which cannot be read: {unloadable[target]}")
        else:
            problems.append(f"{where}, which is not among the recipes ({_normal(target)})")
        return None
    weight = upstream.published(source.output)
    if weight is None:
        published = ", ".join(sorted(w.path for w in upstream.weights))
        problems.append(f"{where}: {upstream.id} publishes no {source.output!r}, only {published}")
        return None
    return upstream, weight


def _recipe_node(recipe: Recipe) -> RecipeNode:
    return RecipeNode(
        id=recipe.id,
        name=recipe.package.name,
        version=recipe.package.version,
        kind=recipe.package.kind,
        origin=recipe.origin,
        license=recipe.license.weights,
        data_license=recipe.license.data,
        code_license=recipe.license.code,
        level=recipe.reproducibility.level,
        seeds=recipe.seeds is not None,
    )


def _file_node(file_id: str, f: _FileFacts) -> FileNode:
    return FileNode(
        id=file_id,
        sha256=f.sha256,
        size=f.size,
        names=tuple(sorted(f.names)),
        formats=tuple(sorted(f.formats)),
        licenses=tuple(sorted(f.licenses)),
        roles=tuple(sorted(f.roles)),
        available=f.available,
        unavailable_reason=f.unavailable_reason,
        superseded_by=tuple(sorted(f.superseded_by)),
    )


# --- order ---------------------------------------------------------------------------------------


def _downstream_map(ids: Iterable[str], dependencies: Iterable[Dependency]) -> dict[str, set[str]]:
    """upstream → the recipes built directly from it (only among ``ids``)."""
    known = set(ids)
    out: dict[str, set[str]] = {i: set() for i in known}
    for d in dependencies:
        if d.recipe in known and d.upstream in known:
            out[d.upstream].add(d.recipe)
    return out


def _kahn(ids: Iterable[str], dependencies: Iterable[Dependency]) -> tuple[list[str], list[str]]:
    """(upstream-first order, ties broken by id; the ids left over because of a loop, sorted)."""
    below = _downstream_map(ids, dependencies)
    waiting = {i: 0 for i in below}
    for children in below.values():
        for child in children:
            waiting[child] += 1
    ready = [i for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in below[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    placed = set(order)
    return order, sorted(i for i in below if i not in placed)


def _find_cycle(ids: Sequence[str], dependencies: Iterable[Dependency]) -> list[str]:
    """One loop as ``[a, b, …, a]`` (upstream first, smallest id first), or [] if there is none."""
    dependencies = list(dependencies)
    _, left = _kahn(ids, dependencies)
    if not left:
        return []
    below = _downstream_map(left, dependencies)
    # Every recipe left over is on a loop or downstream of one, so some left-over recipe is
    # upstream of it: walk upstream (iteratively) until a recipe repeats.
    above: dict[str, list[str]] = {i: [] for i in left}
    for up, children in below.items():
        for child in children:
            above[child].append(up)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = left[0]
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = min(above[node])
    loop = path[seen[node] :]
    loop.reverse()  # walked upstream; show upstream first
    start = loop.index(min(loop))
    loop = loop[start:] + loop[:start]
    return [*loop, loop[0]]


def topological_order(lineage: Lineage) -> list[str]:
    """Every recipe, each after the recipes it is built from; ties by id. UsageError on a loop."""
    order, left = _kahn((r.id for r in lineage.recipes), lineage.dependencies)
    if left:
        loop = _find_cycle([r.id for r in lineage.recipes], lineage.dependencies)
        raise UsageError(f"recipes are built from each other in a loop: {' → '.join(loop)}")
    return order


def display_order(lineage: Lineage) -> list[str]:
    """Topological order, with recipes on a loop (a problem of the lineage) last, by id: for
    views, which must show a broken graph too."""
    order, left = _kahn((r.id for r in lineage.recipes), lineage.dependencies)
    return order + left


def dependents(lineage: Lineage, recipe_id: str) -> list[str]:
    """Every recipe built, directly or through others, from ``recipe_id`` (not itself), upstream
    first, ties by id: what to rebuild after it changes. UsageError on a loop or an unknown id."""
    lineage.recipe(recipe_id)
    topological_order(lineage)
    below = _downstream_map((r.id for r in lineage.recipes), lineage.dependencies)
    reached = _reach(below, [recipe_id]) - {recipe_id}
    order, _ = _kahn(reached, lineage.dependencies)
    return order


def _reach(below: Mapping[str, set[str]], start: Iterable[str]) -> set[str]:
    """``start`` and everything downstream of it (breadth-first, no recursion)."""
    seen = set(start)
    queue = deque(seen)
    while queue:
        for child in below.get(queue.popleft(), ()):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return seen


# --- outdated recipes ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StalePin:
    """An input pinned to bytes its upstream recipe no longer publishes."""

    input: str
    pinned: str
    upstream: str
    output: str
    published: str

    def describe(self) -> str:
        return (
            f"input {self.input} pins {short(self.pinned)}, but {self.upstream} publishes "
            f"{self.output} as {short(self.published)} now"
        )


@dataclass(frozen=True, kw_only=True)
class OutdatedRecipe:
    """A recipe whose published files were built from bytes that are not (or, once its outdated
    upstreams are rebuilt, will not be) what its upstreams publish."""

    id: str
    origin: str
    stale: tuple[StalePin, ...] = ()
    #: Outdated recipes this one is built from directly: they change when rebuilt.
    through: tuple[str, ...] = ()

    @property
    def direct(self) -> bool:
        return bool(self.stale)

    def reasons(self) -> list[str]:
        out = [p.describe() for p in self.stale]
        out += [f"built from {u}, which is outdated" for u in self.through]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "direct": self.direct,
            "stale": [
                {
                    "input": p.input,
                    "pinned": p.pinned,
                    "upstream": p.upstream,
                    "output": p.output,
                    "published": p.published,
                }
                for p in self.stale
            ],
            "through": list(self.through),
        }


def outdated(lineage: Lineage) -> list[OutdatedRecipe]:
    """Every recipe built from bytes its upstreams do not publish now (``stale``), or from a
    recipe that is itself outdated (``through``); upstream first, ties by id. A recipe whose own
    pins all match an up-to-date upstream is not listed, even if it was re-released itself."""
    stale: dict[str, list[StalePin]] = {}
    for d in lineage.dependencies:
        if d.status == "outdated" and d.pinned is not None:
            pin = StalePin(
                input=d.input, pinned=d.pinned, upstream=d.upstream, output=d.output, published=d.published
            )
            stale.setdefault(d.recipe, []).append(pin)
    below = _downstream_map((r.id for r in lineage.recipes), lineage.dependencies)
    affected = _reach(below, stale)
    out = []
    for recipe_id in display_order(lineage):
        if recipe_id not in affected:
            continue
        through = tuple(u for u in lineage.upstreams_of(recipe_id) if u in affected)
        out.append(
            OutdatedRecipe(
                id=recipe_id,
                origin=lineage.recipe(recipe_id).origin,
                stale=tuple(sorted(stale.get(recipe_id, ()), key=lambda p: (p.input, p.upstream))),
                through=through,
            )
        )
    return out


def outdated_ids(lineage: Lineage) -> set[str]:
    """The ids of :func:`outdated`'s recipes, for views that mark them."""
    return {o.id for o in outdated(lineage)}
