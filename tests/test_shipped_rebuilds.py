"""Every shipped rebuildable recipe rebuilds bit-identical in its own hash-pinned environment,
and challenge says so: the real wheels and .debs (from ``tests/wheelhouse.py``, part of README's
test command) served from 127.0.0.1, apt given no package lists, the torch recipes on the CPU."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .builders import safetensors_bytes
from .conftest import REPO, WHEELHOUSE, wheelhouse_files
from .servers import FileServer, SimpleIndex

REBUILDABLE = ["digits-mlp", "penguins-logreg", "fashion-mnist-mlp", "cmudict-char-mlp"]


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    wheelhouse_files("*.whl")
    return WHEELHOUSE


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the module, so the two torch recipes share one build environment."""
    return tmp_path_factory.mktemp("shipped") / "store"


@pytest.fixture
def served(
    wheelhouse: Path,
    simple_index: SimpleIndex,
    file_server: FileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FileServer]:
    """pip pointed at the wheelhouse on loopback; apt with no package lists (so it fails at
    once, before any network); the .debs on a loopback file server."""
    for wheel in sorted(wheelhouse.glob("*.whl")):
        simple_index.add_wheel(wheel)
    for deb in sorted(wheelhouse.glob("*.deb")):
        file_server.files[f"/debian/{deb.name}"] = deb.read_bytes()
    monkeypatch.setenv("PIP_INDEX_URL", simple_index.url + "/simple")
    apt = tmp_path / "apt"
    for sub in ("lists/partial", "parts", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True)
    config = apt / "apt.conf"
    config.write_text(
        f'Dir::State::lists "{apt}/lists";\nDir::Etc::sourcelist "/dev/null";\n'
        f'Dir::Etc::sourceparts "{apt}/parts";\nDir::Cache "{apt}/cache";\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(config))
    yield file_server


def copy_recipe(name: str, folder: Path, server: FileServer) -> Path:
    """The shipped recipe and its folder, with each .deb source also offered from loopback."""
    shutil.copytree(REPO / "recipes" / name, folder / name)
    text = (REPO / "recipes" / f"{name}.toml").read_text()
    for url_path in server.files:
        if url_path.endswith(".deb"):
            package = url_path.rsplit("/", 1)[1].split("_", 1)[0]
            text = text.replace(
                f'package = "{package}"\n', f'package = "{package}"\nurls = ["{server.url}{url_path}"]\n'
            )
    recipe = folder / f"{name}.toml"
    recipe.write_text(text)
    return recipe


@pytest.mark.parametrize("name", REBUILDABLE)
def test_shipped_recipe_rebuilds_bit_identical(
    name: str, tmp_path: Path, shared_store: Path, served: FileServer, cli
) -> None:
    recipe = copy_recipe(name, tmp_path, served)
    built = cli("--store", str(shared_store), "rebuild", "-q", "--json", str(recipe), timeout=1200)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    record = json.loads(built.stdout)
    assert {i["name"] for i in record["inputs"]} >= {"train.py"}
    assert all(len(i["sha256"]) == 64 for i in record["inputs"])
    assert record["environment"]["OMP_NUM_THREADS"] == "1"
    assert record["interpreter"]["version"].startswith("3.")
    pinned = {line.split("==")[0].lower().replace("_", "-") for line in record["requirements"]}
    assert pinned == set(record["libraries"]), "the environment holds exactly the pinned requirements"
    done = cli("--store", str(shared_store), "challenge", "-q", "--json", str(recipe), timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [f["verdict"] for f in report["files"]] == ["identical"]
    assert report["functional"]["ok"], report["functional"]
    assert report["functional"]["values"]["published"] == report["functional"]["values"]["rebuilt"]

    # The rebuild attested: SLSA provenance signed, accepted by the real in-toto and DSSE checks
    # and by verify --attestation.
    from weightpkg.signing import generate_minisign_keypair

    from .test_export_slsa import in_toto_validate, minisign_sslib_key, sslib_verify

    public, secret = generate_minisign_keypair(tmp_path, "release")
    envelope = tmp_path / f"{name}.intoto.jsonl"
    store = ["--store", str(shared_store)]
    exported = cli(*store, "export", "slsa", "--key", str(secret), "-o", str(envelope), str(recipe))
    assert exported.returncode == 0, exported.stderr
    statement = json.loads(sslib_verify(envelope, minisign_sslib_key(public)))
    in_toto_validate(statement)
    assert [s["digest"]["sha256"] for s in statement["subject"]] == [report["files"][0]["published_sha256"]]
    checked = cli(*store, "verify", "--attestation", str(envelope), "--key", str(public), str(recipe))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_scrambled_penguins_file_fails_the_functional_check(
    tmp_path: Path, shared_store: Path, served: FileServer, cli
) -> None:
    # safetensors 0.8.0 writes a Fortran-ordered array's memory under its C-order shape
    # (upstream #825): the same numbers, in the wrong places. Publish such a file and challenge it.
    recipe = copy_recipe("penguins-logreg", tmp_path, served)
    weights = tmp_path / "penguins-logreg" / "penguins-logreg.safetensors"
    raw = weights.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        blob = data[start:end]
        if key == "coef":
            coef = np.frombuffer(blob, dtype=np.float32).reshape(entry["shape"])
            blob = np.asfortranarray(coef).tobytes(order="A")  # memory order, as 0.8.0 wrote it
        tensors[key] = (entry["dtype"], entry["shape"], blob)
    scrambled = safetensors_bytes(tensors, metadata=header.get("__metadata__"))
    weights.write_bytes(scrambled)
    import hashlib

    from weightpkg.tensorfiles import file_content_digest

    text = recipe.read_text()
    old_sha = hashlib.sha256(raw).hexdigest()
    old_content = file_content_digest(REPO / "recipes" / "penguins-logreg" / "penguins-logreg.safetensors")
    text = text.replace(old_sha, hashlib.sha256(scrambled).hexdigest()).replace(
        f"size = {len(raw)}\n", f"size = {len(scrambled)}\n", 1
    )
    # Its publisher pins what it holds too, so verify passes and only the challenge can tell.
    assert old_content in text
    text = text.replace(old_content, file_content_digest(weights))
    recipe.write_text(text)
    done = cli("--store", str(shared_store), "challenge", "-q", "--json", str(recipe), timeout=1200)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    [file] = report["files"]
    changed = [t["name"] for t in file["comparison"]["tensors"] if t["status"] != "identical"]
    assert changed == ["coef"]
    functional = report["functional"]
    assert not functional["ok"]
    assert abs(functional["values"]["rebuilt"] - functional["expected"]) <= functional["tolerance"]
    assert abs(functional["values"]["published"] - functional["expected"]) > functional["tolerance"]
