"""Distributor policy: the Debian ML-Policy class of a package, and the rules a distributor
enforces on it. Pure: takes the recipe and the facts verify found, returns findings.

The class follows the Debian Deep Learning Team's Machine Learning Policy:

- **Free**: the weights are under a free licence, and the training data and the training
  program are available under free licences;
- **ToxicCandy**: the weights are under a free licence, but the training data or the training
  program is not available, or not under a free licence;
- **Non-free**: the weights' licence is not free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .recipe import Recipe

MLClass = Literal["Free", "ToxicCandy", "Non-free"]
#: Classes from best to worst, so a minimum can be compared.
CLASS_ORDER: tuple[MLClass, ...] = ("Free", "ToxicCandy", "Non-free")

#: Licences free in the sense of the DFSG (and OSI/FSF), as SPDX ids. LicenseRef-… ids are
#: unknown unless a policy lists them in ``free-licenses``.
FREE_LICENSES = frozenset(
    """
    0BSD AFL-3.0 AGPL-3.0-only AGPL-3.0-or-later Apache-1.1 Apache-2.0 Artistic-2.0 BSD-1-Clause
    BSD-2-Clause BSD-2-Clause-Patent BSD-3-Clause BSD-3-Clause-Clear BSL-1.0 CC-BY-3.0 CC-BY-4.0
    CC-BY-SA-3.0 CC-BY-SA-4.0 CC0-1.0 CDLA-Permissive-1.0 CDLA-Permissive-2.0 CDLA-Sharing-1.0
    ECL-2.0 EPL-1.0 EPL-2.0 EUPL-1.2 GPL-2.0-only GPL-2.0-or-later GPL-3.0-only
    GPL-3.0-or-later ISC LGPL-2.0-only LGPL-2.0-or-later LGPL-2.1-only LGPL-2.1-or-later
    LGPL-3.0-only LGPL-3.0-or-later MIT MIT-0 MPL-1.1 MPL-2.0 MS-PL NCSA ODbL-1.0 OFL-1.1 PDDL-1.0
    PostgreSQL PSF-2.0 Python-2.0 Unicode-3.0 Unicode-DFS-2016 Unlicense UPL-1.0 W3C WTFPL X11
    Zlib ZPL-2.1
    """.split()
)

#: Formats whose loading runs a pickle: code, not data.
PICKLE_FORMATS = frozenset({"pytorch-pickle", "torchscript", "pickle"})
#: numpy files carry a pickle only for object arrays; the scan says whether this one does.


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A distributor's rules (policies/*.toml, checked against schemas/policy.schema.json)."""

    name: str
    description: str = ""
    minimum_class: MLClass = "Non-free"
    allowed_licenses: tuple[str, ...] | None = None  # None: any licence
    free_licenses: tuple[str, ...] = ()  # LicenseRef-… ids this distributor counts as free
    require_bias_notes: bool = False
    require_rebuildable: bool = False
    pickle: Literal["forbid", "allow-safe", "allow"] = "allow"
    require_signatures: bool = False
    trusted_keys: tuple[str, ...] = ()  # as written; the edge resolves paths against the policy file
    require_seed_report: bool = False
    minimum_seeds: int = 2

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        meta = data.get("policy", {})
        rules = data.get("rules", {})
        allowed = rules.get("allowed-licenses")
        return cls(
            name=meta["name"],
            description=meta.get("description", ""),
            minimum_class=rules.get("minimum-class", "Non-free"),
            allowed_licenses=tuple(allowed) if allowed is not None else None,
            free_licenses=tuple(rules.get("free-licenses", ())),
            require_bias_notes=rules.get("require-bias-notes", False),
            require_rebuildable=rules.get("require-rebuildable", False),
            pickle=rules.get("pickle", "allow"),
            require_signatures=rules.get("require-signatures", False),
            trusted_keys=tuple(rules.get("trusted-keys", ())),
            require_seed_report=rules.get("require-seed-report", False),
            minimum_seeds=rules.get("minimum-seeds", 2),
        )


@dataclass(frozen=True)
class Classification:
    """The ML-Policy class and the reasons that decided it."""

    ml_class: MLClass
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyFinding:
    """One broken rule: its name, and what about the package breaks it."""

    rule: str
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class PackageFacts:
    """What verify learned about the files, which the recipe alone cannot say."""

    pickle_verdicts: Mapping[str, str] = field(default_factory=dict)  # path → safe/unknown/dangerous
    signed: bool = False
    #: The seed-sensitivity report found for the recipe (``rebuild --seeds`` keeps it in the
    #: store), and the basis a current one would have: what it depends on besides the seed.
    seed_report: Mapping[str, Any] | None = None
    seed_basis: str | None = None


def _licence_tree(expression: str) -> Any:
    from license_expression import Licensing  # pure; parsing only, the SPDX check is done already

    return Licensing().parse(expression)


def satisfies(expression: str, accepted: Iterable[str]) -> bool:
    """Whether a licence expression can be honoured using only ``accepted`` licences:
    OR needs one branch, AND needs all; an exception (WITH) only adds permissions."""
    allowed = {a.lower() for a in accepted}
    if not any(c in expression for c in " ()"):  # a bare id: no need to import the parser
        return expression.lower() in allowed

    def walk(node: Any) -> bool:
        kind = type(node).__name__
        if kind == "OR":
            return any(walk(arg) for arg in node.args)
        if kind == "AND":
            return all(walk(arg) for arg in node.args)
        if kind == "LicenseWithExceptionSymbol":
            return str(node.license_symbol).lower() in allowed
        return str(node).lower() in allowed

    return walk(_licence_tree(expression))


