"""What a distro build runs: fetch what is missing, then check every published file, collect
every finding, and only then decide."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .acquire import Pin, SourceCheck, check_sources, fetch_context, obtain
from .checks import Checks, HashedAhead, check_workers, entry_identity
from .core.digest import Digest, hash_stream
from .core.recipe import Recipe
from .errors import FetchError, IntegrityError
from .store import Store

if TYPE_CHECKING:
    from .core.policy import Policy, PolicyFinding
    from .sources import Progress


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, which rule (a stable id), which file, and what to tell a human."""

    severity: str  # "error" | "warning"
    rule: str
    file: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "rule": self.rule, "file": self.file, "message": self.message}


@dataclass
class FileReport:
    """The verdict on one published file (or input) and everything said about it."""

    path: str
    sha256: str
    size: int
    format: str | None
    role: str = "weights"
    status: str = "ok"  # ok | failed
    problem: str | None = None
    store_path: str | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    sources: list[SourceCheck] = field(default_factory=list)
    declared_licenses: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def fail(self, rule: str, problem: str) -> None:
        """Record a failing finding: ``rule`` is its stable id, ``problem`` says it to a human."""
        self.status = "failed"
        self.problem = problem if self.problem is None else f"{self.problem}; {problem}"
        self.findings.append(Finding("error", rule, self.path, problem))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "role": self.role,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "store_path": self.store_path,
            "source": self.source,
            "notes": list(self.notes),
        }
        if self.format:
            out["format"] = self.format
        if self.problem:
            out["problem"] = self.problem
        if self.details:
            out["details"] = self.details
        if self.sources:
            out["sources"] = [
                {
                    "source": s.source,
                    "status": s.status,
                    "detail": s.detail,
                    "sha256": s.sha256,
                    "declared_license": s.declared_license,
                }
                for s in self.sources
            ]
        if self.declared_licenses:
            out["declared_licenses"] = self.declared_licenses
        return out


@dataclass
class RecipeReport:
    recipe: str
    package: str
    version: str
    license: dict[str, str] = field(default_factory=dict)
    files: list[FileReport] = field(default_factory=list)
    ml_class: str = ""
    class_reasons: list[str] = field(default_factory=list)
    policy: str | None = None
    policy_findings: list[PolicyFinding] = field(default_factory=list)
    #: ``verify --attestation``: the attestation's report (JSON) and its findings.
    attestation: dict[str, Any] | None = None
    attestation_findings: list[Finding] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """Every finding of the recipe: files first, then policy rules (file: the recipe), then
        the attestation's (file: the attestation)."""
        found = [finding for f in self.files for finding in f.findings]
        found += [
            Finding(p.severity, f"policy-{p.rule}", self.recipe, p.message) for p in self.policy_findings
        ]
        return found + self.attestation_findings

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "package": self.package,
            "version": self.version,
            "license": self.license,
            "verdict": "verified" if self.ok else "failed",
            "findings": [f.to_json() for f in self.findings],
            "files": [f.to_json() for f in self.files],
            "ml_policy_class": {"class": self.ml_class, "reasons": self.class_reasons},
            "policy": None
            if self.policy is None
            else {
                "name": self.policy,
                "findings": [
                    {"rule": p.rule, "severity": p.severity, "message": p.message}
                    for p in self.policy_findings
                ],
            },
            **({"attestation": self.attestation} if self.attestation is not None else {}),
        }


def check_entry(path: Path, pin: Pin, report: FileReport, ahead: Callable[[], Any] | None = None) -> None:
    """Re-hash a store entry: the store is a cache, not an authority. ``ahead`` gives the hash
    started early (see HashedAhead); it counts only if the entry is still the file it hashed."""
    hashed = ahead() if ahead is not None else None
    if hashed is not None and hashed[0] is not None and hashed[0] == entry_identity(path):
        size, digest = hashed[0][2], hashed[1]
    else:
        size = path.stat().st_size
        with open(path, "rb", buffering=0) as handle:
            digest, _ = hash_stream(handle)
    if size != pin.size:
        report.fail("store-entry-altered", f"store entry {path} has {size} bytes, expected {pin.size}")
    if digest != pin.sha256:
        report.fail(
            "store-entry-altered",
            f"store entry {path} was altered: sha256 expected {pin.sha256.hex}, got {digest.hex}",
        )


