"""Seed sensitivity (underspecification): how much a recipe's metric depends on the seed.

Models trained from the same data with different seeds pass the same test and behave
differently once the data shifts (D'Amour et al. 2020, "Underspecification Presents Challenges
for Credibility in Modern Machine Learning"). ``weightpkg rebuild RECIPE --seeds N`` builds N
variants, seeds ``published + k`` for k = 0…N−1 (so variant 0 is the published build), runs the
functional check and every stress test (deterministic corruptions of the evaluation set, as in
ImageNet-C) on each, and reports the spread per row: ``clean`` (the functional metric on the
uncorrupted set), then the stress tests in the recipe's order; per class too where the recipe
declares ``seeds.per-class``. ``[seeds.accept]`` says the spread the recipe accepts per row.

The report is deterministic: the same recipe and seeds give the same JSON bytes (no timestamps,
no absolute paths, floats rounded to 10 significant digits). Its ``basis`` hashes everything the
report depends on besides the seeds (:func:`report_basis`), so a policy can tell a report of the
recipe as it is from a stale one. The latest report is kept in the store as the manifest
``<id>.seeds`` (:func:`find_seed_report`), which also keeps the variants' files from gc.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .builder import (
    BUILD_PROTOCOL,
    BuildResult,
    EnvMode,
    Log,
    find_build,
    metric_of,
    rebuild,
    run_evaluations,
    store_relative,
)
from .core.recipe import CLEAN_ROW, Recipe
from .errors import BuildError, UsageError
from .store import Store

#: Bumped when the report's JSON changes shape.
REPORT_SCHEMA = 1
REPORT_KIND = "seed-sensitivity"
#: The key the clean row's command runs under in run_evaluations (it words errors for it).
_FUNCTIONAL = "functional"


def seed_manifest_id(recipe: Recipe) -> str:
    """The store manifest that holds the recipe's latest seed-sensitivity report."""
    return f"{recipe.id}.seeds"


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One build of the recipe with one seed, and what its evaluations printed."""

    seed: int
    derivation: str
    #: Output path → sha256 of the built file.
    outputs: Mapping[str, str]
    #: Output path → whether it equals the recipe's [[weights]] pin (None: not a published file).
    matches_pin: Mapping[str, bool | None]
    #: Row → the metric.
    metrics: Mapping[str, float]
    #: Row → class → value (empty unless the recipe declares seeds.per-class).
    per_class: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def published(self) -> bool:
        """Whether every published file of this build is bit-identical to its pin."""
        flags = [m for m in self.matches_pin.values() if m is not None]
        return bool(flags) and all(flags)


@dataclass(frozen=True)
class Row:
    """A row of the report: the clean evaluation or one stress test."""

    name: str
    command: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class SeedReport:
    """The seed-sensitivity report of one recipe; :meth:`to_json` is what is stored and shown."""

    recipe_id: str
    name: str
    version: str
    recipe_file: str
    metric: str
    per_class_key: str | None
    published_seed: int
    env_mode: str
    basis: str
    rows: tuple[Row, ...]
    variants: tuple[Variant, ...]
    #: Row → limit name ('max-spread', 'min', 'max') → value, as the recipe declares them.
    limits: Mapping[str, Mapping[str, float]]

    @property
    def seeds(self) -> list[int]:
        return [v.seed for v in self.variants]

    @property
    def ok(self) -> bool:
        return bool(self.to_json()["ok"])

    def to_json(self) -> dict[str, Any]:
        rows = []
        every_check_met = True
        for row in self.rows:
            values = [(v.seed, _num(v.metrics[row.name])) for v in self.variants]
            summary = _summary(values)
            per_class = _per_class_summary(row.name, self.variants) if self.per_class_key else None
            acceptance = _acceptance(summary, self.limits.get(row.name))
            if acceptance is not None and not acceptance["ok"]:
                every_check_met = False
            rows.append(
                {
                    "name": row.name,
                    "description": row.description,
                    "command": list(row.command),
                    "summary": summary,
                    "per_class": per_class,
                    "acceptance": acceptance,
                }
            )
        published = next((v for v in self.variants if v.seed == self.published_seed), None)
        return {
            "schema": REPORT_SCHEMA,
            "kind": REPORT_KIND,
            "recipe": {
                "id": self.recipe_id,
                "name": self.name,
                "version": self.version,
                "file": self.recipe_file,
            },
            "basis": self.basis,
            "env_mode": self.env_mode,
            "metric": self.metric,
            "per_class_key": self.per_class_key,
            "published_seed": self.published_seed,
            # Whether the build at the published seed is the published file: when it is not,
            # the report measures other weights than the ones distributed (None: not built).
            "published_reproduced": None if published is None else published.published,
            "seeds": self.seeds,
            "variants": [
                {
                    "seed": v.seed,
                    "derivation": v.derivation,
                    "published_seed": v.seed == self.published_seed,
                    "outputs": [
                        {"path": path, "sha256": sha, "matches_pin": v.matches_pin.get(path)}
                        for path, sha in v.outputs.items()
                    ],
                    "matches_published": v.published,
                    "metrics": {name: _num(value) for name, value in v.metrics.items()},
                    "per_class": {
                        name: {cls: _num(x) for cls, x in classes.items()}
                        for name, classes in v.per_class.items()
                    }
                    if self.per_class_key
                    else None,
                }
                for v in self.variants
            ],
            "rows": rows,
            "limits_declared": any(self.limits.get(r.name) for r in self.rows),
            "ok": every_check_met,
        }

    def to_text(self) -> str:
        """The JSON as written to a file or stdout: sorted keys, indented, one trailing newline."""
        return report_text(self.to_json())


def report_text(report: Mapping[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _num(value: float) -> float:
    """Rounded to 10 significant digits: the same number on every machine, without the float
    noise of a subtraction (0.9259 − 0.9125 = 0.013400000000000079)."""
    if not math.isfinite(value):
        return value
    return float(f"{value:.10g}")


def _summary(values: Sequence[tuple[int, float]]) -> dict[str, Any]:
    numbers = [x for _, x in values]
    low, high = min(numbers), max(numbers)
    return {
        "n": len(numbers),
        "min": _num(low),
        "median": _num(statistics.median(numbers)),
        "max": _num(high),
        "spread": _num(high - low),
        "seed_of_min": next(s for s, x in values if x == low),
        "seed_of_max": next(s for s, x in values if x == high),
    }


def _per_class_summary(row: str, variants: Sequence[Variant]) -> dict[str, dict[str, Any]]:
    classes: dict[str, list[float]] = {}
    for variant in variants:
        for cls, value in variant.per_class.get(row, {}).items():
            classes.setdefault(cls, []).append(_num(value))
    out = {}
    for cls in sorted(classes, key=class_order):
        numbers = classes[cls]
        low, high = min(numbers), max(numbers)
        out[cls] = {
            "n": len(numbers),
            "min": _num(low),
            "median": _num(statistics.median(numbers)),
            "max": _num(high),
            "spread": _num(high - low),
        }
    return out


def class_order(name: str) -> list[tuple[int, Any]]:
    """Natural order: '2' before '10', names alphabetically."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]


