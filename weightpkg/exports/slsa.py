"""SLSA Provenance v1 for a rebuild: an in-toto Statement v1 made from a stored build and its build
record, signed as a DSSE envelope with weightpkg's keys, and the check of such an envelope against
a recipe and a store.

The statement claims nothing the build record does not hold, and holds no timestamp, so the same
build gives the same bytes in any store. ``docs/provenance.md`` defines the build type
(:data:`BUILD_TYPE`) precisely enough for another tool to check it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..builder import BuildResult, EnvMode, derivation, find_build
from ..core.digest import hash_stream
from ..core.recipe import Recipe, parse_requirement
from ..errors import BuildError, SignatureError, UsageError, reading
from ..signing import IN_TOTO_PAYLOAD_TYPE, check_dsse, load_dsse_public_keys, sign_dsse
from ..store import Store
from ..verification import Finding

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: How to read the predicate (docs/provenance.md); a new version whenever its meaning changes.
BUILD_TYPE = "https://weightpkg.dev/provenance/rebuild/v1"
#: ``runDetails.builder.id`` is this with ``#venv`` or ``#current``: the two environment modes give
#: different guarantees, and SLSA wants one builder id per mode of operation.
BUILDER_ID = "https://weightpkg.dev/provenance/builder/v1"
ENV_MODES: tuple[EnvMode, ...] = ("venv", "current")
#: The parameters of BUILD_TYPE; a verifier rejects any other (as SLSA advises).
EXTERNAL_PARAMETERS = ("envMode", "package", "recipe")
#: What the build record says of how the build ran, copied for reproducing and debugging.
INTERNAL_PARAMETERS = (
    "command",
    "device",
    "environment",
    "interpreter",
    "isolation",
    "libraries",
    "platform",
)
#: Resolved dependencies whose ``uri`` starts with this are the build environment's requirements.
PYPI_PURL = "pkg:pypi/"
#: An envelope is a statement and a signature; a larger file is not one.
_ENVELOPE_LIMIT = 64 << 20

#: The stable ids of :func:`check_attestation`'s findings (docs/provenance.md).
RULES = (
    "attestation-malformed",
    "attestation-payload-type",
    "attestation-bad-signature",
    "attestation-unknown-key",
    "attestation-statement",
    "attestation-build-type",
    "attestation-builder",
    "attestation-unexpected-parameter",
    "attestation-recipe-mismatch",
    "attestation-input-mismatch",
    "attestation-requirement-mismatch",
    "attestation-subject-mismatch",
    "attestation-derivation",
)


# --- the statement -------------------------------------------------------------------------------


def build_env_mode(recipe: Recipe, build: BuildResult) -> EnvMode:
    """The environment mode a stored build was made in, found from its derivation; BuildError when
    the build is not one of this recipe as it is now (a statement would then misstate it)."""
    if recipe.build is None:
        raise UsageError(f"{recipe.origin}: the recipe has no [build] table, so nothing of it was built")
    for mode in ENV_MODES:
        if derivation(recipe, mode) == build.derivation:
            return mode
    raise BuildError(
        f"{recipe.origin}: build {build.derivation.hex} is not a build of this recipe as it is now "
        f"(in either environment mode): rebuild it"
    )


def provenance_statement(recipe: Recipe, build: BuildResult) -> dict[str, Any]:
    """The in-toto Statement v1 with an SLSA Provenance v1 predicate for a stored build: every
    output as a subject, the recipe as the external parameters, every input (and, in a venv, every
    pinned requirement) as a resolved dependency. Deterministic: no timestamps, the record's order,
    store paths as ``$WEIGHTPKG_STORE``."""
    env_mode = build_env_mode(recipe, build)
    record = build.record
    if record.get("recipe", {}).get("id") != recipe.id:
        raise BuildError(
            f"{recipe.origin}: the build record is of {record.get('recipe')}, not of {recipe.id}"
        )
    dependencies = [_input_descriptor(item) for item in record["inputs"]]
    if env_mode == "venv":  # with --env current nothing was installed from the pins
        dependencies += [_requirement_descriptor(line, recipe) for line in record["requirements"]]
    builder = record["builder"]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": o.path, "digest": {"sha256": o.sha256.hex}} for o in build.outputs],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {"file": record["recipe"]["file"], "sha256": record["recipe"]["sha256"]},
                    "package": {"name": recipe.package.name, "version": recipe.package.version},
                    "envMode": env_mode,
                },
                "internalParameters": {key: record[key] for key in INTERNAL_PARAMETERS},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": f"{BUILDER_ID}#{env_mode}",
                    "version": {
                        "weightpkg": str(builder["version"]),
                        "buildProtocol": str(builder["protocol"]),
                    },
                },
                "metadata": {"invocationId": build.derivation.hex},
                "byproducts": [
                    {
                        "name": f"{recipe.id}.build-record.json",
                        "digest": {"sha256": _sha256_of(build.record_path)},
                        "mediaType": "application/json",
                    }
                ],
            },
        },
    }


def _input_descriptor(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": item["name"],
        "digest": {"sha256": item["sha256"]},
        "annotations": {"role": item["role"], "path": item["path"], "size": item["size"]},
    }


def _requirement_descriptor(line: str, recipe: Recipe) -> dict[str, Any]:
    """A pinned requirement as a package URL; with several allowed wheels the one pip took is not
    known, so they are listed instead of a digest."""
    parsed = parse_requirement(line)
    if isinstance(parsed, str):
        raise BuildError(f"{recipe.origin}: {parsed}")
    name, version, hashes = parsed
    out: dict[str, Any] = {"uri": f"{PYPI_PURL}{name}@{version}"}
    if len(hashes) == 1:
        out["digest"] = {"sha256": hashes[0]}
    else:
        out["annotations"] = {"sha256": sorted(hashes)}
    return out


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The payload that is signed: compact JSON with sorted keys, UTF-8."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256_of(path: str | os.PathLike[str]) -> str:
    with reading(path), open(path, "rb", buffering=0) as handle:
        return hash_stream(handle)[0].hex


# --- export ----------------------------------------------------------------------------------------


def export_slsa(
    recipe: Recipe,
    store: Store,
    *,
    key: str | os.PathLike[str] | None = None,
    env_mode: EnvMode = "venv",
) -> str:
    """``weightpkg export slsa RECIPE [--key KEY]``: the provenance of the stored build of the
    recipe, as a DSSE envelope on one line (a ``.intoto.jsonl`` file) signed with ``key`` (a
    minisign secret key or an ECDSA PEM private key), or the bare statement (indented) without one.

    UsageError when the recipe has no build, was not rebuilt in this store (in ``env_mode``), or
    changed since its rebuild: the statement must describe the recipe as it is.
    """
    if recipe.build is None:
        raise UsageError(
            f"{recipe.origin}: the recipe has no [build] table: only rebuilt recipes have provenance"
        )
    flag = " --env current" if env_mode == "current" else ""
    build = find_build(recipe, store, env_mode)
    if build is None:
        raise UsageError(
            f"{recipe.origin}: no stored build of {recipe.id} (environment mode {env_mode}) in {store.root}: "
            f"run `weightpkg rebuild{flag} {recipe.origin}` first"
        )
    recorded = build.record.get("recipe", {}).get("sha256")
    actual = _sha256_of(recipe.origin)
    if recorded != actual:
        raise UsageError(
            f"{recipe.origin}: the recipe changed since it was rebuilt (sha256 {actual}, the build record "
            f"says {recorded}): run `weightpkg rebuild{flag} {recipe.origin}` again"
        )
    statement = provenance_statement(recipe, build)
    if key is None:
        return json.dumps(statement, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    envelope = sign_dsse(statement_bytes(statement), IN_TOTO_PAYLOAD_TYPE, key)
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")) + "\n"


# --- the check -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationReport:
    """The verdict on one attestation: the trusted key that signed it (None if none did), the
    statement it carries (even unsigned, to say what is wrong with it), and every finding."""

    envelope: str
    recipe: str
    key: str | None = None
    statement: Mapping[str, Any] | None = field(default=None, compare=False)
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def subjects(self) -> list[dict[str, Any]]:
        """The statement's subjects as ``{name, sha256}``, where they are well-formed."""
        found = self.statement.get("subject") if isinstance(self.statement, Mapping) else None
        return [
            {"name": s.get("name"), "sha256": _get(s, "digest", "sha256")}
            for s in (found if isinstance(found, list) else [])
            if isinstance(s, Mapping)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "envelope": self.envelope,
            "recipe": self.recipe,
            "key": self.key,
            "verdict": "verified" if self.ok else "failed",
            "subjects": self.subjects,
            "findings": [f.to_json() for f in self.findings],
        }