def check_safetensors(path: Path, report: FileReport) -> None:
    from .core.safetensors import SafetensorsError, header_length, parse_layout

    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        try:
            n = header_length(prefix, size)
            layout = parse_layout(handle.read(n), size)
        except SafetensorsError as exc:
            for finding in exc.findings:
                rule = getattr(finding, "rule", "malformed")
                report.fail(f"safetensors-{rule}", f"safetensors: {finding}")
            return
    report.details["safetensors"] = {
        "tensors": len(layout.tensors),
        "header_bytes": layout.header_size,
        "dtypes": sorted({t.dtype for t in layout.tensors}),
    }


def check_content(path: Path, pinned: Digest, report: FileReport) -> None:
    """The recipe's two pins of one file must agree: its sha256 names these bytes, its
    content-sha256 what they hold. A mismatch is a recipe error, found before anyone relies on it."""
    from .tensorfiles import file_content_digest

    found = file_content_digest(path)  # the strict parser has already accepted the file
    report.details["safetensors"]["content_sha256"] = found
    if found != pinned.hex:
        report.fail(
            "content-mismatch",
            f"content-sha256 mismatch: the recipe pins {pinned.hex}, the file's content digest is {found}",
        )


#: Formats whose files may carry pickles: scanned (never loaded) by verify.
SCANNED_FORMATS = frozenset({"pytorch-pickle", "torchscript", "pickle", "numpy"})


def check_pickles(path: Path, report: FileReport) -> None:
    """Scan a pickle-bearing file's opcodes; dangerous or unreadable pickles fail the file,
    unknown globals are left to the policy (pickle = "allow-safe" refuses them)."""
    from .scan import scan_file

    result = scan_file(path)
    report.details["pickle"] = {
        "verdict": result.verdict,
        "globals": sorted({g.dotted for g in result.globals}),
    }
    for finding in result.findings:
        if finding.severity == "error":
            report.fail(f"pickle-{finding.rule}", f"pickle scan: {finding.message}")


def _pins(recipe: Recipe, with_inputs: bool) -> list[tuple[FileReport, Pin, Sequence[Any]]]:
    out = []
    for w in recipe.weights:
        pin = Pin(w.path, w.sha256, w.size, w.content_sha256)
        report = FileReport(w.path, w.sha256.hex, w.size, w.format)
        report.declared_licenses = [
            {"source": number, "license": source.declared_license}
            for number, source in enumerate(w.sources, start=1)
            if source.declared_license is not None
        ]
        out.append((report, pin, w.sources))
    if with_inputs:
        for i in recipe.inputs:
            if not i.available or i.sha256 is None or i.size is None:
                continue
            path = i.path or i.name
            report = FileReport(path, i.sha256.hex, i.size, None, role=i.role)
            out.append((report, Pin(path, i.sha256, i.size), i.sources))
    return out


def manifest_for(recipe: Recipe, files: Sequence[FileReport], store: Store) -> dict[str, Any]:
    """The package's manifest: its files, and the inputs already in the store (kept from GC)."""
    files = list(files)
    listed = {(f.role, f.path) for f in files}
    for report, pin, _ in _pins(recipe, with_inputs=True):
        if (report.role, report.path) in listed:
            continue
        found = store.lookup(pin.sha256, pin.name)
        if found is not None:
            report.store_path = str(found)
            files.append(report)
    return {
        "package": recipe.package.name,
        "version": recipe.package.version,
        "license": {"weights": recipe.license.weights, "upstream": recipe.license.upstream},
        "files": [
            {
                "path": f.path,
                "role": f.role,
                "sha256": f.sha256,
                "size": f.size,
                **({"format": f.format} if f.format else {}),
                "store_path": str(Path(f.store_path).relative_to(store.root)) if f.store_path else None,
            }
            for f in sorted(files, key=lambda f: (f.role, f.path))
        ],
    }


