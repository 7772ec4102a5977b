"""The ImageNet story told with the shipped recipes, for real: a data recipe derives a
face-blur-style dataset from the pinned UCI digits, a model recipe trains on it, and digits-mlp
trains on the original. Re-releasing the derived data makes exactly the model outdated, and
``rebuild --dependents`` shows what the change did to it. ``--with-input`` rebuilds digits-mlp
on a user's own CSV without touching what is published. Real builds, the sklearn wheel served
from 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO, require_peer
from .servers import FileServer
from .test_shipped_rebuilds import served, wheelhouse  # noqa: F401 - fixtures

STORY = ["digits-mlp", "digits-faceblur", "digits-faceblur-mlp"]
DIGITS_MEMBER = "sklearn/datasets/data/digits.csv.gz"


@pytest.fixture
def story(tmp_path: Path, served: FileServer) -> Path:  # noqa: F811 - the imported fixture
    """The three recipes and their folders, copied: what a maintainer's checkout holds."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    for name in STORY:
        shutil.copytree(REPO / "recipes" / name, folder / name)
        shutil.copyfile(REPO / "recipes" / f"{name}.toml", folder / f"{name}.toml")
    return folder


def digits_rows(wheelhouse_dir: Path) -> list[str]:
    [wheel] = sorted(wheelhouse_dir.glob("scikit_learn-1.9.1-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return gzip.decompress(archive.read(DIGITS_MEMBER)).decode().splitlines()


def run_json(cli, *args: str, code: int = 0) -> dict:
    done = cli(*args, timeout=900)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_shipped_story_recipes_rebuild_bit_identical(story: Path, tmp_path: Path, cli) -> None:
    store = ["--store", str(tmp_path / "store")]
    for name in ("digits-faceblur", "digits-faceblur-mlp"):
        report = run_json(cli, *store, "challenge", "-q", "--json", str(story / f"{name}.toml"))
        assert [f["verdict"] for f in report["files"]] == ["identical"], name
    # The model's data came through the data recipe's own source for it.
    report = run_json(cli, *store, "verify", "--inputs", "--json", str(story / "digits-faceblur-mlp.toml"))
    [recipe] = report["recipes"]
    assert recipe["verdict"] == "verified", recipe
    assert {f["path"] for f in recipe["files"]} >= {"digits-faceblur.csv", "train.py"}


def reissue_blurred_data(cli, story: Path, store: list[str], rows: str) -> tuple[str, int]:
    """What the data recipe's maintainer does: widen the blurred region, rebuild, publish."""
    recipe = story / "digits-faceblur.toml"
    text = recipe.read_text()
    assert '"--rows", "2:6", "--cols", "2:6"' in text
    recipe.write_text(
        text.replace('"--rows", "2:6", "--cols", "2:6"', f'"--rows", "{rows}", "--cols", "{rows}"')
    )
    record = run_json(cli, *store, "rebuild", "-q", "--json", str(recipe))
    [output] = record["outputs"]
    store_root = Path(store[1])
    published = story / "digits-faceblur" / "digits-faceblur.csv"
    old = hashlib.sha256(published.read_bytes()).hexdigest()
    old_size = published.stat().st_size
    published.chmod(0o644)
    shutil.copyfile(store_root / output["store_path"], published)
    text = recipe.read_text()
    recipe.write_text(
        text.replace(old, output["sha256"]).replace(f"size = {old_size}\n", f"size = {output['size']}\n")
    )
    return output["sha256"], output["size"]


def test_reissuing_the_derived_dataset_outdates_exactly_the_model_trained_on_it(
    story: Path, tmp_path: Path, cli
) -> None:
    store = ["--store", str(tmp_path / "store")]
    nothing = run_json(cli, "outdated", "--json", str(story))
    assert nothing == {"outdated": [], "problems": []}
    model = story / "digits-faceblur-mlp.toml"
    published_model = (story / "digits-faceblur-mlp" / "digits-faceblur-mlp.safetensors").read_bytes()

    new_sha, _ = reissue_blurred_data(cli, story, store, "1:7")

    listed = run_json(cli, "outdated", "--json", str(story), code=1)
    assert [o["id"] for o in listed["outdated"]] == ["digits-faceblur-mlp-1.0.0"]
    [stale] = listed["outdated"][0]["stale"]
    assert stale["input"] == "digits-faceblur.csv"
    assert stale["published"] == new_sha
    assert listed["problems"] == []
    text = cli("outdated", str(story))
    assert "digits-faceblur-mlp.toml: outdated" in text.stdout
    assert "weightpkg rebuild --dependents" in text.stdout and "digits-faceblur.toml" in text.stdout

    # The old pin no longer matches what the data recipe delivers, and verify says so.
    fetched = cli(*store, "verify", "--inputs", str(model), timeout=300)
    assert fetched.returncode != 0
    assert "digits-faceblur.csv" in fetched.stdout + fetched.stderr

    report = run_json(
        cli, *store, "rebuild", "--dependents", "-q", "--json", str(story / "digits-faceblur.toml")
    )
    assert report["order"] == ["digits-faceblur-mlp-1.0.0"]
    [dependent] = report["dependents"]
    [change] = dependent["substitutions"]
    assert change["input"] == "digits-faceblur.csv"
    assert change["used"]["sha256"] == new_sha
    assert change["recipe_pin"]["sha256"] == stale["pinned"]
    challenge = dependent["challenge"]
    [file] = challenge["files"]
    assert file["verdict"] == "differs"
    assert any(t["status"] != "identical" for t in file["comparison"]["tensors"])
    values = challenge["functional"]["values"]
    assert values["published"] == pytest.approx(0.89899, abs=1e-6)  # the old model on the old data
    assert values["rebuilt"] != values["published"]
    assert values["published-on-new-inputs"] < values["rebuilt"], "retraining recovers accuracy"
    # The published files are untouched; digits-mlp (original data) was neither listed nor rebuilt.
    assert (story / "digits-faceblur-mlp" / "digits-faceblur-mlp.safetensors").read_bytes() == published_model
    assert "digits-mlp" not in json.dumps(report["order"])

    lines = cli(*store, "rebuild", "--dependents", "-q", str(story / "digits-faceblur.toml"), timeout=900)
    assert lines.returncode == 0, lines.stderr
    assert "functional test_accuracy: published 0.89899 → rebuilt" in lines.stdout
    assert "the published weights on the new inputs" in lines.stdout


def test_with_input_rebuilds_digits_on_a_users_own_csv(
    story: Path,
    tmp_path: Path,
    cli,
    wheelhouse: Path,  # noqa: F811
) -> None:
    store_root = tmp_path / "store"
    store = ["--store", str(store_root)]
    recipe = story / "digits-mlp.toml"
    recipe_bytes = recipe.read_bytes()
    published = (story / "digits-mlp" / "digits-mlp.safetensors").read_bytes()
    plain = run_json(cli, *store, "rebuild", "-q", "--json", str(recipe))
    assert plain["substitutions"] == []
    manifest = (store_root / "packages" / "digits-mlp-1.0.0.build.json").read_bytes()

    # The user's data: the same columns, plain text (not gzip), the first 200 training rows left out.
    rows = digits_rows(wheelhouse)
    mine = tmp_path / "my-digits.csv"
    mine.write_text("\n".join(rows[200:]) + "\n")
    record = run_json(
        cli, *store, "rebuild", "-q", "--json", "--with-input", f"digits.csv.gz={mine}", str(recipe)
    )
    [change] = record["substitutions"]
    assert change["input"] == "digits.csv.gz"
    assert change["used"] == {
        "sha256": hashlib.sha256(mine.read_bytes()).hexdigest(),
        "size": mine.stat().st_size,
    }
    assert (
        change["recipe_pin"]["sha256"] == "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
    )
    assert "my-digits.csv" in change["origin"]
    [used] = [i for i in record["inputs"] if i["name"] == "digits.csv.gz"]
    assert used["sha256"] == change["used"]["sha256"]
    assert record["derivation"] != plain["derivation"]
    [output] = record["outputs"]
    assert output["sha256"] != plain["outputs"][0]["sha256"]
    assert (store_root / output["store_path"]).is_file(), "the variant has its own store entry"

    # Nothing published changed, and the recipe's own build is still the stored one.
    assert recipe.read_bytes() == recipe_bytes
    assert (story / "digits-mlp" / "digits-mlp.safetensors").read_bytes() == published
    assert (store_root / "packages" / "digits-mlp-1.0.0.build.json").read_bytes() == manifest
    own = run_json(cli, *store, "challenge", "-q", "--json", "--no-functional", str(recipe))
    assert [f["verdict"] for f in own["files"]] == ["identical"]

    shown = run_json(
        cli, *store, "challenge", "-q", "--json", "--with-input", f"digits.csv.gz={mine}", str(recipe)
    )
    assert shown["ok"] and [s["input"] for s in shown["substitutions"]] == ["digits.csv.gz"]
    [file] = shown["files"]
    assert file["verdict"] == "differs" and file["rebuilt_sha256"] == output["sha256"]
    values = shown["functional"]["values"]
    assert set(values) == {"published", "rebuilt", "published-on-new-inputs"}
    assert values["published"] == pytest.approx(0.925926, abs=1e-6)
    text = cli(*store, "challenge", "-q", "--with-input", f"digits.csv.gz={mine}", str(recipe), timeout=900)
    assert text.returncode == 0
    assert "input digits.csv.gz substituted" in text.stdout
    assert "the published files are untouched" in text.stdout


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("nonsense", "expected NAME=PATH"),
        ("missing.csv=/dev/null", "no input named 'missing.csv'"),
        ("digits.csv.gz=/no/such/file.csv", "no such file"),
    ],
)
def test_with_input_refuses_what_it_cannot_use(argument: str, message: str, tmp_path: Path, cli) -> None:
    done = cli(
        "--store",
        str(tmp_path / "store"),
        "rebuild",
        "--with-input",
        argument,
        str(REPO / "recipes" / "digits-mlp.toml"),
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store" / "packages").exists() or not list(
        (tmp_path / "store" / "packages").iterdir()
    )


