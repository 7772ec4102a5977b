"""Signatures against the real tools, in both directions: minisign, ssh-keygen -Y, model_signing.

Every key is made in the test's temporary folder; where a test checks the real tool's direction,
the real tool makes the key too.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from weightpkg import signing
from weightpkg.errors import UsageError
from weightpkg.signing import SignatureError

from .conftest import require_peer

PRINCIPAL = "release@weightpkg.test"


def run(*argv: str | Path, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a real tool, its standard input a file or nothing."""
    with open(stdin or os.devnull, "rb") as handle:
        return subprocess.run(
            [str(a) for a in argv], stdin=handle, capture_output=True, text=True, timeout=60
        )


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A file larger than the 1 MiB read buffer, not a multiple of it."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom((1 << 20) + 12345))
    return path


def begins(path: Path, text: str) -> str:
    """A pattern for an error message that begins with ``path`` and goes on with ``text``."""
    return "^" + re.escape(f"{path}{text}")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------------
# minisign


@pytest.fixture
def minisign() -> str:
    return require_peer("minisign")


def real_minisign_keypair(minisign: str, folder: Path, name: str = "real") -> tuple[Path, Path]:
    public, secret = folder / f"{name}.pub", folder / f"{name}.key"
    done = run(minisign, "-G", "-W", "-p", public, "-s", secret)
    assert done.returncode == 0, done.stderr
    return public, secret