def check_file(
    path: Path, pin: Pin, file_format: str | None, rehash: bool, ahead: Callable[[], Any] | None = None
) -> FileReport:
    """Every check of one store entry, recorded on a scratch report of its own: checks run on
    worker threads, and the recipe's thread merges each scratch into the real report in file
    order, so a report reads the same whatever the number of threads."""
    scratch = FileReport(pin.path, pin.sha256.hex, pin.size, file_format)
    if rehash:
        check_entry(path, pin, scratch, ahead)
    if file_format == "safetensors" and scratch.status == "ok":
        check_safetensors(path, scratch)
        if pin.content_sha256 is not None and scratch.status == "ok":
            check_content(path, pin.content_sha256, scratch)
    elif file_format in SCANNED_FORMATS and scratch.status == "ok":
        check_pickles(path, scratch)
    return scratch


class _Pending:
    """A recipe whose files are in the store (or failed to get there), their checks under way."""

    __slots__ = ("checks", "recipe", "report")

    def __init__(self, recipe: Recipe, report: RecipeReport) -> None:
        self.recipe = recipe
        self.report = report
        #: Per file: its report, the result of its checks (None: no checks), and its sources'
        #: comparison (None: not asked for).
        self.checks: list[
            tuple[FileReport, Callable[[], FileReport] | None, list[SourceCheck] | None, int]
        ] = []


def fetch_recipe(recipe: Recipe, store: Store, **options: Any) -> RecipeReport:
    """One recipe's report: see fetch_recipes."""
    return fetch_recipes([recipe], store, **options)[0]


def fetch_recipes(
    recipes: Sequence[Recipe],
    store: Store,
    *,
    with_inputs: bool = False,
    all_sources: bool = False,
    check: bool = True,
    signatures: bool = True,
    policy: Policy | None = None,
    progress: Progress | None = None,
    jobs: int | None = None,
    ahead: HashedAhead | None = None,
) -> list[RecipeReport]:
    """Fetch every published file (and inputs if asked) into the store, check each one, and
    judge each package by its ML-Policy class and the distributor's policy if one is given.
    With ``check``, signatures are checked too unless ``signatures`` is false (as when signing).

    Files are fetched one at a time, in order, while up to ``jobs`` threads check those already
    in the store, of this recipe and the ones before it. Reports come back in recipe order.
    With ``ahead``, its threads do the checks, and the entries it hashed are not hashed again."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.session())
        if ahead is not None and check:
            checks = ahead.checks
        else:
            ahead = None
            checks = stack.enter_context(Checks(check_workers(jobs) if check else 1))
        pending = [
            _obtain_files(recipe, store, checks, with_inputs, all_sources, check, progress, ahead)
            for recipe in recipes
        ]
        return [_conclude(p, store, check and signatures, policy) for p in pending]


def _obtain_files(
    recipe: Recipe,
    store: Store,
    checks: Checks,
    with_inputs: bool,
    all_sources: bool,
    check: bool,
    progress: Progress | None,
    ahead: HashedAhead | None,
) -> _Pending:
    """Bring each file into the store and start its checks."""
    licenses = {
        key: value for key, value in vars(recipe.license).items() if value is not None and key != "notes"
    }
    pending = _Pending(
        recipe, RecipeReport(recipe.origin, recipe.package.name, recipe.package.version, licenses)
    )
    with fetch_context(recipe, store, progress) as ctx:
        for file_report, pin, sources in _pins(recipe, with_inputs):
            pending.report.files.append(file_report)
            try:
                got = obtain(store, pin, sources, ctx)
            except IntegrityError as exc:
                file_report.notes.extend(exc.notes)
                file_report.fail(f"{exc.kind}-mismatch", exc.mismatch)
                result = None
            except FetchError as exc:
                file_report.notes.extend(exc.attempts)
                file_report.fail("fetch-failed", "no source delivered it")
                result = None
            else:
                file_report.notes.extend(got.notes)
                file_report.source = got.source or ("store" if check else "store, not re-hashed")
                file_report.store_path = str(got.store_path)
                rehash = got.source is None
                early = ahead.take(got.store_path) if ahead is not None and rehash else None
                result = (
                    checks.submit(check_file, got.store_path, pin, file_report.format, rehash, early)
                    if check
                    else None
                )
            compared = None
            if all_sources and len(sources) > 1 and file_report.store_path is not None:
                compared = check_sources(pin, sources, ctx)
            pending.checks.append((file_report, result, compared, len(sources)))
    return pending


def _conclude(pending: _Pending, store: Store, signatures: bool, policy: Policy | None) -> RecipeReport:
    """Merge each file's checks into its report, in file order; then signatures, policy, manifest."""
    from .core.policy import PackageFacts, classify, evaluate

    recipe, report = pending.recipe, pending.report
    classification = classify(recipe, policy.free_licenses if policy else ())
    report.ml_class = classification.ml_class
    report.class_reasons = list(classification.reasons)
    for file_report, result, compared, declared in pending.checks:
        if result is not None:
            scratch = result()
            for finding in scratch.findings:
                file_report.fail(finding.rule, finding.message)
            file_report.details.update(scratch.details)
        if compared is not None:
            file_report.sources = compared
            for s in compared:  # "same-content" passes: the recipe pins content too
                if s.status == "differs":
                    file_report.fail("source-differs", f"{s.source} delivers different bytes: {s.detail}")
            usable = [s for s in compared if s.status != "unavailable"]
            if len(usable) < 2:
                file_report.notes.append(f"only {len(usable)} of {declared} sources could be compared")
    signed = check_signatures(recipe, report, policy) if signatures else False
    if policy is not None:
        report.policy = policy.name
        verdicts = {f.path: f.details["pickle"]["verdict"] for f in report.files if "pickle" in f.details}
        seed_report, seed_basis = None, None
        if policy.require_seed_report and recipe.seeds is not None:
            from .seeds import find_seed_report, report_basis

            seed_report, seed_basis = find_seed_report(recipe, store), report_basis(recipe)
        facts = PackageFacts(
            pickle_verdicts=verdicts, signed=signed, seed_report=seed_report, seed_basis=seed_basis
        )
        report.policy_findings = evaluate(recipe, policy, facts)
    if all(f.status == "ok" for f in report.files):
        store.write_manifest(recipe.id, manifest_for(recipe, report.files, store))
    return report