Fail = Callable[..., None]


def check_attestation(
    envelope_path: str | os.PathLike[str],
    recipe: Recipe,
    store: Store,
    *,
    trusted_keys: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
) -> AttestationReport:
    """Check a DSSE-signed provenance statement against a recipe and a store, collecting every
    finding: the signature (by a trusted key, over these bytes), the statement and build type, the
    parameters (this recipe file, this package), the resolved dependencies (exactly the recipe's
    input pins and, in a venv, its pinned requirements) and the subjects (each the recipe's
    published file or the store's build of it, and every output attested).

    ``trusted_keys``: minisign ``.pub`` files, folders of them, ``RW…`` lines, or ECDSA PEM public
    keys. UsageError when a key or the envelope file cannot be read.
    """
    path = Path(envelope_path)
    keys = load_dsse_public_keys(trusted_keys)
    found: list[Finding] = []

    def fail(rule: str, message: str, severity: str = "error") -> None:
        found.append(Finding(severity, rule, str(path), message))

    def done(key: str | None = None, statement: Mapping[str, Any] | None = None) -> AttestationReport:
        return AttestationReport(str(path), recipe.origin, key, statement, tuple(found))

    with reading(path, "an attestation"), open(path, "rb") as handle:
        data = handle.read(_ENVELOPE_LIMIT + 1)
    if len(data) > _ENVELOPE_LIMIT:
        fail("attestation-malformed", f"larger than {_ENVELOPE_LIMIT} bytes: not a DSSE envelope")
        return done()
    try:
        envelope = json.loads(data)
    except ValueError:
        fail("attestation-malformed", "not JSON: not a DSSE envelope")
        return done()
    try:
        dsse = check_dsse(envelope, keys, str(path))
    except SignatureError as exc:
        fail("attestation-malformed", exc.reason)
        return done()
    if dsse.payload_type != IN_TOTO_PAYLOAD_TYPE:
        fail(
            "attestation-payload-type",
            f"the envelope holds {dsse.payload_type!r}, not an in-toto statement ({IN_TOTO_PAYLOAD_TYPE})",
        )
    for keyid in dsse.failed_keyids:
        fail(
            "attestation-bad-signature",
            f"the signature of trusted key {keyid} does not verify: the statement or signature was altered",
        )
    trusted = ", ".join(k.keyid for k in keys)
    for keyid in dsse.unknown_keyids:
        fail(
            "attestation-unknown-key",
            f"signed by key {keyid or '(no key id)'}, which is not a trusted key (trusted: {trusted})",
        )
    try:
        statement = json.loads(dsse.payload)
    except ValueError:
        statement = None
    if not isinstance(statement, dict):
        fail("attestation-malformed", "the payload is not a JSON object")
        return done(dsse.key.keyid if dsse.key else None)
    _check_statement(statement, recipe, store, fail)
    return done(dsse.key.keyid if dsse.key else None, statement)