def test_minisign_verifies_our_signature(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    sig = signing.sign_minisign(weights, secret)
    assert sig == weights.with_name(weights.name + ".minisig")
    done = run(minisign, "-V", "-H", "-p", public, "-m", weights)  # -H: only a prehashed signature will do
    assert done.returncode == 0, done.stderr
    assert f"Trusted comment: file:{weights.name}\tsha256:{sha256_of(weights)}" in done.stdout
    line = public.read_text().splitlines()[1]
    assert run(minisign, "-V", "-P", line, "-m", weights).returncode == 0
    assert signing.verify_minisign(weights, public).sha256 == sha256_of(weights)


def test_minisign_reads_the_secret_key_we_generate(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    out = tmp_path / "real.minisig"
    done = run(minisign, "-S", "-s", secret, "-m", weights, "-x", out, "-t", f"file:{weights.name}")
    assert done.returncode == 0, done.stderr
    verified = signing.verify_minisign(weights, public, out)
    assert verified.trusted_comment == f"file:{weights.name}"
    assert same_key_id(verified.key, public)  # the key id minisign printed in the comment


def test_we_verify_minisign_signatures_prehashed_and_legacy(
    minisign: str, weights: Path, tmp_path: Path
) -> None:
    public, secret = real_minisign_keypair(minisign, tmp_path)
    comment = f"file:{weights.name} sha256:{sha256_of(weights)}"  # spaces, as a person might write it
    assert run(minisign, "-S", "-s", secret, "-m", weights, "-t", comment).returncode == 0
    verified = signing.verify_minisign(weights, public)
    assert (verified.format, verified.trusted_comment) == ("minisign", comment)
    assert verified.sha256 == sha256_of(weights)
    legacy = tmp_path / "legacy.minisig"
    assert run(minisign, "-S", "-l", "-s", secret, "-m", weights, "-x", legacy).returncode == 0
    assert base64.b64decode(legacy.read_text().splitlines()[1])[:2] == b"Ed"  # the raw file was signed
    assert signing.verify_minisign(weights, public, legacy).key == verified.key


def test_we_sign_with_a_key_minisign_made(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = real_minisign_keypair(minisign, tmp_path)
    sig = signing.sign_minisign(weights, secret, trusted_comment="weightpkg test build 1")
    done = run(minisign, "-V", "-p", public, "-m", weights, "-x", sig)
    assert done.returncode == 0, done.stderr
    assert "Trusted comment: weightpkg test build 1" in done.stdout


def test_the_longest_trusted_comment_minisign_reads(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    longest = "x" * signing.MINISIGN_TRUSTED_COMMENT_MAX  # 8173: one more and minisign says "too long"
    signing.sign_minisign(weights, secret, trusted_comment=longest)
    assert run(minisign, "-V", "-p", public, "-m", weights).returncode == 0
    with pytest.raises(UsageError, match="trusted comment longer than 8173 bytes"):
        signing.sign_minisign(weights, secret, trusted_comment=longest + "x")
    with pytest.raises(UsageError, match="a trusted comment is one line"):
        signing.sign_minisign(weights, secret, trusted_comment="two\nlines")


def test_minisign_signatures_are_deterministic(weights: Path, tmp_path: Path) -> None:
    _, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    first = signing.sign_minisign(weights, secret, signature_path=tmp_path / "a.minisig").read_bytes()
    second = signing.sign_minisign(weights, secret, signature_path=tmp_path / "b.minisig").read_bytes()
    assert first == second


def test_a_tampered_file_fails_minisign_both_ways(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    signing.sign_minisign(weights, secret)
    tamper(weights)
    assert run(minisign, "-V", "-p", public, "-m", weights).returncode != 0
    with pytest.raises(SignatureError, match="the file or the signature was altered") as caught:
        signing.verify_minisign(weights, public)
    assert (caught.value.file, caught.value.format, caught.value.exit_code) == (str(weights), "minisign", 1)


def test_a_wrong_minisign_key_is_refused_both_ways(minisign: str, weights: Path, tmp_path: Path) -> None:
    _, secret = real_minisign_keypair(minisign, tmp_path, "signer")
    other, _ = real_minisign_keypair(minisign, tmp_path, "other")
    assert run(minisign, "-S", "-s", secret, "-m", weights).returncode == 0
    assert run(minisign, "-V", "-p", other, "-m", weights).returncode != 0
    with pytest.raises(SignatureError, match=r"signed by key [0-9A-F]{16}, not by a trusted key \(\w+\)"):
        signing.verify_minisign(weights, other)


def same_key_id(ours: str, public: Path) -> bool:
    """minisign prints a key id in its comment without leading zeros (printf %X); we write all 16
    hex digits. One id in 16 starts with a zero nibble, so compare the numbers."""
    theirs = public.read_text().split()[-2]
    return len(ours) == 16 and int(ours, 16) == int(theirs, 16)


def test_a_keyring_folder_picks_the_key_by_id(minisign: str, weights: Path, tmp_path: Path) -> None:
    keyring = tmp_path / "keyring"
    keyring.mkdir()
    public, secret = real_minisign_keypair(minisign, keyring, "release")
    real_minisign_keypair(minisign, keyring, "other")
    shutil.move(secret, tmp_path / "release.key")
    assert run(minisign, "-S", "-s", tmp_path / "release.key", "-m", weights).returncode == 0
    assert same_key_id(signing.verify_minisign(weights, keyring).key, public)


def test_a_trusted_comment_naming_another_sha256_is_refused(
    minisign: str, weights: Path, tmp_path: Path
) -> None:
    public, secret = real_minisign_keypair(minisign, tmp_path)
    claimed = "0" * 64
    comment = f"file:{weights.name}\tsha256:{claimed}"
    assert run(minisign, "-S", "-s", secret, "-m", weights, "-t", comment).returncode == 0
    assert run(minisign, "-V", "-p", public, "-m", weights).returncode == 0  # minisign does not read comments
    actual = sha256_of(weights)
    with pytest.raises(SignatureError, match=f"names sha256 {claimed}, but the file's sha256 is {actual}"):
        signing.verify_minisign(weights, public)


def test_a_trusted_comment_naming_another_file_is_refused(weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    signing.sign_minisign(weights, secret)
    stored = tmp_path / f"0abc-{weights.name}"  # how the store names an entry
    weights.rename(stored)
    sig = weights.with_name(weights.name + ".minisig")
    with pytest.raises(SignatureError, match=f"names file '{weights.name}', not '{stored.name}'"):
        signing.verify_minisign(stored, public, sig)
    assert signing.verify_minisign(stored, public, sig, name=weights.name).sha256 == sha256_of(stored)


def test_an_altered_trusted_comment_fails_both_ways(minisign: str, weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    sig = signing.sign_minisign(weights, secret)
    sig.write_text(sig.read_text().replace("sha256:", "sha256:00", 1))
    assert run(minisign, "-V", "-p", public, "-m", weights).returncode != 0
    with pytest.raises(SignatureError, match="trusted comment's signature does not verify"):
        signing.verify_minisign(weights, public)


def test_unusable_minisign_keys_are_usage_errors_naming_the_file(weights: Path, tmp_path: Path) -> None:
    public, secret = signing.generate_minisign_keypair(tmp_path, "ours")
    lines = secret.read_text().splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[2:4] = b"Sc"  # what `minisign -G` without -W writes: scrypt-encrypted
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n")
    with pytest.raises(UsageError, match=begins(encrypted, ": the minisign secret key is encrypted")):
        signing.sign_minisign(weights, encrypted)
    with pytest.raises(UsageError, match=begins(public, ": not a minisign secret key")):
        signing.sign_minisign(weights, public)
    with pytest.raises(UsageError, match=begins(tmp_path / "absent.key", ": no such file")):
        signing.sign_minisign(weights, tmp_path / "absent.key")
    with pytest.raises(UsageError, match="already exists"):
        signing.generate_minisign_keypair(tmp_path, "ours")


# ---------------------------------------------------------------------------------------------
# OpenSSH signatures


@pytest.fixture
def ssh_keygen() -> str:
    return require_peer("ssh-keygen")


SSH_KEY_TYPES = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-p256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-p521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


def ssh_key(ssh_keygen: str, folder: Path, kind: str = "ed25519", name: str = "id") -> Path:
    key = folder / f"{name}_{kind}"
    done = run(ssh_keygen, "-q", *SSH_KEY_TYPES[kind], "-N", "", "-C", name, "-f", key)
    assert done.returncode == 0, done.stderr
    return key


def allowed_signers(folder: Path, *lines: str) -> Path:
    path = folder / "allowed_signers"
    path.write_text("# weightpkg release keys\n" + "".join(line + "\n" for line in lines))
    return path


def signer_line(key: Path, principals: str = PRINCIPAL, options: str = 'namespaces="weightpkg"') -> str:
    key_type, blob = key.with_suffix(".pub").read_text().split()[:2]
    return " ".join(part for part in (principals, options, key_type, blob) if part)


def ssh_verify(
    ssh_keygen: str,
    keyring: Path,
    sig: Path,
    data: Path,
    principal: str = PRINCIPAL,
    namespace: str = "weightpkg",
) -> subprocess.CompletedProcess[str]:
    return run(
        ssh_keygen, "-Y", "verify", "-f", keyring, "-I", principal, "-n", namespace, "-s", sig, stdin=data
    )


@pytest.mark.parametrize("kind", sorted(SSH_KEY_TYPES))
def test_ssh_keygen_verifies_our_signature(ssh_keygen: str, kind: str, weights: Path, tmp_path: Path) -> None:
    key = ssh_key(ssh_keygen, tmp_path, kind)
    keyring = allowed_signers(tmp_path, signer_line(key))
    sig = signing.sign_ssh(weights, key)
    assert sig == weights.with_name(weights.name + ".sig")
    lines = sig.read_text().splitlines()
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----" and lines[-1] == "-----END SSH SIGNATURE-----"
    assert {len(line) for line in lines[1:-2]} == {70}
    done = ssh_verify(ssh_keygen, keyring, sig, weights)
    assert done.returncode == 0, done.stderr
    assert f'Good "weightpkg" signature for {PRINCIPAL}' in done.stdout
    if kind in ("ed25519", "rsa"):  # deterministic signatures: ssh-keygen writes the very same bytes
        theirs = run(ssh_keygen, "-Y", "sign", "-f", key, "-n", "weightpkg", stdin=weights)
        assert theirs.stdout == sig.read_text()


@pytest.mark.parametrize("kind", sorted(SSH_KEY_TYPES))
def test_we_verify_ssh_keygen_signatures(ssh_keygen: str, kind: str, weights: Path, tmp_path: Path) -> None:
    key = ssh_key(ssh_keygen, tmp_path, kind)
    keyring = allowed_signers(tmp_path, signer_line(key, principals=f"ci@weightpkg.test,{PRINCIPAL}"))
    assert run(ssh_keygen, "-Y", "sign", "-f", key, "-n", "weightpkg", weights).returncode == 0
    verified = signing.verify_ssh(weights, keyring, PRINCIPAL)
    fingerprint = run(ssh_keygen, "-l", "-f", key.with_suffix(".pub")).stdout.split()[1]
    assert (verified.format, verified.signer, verified.key) == ("ssh", PRINCIPAL, fingerprint)
    assert signing.verify_ssh(weights, keyring, None).signer == f"ci@weightpkg.test,{PRINCIPAL}"


def test_a_tampered_file_fails_ssh_both_ways(ssh_keygen: str, weights: Path, tmp_path: Path) -> None:
    key = ssh_key(ssh_keygen, tmp_path)
    keyring = allowed_signers(tmp_path, signer_line(key))
    sig = signing.sign_ssh(weights, key)
    tamper(weights)
    assert ssh_verify(ssh_keygen, keyring, sig, weights).returncode != 0
    with pytest.raises(SignatureError, match="incorrect signature: the file or the signature was altered"):
        signing.verify_ssh(weights, keyring, PRINCIPAL)


def test_a_wrong_namespace_fails_ssh_both_ways(ssh_keygen: str, weights: Path, tmp_path: Path) -> None:
    key = ssh_key(ssh_keygen, tmp_path)
    keyring = allowed_signers(tmp_path, signer_line(key, options=""))
    assert run(ssh_keygen, "-Y", "sign", "-f", key, "-n", "file", weights).returncode == 0
    sig = weights.with_name(weights.name + ".sig")
    assert ssh_verify(ssh_keygen, keyring, sig, weights).returncode != 0
    with pytest.raises(SignatureError, match="made for namespace 'file', not 'weightpkg'"):
        signing.verify_ssh(weights, keyring, PRINCIPAL)
    assert signing.verify_ssh(weights, keyring, PRINCIPAL, namespace="file").signer == PRINCIPAL


def test_a_keyring_restricting_namespaces_fails_both_ways(
    ssh_keygen: str, weights: Path, tmp_path: Path
) -> None:
    key = ssh_key(ssh_keygen, tmp_path)
    keyring = allowed_signers(tmp_path, signer_line(key, options='namespaces="git,email"'))
    sig = signing.sign_ssh(weights, key)
    assert ssh_verify(ssh_keygen, keyring, sig, weights).returncode != 0
    with pytest.raises(SignatureError, match=r"allowed_signers:2 does not permit namespace 'weightpkg'"):
        signing.verify_ssh(weights, keyring, PRINCIPAL)


def test_a_principal_not_in_allowed_signers_fails_both_ways(
    ssh_keygen: str, weights: Path, tmp_path: Path
) -> None:
    key = ssh_key(ssh_keygen, tmp_path)
    keyring = allowed_signers(tmp_path, signer_line(key))
    sig = signing.sign_ssh(weights, key)
    assert ssh_verify(ssh_keygen, keyring, sig, weights, principal="mallory@weightpkg.test").returncode != 0
    with pytest.raises(SignatureError, match=f"is allowed for {PRINCIPAL}, not for 'mallory@weightpkg.test'"):
        signing.verify_ssh(weights, keyring, "mallory@weightpkg.test")


def test_an_unknown_key_fails_both_ways(ssh_keygen: str, weights: Path, tmp_path: Path) -> None:
    listed = ssh_key(ssh_keygen, tmp_path, name="listed")
    stranger = ssh_key(ssh_keygen, tmp_path, name="stranger")
    keyring = allowed_signers(tmp_path, signer_line(listed))
    sig = signing.sign_ssh(weights, stranger)
    assert ssh_verify(ssh_keygen, keyring, sig, weights).returncode != 0
    with pytest.raises(SignatureError, match=r"key SHA256:\S+ is not in .*allowed_signers for 'release@"):
        signing.verify_ssh(weights, keyring, PRINCIPAL)


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ('valid-before="20000101Z"', "the key has expired"),
        ('valid-after="29990101"', "the key is not valid yet"),
    ],
)
def test_key_validity_times_hold_both_ways(
    ssh_keygen: str, option: str, reason: str, weights: Path, tmp_path: Path
) -> None:
    key = ssh_key(ssh_keygen, tmp_path)
    keyring = allowed_signers(tmp_path, signer_line(key, options=f'{option},namespaces="weightpkg"'))
    sig = signing.sign_ssh(weights, key)
    assert ssh_verify(ssh_keygen, keyring, sig, weights).returncode != 0
    with pytest.raises(SignatureError, match=reason):
        signing.verify_ssh(weights, keyring, PRINCIPAL)
    window = 'valid-after="20000101",valid-before="29990101Z"'
    in_range = allowed_signers(tmp_path, signer_line(key, options=window))
    assert ssh_verify(ssh_keygen, in_range, sig, weights).returncode == 0
    assert signing.verify_ssh(weights, in_range, PRINCIPAL).signer == PRINCIPAL


def test_allowed_signers_patterns_and_options() -> None:
    match = signing._match_pattern_list
    assert match("release@weightpkg.test", "*@weightpkg.test")
    assert not match("mallory@weightpkg.test", "*@weightpkg.test,!mallory@*")
    assert match("a@b", "x@y,a@?")
    assert not match("A@B", "a@b")  # case-sensitive, as ssh-keygen's principal match
    blob = base64.b64encode(b"\0\0\0\x0bssh-ed25519" + b"\0\0\0\x20" + bytes(32)).decode()
    entry = signing._parse_allowed_signer(
        f'"a@b,c@d" Namespaces="weight\\"pkg",cert-authority,VALID-AFTER="20240102Z" ssh-ed25519 {blob} note',
        7,
    )
    assert (entry.principals, entry.namespaces, entry.cert_authority, entry.line) == (
        "a@b,c@d",
        'weight"pkg',
        True,
        7,
    )
    assert entry.valid_after == 1704153600  # 2024-01-02T00:00:00Z
    for bad in (
        f"a@b nonsense ssh-ed25519 {blob}",
        f"a@b namespaces=unquoted ssh-ed25519 {blob}",
        f"a@b ssh-rsa {blob}",
        "a@b",
        f'a@b valid-after="20250101",valid-before="20240101" ssh-ed25519 {blob}',
    ):
        with pytest.raises(ValueError):
            signing._parse_allowed_signer(bad, 1)


def test_a_malformed_keyring_line_is_a_usage_error(tmp_path: Path) -> None:
    keyring = allowed_signers(tmp_path, "release@weightpkg.test ssh-ed25519 not-base64!")
    with pytest.raises(UsageError, match=begins(keyring, ":2: not an allowed_signers line")):
        signing.read_allowed_signers(keyring)


def test_unusable_ssh_keys_are_usage_errors(ssh_keygen: str, weights: Path, tmp_path: Path) -> None:
    key = tmp_path / "protected"
    assert run(ssh_keygen, "-q", "-t", "ed25519", "-N", "secret", "-f", key).returncode == 0
    with pytest.raises(UsageError, match=begins(key, ": the private key is protected by a passphrase")):
        signing.sign_ssh(weights, key)
    with pytest.raises(UsageError, match=begins(key, ".pub: not an OpenSSH or PEM private key")):
        signing.sign_ssh(weights, key.with_suffix(".pub"))
    with pytest.raises(UsageError, match="namespace"):
        signing.sign_ssh(weights, key, namespace="")


# ---------------------------------------------------------------------------------------------
# OpenSSF model-signing


def model_signing_cli() -> list[str]:
    """The real ``model_signing`` command: on PATH, or the module importable here."""
    found = shutil.which("model_signing")
    if found:
        return [found]
    if importlib.util.find_spec("model_signing") is not None:
        return [sys.executable, "-m", "model_signing"]
    message = "model_signing is not installed (pip install model-signing pyopenssl)"
    if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
        pytest.fail(f"required peer missing: {message}")
    pytest.skip(message)


@pytest.fixture
def model_signing_peer() -> list[str]:
    return model_signing_cli()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A model folder with what model_signing leaves out (root .git*) and what it keeps."""
    root = tmp_path / "tiny-model"
    for name, data in {
        "model.safetensors": os.urandom((1 << 20) + 7),
        "config.json": b'{"hidden": 8}\n',
        "tokenizer/vocab.txt": b"a\nb\n",
        "tokenizer/.gitignore": b"*.tmp\n",  # only the root's git files are left out
        "a-b/c": b"sorted as a path, not as a string\n",
        "a/b": b"x\n",
        "empty.bin": b"",
        "données v1.txt": b"utf-8 names\n",
        ".git/HEAD": b"ref: refs/heads/main\n",
        ".github/workflows/ci.yml": b"on: push\n",
        ".gitattributes": b"*.safetensors filter=lfs\n",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def ec_keypair(folder: Path, curve: ec.EllipticCurve | None = None, name: str = "model") -> tuple[Path, Path]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private, public = folder / f"{name}-key.pem", folder / f"{name}-pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def statement_of(sig: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))


def ms_verify(cli: list[str], model: Path, public: Path, sig: Path) -> subprocess.CompletedProcess[str]:
    return run(*cli, "verify", "key", model, "--public_key", public, "--signature", sig)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=lambda c: c.name)
def test_model_signing_verifies_our_bundle(
    model_signing_peer: list[str], curve: ec.EllipticCurve, model: Path, tmp_path: Path
) -> None:
    private, public = ec_keypair(tmp_path, curve)
    sig = signing.sign_model_dir(model, private, tmp_path / "model.sig")
    done = ms_verify(model_signing_peer, model, public, sig)
    assert done.returncode == 0, done.stderr
    names = [r["name"] for r in statement_of(sig)["predicate"]["resources"]]
    assert names == [
        "a/b",
        "a-b/c",
        "config.json",
        "données v1.txt",
        "empty.bin",
        "model.safetensors",
        "tokenizer/.gitignore",
        "tokenizer/vocab.txt",
    ]


def test_model_signing_verifies_our_bundle_inside_the_model(
    model_signing_peer: list[str], model: Path, tmp_path: Path
) -> None:
    private, public = ec_keypair(tmp_path)
    sig = signing.sign_model_dir(model, private, model / "model.sig")
    done = ms_verify(model_signing_peer, model, public, sig)
    assert done.returncode == 0, done.stderr
    assert signing.verify_model_dir(model, public, sig).files[-1] == "tokenizer/vocab.txt"


def test_model_signing_refuses_our_bundle_for_a_modified_model(
    model_signing_peer: list[str], model: Path, tmp_path: Path
) -> None:
    private, public = ec_keypair(tmp_path)
    sig = signing.sign_model_dir(model, private, tmp_path / "model.sig")
    tamper(model / "model.safetensors")
    done = ms_verify(model_signing_peer, model, public, sig)
    assert done.returncode == 1, done.stdout
    # its problems are printed as a Python list's repr: the quoting depends on the digest bytes
    assert re.search(r"Hash mismatch for \\?'model\.safetensors\\?'", done.stderr), done.stderr


def test_we_verify_a_bundle_model_signing_made(
    model_signing_peer: list[str], model: Path, tmp_path: Path
) -> None:
    private, public = ec_keypair(tmp_path)
    sig = model / "model.sig"  # inside: model_signing records it in ignore_paths
    done = run(*model_signing_peer, "sign", "key", model, "--private_key", private, "--signature", sig)
    assert done.returncode == 0, done.stderr
    verified = signing.verify_model_dir(model, public, sig)
    assert verified.key == hashlib.sha256(public.read_bytes()).hexdigest()
    assert "model.sig" not in verified.files and ".gitattributes" not in verified.files
    theirs = statement_of(sig)
    assert verified.sha256 == theirs["subject"][0]["digest"]["sha256"]
    sig = Path(shutil.copy(sig, tmp_path / "theirs.sig"))  # its signed ignore_paths still leave out model.sig
    signing.sign_model_dir(model, private, model / "model.sig")  # ours, in the same place
    ours = statement_of(model / "model.sig")
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]  # same files, same order
    assert ours["subject"] == theirs["subject"]
    assert signing.verify_model_dir(model, public, sig).sha256 == verified.sha256

    (model / "extra.bin").write_bytes(b"unsigned")
    tamper(model / "config.json")
    (model / "a" / "b").unlink()
    with pytest.raises(SignatureError) as caught:
        signing.verify_model_dir(model, public, sig)
    signed = {r["name"]: r["digest"] for r in statement_of(sig)["predicate"]["resources"]}
    assert caught.value.problems == (
        "extra.bin: not in the signature (an extra file)",
        "a/b: signed, but missing",
        f"config.json: sha256 {sha256_of(model / 'config.json')}, "
        f"but the signature says {signed['config.json']}",
    )
    assert str(caught.value).startswith(f"{model}: model-signing signature: the model differs from what was")


def test_a_model_signing_bundle_with_the_wrong_key_is_refused_both_ways(
    model_signing_peer: list[str], model: Path, tmp_path: Path
) -> None:
    private, _ = ec_keypair(tmp_path, name="signer")
    _, other = ec_keypair(tmp_path, name="other")
    sig = tmp_path / "model.sig"
    done = run(*model_signing_peer, "sign", "key", model, "--private_key", private, "--signature", sig)
    assert done.returncode == 0, done.stderr
    assert "Key mismatch" in ms_verify(model_signing_peer, model, other, sig).stderr
    with pytest.raises(SignatureError, match="made with the key whose hint is"):
        signing.verify_model_dir(model, other, sig)


def resign(sig: Path, private: Path, edit) -> None:
    """Rewrite a bundle's statement and sign it again: what a key holder (not a tamperer) could do."""
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    edit(statement)
    payload = json.dumps(statement).encode()
    kind = b"application/vnd.in-toto+json"
    key = serialization.load_pem_private_key(private.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    signature = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()
    sig.write_text(json.dumps(bundle))


def test_bundles_that_do_not_hold_together_are_refused(model: Path, tmp_path: Path) -> None:
    private, public = ec_keypair(tmp_path)
    sig = signing.sign_model_dir(model, private, tmp_path / "model.sig")
    bundle = json.loads(sig.read_text())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    payload = payload.replace(b"config.json", b"config.jsom")
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    altered = tmp_path / "altered.sig"
    altered.write_text(json.dumps(bundle))
    with pytest.raises(SignatureError, match="the signature does not verify with the given key"):
        signing.verify_model_dir(model, public, altered)

    def drop_first_resource(statement: dict) -> None:
        statement["predicate"]["resources"].pop(0)

    resign(sig, private, drop_first_resource)
    with pytest.raises(SignatureError, match="inconsistent manifest: its root digest is"):
        signing.verify_model_dir(model, public, sig)

    def ignore_everything(statement: dict) -> None:
        statement["predicate"]["resources"] = []
        statement["predicate"]["serialization"]["ignore_paths"] = ["."]
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"").hexdigest()

    resign(sig, private, ignore_everything)
    with pytest.raises(SignatureError, match=r"ignore_paths names the whole model \('.'\)"):
        signing.verify_model_dir(model, public, sig)


def test_models_with_links_and_wrong_keys_are_refused(model: Path, tmp_path: Path) -> None:
    private, public = ec_keypair(tmp_path)
    sig = signing.sign_model_dir(model, private, tmp_path / "model.sig")
    (model / "alias.safetensors").symlink_to("model.safetensors")
    with pytest.raises(UsageError, match=r"alias\.safetensors: a symbolic link"):
        signing.sign_model_dir(model, private, tmp_path / "again.sig")
    with pytest.raises(SignatureError, match=r"alias\.safetensors: a symbolic link"):
        signing.verify_model_dir(model, public, sig)
    ed_key = tmp_path / "ed25519.pem"
    ed_key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UsageError, match=begins(ed_key, ": model-signing keys are ECDSA P-256")):
        signing.sign_model_dir(model, ed_key, tmp_path / "ed.sig")
    with pytest.raises(UsageError, match=begins(private, ": not a PEM public key")):
        signing.verify_model_dir(model, private, sig)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(UsageError, match=begins(locked, ": the private key is encrypted")):
        signing.sign_model_dir(model, locked, tmp_path / "locked.sig")
