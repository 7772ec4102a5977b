"""weightpkg scan on files without a recipe, and pickle scanning inside verify."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from .builders import recipe_text, sha256
from .conftest import CORPORA, REPO

PICKLESCAN = CORPORA / "picklescan" / "tests" / "data"


class Payload:
    """Pickles to ``os.system("touch …")``: dumping it is harmless, loading it would not be."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_scan_cli_exit_codes_and_json(tmp_path: Path, cli) -> None:
    benign = tmp_path / "benign.pkl"
    benign.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    ok = cli("scan", str(benign))
    assert ok.returncode == 0
    assert ok.stdout.splitlines() == [f"{benign}: safe (pickle): no globals"]
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload(tmp_path / "pwned"), protocol=2))
    bad = cli("scan", "--json", str(benign), str(evil))
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert [f["verdict"] for f in report["files"]] == ["safe", "dangerous"]
    assert cli("scan", "--json", str(benign), str(evil)).stdout == bad.stdout
    assert not (tmp_path / "pwned").exists()
    missing = cli("scan", str(tmp_path / "nope.pkl"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_scan_cli_flags_the_picklescan_corpus(cli) -> None:
    if not PICKLESCAN.is_dir():
        pytest.skip(f"corpus not found at {PICKLESCAN}")
    done = cli("scan", "-q", str(PICKLESCAN / "malicious0.pkl"), str(PICKLESCAN / "benign0_v4.pkl"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{PICKLESCAN / 'malicious0.pkl'}: dangerous (pickle): ")
    assert lines[1] == f"{PICKLESCAN / 'benign0_v4.pkl'}: safe (pickle): no globals"


def pickle_recipe(folder: Path, data: bytes) -> Path:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    (folder / "files" / "w.pkl").write_bytes(data)
    path = folder / "pkg.toml"
    path.write_text(
        recipe_text(
            [
                {
                    "path": "w.pkl",
                    "sha256": sha256(data),
                    "size": len(data),
                    "format": "pickle",
                    "sources": [{"kind": "path", "path": "files/w.pkl"}],
                }
            ],
            extra='[bias]\nnotes = "a test"\n',
        )
    )
    return path


def test_verify_fails_a_dangerous_pickle_and_runs_nothing(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = pickle_recipe(tmp_path, pickle.dumps(Payload(tmp_path / "pwned")))
    done = cli("--store", str(store_root), "verify", "--json", str(recipe))
    assert done.returncode == 1
    findings = json.loads(done.stdout)["recipes"][0]["findings"]
    assert {f["rule"] for f in findings} == {"pickle-dangerous-global"}
    assert not (tmp_path / "pwned").exists()


def test_policies_judge_a_safe_pickle(tmp_path: Path, store_root: Path, cli) -> None:
    recipe = pickle_recipe(tmp_path, pickle.dumps({"w": [0.5]}))
    permissive = cli(
        "--store",
        str(store_root),
        "verify",
        "--policy",
        str(REPO / "policies" / "permissive.toml"),
        str(recipe),
    )
    assert permissive.returncode == 0, permissive.stdout + permissive.stderr
    main = cli(
        "--store",
        str(store_root),
        "verify",
        "--policy",
        str(REPO / "policies" / "debian-main.toml"),
        str(recipe),
    )
    assert main.returncode == 1
    assert f"{recipe}: POLICY debian-main: pickle: w.pkl is pickle: loading it runs a pickle" in main.stdout
