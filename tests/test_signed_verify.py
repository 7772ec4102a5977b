"""Signatures inside verify: a policy names trusted keys; a recipe's files are signed beside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import REPO, require_peer


def setup(tmp_path: Path, cli, *, require: bool = True) -> tuple[Path, Path, Path]:
    shutil.copytree(REPO / "recipes" / "digits-mlp", tmp_path / "digits-mlp")
    recipe = tmp_path / "digits-mlp.toml"
    shutil.copy(REPO / "recipes" / "digits-mlp.toml", recipe)
    keys = tmp_path / "keys"
    done = cli("sign", "keygen", str(keys), "--name", "release")
    assert done.returncode == 0, done.stderr
    policy = tmp_path / "signed.toml"
    policy.write_text(
        'schema = 1\n[policy]\nname = "signed"\n[rules]\n'
        f'require-signatures = {"true" if require else "false"}\ntrusted-keys = ["keys/release.pub"]\n'
    )
    return recipe, keys, policy


def test_signed_recipe_verifies_and_unsigned_fails_the_rule(tmp_path: Path, store_root: Path, cli) -> None:
    recipe, keys, policy = setup(tmp_path, cli)
    unsigned = cli("--store", str(store_root), "verify", "--policy", str(policy), str(recipe))
    assert unsigned.returncode == 1
    assert (
        f"{recipe}: POLICY signed: require-signatures: no trusted signature was verified" in unsigned.stdout
    )
    signed = cli(
        "--store", str(store_root), "sign", "recipe", str(recipe), "--key", str(keys / "release.key")
    )
    assert signed.returncode == 0, signed.stderr
    sig = tmp_path / "digits-mlp.signatures" / "digits-mlp.safetensors.minisig"
    assert signed.stdout.strip() == str(sig)
    done = cli("--store", str(store_root), "verify", "--policy", str(policy), str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: signed by minisign key" in done.stdout


def test_a_signature_that_does_not_hold_is_a_failing_finding(tmp_path: Path, store_root: Path, cli) -> None:
    recipe, keys, policy = setup(tmp_path, cli, require=False)
    assert (
        cli(
            "--store", str(store_root), "sign", "recipe", str(recipe), "--key", str(keys / "release.key")
        ).returncode
        == 0
    )
    other = cli("sign", "keygen", str(tmp_path / "other"), "--name", "other")
    assert other.returncode == 0
    policy.write_text(policy.read_text().replace("keys/release.pub", "other/other.pub"))
    done = cli("--store", str(store_root), "verify", "--policy", str(policy), str(recipe))
    assert done.returncode == 1
    assert "FAILED: signature " in done.stdout and "does not hold" in done.stdout


def test_our_recipe_signature_is_accepted_by_minisign(tmp_path: Path, store_root: Path, cli) -> None:
    minisign = require_peer("minisign")
    recipe, keys, _ = setup(tmp_path, cli)
    assert (
        cli(
            "--store", str(store_root), "sign", "recipe", str(recipe), "--key", str(keys / "release.key")
        ).returncode
        == 0
    )
    sig = tmp_path / "digits-mlp.signatures" / "digits-mlp.safetensors.minisig"
    weights = tmp_path / "digits-mlp" / "digits-mlp.safetensors"
    done = subprocess.run(
        [minisign, "-V", "-p", str(keys / "release.pub"), "-m", str(weights), "-x", str(sig)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sha256:fdd22cfea84802d7d8f2287afb8385e1440b2a3891ee11f905207791fc88078c" in done.stdout


def test_check_signature_command(tmp_path: Path, cli) -> None:
    keys = tmp_path / "keys"
    assert cli("sign", "keygen", str(keys)).returncode == 0
    target = tmp_path / "w.bin"
    target.write_bytes(b"weights")
    assert cli("sign", "file", str(target), "--minisign-key", str(keys / "weightpkg.key")).returncode == 0
    ok = cli("check-signature", str(target), "--minisign-key", str(keys / "weightpkg.pub"))
    assert ok.returncode == 0 and "minisign signature holds" in ok.stdout
    target.write_bytes(b"tampered")
    bad = cli("check-signature", str(target), "--minisign-key", str(keys / "weightpkg.pub"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    usage = cli("check-signature", str(target))
    assert usage.returncode == 2
