"""Distributor policy: the ML-Policy class of each package and the rules a policy enforces."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import weightpkg
from weightpkg.core.policy import Policy, classify, evaluate, is_free, satisfies
from weightpkg.errors import PolicyError
from weightpkg.load import read_policy

from .conftest import REPO

RECIPES = REPO / "recipes"
POLICIES = REPO / "policies"


@pytest.mark.parametrize(
    ("expression", "accepted", "expected"),
    [
        ("MIT", ["MIT"], True),
        ("mit", ["MIT"], True),
        ("MIT OR GPL-3.0-only", ["GPL-3.0-only"], True),
        ("MIT AND LicenseRef-Odd", ["MIT"], False),
        ("MIT AND LicenseRef-Odd", ["MIT", "LicenseRef-Odd"], True),
        ("(MIT OR Apache-2.0) AND BSD-3-Clause", ["Apache-2.0", "BSD-3-Clause"], True),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", ["GPL-2.0-or-later"], True),
        ("CC-BY-NC-4.0", ["CC-BY-4.0"], False),
    ],
)
def test_licence_expressions_are_judged_as_trees(
    expression: str, accepted: list[str], expected: bool
) -> None:
    assert satisfies(expression, accepted) is expected


def test_free_licences() -> None:
    assert is_free("Apache-2.0") and is_free("MIT OR CC-BY-NC-4.0")
    assert not is_free("CC-BY-NC-4.0") and not is_free("NONE") and not is_free(None)
    assert not is_free("LicenseRef-Intel-OpenCV-License-Agreement")
    assert is_free("LicenseRef-Intel-OpenCV-License-Agreement", ["LicenseRef-Intel-OpenCV-License-Agreement"])


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("digits-mlp", "Free"),
        ("all-minilm-l6-v2", "ToxicCandy"),
        ("silero-vad", "ToxicCandy"),
        ("opencv-haarcascade-frontalface", "Non-free"),  # its LicenseRef is unknown without a policy
    ],
)
def test_shipped_recipes_have_the_expected_class(recipe: str, expected: str) -> None:
    assert classify(weightpkg.load_recipe(RECIPES / f"{recipe}.toml")).ml_class == expected


def test_a_policy_can_count_a_licence_ref_as_free() -> None:
    recipe = weightpkg.load_recipe(RECIPES / "opencv-haarcascade-frontalface.toml")
    verdict = classify(recipe, ["LicenseRef-Intel-OpenCV-License-Agreement"])
    assert verdict.ml_class == "ToxicCandy"
    assert verdict.reasons[0].startswith("training data face-training-images is not available")


def test_minilm_fails_debian_main_as_toxic_candy_with_the_rule_named() -> None:
    recipe = weightpkg.load_recipe(RECIPES / "all-minilm-l6-v2.toml")
    findings = evaluate(recipe, read_policy(POLICIES / "debian-main.toml"))
    assert [f.rule for f in findings] == ["minimum-class"]
    assert findings[0].message.startswith("the package is ToxicCandy, the policy requires Free: ")


def test_each_rule_can_fail() -> None:
    recipe = weightpkg.load_recipe(RECIPES / "silero-vad.toml")
    strict = Policy(
        name="strict",
        minimum_class="Free",
        allowed_licenses=("Apache-2.0",),
        require_bias_notes=True,
        require_rebuildable=True,
        pickle="forbid",
        require_signatures=True,
    )
    rules = [f.rule for f in evaluate(recipe, strict)]
    assert rules == ["minimum-class", "allowed-licenses", "require-rebuildable", "require-signatures"]


def test_pickle_formats_are_judged_by_the_policy(tmp_path: Path) -> None:
    text = (
        (RECIPES / "digits-mlp.toml")
        .read_text()
        .replace('format = "safetensors"', 'format = "pytorch-pickle"')
    )
    text = re.sub(r"(?m)^content-sha256 = .*\n", "", text)  # a content pin is for safetensors only
    shutil.copytree(RECIPES / "digits-mlp", tmp_path / "digits-mlp")
    (tmp_path / "r.toml").write_text(text)
    recipe = weightpkg.load_recipe(tmp_path / "r.toml")
    forbid = Policy(name="p", pickle="forbid")
    assert [f.message for f in evaluate(recipe, forbid)] == [
        "digits-mlp.safetensors is pytorch-pickle: loading it runs a pickle"
    ]
    safe_only = Policy(name="p", pickle="allow-safe")
    assert "its scan says nothing (not scanned)" in evaluate(recipe, safe_only)[0].message
    assert evaluate(recipe, Policy(name="p", pickle="allow")) == []


def test_malformed_policy_files_say_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'schema = 1\n[policy]\nname = "x"\n[rules]\nminimum-class = "Freeish"\nalowed-licenses = []\n'
        'allowed-licenses = ["Not-A-Licence"]\n'
    )
    with pytest.raises(PolicyError) as caught:
        read_policy(bad)
    assert [str(p) for p in caught.value.problems] == [
        f"{bad}:6: rules.alowed-licenses: unknown key; did you mean 'allowed-licenses'?",
        f"{bad}:5: rules.minimum-class: must be one of 'Free', 'ToxicCandy', 'Non-free'; got 'Freeish'",
        f"{bad}:7: rules.allowed-licenses[0]: not an SPDX licence expression: Unknown license: "
        "'not-a-licence' (use LicenseRef-… for others)",
    ]


def test_verify_with_debian_main_fails_and_names_class_and_rules(store_root: Path, cli) -> None:
    recipe = RECIPES / "digits-mlp.toml"
    done = cli(
        "--store", str(store_root), "verify", "--policy", str(POLICIES / "debian-main.toml"), str(recipe)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{recipe}: ML-Policy class: Free (" in done.stdout
    report = json.loads(
        cli(
            "--store",
            str(store_root),
            "verify",
            "--json",
            "--policy",
            str(POLICIES / "debian-main.toml"),
            str(recipe),
        ).stdout
    )
    assert report["recipes"][0]["ml_policy_class"]["class"] == "Free"
    assert report["recipes"][0]["policy"] == {"findings": [], "name": "debian-main"}


def test_verify_reports_policy_violations_and_exits_1(tmp_path: Path, store_root: Path, cli) -> None:
    text = (RECIPES / "digits-mlp.toml").read_text()
    start = text.index("[bias]")
    shutil.copytree(RECIPES / "digits-mlp", tmp_path / "digits-mlp")
    recipe = tmp_path / "no-bias.toml"
    recipe.write_text(text[:start])
    done = cli(
        "--store", str(store_root), "verify", "--policy", str(POLICIES / "debian-main.toml"), str(recipe)
    )
    assert done.returncode == 1
    assert f"{recipe}: POLICY debian-main: require-bias-notes: the recipe has no [bias] notes" in done.stdout
    assert f"{recipe}: FAILED: digits-mlp 1.0.0 (1 policy rule broken)" in done.stdout


def test_a_missing_policy_file_is_bad_input(cli) -> None:
    done = cli("verify", "--policy", "no-such-policy.toml", str(RECIPES / "digits-mlp.toml"))
    assert done.returncode == 2
    assert "no-such-policy.toml: no such file" in done.stderr