def is_free(expression: str | None, extra_free: Iterable[str] = ()) -> bool:
    if expression is None or expression in ("NONE", "NOASSERTION"):
        return False
    return satisfies(expression, FREE_LICENSES | set(extra_free))


def classify(recipe: Recipe, extra_free: Iterable[str] = ()) -> Classification:
    """The Debian ML-Policy class, derived from licences and the availability of inputs."""
    extra = tuple(extra_free)
    if not is_free(recipe.license.weights, extra):
        weights = recipe.license.weights
        why = (
            f"the weights' licence {weights} is not known to be free (a policy may list it in free-licenses)"
            if "LicenseRef-" in weights
            else f"the weights' licence {weights} is not free"
        )
        return Classification("Non-free", (why,))
    reasons = []
    for role, what in (("data", "training data"), ("code", "training program")):
        inputs = [i for i in recipe.inputs if i.role == role]
        if not inputs:
            reasons.append(f"no {what} is declared")
            continue
        for item in inputs:
            if not item.available:
                reasons.append(f"{what} {item.name} is not available: {item.unavailable_reason}")
            elif not is_free(item.license, extra):
                reasons.append(f"{what} {item.name} is not under a free licence ({item.license})")
    if reasons:
        return Classification("ToxicCandy", tuple(reasons))
    return Classification("Free", ("free weights, training data and program available under free licences",))


def evaluate(recipe: Recipe, policy: Policy, facts: PackageFacts | None = None) -> list[PolicyFinding]:
    """Every rule of ``policy`` the package breaks, in rule order."""
    facts = facts or PackageFacts()
    found: list[PolicyFinding] = []
    klass = classify(recipe, policy.free_licenses)
    if CLASS_ORDER.index(klass.ml_class) > CLASS_ORDER.index(policy.minimum_class):
        found.append(
            PolicyFinding(
                "minimum-class",
                f"the package is {klass.ml_class}, the policy requires {policy.minimum_class}: "
                + "; ".join(klass.reasons),
            )
        )
    if policy.allowed_licenses is not None and not satisfies(recipe.license.weights, policy.allowed_licenses):
        found.append(
            PolicyFinding(
                "allowed-licenses",
                f"the weights' licence {recipe.license.weights} is not among the allowed licences",
            )
        )
    if policy.require_bias_notes and recipe.bias is None:
        found.append(PolicyFinding("require-bias-notes", "the recipe has no [bias] notes"))
    if policy.require_rebuildable and not recipe.rebuildable:
        found.append(PolicyFinding("require-rebuildable", f"not rebuildable: {_why_not_rebuildable(recipe)}"))
    if policy.pickle != "allow":
        found.extend(_pickle_findings(recipe, policy, facts))
    if policy.require_signatures and not facts.signed:
        found.append(PolicyFinding("require-signatures", "no trusted signature was verified"))
    if policy.require_seed_report:
        found.extend(_seed_report_findings(recipe, policy, facts))
    if recipe.todos:  # every policy: a TODO is a statement nobody has made yet
        markers = f"{len(recipe.todos)} TODO marker{'s' if len(recipe.todos) != 1 else ''}"
        found.append(PolicyFinding("todo", f"{markers} still to be filled in: {', '.join(recipe.todos)}"))
    return found


def _seed_report_findings(recipe: Recipe, policy: Policy, facts: PackageFacts) -> list[PolicyFinding]:
    """A current seed-sensitivity report, with enough seeds, within the spread the recipe accepts."""
    rule = "require-seed-report"
    if recipe.seeds is None:
        return [
            PolicyFinding(
                rule,
                "the recipe declares no [seeds], so its sensitivity to the seed cannot be measured",
            )
        ]
    report = facts.seed_report
    command = f"weightpkg rebuild {recipe.origin} --seeds {max(policy.minimum_seeds, 5)}"
    if report is None:
        return [PolicyFinding(rule, f"no seed-sensitivity report; make one with: {command}")]
    if report.get("basis") != facts.seed_basis:
        return [
            PolicyFinding(
                rule,
                f"the seed-sensitivity report was made for another build of the recipe (inputs, "
                f"code or evaluation changed since); make a new one with: {command}",
            )
        ]
    found = []
    seeds = report.get("seeds")
    count = len(seeds) if isinstance(seeds, list) else 0
    if count < policy.minimum_seeds:
        found.append(
            PolicyFinding(
                rule,
                f"the seed-sensitivity report has {count} seeds, the policy requires {policy.minimum_seeds}",
            )
        )
    if report.get("ok") is not True:
        found.append(
            PolicyFinding(rule, "the spread across seeds exceeds what the recipe accepts ([seeds.accept])")
        )
    return found


def _why_not_rebuildable(recipe: Recipe) -> str:
    if recipe.build is None:
        return "the recipe declares no [build]"
    if recipe.reproducibility.level == "unavailable":
        return recipe.reproducibility.reason or "reproducibility level is unavailable"
    missing = [i.name for i in recipe.inputs if not i.available]
    return f"inputs not available: {', '.join(missing)}"


def _pickle_findings(recipe: Recipe, policy: Policy, facts: PackageFacts) -> Sequence[PolicyFinding]:
    found = []
    for w in recipe.weights:
        verdict = facts.pickle_verdicts.get(w.path)
        if w.format not in PICKLE_FORMATS and verdict in (None, "safe"):
            continue  # a numpy file without object arrays carries no pickle
        if policy.pickle == "forbid":
            found.append(PolicyFinding("pickle", f"{w.path} is {w.format}: loading it runs a pickle"))
        elif verdict != "safe":
            found.append(
                PolicyFinding(
                    "pickle",
                    f"{w.path} is {w.format} and its scan says {verdict or 'nothing (not scanned)'}; "
                    "the policy allows only pickles whose globals are all allowlisted",
                )
            )
    return found
