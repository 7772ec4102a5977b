"""verify --json follows schemas/report.schema.json, whatever the outcome, and is byte-identical
across runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from weightpkg.core.schema import load_schema

from .builders import recipe_text, safetensors_bytes, sha256
from .conftest import REPO

VALIDATOR = jsonschema.Draft202012Validator(load_schema("report"))


def validate(text: str) -> dict:
    report = json.loads(text)
    errors = sorted(VALIDATOR.iter_errors(report), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    return report


def recipe_with(folder: Path, data: bytes, pin: str) -> Path:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / "w.safetensors").write_bytes(data)
    (folder / "gone").mkdir(exist_ok=True)
    path = folder / "pkg.toml"
    path.write_text(recipe_text([
        {"path": "w.safetensors", "sha256": pin, "size": len(data), "format": "safetensors",
         "sources": [{"kind": "path", "path": "gone/w.safetensors"},
                     {"kind": "path", "path": "files/w.safetensors", "declared-license": "MIT"}]},
    ]))
    return path


@pytest.mark.parametrize("outcome", ["verified", "wrong-pin", "policy"])
def test_report_follows_its_schema(tmp_path: Path, store_root: Path, outcome: str, cli) -> None:
    data = safetensors_bytes({"t": ("F32", [1], bytes(4))})
    pin = sha256(data) if outcome != "wrong-pin" else "0" * 64
    recipe = recipe_with(tmp_path, data, pin)
    args = ["--store", str(store_root), "verify", "--json", "--all-sources"]
    if outcome == "policy":
        args += ["--policy", str(REPO / "policies" / "debian-main.toml")]
    done = cli(*args, str(recipe))
    report = validate(done.stdout)
    assert done.returncode == (0 if outcome == "verified" else 1)
    findings = report["recipes"][0]["findings"]
    if outcome == "verified":
        assert findings == []
    elif outcome == "wrong-pin":
        assert [f["rule"] for f in findings] == ["sha256-mismatch"]
        assert findings[0]["file"] == "w.safetensors"
    else:
        assert {f["rule"] for f in findings} == {"policy-minimum-class", "policy-require-bias-notes"}
    shutil.rmtree(store_root)  # the same inputs and the same (empty) store: the same bytes out
    again = cli(*args, str(recipe))
    assert again.stdout == done.stdout, "the JSON report must be byte-identical across runs"


def test_report_of_a_shipped_recipe_follows_its_schema(tmp_path: Path, store_root: Path, cli) -> None:
    shutil.copytree(REPO / "recipes" / "digits-mlp", tmp_path / "digits-mlp")
    shutil.copy(REPO / "recipes" / "digits-mlp.toml", tmp_path)
    done = cli("--store", str(store_root), "verify", "--json", "--inputs", str(tmp_path / "digits-mlp.toml"),
               env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    report = validate(done.stdout)
    assert report["recipes"][0]["ml_policy_class"]["class"] == "Free"
