"""A recipe as a CycloneDX 1.6 ML-BOM (JSON), for the SBOM pipelines distributors already run.

The document describes one weight package and is built as plain dicts (no CycloneDX library is
needed to write it; the tests check it with cyclonedx-python-lib's strict validator):

- ``metadata.component`` is the package, a ``machine-learning-model`` component. Each published
  file is a ``file`` component nested inside it (CycloneDX's assembly relation: the model *consists
  of* its files), with the file's SHA-256. When the package has exactly one file, the model
  component carries that hash too; with several there is no single artefact to hash, so it has none.
- Its ``modelCard`` references the data inputs as datasets, records the functional check as a
  performance metric and the ``[bias]`` table under ``considerations``.
- Every input is a top-level component (``data``, ``file`` for training code, and
  ``machine-learning-model`` for base weights), and ``dependencies`` say that the model depends
  on each. A ``[build]`` table becomes a ``formulation``: the command, the environment and the
  pinned wheels, plus, when a build record is given, what that build measured.

Output is deterministic: no timestamp unless asked for, references derived from the recipe, and a
``serialNumber`` derived from the document itself (see :func:`serial_number`).
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from ..builder import build_command
from ..core.recipe import (
    NO_LICENSE,
    DebSource,
    Input,
    PathSource,
    PypiSource,
    Recipe,
    Source,
    UrlSource,
    WeightFile,
    parse_requirement,
)
from ..errors import UsageError
from ..sources.recipe import expanded_sources

SPEC_VERSION = "1.6"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
#: The uuid5 namespace of weightpkg's BOM serial numbers (itself uuid5 of a URN in the URL space).
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:weightpkg:cyclonedx-bom")
#: Namespace of the properties weightpkg writes where CycloneDX has no field of its own.
PROP = "weightpkg"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_SIMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")

Json = dict[str, Any]


# --- public API ----------------------------------------------------------------------------------


def cyclonedx_bom(
    recipe: Recipe,
    *,
    timestamp: str | None = None,
    build_record: Mapping[str, Any] | None = None,
) -> Json:
    """The CycloneDX 1.6 BOM of ``recipe`` as a JSON-ready dict.

    ``timestamp`` (RFC 3339, e.g. ``2026-01-31T12:00:00Z``) becomes ``metadata.timestamp``; left
    out, the BOM depends on the recipe (and weightpkg's version) alone. ``build_record`` is the
    record a rebuild wrote (``weightpkg.builder.build_record``); it adds the measured build
    environment to the formulation. UsageError if either does not fit.
    """
    if build_record is not None and recipe.build is None:
        raise UsageError(f"{recipe.origin}: a build record was given, but the recipe has no [build] table")
    refs = _Refs(recipe)
    metadata: Json = {
        "component": _model_component(recipe, refs),
        "tools": {
            "components": [{"type": "application", "name": "weightpkg", "version": _version()}],
        },
    }
    if timestamp is not None:
        metadata["timestamp"] = _checked_timestamp(timestamp)
    bom: Json = {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": metadata,
    }
    if recipe.inputs:
        bom["components"] = [_input_component(item, recipe, refs) for item in recipe.inputs]
        bom["dependencies"] = [{"ref": refs.model, "dependsOn": [refs.input(i) for i in recipe.inputs]}]
    if recipe.build is not None:
        bom["formulation"] = [_formula(recipe, refs, build_record)]
    bom["serialNumber"] = serial_number(bom)
    return bom


def cyclonedx_json(
    recipe: Recipe,
    *,
    timestamp: str | None = None,
    build_record: Mapping[str, Any] | None = None,
) -> str:
    """:func:`cyclonedx_bom` as UTF-8 JSON text: sorted keys, two-space indent, final newline."""
    bom = cyclonedx_bom(recipe, timestamp=timestamp, build_record=build_record)
    return json.dumps(bom, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def serial_number(bom: Mapping[str, Any]) -> str:
    """``urn:uuid:`` + uuid5(SERIAL_NAMESPACE, the BOM's canonical JSON without ``serialNumber``).

    Canonical JSON: ``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
    The same document always gets the same serial, and any change to it (recipe, weightpkg
    version, timestamp, build record) gives another, so anyone can recompute and check it.
    """
    body = {k: v for k, v in bom.items() if k != "serialNumber"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, canonical)}"


def license_choice(expression: str | None, acknowledgement: str) -> list[Json] | None:
    """An SPDX expression in the form CycloneDX accepts, or None for no licence to state.

    CycloneDX's ``license.id`` takes only ids on the SPDX licence list; anything else that SPDX
    allows (AND/OR/WITH, ``+``, ``LicenseRef-…``) must be written as an ``expression``.
    ``NONE`` and ``NOASSERTION`` state no licence, which CycloneDX says by leaving ``licenses`` out.
    """
    if expression is None or expression in NO_LICENSE:
        return None
    if is_listed_license_id(expression):
        return [{"license": {"id": expression, "acknowledgement": acknowledgement}}]
    return [{"expression": expression, "acknowledgement": acknowledgement}]


def is_listed_license_id(expression: str) -> bool:
    """Whether ``expression`` is one id of the SPDX licence list, in SPDX's spelling."""
    if not _SIMPLE_ID.fullmatch(expression) or expression.startswith(("LicenseRef-", "DocumentRef-")):
        return False
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    try:
        return str(canonicalize_license_expression(expression)) == expression
    except InvalidLicenseExpression:
        return False


# --- references -----------------------------------------------------------------------------------


class _Refs:
    """bom-refs derived from the recipe: stable across runs, unique because the recipe's weight
    paths, input names and requirement names are unique and each kind has its own prefix."""

    def __init__(self, recipe: Recipe) -> None:
        self.model = recipe.id
        self._base = recipe.id

    def weight(self, weight: WeightFile) -> str:
        return f"{self._base}/weights/{weight.path}"

    def input(self, item: Input) -> str:
        return f"{self._base}/inputs/{item.name}"

    def requirement(self, name: str) -> str:
        return f"{self._base}/build/requirements/{name}"

    @property
    def formula(self) -> str:
        return f"{self._base}/build/formula"

    @property
    def workflow(self) -> str:
        return f"{self._base}/build/workflow"


# --- components -----------------------------------------------------------------------------------


def _model_component(recipe: Recipe, refs: _Refs) -> Json:
    """The package: its files, licences, authors, homepage and model card."""
    pkg = recipe.package
    lic = recipe.license
    component: Json = {
        "type": "machine-learning-model",
        "bom-ref": refs.model,
        "name": pkg.name,
        "version": pkg.version,
        "description": pkg.summary,
        "components": [_file_component(w, recipe, refs) for w in recipe.weights],
        "modelCard": _model_card(recipe, refs),
    }
    if len(recipe.weights) == 1:
        component["hashes"] = [_sha256(recipe.weights[0].sha256.hex)]
    if licenses := _model_licenses(lic.weights, lic.upstream):
        component["licenses"] = licenses
    if pkg.authors:
        component["authors"] = [{"name": a} for a in pkg.authors]
    if pkg.homepage:
        component["externalReferences"] = [{"type": "website", "url": _iri(pkg.homepage)}]
    repro = recipe.reproducibility
    component["properties"] = _properties(
        ("recipe", PurePath(recipe.origin).name),
        ("license:upstream", lic.upstream),
        ("license:data", lic.data),
        ("license:code", lic.code),
        ("license:notes", lic.notes),
        ("reproducibility:level", repro.level),
        ("reproducibility:reason", repro.reason),
        ("reproducibility:atol", None if repro.atol is None else repr(repro.atol)),
        ("rebuildable", _bool(recipe.rebuildable)),
    )
    return component


def _model_licenses(weights: str, upstream: str) -> list[Json] | None:
    """The licence the package distributes under (concluded) and the authors' (declared).

    Both fit as two ``license`` entries only when both are listed ids: CycloneDX allows one
    ``expression`` entry and nothing beside it. Otherwise the distributed licence is written, and
    the upstream one is left to the ``weightpkg:license:upstream`` property (always written).
    """
    concluded = license_choice(weights, "concluded")
    declared = license_choice(upstream, "declared")
    if concluded is None:
        return declared
    if declared and "license" in concluded[0] and "license" in declared[0]:
        return concluded + declared
    return concluded


def _file_component(weight: WeightFile, recipe: Recipe, refs: _Refs) -> Json:
    """One published file: its pin (SHA-256, size), format and where it can be had."""
    component: Json = {
        "type": "file",
        "bom-ref": refs.weight(weight),
        "name": weight.path,
        "hashes": [_sha256(weight.sha256.hex)],
        "properties": _properties(
            ("size", str(weight.size)),
            ("format", weight.format),
            ("content-sha256", weight.content_sha256.hex if weight.content_sha256 else None),
        ),
    }
    if licenses := license_choice(recipe.license.weights, "concluded"):
        component["licenses"] = licenses
    if references := _source_references(weight.sources, recipe):
        component["externalReferences"] = references
    return component


def _input_component(item: Input, recipe: Recipe, refs: _Refs) -> Json:
    """An input by its role: data as ``data`` with a dataset entry, code as ``file``, base weights
    as ``machine-learning-model``; unavailable ones too, saying why."""
    kind = {"data": "data", "code": "file", "base-weights": "machine-learning-model"}[item.role]
    component: Json = {"type": kind, "bom-ref": refs.input(item), "name": item.name}
    if item.description:
        component["description"] = item.description
    if item.sha256 is not None:
        component["hashes"] = [_sha256(item.sha256.hex)]
    if licenses := license_choice(item.license, "concluded"):
        component["licenses"] = licenses
    if item.role == "data":
        dataset: Json = {"type": "dataset", "name": item.name}
        url = next((s.url for s in item.sources if isinstance(s, UrlSource)), None)
        if url is not None:
            dataset["contents"] = {"url": _iri(url)}
        component["data"] = [dataset]
    sources = expanded_sources(item.sources, Path(recipe.origin).parent)
    if references := _source_references(sources, recipe):
        component["externalReferences"] = references
    component["properties"] = _properties(
        ("input:role", item.role),
        ("input:available", _bool(item.available)),
        ("input:unavailable-reason", item.unavailable_reason),
        ("input:path", item.path),
        ("size", None if item.size is None else str(item.size)),
    )
    return component


def _source_references(sources: Iterable[Source], recipe: Recipe) -> list[Json]:
    """Where the bytes can be had, in the recipe's order, as ``distribution`` references.

    Wheels and Debian packages are named by their package URL (purl) with the archive's SHA-256;
    the comment names the member and what the source itself declares as its licence (which
    covers the archive, not necessarily the file, so it is not a licence of the component).
    A source kind this module does not know is left out.
    """
    out: list[Json] = []
    for source in sources:
        declared = (
            f"; the source declares licence {source.declared_license}" if source.declared_license else ""
        )
        if isinstance(source, UrlSource):
            for k, url in enumerate(source.urls):
                what = "URL" if k == 0 else f"mirror {k}"
                out.append({"type": "distribution", "url": _iri(url), "comment": f"{what}{declared}"})
        elif isinstance(source, PathSource):
            out.append(
                {
                    "type": "distribution",
                    "url": quote(source.path, safe="/"),
                    "comment": f"beside the recipe: relative to the folder of {PurePath(recipe.origin).name}"
                    + declared,
                }
            )
        elif isinstance(source, PypiSource):
            qualifier = f"?file_name={quote(source.wheel, safe='')}" if source.wheel else ""
            out.append(
                {
                    "type": "distribution",
                    "url": f"pkg:pypi/{_pypi_name(source.package)}@{_purl_part(source.version)}{qualifier}",
                    "hashes": [_sha256(source.sha256.hex)],
                    "comment": f"member {' → '.join(source.member)} of the wheel{declared}",
                }
            )
        elif isinstance(source, DebSource):
            arch = f"?arch={_purl_part(source.architecture)}" if source.architecture else ""
            member = f"member {' → '.join(source.member)} of the .deb{declared}"
            out.append(
                {
                    "type": "distribution",
                    "url": f"pkg:deb/debian/{source.package.lower()}@{_purl_part(source.version)}{arch}",
                    "hashes": [_sha256(source.sha256.hex)],
                    "comment": member,
                }
            )
            out.extend(
                {
                    "type": "distribution",
                    "url": _iri(url),
                    "hashes": [_sha256(source.sha256.hex)],
                    "comment": member,
                }
                for url in source.urls
            )
        elif source.kind == "hf":
            # A Hub repository at one commit: the file's resolve URL on huggingface.co. Read by
            # kind, so that this module does not depend on the hf source's class.
            hub: Any = source
            out.append(
                {
                    "type": "distribution",
                    "url": _iri(f"https://huggingface.co/{hub.repo_ref}/resolve/{hub.revision}/{hub.path}"),
                    "comment": f"file {hub.path} of the Hugging Face Hub repository {hub.repo_ref} "
                    f"at commit {hub.revision}{declared}",
                }
            )
    return out


# --- the model card -------------------------------------------------------------------------------


def _model_card(recipe: Recipe, refs: _Refs) -> Json:
    """Datasets, the functional check as a metric, and the bias notes as considerations.

    The recipe states no task, architecture, training approach or input/output formats, so the
    card does not guess them; the weights' file format is not the model's input format.
    """
    card: Json = {}
    datasets = [{"ref": refs.input(i)} for i in recipe.inputs if i.role == "data"]
    if datasets:
        card["modelParameters"] = {"datasets": datasets}
    props: list[tuple[str, str | None]] = []
    functional = recipe.reproducibility.functional
    if functional is not None:
        # The tolerance bounds how far a rebuild's metric may drift; it is not a statistical
        # confidence interval, so it is a property and not confidenceInterval.
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [{"type": functional.metric, "value": repr(functional.expected)}]
        }
        props += [
            ("functional:metric", functional.metric),
            ("functional:expected", repr(functional.expected)),
            ("functional:tolerance", repr(functional.tolerance)),
            ("functional:command", shlex.join(functional.command) if functional.command else None),
        ]
    bias = recipe.bias
    if bias is not None:
        considerations: Json = {"ethicalConsiderations": [{"name": bias.notes}]}
        if bias.limitations:
            considerations["technicalLimitations"] = list(bias.limitations)
        if bias.groups_at_risk:
            considerations["fairnessAssessments"] = [{"groupAtRisk": g} for g in bias.groups_at_risk]
        card["considerations"] = considerations
        props.append(("bias:evaluation", bias.evaluation))
        props += [("bias:reference", r) for r in bias.references]
    if properties := _properties(*props):
        card["properties"] = properties
    return card


# --- the build ------------------------------------------------------------------------------------


def _formula(recipe: Recipe, refs: _Refs, record: Mapping[str, Any] | None) -> Json:
    """How the files are made: the pinned wheels, the command and its environment, the outputs."""
    build = recipe.build
    assert build is not None
    libraries: list[Json] = []
    for line in build.requirements:
        parsed = parse_requirement(line)
        if isinstance(parsed, str):  # load_recipe refuses such lines; a hand-made Recipe may not
            raise UsageError(f"{recipe.origin}: build.requirements: {parsed}")
        name, version, hashes = parsed
        libraries.append(
            {
                "type": "library",
                "bom-ref": refs.requirement(name),
                "name": name,
                "version": version,
                "purl": f"pkg:pypi/{_pypi_name(name)}@{_purl_part(version)}",
                "hashes": [_sha256(h) for h in hashes],
                "scope": "excluded",  # used to build the weights, not needed to use them
            }
        )
    environment = dict(build.env)
    workflow_props: list[tuple[str, str | None]] = [("build:device", build.device)]
    outputs = [
        {"type": "artifact", "resource": {"ref": refs.weight(w)}}
        for w in recipe.weights
        if w.path in build.outputs
    ]
    uid = f"{recipe.id}/build"
    if record is not None:
        _check_record(recipe, record)
        uid = str(record.get("derivation") or uid)
        environment = {str(k): str(v) for k, v in (record.get("environment") or {}).items()}
        workflow_props = _record_properties(record)
        _add_rebuilt(outputs, recipe, refs, record)
    inputs: list[Json] = [{"resource": {"ref": refs.input(i)}} for i in recipe.inputs]
    inputs += [{"resource": {"ref": lib["bom-ref"]}} for lib in libraries]
    if environment:
        inputs.append({"environmentVars": [{"name": k, "value": v} for k, v in sorted(environment.items())]})
    workflow: Json = {
        "bom-ref": refs.workflow,
        "uid": uid,
        "name": f"rebuild {recipe.id}",
        "taskTypes": ["build"],
        "steps": [{"name": "build", "commands": [{"executed": shlex.join(build_command(recipe))}]}],
    }
    if inputs:
        workflow["inputs"] = inputs
    if outputs:
        workflow["outputs"] = outputs
    if properties := _properties(*workflow_props):
        workflow["properties"] = properties
    formula: Json = {"bom-ref": refs.formula, "workflows": [workflow]}
    if libraries:
        formula["components"] = libraries
    return formula


def _check_record(recipe: Recipe, record: Mapping[str, Any]) -> None:
    """Refuse a record of another recipe or of a record format this exporter does not know."""
    if record.get("schema") != 1:
        raise UsageError(
            f"build record: schema {record.get('schema')!r} is not 1, the one this weightpkg reads"
        )
    recorded = (record.get("recipe") or {}).get("id")
    if recorded != recipe.id:
        raise UsageError(f"build record: it is the record of {recorded!r}, not of {recipe.id!r}")


def _record_properties(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """What a rebuild measured about where it ran, as ``weightpkg:build:…`` properties."""
    builder = record.get("builder") or {}
    interpreter = record.get("interpreter") or {}
    platform = record.get("platform") or {}
    cpu = platform.get("cpu") or {}
    props: list[tuple[str, str | None]] = [
        ("build:derivation", record.get("derivation")),
        ("build:builder", _joined(builder, "name", "version")),
        ("build:protocol", _text(builder.get("protocol"))),
        ("build:recipe-sha256", (record.get("recipe") or {}).get("sha256")),
        ("build:device", record.get("device")),
        ("build:isolation", record.get("isolation")),
        ("build:interpreter", _joined(interpreter, "implementation", "version")),
        ("build:interpreter-executable", interpreter.get("executable")),
        ("build:platform", _joined(platform, "system", "kernel", "libc")),
        ("build:cpu:model", cpu.get("model")),
        ("build:cpu:machine", cpu.get("machine")),
        ("build:cpu:count", _text(cpu.get("count"))),
        ("build:cpu:flags", " ".join(cpu.get("flags") or ()) or None),
    ]
    libraries = record.get("libraries") or {}
    props += [("build:installed", f"{name}=={libraries[name]}") for name in sorted(libraries)]
    return props


def _add_rebuilt(outputs: list[Json], recipe: Recipe, refs: _Refs, record: Mapping[str, Any]) -> None:
    """Put on each output what the recorded build wrote, and whether it is the published pin."""
    by_ref = {out["resource"]["ref"]: out for out in outputs}
    for built in record.get("outputs") or ():
        weight = recipe.published(built.get("path"))
        if weight is None or refs.weight(weight) not in by_ref:
            continue
        by_ref[refs.weight(weight)]["properties"] = _properties(
            ("build:sha256", built.get("sha256")),
            ("build:size", _text(built.get("size"))),
            ("build:matches-pin", _bool(built.get("sha256") == weight.sha256.hex)),
        )


# --- small pieces ---------------------------------------------------------------------------------


def _version() -> str:
    from .. import __version__

    return __version__


def _checked_timestamp(timestamp: str) -> str:
    """The timestamp as given, once it is an RFC 3339 date-time with an offset (what the schema's
    ``date-time`` format takes)."""
    problem = None
    if not _RFC3339.fullmatch(timestamp):
        problem = "not an RFC 3339 date-time with a time zone (write e.g. 2026-01-31T12:00:00Z)"
    else:
        try:
            datetime.fromisoformat(timestamp.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        raise UsageError(f"timestamp {timestamp!r}: {problem}")
    return timestamp


def _sha256(hex_digest: str) -> Json:
    return {"alg": "SHA-256", "content": hex_digest}


def _properties(*pairs: tuple[str, str | None]) -> list[Json]:
    """``weightpkg:``-named properties, in the given order, leaving out those with no value."""
    return [{"name": f"{PROP}:{name}", "value": value} for name, value in pairs if value is not None]


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _joined(facts: Mapping[str, Any], *keys: str) -> str | None:
    """The present values of ``keys``, space-separated (``cpython 3.11.7``), or None."""
    return " ".join(str(facts[k]) for k in keys if facts.get(k)) or None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _iri(url: str) -> str:
    """``url`` as the schema's ``iri-reference`` format takes it: characters no URI may hold (space,
    quotes, angle and curly brackets, …) and non-ASCII ones percent-encoded (the equivalent URI);
    a URL that is already well-formed comes back unchanged."""
    return quote(url, safe="!#$%&'()*+,/:;=?@[]~")


def _pypi_name(name: str) -> str:
    """A PyPI name as purl writes it: PEP 503-normalised (lower case, runs of -_. as one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _purl_part(text: str) -> str:
    """A purl version or qualifier value, percent-encoded where purl requires it (``+`` → %2B)."""
    return quote(text, safe=".-_~:")