def _get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]…, or None where the shape is not there."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _check_statement(statement: Mapping[str, Any], recipe: Recipe, store: Store, fail: Fail) -> None:
    if statement.get("_type") != STATEMENT_TYPE:
        fail("attestation-statement", f"_type is {statement.get('_type')!r}, not {STATEMENT_TYPE}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        fail(
            "attestation-statement",
            f"predicateType is {statement.get('predicateType')!r}, not SLSA provenance ({PREDICATE_TYPE})",
        )
        return
    subjects = _subjects(statement.get("subject"), fail)
    definition = _get(statement, "predicate", "buildDefinition")
    build_type = _get(definition, "buildType")
    if build_type != BUILD_TYPE:
        fail("attestation-build-type", f"buildType is {build_type!r}, not weightpkg's {BUILD_TYPE}")
        return
    env_mode = _check_parameters(_get(definition, "externalParameters"), recipe, fail)
    builder_id = _get(statement, "predicate", "runDetails", "builder", "id")
    expected_ids = [f"{BUILDER_ID}#{m}" for m in ([env_mode] if env_mode else ENV_MODES)]
    if builder_id not in expected_ids:
        fail("attestation-builder", f"builder.id is {builder_id!r}, not {' or '.join(expected_ids)}")
    if recipe.build is None:
        fail(
            "attestation-recipe-mismatch", f"{recipe.origin} declares no build, so no build of it is attested"
        )
        return
    _check_dependencies(_get(definition, "resolvedDependencies"), recipe, env_mode, fail)
    if subjects is not None:
        _check_subjects(subjects, recipe, store, env_mode, fail)
    invocation = _get(statement, "predicate", "runDetails", "metadata", "invocationId")
    computed = derivation(recipe, env_mode).hex if env_mode is not None else None
    if computed is not None and invocation != computed:
        fail(
            "attestation-derivation",
            f"invocationId {invocation!r} is not the derivation computed here ({computed}): "
            "built with another interpreter or Python version",
            "warning",
        )


