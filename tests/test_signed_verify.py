"""Signatures inside verify: a policy names trusted keys; a recipe's files are signed beside it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .conftest import REPO, require_peer

DIGITS_SHA256 = "fdd22cfea84802d7d8f2287afb8385e1440b2a3891ee11f905207791fc88078c"


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


# --- keys named by the recipe --------------------------------------------------------------------


def recipe_with_keys(tmp_path: Path, cli, *keys: str) -> tuple[Path, Path]:
    """digits-mlp with a ``[signatures]`` table naming ``keys`` (default: a fresh keys/release.pub)."""
    recipe, key_dir, _ = setup(tmp_path, cli)
    named = keys or ("keys/release.pub",)
    listed = ", ".join(f'"{k}"' for k in named)
    recipe.write_text(recipe.read_text() + f"\n[signatures]\ntrusted-keys = [{listed}]\n")
    return recipe, key_dir


def sign(cli, store_root: Path, recipe: Path, key: Path) -> None:
    done = cli("--store", str(store_root), "sign", "recipe", str(recipe), "--key", str(key))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_recipe_that_names_keys_needs_its_signatures(tmp_path: Path, store_root: Path, cli) -> None:
    recipe, keys = recipe_with_keys(tmp_path, cli)
    sig = tmp_path / "digits-mlp.signatures" / "digits-mlp.safetensors.minisig"
    unsigned = cli("--store", str(store_root), "verify", str(recipe))
    assert unsigned.returncode == 1, unsigned.stdout
    assert f"FAILED: the recipe names trusted keys, but there is no signature {sig}" in unsigned.stdout
    report = json.loads(cli("--store", str(store_root), "verify", "--json", str(recipe)).stdout)
    rules = [f["rule"] for f in report["recipes"][0]["findings"]]
    assert "signature-missing" in rules
    sign(cli, store_root, recipe, keys / "release.key")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signed by minisign key" in done.stdout and "trusted by the recipe" in done.stdout


def test_a_recipe_key_given_as_a_key_line(tmp_path: Path, store_root: Path, cli) -> None:
    _, keys, _ = setup(tmp_path / "gen", cli)
    line = (keys / "release.pub").read_text().splitlines()[1]
    recipe, _ = recipe_with_keys(tmp_path, cli, line)
    sign(cli, store_root, recipe, keys / "release.key")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    other = cli("sign", "keygen", str(tmp_path / "other"), "--name", "other")
    assert other.returncode == 0
    sign(cli, store_root, recipe, tmp_path / "other" / "other.key")
    refused = cli("--store", str(store_root), "verify", str(recipe))
    assert refused.returncode == 1
    assert "FAILED: signature " in refused.stdout and "not by a trusted key" in refused.stdout


def test_a_recipe_cannot_vouch_for_itself_to_a_policy_with_keys(
    tmp_path: Path, store_root: Path, cli
) -> None:
    recipe, _ = recipe_with_keys(tmp_path, cli, "upstream/upstream.pub")
    assert cli("sign", "keygen", str(tmp_path / "upstream"), "--name", "upstream").returncode == 0
    sign(cli, store_root, recipe, tmp_path / "upstream" / "upstream.key")
    # The policy trusts only keys/release.pub: the upstream signature holds, but does not count.
    policy = tmp_path / "signed.toml"
    strict = cli("--store", str(store_root), "verify", "--policy", str(policy), str(recipe))
    assert strict.returncode == 1
    assert "require-signatures: no trusted signature was verified" in strict.stdout
    assert "trusted by the recipe" in strict.stdout and "FAILED: signature" not in strict.stdout
    # A policy that requires signatures but names no keys of its own takes the recipe's.
    policy.write_text('schema = 1\n[policy]\nname = "signed"\n[rules]\nrequire-signatures = true\n')
    loose = cli("--store", str(store_root), "verify", "--policy", str(policy), str(recipe))
    assert loose.returncode == 0, loose.stdout + loose.stderr


def test_a_signature_made_by_minisign_is_checked_by_verify(tmp_path: Path, store_root: Path, cli) -> None:
    minisign = require_peer("minisign")
    recipe, _ = recipe_with_keys(tmp_path, cli, "real/real.pub")
    (tmp_path / "real").mkdir()
    made = subprocess.run(
        [minisign, "-G", "-W", "-p", str(tmp_path / "real" / "real.pub"), "-s", str(tmp_path / "real.key")],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    weights = tmp_path / "digits-mlp" / "digits-mlp.safetensors"
    sig = tmp_path / "digits-mlp.signatures" / "digits-mlp.safetensors.minisig"
    sig.parent.mkdir()
    comment = f"file:digits-mlp.safetensors\tsha256:{DIGITS_SHA256}"
    signed = subprocess.run(
        [minisign, "-S", "-s", str(tmp_path / "real.key"), "-m", str(weights), "-x", str(sig), "-t", comment],
        capture_output=True,
        text=True,
    )
    assert signed.returncode == 0, signed.stderr
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trusted by the recipe" in done.stdout
    # The same key and signature, over a trusted comment that names another file, is refused.
    wrong = comment.replace("digits-mlp.safetensors", "other.safetensors")
    subprocess.run(
        [minisign, "-S", "-s", str(tmp_path / "real.key"), "-m", str(weights), "-x", str(sig), "-t", wrong],
        check=True,
        capture_output=True,
    )
    refused = cli("--store", str(store_root), "verify", str(recipe))
    assert refused.returncode == 1 and "FAILED: signature " in refused.stdout


def test_an_empty_key_list_is_a_recipe_error(tmp_path: Path, cli) -> None:
    recipe, _ = recipe_with_keys(tmp_path, cli)
    recipe.write_text(recipe.read_text().replace('trusted-keys = ["keys/release.pub"]', "trusted-keys = []"))
    done = cli("lint", str(recipe))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "signatures.trusted-keys" in done.stderr