def signature_path(recipe: Recipe, weight_path: str) -> Path:
    """Where a published file's minisign signature lives: ``<recipe>.signatures/<path>.minisig``
    beside the recipe, so signatures travel with the recipe whatever the file's sources are."""
    origin = Path(recipe.origin)
    return origin.parent / f"{origin.stem}.signatures" / f"{weight_path}.minisig"


def check_signatures(recipe: Recipe, report: RecipeReport, policy: Policy | None) -> bool:
    """Verify each published file's signature against the keys the recipe and the policy trust.

    A signature that is there but does not hold is a failing finding; so is a missing one when
    the recipe names keys, since the recipe then promises signed files. True when every file is
    signed by a key the policy trusts, or by a recipe key where the policy names none: that is
    what ``require-signatures`` asks for, and a recipe cannot vouch for itself to a policy that
    has keys of its own.
    """
    from .load import resolve_keys

    base = Path(recipe.origin).parent
    recipe_keys = resolve_keys(recipe.signatures.trusted_keys, base) if recipe.signatures else ()
    policy_keys = policy.trusted_keys if policy is not None else ()
    keys = [(key, "policy") for key in policy_keys] + [(key, "recipe") for key in recipe_keys]
    if not keys:
        return False
    from .errors import SignatureError, UsageError
    from .signing import verify_minisign  # imports cryptography: only when there are keys

    counted = "policy" if policy_keys else "recipe"
    all_signed = True
    for file_report in report.files:
        if file_report.role != "weights":
            continue
        sig = signature_path(recipe, file_report.path)
        if file_report.store_path is None:
            all_signed = False
            continue
        if not sig.is_file():
            all_signed = False
            if recipe_keys:
                file_report.fail(
                    "signature-missing", f"the recipe names trusted keys, but there is no signature {sig}"
                )
            continue
        holder = None
        failures = []
        for key, named_by in keys:
            try:
                verified = verify_minisign(file_report.store_path, key, sig, name=Path(file_report.path).name)
            except (SignatureError, UsageError) as exc:
                failures.append(str(exc))
                continue
            file_report.notes.append(
                f"signed by minisign key {verified.key}, trusted by the {named_by} ({sig})"
            )
            holder = named_by
            break
        if holder is None:
            file_report.fail("signature-invalid", f"signature {sig} does not hold: {'; '.join(failures)}")
        if holder != counted:
            all_signed = False
    return all_signed
