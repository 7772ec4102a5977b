"""Challenging published weights with a rebuild, as ``guix challenge`` does for packages: is
what the source produces what was published? Bit for bit, else tensor by tensor within the
recipe's absolute tolerance, then the recipe's functional check on both files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .acquire import Pin, check_sources, fetch_context
from .builder import BuildResult, EnvMode, Log, Substitution, find_build, rebuild, run_functional
from .core.recipe import Recipe
from .core.tensors import TensorComparison, describe
from .errors import BuildError, UsageError
from .store import Store
from .verification import fetch_recipe

#: Verdicts of one file, best first; which of them pass depends on the recipe's level.
VERDICTS = ("identical", "same-content", "within-tolerance", "differs", "missing")


@dataclass
class FileChallenge:
    path: str
    format: str
    published_sha256: str
    rebuilt_sha256: str | None
    verdict: str
    ok: bool
    comparison: TensorComparison | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    detail: str | None = None
    #: The recipe's content-sha256 pin of the file, and the rebuilt file's content digest when
    #: it was needed (bytes differ, tensors and metadata do not).
    content_sha256: str | None = None
    rebuilt_content_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "content_sha256": self.content_sha256,
            "rebuilt_content_sha256": self.rebuilt_content_sha256,
            "path": self.path,
            "format": self.format,
            "published_sha256": self.published_sha256,
            "rebuilt_sha256": self.rebuilt_sha256,
            "verdict": self.verdict,
            "ok": self.ok,
            "comparison": self.comparison.to_json() if self.comparison else None,
            "sources": self.sources,
            "detail": self.detail,
        }


@dataclass
class FunctionalOutcome:
    metric: str
    expected: float
    tolerance: float
    values: dict[str, float]

    @property
    def ok(self) -> bool:
        return all(abs(v - self.expected) <= self.tolerance + 1e-12 for v in self.values.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "expected": self.expected,
            "tolerance": self.tolerance,
            "values": dict(sorted(self.values.items())),
            "ok": self.ok,
        }


@dataclass
class ChallengeReport:
    recipe: str
    package: str
    version: str
    level: str
    atol: float | None
    derivation: str
    build_reused: bool
    isolation: str
    files: list[FileChallenge]
    functional: FunctionalOutcome | None
    problems: list[str] = field(default_factory=list)
    #: Inputs replaced for this build: the report then shows what the replacement changed, and
    #: differences are the answer, not a failure of the recipe's promise.
    substitutions: list[Substitution] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def variant(self) -> bool:
        return bool(self.substitutions)

    @property
    def ok(self) -> bool:
        if self.variant:
            return not self.problems
        return (
            not self.problems
            and all(f.ok for f in self.files)
            and (self.functional is None or self.functional.ok)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "package": self.package,
            "version": self.version,
            "level": self.level,
            "atol": self.atol,
            "derivation": self.derivation,
            "isolation": self.isolation,
            "files": [f.to_json() for f in self.files],
            "functional": self.functional.to_json() if self.functional else None,
            "problems": self.problems,
            "substitutions": [s.to_json() for s in self.substitutions],
            "notes": self.notes,
            "ok": self.ok,
        }


def passes(verdict: str, level: str, content_as_pinned: bool = False) -> bool:
    """A bit-identical recipe promises the bytes, or for a file it pins by content-sha256, what
    they hold (``content_as_pinned``: the rebuilt file's content digest is the pin); a tolerance
    recipe promises the values."""
    if level == "bit-identical":
        return verdict == "identical" or (verdict == "same-content" and content_as_pinned)
    return verdict in ("identical", "same-content", "within-tolerance")


def challenge_recipe(
    recipe: Recipe,
    store: Store,
    *,
    env_mode: EnvMode = "venv",
    force_rebuild: bool = False,
    with_sources: bool = False,
    functional: bool = True,
    log: Log | None = None,
    variant: Recipe | None = None,
    substitutions: Sequence[Substitution] = (),
) -> ChallengeReport:
    """Rebuild (or reuse the stored build of the same derivation), then compare every published
    file with its rebuilt counterpart and run the functional check on both.

    With ``variant`` (the recipe with inputs replaced, as ``substitutions`` describe) the build
    is the variant's, and the functional check runs three times: the published weights on the
    recipe's inputs, the rebuilt ones on the variant's, and the published ones on the variant's.
    """
    from .tensorfiles import compare_files, file_content_digest

    level = recipe.reproducibility.level
    if level == "unavailable":
        reason = recipe.reproducibility.reason or "no reason given"
        raise BuildError(
            f"{recipe.origin}: cannot be challenged: reproducibility level is unavailable ({reason})"
        )
    target = variant or recipe
    built: BuildResult | None = (
        None if force_rebuild else find_build(target, store, env_mode, substitutions=substitutions)
    )
    if built is None:
        built = rebuild(target, store, env_mode=env_mode, log=log, substitutions=substitutions)
    published = fetch_recipe(recipe, store, check=True, signatures=False)
    atol = recipe.reproducibility.atol
    report = ChallengeReport(
        recipe.origin,
        recipe.package.name,
        recipe.package.version,
        level,
        atol,
        built.derivation.hex,
        built.reused,
        str(built.record.get("isolation", "")),
        [],
        None,
        substitutions=list(substitutions),
    )
    pairs: dict[str, tuple[Path, Path]] = {}
    for weight, file_report in zip(recipe.weights, published.files, strict=False):
        if file_report.status != "ok" or file_report.store_path is None:
            reasons = "; ".join(f.message for f in file_report.findings) or "not fetched"
            report.problems.append(f"{weight.path}: the published file cannot be checked: {reasons}")
            continue
        out = built.output(weight.path)
        published_path = Path(file_report.store_path)
        if out is None:
            report.files.append(
                FileChallenge(weight.path, weight.format, weight.sha256.hex, None, "missing", False)
            )
            continue
        comparison = None
        detail: str | None = None
        rebuilt_content: str | None = None
        if out.sha256 == weight.sha256:
            verdict = "identical"
        elif weight.format == "safetensors":
            try:
                comparison = compare_files(published_path, out.store_path, atol)
                verdict = comparison.verdict
                if verdict == "same-content" and weight.content_sha256 is not None:
                    rebuilt_content = file_content_digest(out.store_path)
            except UsageError as exc:  # the rebuilt file is no valid safetensors file
                verdict, detail = "differs", str(exc)
        else:
            verdict = "differs"
        pinned = weight.content_sha256.hex if weight.content_sha256 is not None else None
        as_pinned = rebuilt_content is not None and rebuilt_content == pinned
        report.files.append(
            FileChallenge(
                weight.path,
                weight.format,
                weight.sha256.hex,
                out.sha256.hex,
                verdict,
                passes(verdict, level, as_pinned),
                comparison,
                detail=detail,
                content_sha256=pinned,
                rebuilt_content_sha256=rebuilt_content,
            )
        )
        pairs[weight.path] = (published_path, out.store_path)
    if with_sources:
        with store.session(), fetch_context(recipe, store) as ctx:
            weights = {w.path: w for w in recipe.weights}
            for challenged in report.files:  # files whose published copy failed are not listed
                weight = weights[challenged.path]
                pin = Pin(weight.path, weight.sha256, weight.size, weight.content_sha256)
                checks = check_sources(pin, weight.sources, ctx)
                challenged.sources = [
                    {"source": c.source, "status": c.status, "detail": c.detail, "sha256": c.sha256}
                    for c in checks
                ]
                if any(c.status == "differs" for c in checks):
                    challenged.ok = False
    check = recipe.reproducibility.functional
    if functional and check is not None and check.command and recipe.weights:
        first = recipe.weights[0].path
        if first in pairs:
            published_path, rebuilt_path = pairs[first]
            if variant is None:
                values = run_functional(
                    recipe,
                    store,
                    {"published": published_path, "rebuilt": rebuilt_path},
                    env_mode=env_mode,
                    log=log,
                )
            else:
                try:
                    values = run_functional(recipe, store, {"published": published_path}, env_mode=env_mode)
                except BuildError as exc:
                    # The inputs the recipe pins may be gone (its upstream re-released them):
                    # the recipe's own statement of what the published weights give stands in.
                    values = {"published": check.expected}
                    why = str(exc).splitlines()[0].removeprefix(f"{recipe.origin}: ")
                    why = why.removesuffix("; the build command was not run")
                    report.notes.append(
                        f"published {check.metric} is the recipe's expected value: its own inputs "
                        f"could not be evaluated ({why})"
                    )
                values.update(
                    run_functional(
                        variant,
                        store,
                        {"rebuilt": rebuilt_path, "published-on-new-inputs": published_path},
                        env_mode=env_mode,
                    )
                )
            report.functional = FunctionalOutcome(check.metric, check.expected, check.tolerance, values)
    return report


def _variant_lines(report: ChallengeReport) -> list[str]:
    """What a substituted input did to the weights and to the metric; no pass or fail."""
    head = report.recipe
    lines = [f"  FAILED: {problem}" for problem in report.problems]
    for f in report.files:
        if f.verdict == "identical":
            lines.append(f"  {f.path}: identical to the published file despite the substitution")
        elif f.verdict == "missing":
            lines.append(f"  {f.path}: the build did not produce it")
        else:
            lines.extend(_difference_lines(f))
    if report.functional is not None:
        lines.extend(functional_change_lines(report.functional))
    lines.extend(f"    note: {note}" for note in report.notes)
    lines.append(f"{head}: variant built; the published files are untouched")
    return lines


def _difference_lines(f: FileChallenge, suffix: str = "") -> list[str]:
    """Both hashes of a file whose rebuild is not identical, and its tensor differences."""
    lines = [
        f"  {f.path}: {f.verdict}: published sha256 {f.published_sha256[:12]}…, "
        f"rebuilt {str(f.rebuilt_sha256)[:12]}…{suffix}"
    ]
    if f.comparison is not None:
        said = describe(f.comparison, f"published {f.path}", f"rebuilt {f.path}")
        lines.extend(f"    {line}" for line in said)
    return lines


def functional_change_lines(fn: FunctionalOutcome) -> list[str]:
    """The published weights on the recipe's inputs against the rebuilt ones on the new inputs."""
    values = fn.values
    out = []
    if "published" in values and "rebuilt" in values:
        delta = values["rebuilt"] - values["published"]
        out.append(
            f"  functional {fn.metric}: published {values['published']:g} → rebuilt {values['rebuilt']:g} "
            f"({delta:+.6g})"
        )
    if "published-on-new-inputs" in values:
        out.append(f"    the published weights on the new inputs: {values['published-on-new-inputs']:g}")
    return out


def challenge_lines(report: ChallengeReport) -> list[str]:
    """The human report: one block per recipe, tensor differences as ``describe`` words them."""
    head = report.recipe
    atol = "none" if report.atol is None else f"{report.atol:g}"
    lines = [f"{head}: challenge {report.package} {report.version} (level {report.level}, atol {atol})"]
    how = "a stored build of the same derivation" if report.build_reused else "rebuilt now"
    lines.append(f"  build {report.derivation[:12]}…: {how}; isolation: {report.isolation}")
    for change in report.substitutions:
        pinned = (change.pinned_sha256 or "none")[:12]
        lines.append(
            f"  input {change.input} substituted: {change.origin}: sha256 {change.sha256.hex[:12]}…, "
            f"{change.size} bytes (the recipe pins {pinned}…, {change.pinned_size} bytes)"
        )
    if report.variant:
        return lines + _variant_lines(report)
    for problem in report.problems:
        lines.append(f"  FAILED: {problem}")
    for f in report.files:
        status = "ok" if f.ok else "FAILED"
        if f.verdict == "identical":
            lines.append(f"  {f.path}: identical (sha256 {f.published_sha256[:12]}…): {status}")
        elif f.verdict == "missing":
            lines.append(f"  {f.path}: the build did not produce it: {status}")
        else:
            lines.extend(_difference_lines(f, f": {status}"))
            if f.comparison is None and f.detail:
                lines.append(f"    {f.detail}")
            elif f.comparison is None and f.verdict == "differs":
                lines.append(f"    {f.format} files are compared byte for byte only")
            if f.rebuilt_content_sha256 is not None:
                agrees = "the recipe's pin" if f.rebuilt_content_sha256 == f.content_sha256 else "not the pin"
                lines.append(f"    rebuilt content-sha256 {f.rebuilt_content_sha256[:12]}…: {agrees}")
            if not f.ok and f.verdict in ("same-content", "within-tolerance"):
                promise = "the same bytes"
                if f.verdict == "same-content" and f.content_sha256 is None:
                    promise += " (a content-sha256 pin would accept the same tensors in other bytes)"
                lines.append(f"    the recipe's level is {report.level}, which promises {promise}")
        for source in f.sources:
            lines.append(f"    {source['source']}: {source['status']}: {source['detail']}")
    if report.functional is not None:
        fn = report.functional
        shown = ", ".join(f"{label} {value:g}" for label, value in sorted(fn.values.items()))
        verdict = "ok" if fn.ok else "FAILED"
        lines.append(
            f"  functional {fn.metric}: {shown} (expected {fn.expected:g} ± {fn.tolerance:g}): {verdict}"
        )
    if report.ok:
        best = max((VERDICTS.index(f.verdict) for f in report.files), default=0)
        lines.append(f"{head}: challenge passed: {VERDICTS[best]}")
    else:
        failed = sum(1 for f in report.files if not f.ok) + len(report.problems)
        what = [f"{failed} of {len(report.files)} file(s) failed"] if failed else []
        if report.functional is not None and not report.functional.ok:
            what.append("the functional check failed")
        lines.append(f"{head}: challenge FAILED: {'; '.join(what)}")
    return lines
