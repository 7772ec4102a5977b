"""verify end to end through the real CLI: what a distro build sees."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from weightpkg.core.digest import Digest
from weightpkg.store import entry_name

from .builders import recipe_text, safetensors_bytes, sha256
from .conftest import REPO

DIGITS = REPO / "recipes" / "digits-mlp.toml"
DIGITS_SHA = "fdd22cfea84802d7d8f2287afb8385e1440b2a3891ee11f905207791fc88078c"


def local_recipe(folder: Path, data: bytes, *, name: str = "w.safetensors", pin: str | None = None,
                 fmt: str = "safetensors") -> Path:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / name).write_bytes(data)
    recipe = folder / "pkg.toml"
    recipe.write_text(recipe_text([{
        "path": name, "sha256": pin or sha256(data), "size": len(data), "format": fmt,
        "sources": [{"kind": "path", "path": f"files/{name}"}],
    }]))
    return recipe


def tensors() -> bytes:
    return safetensors_bytes({
        "a": ("F32", [2, 2], bytes(16)),
        "b": ("I64", [3], bytes(24)),
        "empty": ("F16", [0, 4], b""),
    }, metadata={"format": "pt"})


def test_shipped_digits_recipe_verifies_offline(store_root: Path, cli) -> None:
    done = cli("--store", str(store_root), "verify", str(DIGITS))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{DIGITS}: digits-mlp.safetensors: ok (sha256 fdd22cfea848…, 19528 bytes, safetensors, "
        "4 tensors, content-sha256 3aecf41939d9… as pinned; "
        "from source 1 (path digits-mlp/digits-mlp.safetensors))",
        f"{DIGITS}: ML-Policy class: Free "
        "(free weights, training data and program available under free licences)",
        f"{DIGITS}: verified: digits-mlp 1.0.0 (1 file)",
    ]
    entry = store_root / "entries"
    assert [p.name.split("-", 1)[1] for p in entry.iterdir()] == ["digits-mlp.safetensors"]
    manifest = json.loads((store_root / "packages" / "digits-mlp-1.0.0.json").read_text())
    assert manifest["files"][0]["sha256"] == DIGITS_SHA
    again = cli("--store", str(store_root), "verify", str(DIGITS))
    assert again.returncode == 0
    assert "in the store" in again.stdout


def test_wrong_sha256_fails_naming_file_expected_and_actual(tmp_path: Path, store_root: Path,
                                                            cli) -> None:
    data = tensors()
    wrong = "0" * 64
    recipe = local_recipe(tmp_path, data, pin=wrong)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    line = (
        f"{recipe}: w.safetensors: FAILED: sha256 mismatch: expected {wrong}, got {sha256(data)} "
        "(from source 1 (path files/w.safetensors))"
    )
    assert line in done.stdout.splitlines()
    assert f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)" in done.stdout
    assert list((store_root / "entries").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert not (store_root / "packages" / "test-pkg-1.0.json").exists()


def test_tampered_store_entry_fails_verify_and_names_it(tmp_path: Path, store_root: Path,
                                                       cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    assert cli("--store", str(store_root), "fetch", str(recipe)).returncode == 0
    [entry] = (store_root / "entries").iterdir()
    entry.chmod(0o644)
    raw = bytearray(entry.read_bytes())
    raw[-1] ^= 0xFF
    entry.write_bytes(bytes(raw))
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert f"{recipe}: w.safetensors: FAILED: store entry {entry} was altered" in done.stdout
    checked = cli("--store", str(store_root), "store", "verify")
    assert checked.returncode == 1
    assert f"{entry}: content changed" in checked.stderr
    repaired = cli("--store", str(store_root), "store", "verify", "--repair")
    assert f"removed {entry}" in repaired.stdout
    assert cli("--store", str(store_root), "verify", str(recipe)).returncode == 0


def test_malformed_safetensors_is_a_finding(tmp_path: Path, store_root: Path, cli) -> None:
    data = tensors() + b"trailing"
    recipe = local_recipe(tmp_path, data)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert "FAILED: safetensors: 8 trailing bytes after the last tensor" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_json_report_is_deterministic(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    first = cli("--store", str(store_root), "verify", "--json", str(recipe))
    shutil.rmtree(store_root)
    second = cli("--store", str(store_root), "verify", "--json", str(recipe))
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    report = json.loads(first.stdout)
    assert report["verdict"] == "verified"
    [file_report] = report["recipes"][0]["files"]
    assert file_report["details"]["safetensors"] == {"dtypes": ["F16", "F32", "I64"], "header_bytes":
                                                     file_report["details"]["safetensors"]["header_bytes"],
                                                     "tensors": 3}
    assert first.stdout == json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_missing_source_file_fails_with_reason(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    (tmp_path / "files" / "w.safetensors").unlink()
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert f"{recipe}: w.safetensors: note: source 1 (path files/w.safetensors): " \
           f"no such file: {(tmp_path / 'files' / 'w.safetensors').resolve()}" in done.stdout
    assert f"{recipe}: w.safetensors: FAILED: no source delivered it" in done.stdout


def test_symlink_escaping_the_recipe_folder_is_refused(tmp_path: Path, store_root: Path,
                                                       cli) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    folder = tmp_path / "r"
    recipe = local_recipe(folder, b"secret", fmt="other")
    (folder / "files" / "w.safetensors").unlink()
    (folder / "files" / "w.safetensors").symlink_to(outside)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert "outside the recipe's folder" in done.stdout
    assert list((store_root / "entries").iterdir()) == []


def test_store_commands(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    assert cli("--store", str(store_root), "store", "path").stdout.strip() == str(store_root)
    missing = cli("--store", str(store_root), "store", "path", str(recipe))
    assert missing.returncode == 1 and "w.safetensors: not in the store" in missing.stderr
    assert cli("--store", str(store_root), "fetch", str(recipe)).returncode == 0
    [entry] = (store_root / "entries").iterdir()
    assert cli("--store", str(store_root), "store", "path", str(recipe)).stdout.strip() == str(entry)
    listing = json.loads(cli("--store", str(store_root), "store", "ls", "--json").stdout)
    assert listing["packages"] == ["test-pkg-1.0"]
    assert listing["entries"][0]["name"] == entry.name
    assert cli("--store", str(store_root), "store", "gc").stdout.strip() == "0 path(s) removed"
    (store_root / "packages" / "test-pkg-1.0.json").unlink()
    gc = cli("--store", str(store_root), "store", "gc")
    assert f"removed {entry}" in gc.stdout
    assert not entry.exists()


def test_env_variable_chooses_the_store(tmp_path: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    done = cli("fetch", str(recipe), env={"WEIGHTPKG_STORE": str(tmp_path / "via-env")})
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "via-env" / "entries").iterdir())) == 1


def test_verify_of_an_empty_folder_is_a_usage_error(tmp_path: Path, cli) -> None:
    done = cli("verify", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path}: no recipes (*.toml) in this folder" in done.stderr


def test_a_planted_symlink_entry_is_not_trusted(tmp_path: Path, store_root: Path, cli) -> None:
    data = tensors()
    recipe = local_recipe(tmp_path, data)
    impostor = tmp_path / "impostor.bin"
    impostor.write_bytes(b"x" * len(data))
    (store_root / "entries").mkdir(parents=True)
    planted = store_root / "entries" / entry_name(Digest.from_hex(sha256(data)), "w.safetensors")
    planted.symlink_to(impostor)
    done = cli("--store", str(store_root), "verify", str(recipe))
    # The symlink is not an entry: the file is fetched from its source and replaces it.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from source 1" in done.stdout
    assert not planted.is_symlink() and planted.read_bytes() == data
    assert impostor.read_bytes() == b"x" * len(data)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, b"data", fmt="other")
    fifo = tmp_path / "files" / "w.safetensors"
    fifo.unlink()
    os.mkfifo(fifo)
    done = cli("--store", str(store_root), "verify", str(recipe), timeout=30)
    assert done.returncode == 1
    assert "is not a regular file" in done.stdout


def test_hash_reports_every_missing_file(tmp_path: Path, cli) -> None:
    good = tmp_path / "good.bin"
    good.write_bytes(b"x")
    done = cli("hash", str(tmp_path / "a"), str(good), str(tmp_path / "b"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"{tmp_path / 'a'}: no such file", f"{tmp_path / 'b'}: no such file"]


def test_a_store_path_that_is_a_file_is_bad_input(tmp_path: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    not_a_folder = tmp_path / "store-file"
    not_a_folder.write_text("")
    done = cli("verify", str(recipe), env={"WEIGHTPKG_STORE": str(not_a_folder)})
    assert done.returncode == 2
    assert done.stderr.strip() == f"{not_a_folder}: the store must be a folder, and this is a file"
    assert cli("--store", str(not_a_folder), "store", "ls").returncode == 2


def test_two_recipes_for_one_package_version_are_refused(tmp_path: Path, store_root: Path,
                                                         cli) -> None:
    first = local_recipe(tmp_path / "a", tensors())
    second = local_recipe(tmp_path / "b", tensors())
    done = cli("--store", str(store_root), "verify", str(first), str(second), str(first))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{second}: package: test-pkg-1.0 is also defined by {first}"


def test_scratch_space_lives_in_the_store_and_is_removed(tmp_path: Path, store_root: Path,
                                                         cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    assert cli("--store", str(store_root), "fetch", str(recipe)).returncode == 0
    assert list((store_root / "tmp").iterdir()) == []


def test_fetch_says_when_it_did_not_rehash(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    assert cli("--store", str(store_root), "fetch", str(recipe)).returncode == 0
    again = cli("--store", str(store_root), "fetch", str(recipe))
    assert "in the store, not re-hashed" in again.stdout.splitlines()[0]
    checked = cli("--store", str(store_root), "verify", str(recipe))
    assert checked.stdout.splitlines()[0].endswith("; in the store)")


def test_lint_and_store_verify_speak_json(tmp_path: Path, store_root: Path, cli) -> None:
    good = local_recipe(tmp_path / "good", tensors())
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('version = "1.0"', "version = 1"))
    done = cli("lint", "--json", str(good), str(bad))
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "ok": [str(good)],
        "problems": [{"file": str(bad), "line": 4, "key": "package.version",
                      "message": "expected a string, got an integer 1"}],
        "warnings": [],
    }
    assert cli("--store", str(store_root), "fetch", str(good)).returncode == 0
    report = cli("--store", str(store_root), "store", "verify", "--json")
    assert report.returncode == 0
    expected = {"entries": 1, "problems": [], "removed": [], "store": str(store_root)}
    assert json.loads(report.stdout) == expected


def _many_recipes(folder: Path) -> Path:
    """Three recipes of several files each: good, malformed, wrongly pinned, missing, a pickle."""
    recipes = folder / "recipes"
    (recipes / "files").mkdir(parents=True)
    good = tensors()
    bad = tensors() + b"trailing"
    pickle_bytes = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94."
    big = os.urandom(5 << 20)  # read ahead on a thread of its own, inside a check thread
    files = {"good.safetensors": good, "bad.safetensors": bad, "p.pkl": pickle_bytes, "big.bin": big}
    for name, data in files.items():
        (recipes / "files" / name).write_bytes(data)
    for number in range(3):
        weights = []
        for name, data in files.items():
            fmt = {"safetensors": "safetensors", "pkl": "pickle", "bin": "other"}[name.rsplit(".", 1)[1]]
            pin = "0" * 64 if (number, name) == (1, "big.bin") else sha256(data)
            weights.append({"path": name, "sha256": pin, "size": len(data), "format": fmt,
                            "sources": [{"kind": "path", "path": f"files/{name}"}]})
        weights.append({"path": "gone.bin", "sha256": sha256(b"x"), "size": 1,
                        "sources": [{"kind": "path", "path": "files/gone.bin"}]})
        (recipes / f"r{number}.toml").write_text(recipe_text(weights, name=f"pkg-{number}"))
    return recipes


def test_checking_files_in_parallel_changes_nothing_in_the_report(tmp_path: Path, store_root: Path,
                                                                   cli) -> None:
    recipes = _many_recipes(tmp_path)
    first = cli("--store", str(store_root), "verify", "--json", "-j", "1", str(recipes))  # fetches
    outputs = {
        jobs: cli("--store", str(store_root), "verify", "--json", "--jobs", jobs, str(recipes))
        for jobs in ("1", "2", "8")
    }
    assert {done.returncode for done in (first, *outputs.values())} == {1}
    assert len({done.stdout for done in outputs.values()}) == 1, "the same report whatever -j says"
    report = json.loads(outputs["8"].stdout)
    statuses = {(r["package"], f["path"]): f["status"] for r in report["recipes"] for f in r["files"]}
    assert statuses[("pkg-0", "good.safetensors")] == "ok"
    assert statuses[("pkg-0", "bad.safetensors")] == "failed"
    assert statuses[("pkg-1", "big.bin")] == "failed"
    assert statuses[("pkg-2", "big.bin")] == "ok"
    assert all(statuses[(f"pkg-{n}", "gone.bin")] == "failed" for n in range(3))
    assert [f["source"] for f in report["recipes"][0]["files"][:2]] == ["store", "store"]
    assert "Traceback" not in "".join(done.stderr for done in outputs.values())


def test_jobs_must_be_at_least_one(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    done = cli("--store", str(store_root), "verify", "-j", "0", str(recipe))
    assert done.returncode == 2
    assert "-j" in done.stderr and "0" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_entry_hashed_ahead_counts_only_while_it_is_the_same_file(tmp_path: Path,
                                                                     store_root: Path) -> None:
    import weightpkg
    from weightpkg.acquire import Pin
    from weightpkg.checks import Checks, HashedAhead
    from weightpkg.verification import FileReport, check_entry

    data = tensors()
    recipe = local_recipe(tmp_path, data)
    (tmp_path / "broken.toml").write_text("schema = [")  # skipped ahead; the loader reports it
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000)  # tomllib's recursion limit
    store = weightpkg.open_store(store_root)
    weightpkg.fetch([recipe], store)
    [entry] = (store_root / "entries").iterdir()
    pin = Pin("w.safetensors", Digest.from_hex(sha256(data)), len(data))
    with Checks(2) as checks:
        ahead = HashedAhead(checks)
        ahead.start([recipe, *(tmp_path / f for f in ("broken.toml", "deep.toml", "missing.toml"))], store)
        early = ahead.take(entry)
        assert early is not None and ahead.take(entry) is None
        identity, digest = early()
        assert digest == pin.sha256
        report = FileReport("w.safetensors", pin.sha256.hex, pin.size, "safetensors")
        check_entry(entry, pin, report, lambda: (identity, pin.sha256))
        assert report.status == "ok"
        # Altered after the early hash: the identity no longer holds, so the entry is re-hashed.
        entry.chmod(0o644)
        raw = bytearray(entry.read_bytes())
        raw[-1] ^= 1
        entry.write_bytes(bytes(raw))
        report = FileReport("w.safetensors", pin.sha256.hex, pin.size, "safetensors")
        check_entry(entry, pin, report, lambda: (identity, pin.sha256))
        assert report.status == "failed" and "was altered" in (report.problem or "")


def test_a_malformed_recipe_beside_hashed_entries_is_still_a_usage_error(tmp_path: Path,
                                                                         store_root: Path, cli) -> None:
    recipe = local_recipe(tmp_path, tensors())
    assert cli("--store", str(store_root), "fetch", str(recipe)).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(recipe.read_text().replace('version = "1.0"', "version = 1"))
    done = cli("--store", str(store_root), "verify", str(recipe), str(bad))
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr and "version" in done.stderr
    assert "Traceback" not in done.stderr