def _subjects(value: Any, fail: Fail) -> dict[str, str] | None:
    """name → sha256 of each subject, or None (said so) when they are malformed."""
    if not isinstance(value, list) or not value:
        fail("attestation-statement", "the statement has no subject")
        return None
    out: dict[str, str] = {}
    for i, subject in enumerate(value):
        name, digest = _get(subject, "name"), _get(subject, "digest", "sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            fail("attestation-statement", f"subject[{i}] needs a name and a sha256 digest")
            return None
        if name in out:
            fail("attestation-statement", f"subject {name!r} is listed twice")
        out[name] = digest
    return out


def _check_parameters(external: Any, recipe: Recipe, fail: Fail) -> EnvMode | None:
    """Check the external parameters against the recipe; the environment mode, if it is one."""
    if not isinstance(external, Mapping):
        fail("attestation-statement", "buildDefinition.externalParameters is missing")
        return None
    for key in sorted(set(external) - set(EXTERNAL_PARAMETERS)):
        fail(
            "attestation-unexpected-parameter", f"externalParameters.{key} is not a parameter of {BUILD_TYPE}"
        )
    name, version = _get(external, "package", "name"), _get(external, "package", "version")
    if (name, version) != (recipe.package.name, recipe.package.version):
        fail(
            "attestation-recipe-mismatch",
            f"the attestation is of package {name} {version}, "
            f"not of {recipe.package.name} {recipe.package.version} ({recipe.origin})",
        )
    attested = _get(external, "recipe", "sha256")
    actual = _sha256_of(recipe.origin)
    if attested != actual:
        fail(
            "attestation-recipe-mismatch",
            f"the attestation is of a recipe file with sha256 {attested}; {recipe.origin} has sha256 "
            f"{actual} (another recipe, or changed since the build)",
        )
    env_mode = external.get("envMode")
    for mode in ENV_MODES:
        if env_mode == mode:
            return mode
    fail(
        "attestation-unexpected-parameter",
        f"externalParameters.envMode is {env_mode!r}, not one of {', '.join(ENV_MODES)}",
    )
    return None


def _check_dependencies(value: Any, recipe: Recipe, env_mode: EnvMode | None, fail: Fail) -> None:
    """The resolved dependencies must be exactly the recipe's inputs (name, sha256, path) and, for
    a venv build, exactly its pinned requirements."""
    if not isinstance(value, list):
        fail("attestation-input-mismatch", "the statement lists no resolved dependencies")
        return
    inputs: dict[str, tuple[Any, Any]] = {}
    requirements: dict[str, tuple[str, ...]] = {}
    for i, dep in enumerate(value):
        uri, name = _get(dep, "uri"), _get(dep, "name")
        if isinstance(uri, str) and uri.startswith(PYPI_PURL):
            digest, allowed = _get(dep, "digest", "sha256"), _get(dep, "annotations", "sha256")
            hashes = [digest] if digest is not None else allowed if isinstance(allowed, list) else []
            requirements[uri] = tuple(sorted(str(h) for h in hashes))
        elif isinstance(name, str):
            inputs[name] = (_get(dep, "digest", "sha256"), _get(dep, "annotations", "path"))
        else:
            fail(
                "attestation-input-mismatch",
                f"resolvedDependencies[{i}] names neither an input nor a requirement",
            )
    expected = {i.name: (i.sha256.hex if i.sha256 else None, i.path or i.name) for i in recipe.inputs}
    for name in sorted(set(expected) - set(inputs)):
        fail(
            "attestation-input-mismatch",
            f"input {name!r} (sha256 {expected[name][0]}) of the recipe is not a resolved dependency",
        )
    for name in sorted(set(inputs) - set(expected)):
        fail("attestation-input-mismatch", f"resolved dependency {name!r} is not an input of {recipe.id}")
    for name in sorted(set(inputs) & set(expected)):
        (attested_sha, attested_path), (pin, path) = inputs[name], expected[name]
        if attested_sha != pin:
            fail(
                "attestation-input-mismatch",
                f"input {name!r}: the attestation says sha256 {attested_sha}, the recipe pins {pin}",
            )
        if attested_path != path:
            fail(
                "attestation-input-mismatch",
                f"input {name!r}: the attestation puts it at {attested_path!r}, the recipe at {path!r}",
            )
    _check_requirements(requirements, recipe, env_mode, fail)


def _check_requirements(
    attested: Mapping[str, tuple[str, ...]], recipe: Recipe, env_mode: EnvMode | None, fail: Fail
) -> None:
    assert recipe.build is not None
    expected: dict[str, tuple[str, ...]] = {}
    if env_mode != "current":
        for line in recipe.build.requirements:
            parsed = parse_requirement(line)
            if not isinstance(parsed, str):
                expected[f"{PYPI_PURL}{parsed[0]}@{parsed[1]}"] = tuple(sorted(parsed[2]))
    if env_mode == "current" and attested:
        fail(
            "attestation-requirement-mismatch",
            "the build ran in the current environment, yet requirements are listed as installed: "
            + ", ".join(sorted(attested)),
        )
        return
    for uri in sorted(set(expected) - set(attested)):
        fail(
            "attestation-requirement-mismatch",
            f"pinned requirement {uri} is not among the resolved dependencies",
        )
    for uri in sorted(set(attested) - set(expected)):
        fail("attestation-requirement-mismatch", f"{uri} is not a pinned requirement of {recipe.id}")
    for uri in sorted(set(attested) & set(expected)):
        if attested[uri] != expected[uri]:
            fail(
                "attestation-requirement-mismatch",
                f"{uri}: the attestation says sha256 {', '.join(attested[uri]) or 'none'}, "
                f"the recipe pins {', '.join(expected[uri])}",
            )


def _check_subjects(
    subjects: Mapping[str, str], recipe: Recipe, store: Store, env_mode: EnvMode | None, fail: Fail
) -> None:
    """Each subject must be an output of the recipe's build whose sha256 is the published file's
    pin or the store's build of it (re-hashed: the store is a cache, not an authority)."""
    assert recipe.build is not None
    outputs = recipe.build.outputs
    published = {w.path: w.sha256.hex for w in recipe.weights}
    built: dict[str, Path] = {}
    for mode in [env_mode] if env_mode else ENV_MODES:
        build = find_build(recipe, store, mode)
        if build is not None:
            built.update({o.path: o.store_path for o in build.outputs})
    for name, digest in subjects.items():
        if name not in outputs:
            fail(
                "attestation-subject-mismatch",
                f"subject {name!r} is not an output of {recipe.id}'s build ({', '.join(outputs)})",
            )
        elif digest != published.get(name) and (name not in built or digest != _sha256_of(built[name])):
            pin = published.get(name) or "none published under this name"
            stored = "the store's build of it differs" if name in built else "no build of it in the store"
            fail(
                "attestation-subject-mismatch",
                f"subject {name!r}: sha256 {digest} is not the recipe's published file ({pin}), and {stored}",
            )
    for name in outputs:
        if name not in subjects:
            fail("attestation-subject-mismatch", f"output {name!r} of {recipe.id}'s build is not attested")


__all__ = (
    "BUILDER_ID",
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "RULES",
    "STATEMENT_TYPE",
    "AttestationReport",
    "build_env_mode",
    "check_attestation",
    "export_slsa",
    "provenance_statement",
    "statement_bytes",
)
