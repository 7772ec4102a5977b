"""Seed sensitivity: real digits-mlp builds with several seeds, the functional check and the
stress tests on each, the spread per row, a deterministic report (JSON and PNG) kept in the store.

The data input (digits.csv.gz, pinned) is taken from the real scikit-learn wheel of the
wheelhouse and put in each store beforehand, so the builds run offline; ``--env current``
saves the build environment, which other tests cover."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from weightpkg import load_recipe
from weightpkg.core.digest import Digest
from weightpkg.errors import BuildError, UsageError
from weightpkg.seeds import (
    SeedReport,
    find_seed_report,
    report_basis,
    report_is_current,
    seed_sensitivity,
    seed_table,
)
from weightpkg.store import Store

from .conftest import REPO, wheelhouse_files

DIGITS = REPO / "recipes" / "digits-mlp.toml"
PUBLISHED_SHA256 = "fdd22cfea84802d7d8f2287afb8385e1440b2a3891ee11f905207791fc88078c"
PUBLISHED_SEED = 20240601
ROWS = ["clean", "gaussian-noise", "blur", "contrast", "dead-pixels"]
CSV_MEMBER = "sklearn/datasets/data/digits.csv.gz"


@pytest.fixture(scope="module")
def digits_csv() -> bytes:
    [wheel] = wheelhouse_files("scikit_learn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(CSV_MEMBER)


def digits_store(root: Path, csv: bytes) -> Store:
    """A store that already holds the recipe's pinned data input."""
    store = Store(root)
    digest = Digest(hashlib.sha256(csv).digest())
    with store.ingest(digest, len(csv), "digits.csv.gz") as ingest:
        if not ingest.present:
            ingest.write(csv)
            ingest.commit()
    return store


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory, digits_csv: bytes) -> tuple[SeedReport, Store]:
    store = digits_store(tmp_path_factory.mktemp("seeds-one") / "store", digits_csv)
    return seed_sensitivity(load_recipe(DIGITS), store, 5, env_mode="current", log=quiet), store


@pytest.fixture(scope="module")
def five_again(tmp_path_factory: pytest.TempPathFactory, digits_csv: bytes) -> tuple[SeedReport, Store]:
    store = digits_store(tmp_path_factory.mktemp("seeds-two") / "store", digits_csv)
    return seed_sensitivity(load_recipe(DIGITS), store, 5, env_mode="current", log=quiet), store


def recipe_copy(folder: Path, edit) -> Path:
    """The shipped digits recipe and its folder, the TOML text changed by ``edit``."""
    shutil.copytree(REPO / "recipes" / "digits-mlp", folder / "digits-mlp")
    recipe = folder / "digits-mlp.toml"
    recipe.write_text(edit(DIGITS.read_text()))
    return recipe


def test_five_seeds_start_at_the_published_build_and_differ(five: tuple[SeedReport, Store]) -> None:
    report, _ = five
    data = report.to_json()
    assert data["seeds"] == [PUBLISHED_SEED + k for k in range(5)]
    first = data["variants"][0]
    assert first["seed"] == PUBLISHED_SEED and first["published_seed"]
    assert first["outputs"] == [
        {"path": "digits-mlp.safetensors", "sha256": PUBLISHED_SHA256, "matches_pin": True}
    ]
    assert first["matches_published"] and data["published_reproduced"] is True
    hashes = [v["outputs"][0]["sha256"] for v in data["variants"]]
    assert len(set(hashes)) == 5, "every seed trains other weights"
    assert [v["matches_published"] for v in data["variants"]] == [True, False, False, False, False]
    # The published build scores what the recipe's functional check expects.
    assert first["metrics"]["clean"] == 0.925926
    assert [r["name"] for r in data["rows"]] == ROWS
    assert data["metric"] == "test_accuracy" and data["per_class_key"] == "per_class_accuracy"