#: Limit name in the recipe → how the measured value is checked.
_CHECKS = (
    ("max-spread", "spread", lambda measured, allowed: measured <= allowed, "≤"),
    ("min", "min", lambda measured, allowed: measured >= allowed, "≥"),
    ("max", "max", lambda measured, allowed: measured <= allowed, "≤"),
)


def _acceptance(summary: Mapping[str, Any], limits: Mapping[str, float] | None) -> dict[str, Any] | None:
    if not limits:
        return None
    checks = []
    for limit, measured_key, met, _ in _CHECKS:
        if limit not in limits:
            continue
        allowed = _num(float(limits[limit]))
        measured = summary[measured_key]
        checks.append(
            {"limit": limit, "allowed": allowed, "measured": measured, "met": met(measured, allowed)}
        )
    return {
        "limits": {k: _num(float(v)) for k, v in sorted(limits.items())},
        "checks": checks,
        "ok": all(c["met"] for c in checks),
    }


# --- what a report depends on -------------------------------------------------------------------


def report_basis(recipe: Recipe) -> str:
    """sha256 (hex) of everything a seed-sensitivity report depends on besides its seeds: the
    build (command, outputs, requirements, environment, device), the inputs' pins, the published
    files' pins, the functional check, the stress tests, the seeds table and its limits. A stored
    report whose basis differs from the recipe's now is stale."""
    build = recipe.build
    functional = recipe.reproducibility.functional
    seeds = recipe.seeds
    described = {
        "report_schema": REPORT_SCHEMA,
        "build_protocol": BUILD_PROTOCOL,
        "recipe": recipe.id,
        "build": None
        if build is None
        else {
            "command": list(build.command),
            "outputs": list(build.outputs),
            "requirements": sorted(build.requirements),
            "env": dict(sorted(build.env.items())),
            "device": build.device,
        },
        "inputs": sorted(
            (
                {
                    "name": i.name,
                    "path": i.path or i.name,
                    "sha256": i.sha256.hex if i.sha256 else None,
                    "size": i.size,
                }
                for i in recipe.inputs
            ),
            key=lambda item: str(item["name"]),
        ),
        "weights": [{"path": w.path, "sha256": w.sha256.hex, "size": w.size} for w in recipe.weights],
        "functional": None
        if functional is None
        else {"metric": functional.metric, "command": list(functional.command)},
        "stress": [{"name": s.name, "command": list(s.command)} for s in recipe.stress],
        "seeds": None
        if seeds is None
        else {
            "published": seeds.published,
            "env": seeds.env,
            "per_class": seeds.per_class,
            "accept": {row: _limits(limit) for row, limit in sorted(seeds.accept.items())},
        },
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _limits(limit: Any) -> dict[str, float]:
    pairs = (("max-spread", limit.max_spread), ("min", limit.min), ("max", limit.max))
    return {name: float(value) for name, value in pairs if value is not None}


def report_is_current(report: Mapping[str, Any], recipe: Recipe) -> bool:
    """Whether a stored report was made from the recipe as it is now."""
    return report.get("kind") == REPORT_KIND and report.get("basis") == report_basis(recipe)


# --- running it -----------------------------------------------------------------------------------


def check_seedable(recipe: Recipe, count: int) -> None:
    """Refuse, before anything is built, what a seed-sensitivity report cannot be made of."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise UsageError(
            f"--seeds {count}: a spread needs at least 2 seeds (the published one and one other)"
        )
    if recipe.seeds is None:
        raise UsageError(
            f"{recipe.origin}: the recipe declares no [seeds] table, so its seed cannot be varied; "
            "declare [seeds] with published = <the seed the published files were built with> and "
            "env = '<the variable the build reads it from>' (or put {seed} in build.command)"
        )
    functional = recipe.reproducibility.functional
    if functional is None or not functional.command:
        raise UsageError(
            f"{recipe.origin}: a seed-sensitivity report measures with the functional check; declare "
            "[reproducibility.functional] with metric and a command that prints it as JSON "
            "({weights} names the weights file)"
        )
    if recipe.build is None:
        raise UsageError(f"{recipe.origin}: the recipe has no [build] table, so it cannot be rebuilt")
    if not recipe.weights:
        raise UsageError(f"{recipe.origin}: the recipe publishes no [[weights]] file to evaluate")


def report_rows(recipe: Recipe) -> tuple[Row, ...]:
    functional = recipe.reproducibility.functional
    assert functional is not None
    clean = Row(CLEAN_ROW, functional.command, "the functional check on the uncorrupted evaluation set")
    stress = tuple(Row(s.name, s.command, s.description or f"stress test {s.name}") for s in recipe.stress)
    return (clean, *stress)


def seed_sensitivity(
    recipe: Recipe,
    store: Store,
    count: int,
    *,
    env_mode: EnvMode = "venv",
    log: Log | None = None,
    start: int | None = None,
    keep: bool = True,
) -> SeedReport:
    """Build (or reuse from the store) ``count`` variants, seeds ``start + k`` (``start``: the
    published seed unless given), evaluate each on every row, and return the report; with
    ``keep`` it is also stored as the manifest ``<id>.seeds``."""
    say: Log = log or (lambda line: None)
    check_seedable(recipe, count)
    assert recipe.seeds is not None and recipe.reproducibility.functional is not None
    first = recipe.seeds.published if start is None else start
    if first < 0 or first + count - 1 > 0xFFFFFFFF:
        raise UsageError(f"seeds {first}…{first + count - 1} leave the range 0…4294967295")
    seeds = [first + k for k in range(count)]
    rows = report_rows(recipe)
    weight = recipe.weights[0]
    builds: dict[int, BuildResult] = {}
    for n, seed in enumerate(seeds, 1):
        built = find_build(recipe, store, env_mode, seed=seed)
        if built is None:
            say(f"seed {seed} ({n}/{count}): building")
            built = rebuild(recipe, store, env_mode=env_mode, log=log, seed=seed)
        else:
            say(f"seed {seed} ({n}/{count}): a stored build of the same derivation")
        if built.output(weight.path) is None:
            raise BuildError(f"{recipe.origin}: the build with seed {seed} produced no {weight.path!r}")
        builds[seed] = built

    commands: dict[str, tuple[str, ...]] = {}
    key_of_row: dict[str, str] = {}
    for row in rows:
        key = _FUNCTIONAL if row.name == CLEAN_ROW else row.name
        if row.name != CLEAN_ROW and key == _FUNCTIONAL:
            key = "functional (stress test)"
        commands[key] = row.command
        key_of_row[row.name] = key
    labels = {f"seed-{seed}": seed for seed in seeds}
    weights = {label: _output_path(builds[seed], weight.path) for label, seed in labels.items()}
    say(
        f"evaluating {count} variants on {len(rows)} row{'s' if len(rows) != 1 else ''}: "
        + ", ".join(r.name for r in rows)
    )
    printed = run_evaluations(recipe, store, weights, commands, env_mode=env_mode, log=log)

    pins = {w.path: w.sha256.hex for w in recipe.weights}
    variants = []
    for label, seed in labels.items():
        built = builds[seed]
        metrics: dict[str, float] = {}
        per_class: dict[str, dict[str, float]] = {}
        for row in rows:
            shown = _row_words(row)
            objects = printed[label][key_of_row[row.name]]
            metrics[row.name] = _metric(recipe, objects, shown, seed)
            if recipe.seeds.per_class:
                per_class[row.name] = _per_class(recipe, objects, shown, seed)
        outputs = {o.path: o.sha256.hex for o in built.outputs}
        variants.append(
            Variant(
                seed=seed,
                derivation=built.derivation.hex,
                outputs=outputs,
                matches_pin={p: (sha == pins[p]) if p in pins else None for p, sha in outputs.items()},
                metrics=metrics,
                per_class=per_class,
            )
        )
    report = SeedReport(
        recipe_id=recipe.id,
        name=recipe.package.name,
        version=recipe.package.version,
        recipe_file=Path(recipe.origin).name,
        metric=recipe.reproducibility.functional.metric,
        per_class_key=recipe.seeds.per_class,
        published_seed=recipe.seeds.published,
        env_mode=env_mode,
        basis=report_basis(recipe),
        rows=rows,
        variants=tuple(variants),
        limits={row: _limits(limit) for row, limit in recipe.seeds.accept.items()},
    )
    if keep:
        store_seed_report(report, store, builds.values())
    return report


def _output_path(built: BuildResult, path: str) -> Path:
    out = built.output(path)
    assert out is not None
    return out.store_path


def _row_words(row: Row) -> str:
    return "the functional check" if row.name == CLEAN_ROW else f"stress test {row.name!r}"


def _metric(recipe: Recipe, printed: Mapping[str, Any], shown: str, seed: int) -> float:
    metric = recipe.reproducibility.functional.metric  # type: ignore[union-attr]
    value = metric_of(recipe, printed, metric, what=shown, where=f" on seed {seed}")
    if not math.isfinite(value):
        raise BuildError(f"{recipe.origin}: {shown} printed {metric} = {value} on seed {seed}")
    return value


def _per_class(recipe: Recipe, printed: Mapping[str, Any], shown: str, seed: int) -> dict[str, float]:
    key = recipe.seeds.per_class  # type: ignore[union-attr]
    value = printed.get(key)  # type: ignore[arg-type]
    if not isinstance(value, Mapping) or not value:
        raise BuildError(
            f"{recipe.origin}: seeds.per-class = {key!r}, but {shown} printed no object {key!r} "
            f"(class → number) on seed {seed}"
        )
    out = {}
    for cls, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise BuildError(
                f"{recipe.origin}: {shown} printed {key}[{cls!r}] = {number!r} on seed {seed}; "
                "expected a number"
            )
        out[str(cls)] = float(number)
    return out


# --- the store ----------------------------------------------------------------------------------


def store_seed_report(report: SeedReport, store: Store, builds: Any = ()) -> Path:
    """Keep the report as the manifest ``<id>.seeds``; its ``files`` (the variants' outputs and
    build records) keep them in the store through gc."""
    files: list[str] = []
    for built in builds:
        files.extend(store_relative(o.store_path, store) for o in built.outputs)
        files.append(store_relative(built.record_path, store))
    manifest = {
        "kind": "seeds",
        "recipe": report.recipe_id,
        "report": report.to_json(),
        "files": [{"store_path": path} for path in sorted(set(files))],
    }
    return store.write_manifest(f"{report.recipe_id}.seeds", manifest)


def find_seed_report(recipe: Recipe, store: Store) -> dict[str, Any] | None:
    """The latest stored seed-sensitivity report of the recipe (its JSON), or None. Whether it
    is current: ``report["basis"] == report_basis(recipe)`` (:func:`report_is_current`)."""
    manifest = store.read_manifest(seed_manifest_id(recipe))
    if not manifest or manifest.get("kind") != "seeds":
        return None
    report = manifest.get("report")
    if not isinstance(report, dict) or report.get("kind") != REPORT_KIND:
        return None
    return report


# --- the human table ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if abs(value) >= 10_000 or (value != 0 and abs(value) < 10**-digits):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def _short(value: float) -> str:
    """A limit as written in a recipe: 0.03, not 0.0300."""
    text = _fmt(value, 6)
    return text.rstrip("0").rstrip(".") if "e" not in text else text


def _limit_words(limits: Mapping[str, float]) -> str:
    words = []
    for limit, measured, _, sign in _CHECKS:
        if limit in limits:
            words.append(f"{measured} {sign} {_short(limits[limit])}")
    return ", ".join(words)


def seed_table(report: SeedReport | Mapping[str, Any]) -> list[str]:
    """The human report: a line per row (clean, then the stress tests) with each seed's metric,
    min / median / max / spread and what the recipe accepts; per-class min / median / max; a
    verdict."""
    data = report.to_json() if isinstance(report, SeedReport) else report
    recipe = data["recipe"]["id"]
    seeds = list(data["seeds"])
    published = data["published_seed"]
    rows = data["rows"]
    variants = {v["seed"]: v for v in data["variants"]}
    lines = [
        f"{recipe}: seed sensitivity of {data['metric']} across {len(seeds)} seeds "
        f"({seeds[0]}…{seeds[-1]}; the published seed is {published})"
    ]
    reproduced = data.get("published_reproduced")
    if reproduced is True:
        lines.append(f"  seed {published} rebuilt bit-identical to the published file")
    elif reproduced is False:
        lines.append(
            f"  WARNING: seed {published} did not rebuild the published file: "
            "the report measures other weights than the ones distributed"
        )

    name_width = max(len("row"), *(len(r["name"]) for r in rows))
    seed_cells = [f"{s}{'*' if s == published else ''}" for s in seeds]
    width = max(7, *(len(c) for c in seed_cells))
    head = (
        "  "
        + "row".ljust(name_width)
        + "  "
        + " ".join(c.rjust(width) for c in seed_cells)
        + " │ "
        + " ".join(h.rjust(7) for h in ("min", "median", "max", "spread"))
        + " │ accepts"
    )
    lines.append(head)
    rule_at = len(lines)
    failures: list[str] = []
    for row in rows:
        summary, acceptance = row["summary"], row["acceptance"]
        cells = [_fmt(variants[s]["metrics"][row["name"]]).rjust(width) for s in seeds]
        stats = [_fmt(summary[k]).rjust(7) for k in ("min", "median", "max", "spread")]
        if acceptance is None:
            verdict = "(no limit)"
        else:
            verdict = f"{_limit_words(acceptance['limits'])}: {'ok' if acceptance['ok'] else 'FAILS'}"
            for check in acceptance["checks"]:
                if not check["met"]:
                    measured = next(m for lim, m, _, _ in _CHECKS if lim == check["limit"])
                    failures.append(
                        f"{row['name']} {measured} {_fmt(check['measured'])} "
                        f"(accepted: {check['limit']} {_short(check['allowed'])})"
                    )
        lines.append(
            "  "
            + row["name"].ljust(name_width)
            + "  "
            + " ".join(cells)
            + " │ "
            + " ".join(stats)
            + " │ "
            + verdict
        )
    lines.insert(rule_at, "  " + "─" * max(len(line) - 2 for line in lines[rule_at - 1 :]))
    lines.append("  (* the published seed; spread = max − min across seeds)")

    if data.get("per_class_key"):
        lines.extend(_per_class_lines(data))

    if failures:
        lines.append(f"{recipe}: NOT ACCEPTED: " + "; ".join(failures))
    elif data.get("limits_declared"):
        lines.append(f"{recipe}: accepted: every row is within the recipe's [seeds.accept] limits")
    else:
        lines.append(f"{recipe}: no [seeds.accept] limits declared: the spread is reported, not judged")
    return [line.rstrip() for line in lines]


def _per_class_lines(data: Mapping[str, Any]) -> list[str]:
    rows = data["rows"]
    classes: list[str] = []
    for row in rows:
        for cls in row["per_class"] or {}:
            if cls not in classes:
                classes.append(cls)
    classes.sort(key=class_order)
    if not classes:
        return []
    class_width = max(len("class"), *(len(c) for c in classes))
    block = [max(len(r["name"]), 17) for r in rows]
    lines = [f"  per class ({data['per_class_key']}): min / median / max across seeds"]
    names = "   ".join(r["name"].ljust(w) for r, w in zip(rows, block, strict=True))
    stats = "   ".join(" ".join(h.rjust(5) for h in ("min", "med", "max")).ljust(w) for w in block)
    lines.append("  " + "class".ljust(class_width) + "  " + names)
    lines.append("  " + "".ljust(class_width) + "  " + stats)
    widest: tuple[float, str, str] | None = None
    for cls in classes:
        cells = []
        for row, w in zip(rows, block, strict=True):
            stats = (row["per_class"] or {}).get(cls)
            if stats is None:
                cells.append("—".ljust(w))
                continue
            cells.append(" ".join(_fmt(stats[k], 3) for k in ("min", "median", "max")).ljust(w))
            if widest is None or stats["spread"] > widest[0]:
                widest = (stats["spread"], cls, row["name"])
        lines.append("  " + cls.ljust(class_width) + "  " + "   ".join(cells))
    if widest is not None:
        spread, cls, row = widest
        lines.append(f"  widest per-class spread: class {cls} on {row}: {_fmt(spread, 3)}")
    return lines