def test_graph_of_the_shipped_recipes(tmp_path: Path, cli) -> None:
    recipes = str(REPO / "recipes")
    text = cli("graph", recipes)
    assert text.returncode == 0, text.stderr
    assert "digits-faceblur-1.0.0  (data recipe" in text.stdout
    assert "from recipe digits-faceblur-1.0.0" in text.stdout
    as_json = run_json(cli, "graph", "--format", "json", recipes)
    assert as_json == run_json(cli, "graph", "--format", "json", recipes), "deterministic"
    ids = {r["id"] for r in as_json["recipes"]}
    assert {"digits-mlp-1.0.0", "digits-faceblur-1.0.0", "digits-faceblur-mlp-1.0.0"} <= ids
    [link] = [d for d in as_json["dependencies"] if d["recipe"] == "digits-faceblur-mlp-1.0.0"]
    assert link["upstream"] == "digits-faceblur-1.0.0" and link["status"] == "current"
    assert as_json["problems"] == []
    # The data both digits recipes are built from is one file node.
    [digits] = [f for f in as_json["files"] if "digits.csv.gz" in f["names"]]
    targets = {e["to"] for e in as_json["edges"] if e["from"] == digits["id"]}
    assert targets == {"digits-mlp-1.0.0", "digits-faceblur-1.0.0"}
    dot = cli("graph", "--format", "dot", recipes)
    assert dot.stdout.startswith("digraph")

    require_peer("dot")
    for form, magic in (("svg", b"<svg"), ("png", b"\x89PNG\r\n\x1a\n")):
        out = tmp_path / f"lineage.{form}"
        drawn = cli("graph", "--format", form, "-o", str(out), recipes)
        assert drawn.returncode == 0, drawn.stderr
        assert magic in out.read_bytes()[:400]
    refused = cli("graph", "--format", "png", recipes)
    assert refused.returncode == 2 and "--output" in refused.stderr