def test_the_summaries_are_min_median_max_of_the_variants(five: tuple[SeedReport, Store]) -> None:
    data = five[0].to_json()
    for row in data["rows"]:
        values = [v["metrics"][row["name"]] for v in data["variants"]]
        summary = row["summary"]
        assert summary["n"] == 5
        assert summary["min"] == min(values) and summary["max"] == max(values)
        assert summary["median"] == sorted(values)[2] == statistics.median(values)
        assert summary["spread"] == pytest.approx(max(values) - min(values), abs=1e-9)
        assert summary["seed_of_min"] == data["seeds"][values.index(min(values))]
        classes = row["per_class"]
        assert sorted(classes, key=int) == [str(d) for d in range(10)]
        for cls, stats in classes.items():
            per_seed = [v["per_class"][row["name"]][cls] for v in data["variants"]]
            assert (stats["min"], stats["median"], stats["max"]) == (
                min(per_seed),
                statistics.median(per_seed),
                max(per_seed),
            )
    # The corruptions do what they are for: every stress row scores below the clean one.
    medians = {r["name"]: r["summary"]["median"] for r in data["rows"]}
    assert all(medians[name] < medians["clean"] for name in ROWS[1:])


def test_the_shipped_limits_accept_the_measured_spread(five: tuple[SeedReport, Store]) -> None:
    report, _ = five
    data = report.to_json()
    assert report.ok and data["ok"] and data["limits_declared"]
    for row in data["rows"]:
        acceptance = row["acceptance"]
        assert [c["limit"] for c in acceptance["checks"]] == ["max-spread", "min"]
        assert all(c["met"] for c in acceptance["checks"])
        assert acceptance["checks"][0]["measured"] == row["summary"]["spread"]
    lines = seed_table(report)
    assert lines[0] == (
        "digits-mlp-1.0.0: seed sensitivity of test_accuracy across 5 seeds "
        "(20240601…20240605; the published seed is 20240601)"
    )
    assert lines[1] == "  seed 20240601 rebuilt bit-identical to the published file"
    assert "20240601*" in lines[2] and lines[2].endswith("│ accepts")
    body = [line.split()[0] for line in lines[4:9]]
    assert body == ROWS
    clean = lines[4]
    assert clean.endswith("spread ≤ 0.03, min ≥ 0.9: ok")
    assert "0.9259" in clean  # the published seed's accuracy, 4 decimals
    assert lines[-1] == "digits-mlp-1.0.0: accepted: every row is within the recipe's [seeds.accept] limits"
    assert any(line.startswith("  widest per-class spread: class ") for line in lines)
    assert seed_table(data) == lines, "the table reads the stored JSON as well"


def test_the_report_is_the_same_bytes_in_another_store(
    five: tuple[SeedReport, Store], five_again: tuple[SeedReport, Store], tmp_path: Path
) -> None:
    (one, store_one), (two, _) = five, five_again
    assert one.to_text() == two.to_text()
    text = one.to_text()
    assert str(store_one.root) not in text and str(REPO) not in text
    assert json.loads(text)["recipe"] == {
        "id": "digits-mlp-1.0.0",
        "name": "digits-mlp",
        "version": "1.0.0",
        "file": "digits-mlp.toml",
    }
    from weightpkg.plots import seed_plot

    pngs = [seed_plot(one, tmp_path / "one.png"), seed_plot(two, tmp_path / "two.png")]
    first, second = (p.read_bytes() for p in pngs)
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert first == second
    assert seed_plot(json.loads(text), tmp_path / "from-json.png").read_bytes() == first
    assert b"Software" not in first and b"Creation" not in first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "written atomically"


def test_the_report_is_kept_in_the_store_with_its_files(five_again: tuple[SeedReport, Store]) -> None:
    report, store = five_again
    recipe = load_recipe(DIGITS)
    stored = find_seed_report(recipe, store)
    assert stored == report.to_json()
    assert stored["basis"] == report_basis(recipe) and report_is_current(stored, recipe)
    referenced, problems = store.read_manifests()
    assert problems == []
    kept = set(referenced["digits-mlp-1.0.0.seeds"])
    built = {v["outputs"][0]["sha256"] for v in stored["variants"]}
    assert {e.digest.hex for e in store.entries() if e.name in kept} >= built
    collected = store.gc(dry_run=True)
    assert not any(path.name.endswith("digits-mlp.safetensors") for path in collected)
    assert find_seed_report(recipe, Store(store.root.parent / "empty")) is None


def test_impossible_limits_fail_and_say_which(tmp_path: Path, five: tuple[SeedReport, Store]) -> None:
    def tighten(text: str) -> str:
        text = text.replace(
            "[seeds.accept.clean]\nmax-spread = 0.03\n", "[seeds.accept.clean]\nmax-spread = 0.0001\n"
        )
        return text.replace(
            "[seeds.accept.blur]\nmax-spread = 0.20\nmin = 0.58\n", "[seeds.accept.blur]\nmin = 0.99\n"
        )

    recipe = load_recipe(recipe_copy(tmp_path, tighten))
    assert recipe.seeds is not None and recipe.seeds.accept["clean"].max_spread == 0.0001
    _, store = five  # the builds are reused: the limits are no part of a build's derivation
    report = seed_sensitivity(recipe, store, 3, env_mode="current", log=quiet, keep=False)
    data = report.to_json()
    assert not report.ok and not data["ok"]
    by_row = {r["name"]: r["acceptance"] for r in data["rows"]}
    assert by_row["clean"]["checks"][0] == {
        "limit": "max-spread",
        "allowed": 0.0001,
        "measured": data["rows"][0]["summary"]["spread"],
        "met": False,
    }
    assert [c["limit"] for c in by_row["blur"]["checks"]] == ["min"] and not by_row["blur"]["ok"]
    assert by_row["dead-pixels"]["ok"]
    lines = seed_table(report)
    assert lines[-1].startswith("digits-mlp-1.0.0: NOT ACCEPTED: clean spread ")
    assert "(accepted: max-spread 0.0001)" in lines[-1] and "; blur min " in lines[-1]
    assert report.basis != report_basis(load_recipe(DIGITS)), "other limits, another basis"
    assert find_seed_report(recipe, store) == five[0].to_json(), "keep=False leaves the stored one"


def test_fewer_than_two_seeds_are_refused(five: tuple[SeedReport, Store]) -> None:
    for count in (0, 1):
        with pytest.raises(UsageError, match=f"--seeds {count}: a spread needs at least 2 seeds"):
            seed_sensitivity(load_recipe(DIGITS), five[1], count, env_mode="current")


def test_a_recipe_without_seeds_says_what_to_declare(tmp_path: Path, five: tuple[SeedReport, Store]) -> None:
    def drop(text: str) -> str:
        start = text.index("# Seed sensitivity")
        return text[:start] + text[text.index("[bias]") :]

    recipe = load_recipe(recipe_copy(tmp_path, drop))
    assert recipe.seeds is None and recipe.stress == ()
    with pytest.raises(UsageError) as caught:
        seed_sensitivity(recipe, five[1], 5, env_mode="current")
    assert "declares no [seeds] table" in str(caught.value)
    assert "published = " in str(caught.value) and "env = " in str(caught.value)

    shipped = load_recipe(DIGITS)
    blind = replace(shipped, reproducibility=replace(shipped.reproducibility, functional=None))
    with pytest.raises(UsageError, match=r"declare \[reproducibility.functional\] with metric and a command"):
        seed_sensitivity(blind, five[1], 2, env_mode="current")


STRESS_TEMPLATE = """
[[stress]]
name = "{name}"
command = ["python", "-c", {code}, "{{weights}}"]
"""


def with_stress(name: str, code: str):
    def edit(text: str) -> str:
        return text.replace("\n[bias]", STRESS_TEMPLATE.format(name=name, code=json.dumps(code)) + "\n[bias]")

    return edit


def test_a_stress_test_that_prints_no_json_is_named(tmp_path: Path, five: tuple[SeedReport, Store]) -> None:
    recipe = load_recipe(recipe_copy(tmp_path, with_stress("silent", "print('all fine, no numbers')")))
    with pytest.raises(BuildError) as caught:
        seed_sensitivity(recipe, five[1], 2, env_mode="current", log=quiet, keep=False)
    assert "'silent' printed no JSON object on seed-20240601" in str(caught.value)