def test_a_policy_can_require_a_current_seed_report(story: Path, tmp_path: Path, cli) -> None:
    store = ["--store", str(tmp_path / "store")]
    policy = tmp_path / "seeds-policy.toml"
    policy.write_text(
        'schema = 1\n[policy]\nname = "seeds"\n[rules]\nrequire-seed-report = true\nminimum-seeds = 3\n'
    )
    digits = str(story / "digits-mlp.toml")

    def findings(recipe: str) -> list[str]:
        done = cli(*store, "verify", "--json", "--policy", str(policy), recipe, timeout=900)
        [report] = json.loads(done.stdout)["recipes"]
        return [f["message"] for f in report["policy"]["findings"] if f["rule"] == "require-seed-report"]

    [missing] = findings(digits)
    assert "no seed-sensitivity report" in missing and "--seeds" in missing
    [undeclared] = findings(str(story / "digits-faceblur-mlp.toml"))
    assert "declares no [seeds]" in undeclared

    made = cli(*store, "rebuild", "-q", "--seeds", "2", digits, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    [few] = findings(digits)
    assert "has 2 seeds" in few and "requires 3" in few

    made = cli(*store, "rebuild", "-q", "--seeds", "3", digits, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr
    assert findings(digits) == []
    passed = cli(*store, "verify", "--policy", str(policy), digits, timeout=900)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    # A change of what the report measured (here a stress test's severity) makes it stale.
    recipe = story / "digits-mlp.toml"
    text = recipe.read_text()
    assert '"--corrupt", "blur", "--severity", "1"' in text
    recipe.write_text(
        text.replace('"--corrupt", "blur", "--severity", "1"', '"--corrupt", "blur", "--severity", "2"')
    )
    [stale] = findings(digits)
    assert "another build of the recipe" in stale


def test_rebuild_seeds_5_on_digits_mlp_reports_the_spread_with_a_plot(
    story: Path, tmp_path: Path, cli
) -> None:
    digits = str(story / "digits-mlp.toml")
    outputs = []
    for run in ("one", "two"):  # two fresh stores: nothing is reused between them
        store = ["--store", str(tmp_path / run / "store")]
        plot, report = tmp_path / run / "seeds.png", tmp_path / run / "seeds.json"
        done = cli(
            *store,
            "rebuild",
            "-q",
            "--seeds",
            "5",
            "--plot",
            str(plot),
            "--report",
            str(report),
            digits,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append((done.stdout, report.read_bytes(), plot.read_bytes()))
    (table, report_bytes, png), again = outputs[0], outputs[1]
    assert again[1] == report_bytes and again[2] == png, "same seeds, same report and plot, byte for byte"
    assert again[0].replace(str(tmp_path / "two"), str(tmp_path / "one")) == table
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    parsed = json.loads(report_bytes)
    assert parsed["seeds"] == [20240601 + k for k in range(5)]
    assert parsed["published_reproduced"] is True
    rows = [row["name"] for row in parsed["rows"]]
    assert rows == ["clean", "gaussian-noise", "blur", "contrast", "dead-pixels"]
    for row in parsed["rows"]:
        values = [v["metrics"][row["name"]] for v in parsed["variants"]]
        assert row["summary"]["min"] == min(values) and row["summary"]["max"] == max(values)
        assert row["per_class"] is not None and set(row["per_class"]) == {str(d) for d in range(10)}
    assert "seed sensitivity of test_accuracy across 5 seeds" in table
    assert "accepted: every row is within" in table.splitlines()[-2]