def test_a_stress_test_without_the_metric_or_classes_is_named(
    tmp_path: Path, five: tuple[SeedReport, Store]
) -> None:
    code = "import json; print(json.dumps({'accuracy': 0.5, 'per_class_accuracy': {'0': 1.0}}))"
    recipe = load_recipe(recipe_copy(tmp_path / "a", with_stress("renamed", code)))
    with pytest.raises(BuildError) as caught:
        seed_sensitivity(recipe, five[1], 2, env_mode="current", log=quiet, keep=False)
    assert (
        "stress test 'renamed' printed no number for 'test_accuracy' on seed 20240601 "
        "(its JSON object has the keys: accuracy, per_class_accuracy)"
    ) in str(caught.value)

    code = "import json; print(json.dumps({'test_accuracy': 0.5, 'per_class_accuracy': [0.5]}))"
    recipe = load_recipe(recipe_copy(tmp_path / "b", with_stress("listed", code)))
    with pytest.raises(BuildError) as caught:
        seed_sensitivity(recipe, five[1], 2, env_mode="current", log=quiet, keep=False)
    assert "stress test 'listed' printed no object 'per_class_accuracy' (class → number)" in str(caught.value)


def test_a_plot_without_matplotlib_says_how_to_install_it(
    five: tuple[SeedReport, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weightpkg.plots import seed_plot

    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(UsageError, match=r"pip install 'weightpkg\[plot\]'"):
        seed_plot(five[0], tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()


# --- train.py itself ------------------------------------------------------------------------------


def run_train(tmp_path: Path, *args: str, seed: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    if seed is not None:
        env["WEIGHTPKG_SEED"] = seed
    script = REPO / "recipes" / "digits-mlp" / "train.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path, env=env
    )


def test_train_reads_plain_or_gzip_csv_and_its_seed_from_the_environment(
    tmp_path: Path, digits_csv: bytes
) -> None:
    (tmp_path / "digits.csv.gz").write_bytes(digits_csv)
    (tmp_path / "digits.csv").write_bytes(gzip.decompress(digits_csv))
    for data, seed in (("digits.csv", None), ("digits.csv", str(PUBLISHED_SEED)), ("digits.csv.gz", None)):
        done = run_train(tmp_path, "train", data, "out.safetensors", seed=seed)
        assert done.returncode == 0, done.stderr
        assert hashlib.sha256((tmp_path / "out.safetensors").read_bytes()).hexdigest() == PUBLISHED_SHA256
        assert json.loads(done.stdout)["test_accuracy"] == 0.925926
    other = run_train(tmp_path, "train", "digits.csv", "other.safetensors", seed=str(PUBLISHED_SEED + 1))
    assert other.returncode == 0
    assert (tmp_path / "other.safetensors").read_bytes() != (tmp_path / "out.safetensors").read_bytes()
    bad = run_train(tmp_path, "train", "digits.csv", "x.safetensors", seed="soon")
    assert bad.returncode == 1 and "WEIGHTPKG_SEED='soon': expected a non-negative integer" in bad.stderr


def test_train_corruptions_are_deterministic_and_hurt(tmp_path: Path, digits_csv: bytes) -> None:
    (tmp_path / "digits.csv.gz").write_bytes(digits_csv)
    shutil.copyfile(REPO / "recipes" / "digits-mlp" / "digits-mlp.safetensors", tmp_path / "w.safetensors")
    clean = run_train(tmp_path, "evaluate", "digits.csv.gz", "w.safetensors")
    printed = json.loads(clean.stdout)
    assert sorted(printed) == ["per_class_accuracy", "test_accuracy"]
    assert printed["test_accuracy"] == 0.925926 and list(printed["per_class_accuracy"]) == [
        str(d) for d in range(10)
    ]
    for name in ("gaussian-noise", "blur", "contrast", "dead-pixels"):
        runs = [
            run_train(tmp_path, "evaluate", "digits.csv.gz", "w.safetensors", "--corrupt", name)
            for _ in range(2)
        ]
        assert runs[0].returncode == 0, runs[0].stderr
        assert runs[0].stdout == runs[1].stdout
        assert json.loads(runs[0].stdout)["test_accuracy"] < printed["test_accuracy"]
    unknown = run_train(tmp_path, "evaluate", "digits.csv.gz", "w.safetensors", "--corrupt", "fog")
    assert unknown.returncode == 1 and "--corrupt 'fog': expected one of gaussian-noise" in unknown.stderr
