"""Signatures weightpkg makes and checks, in the formats real tools share; the one module that reads keys.

Three formats, each byte-compatible with its reference tool in both directions:

- **minisign** (``minisign -S/-V``): Ed25519 over the BLAKE2b-512 of the file ("ED", prehashed),
  plus a global signature over that signature and a *trusted comment*, in which weightpkg binds the
  file's name and sha256 (``file:NAME<TAB>sha256:HEX``). Legacy "Ed" signatures are verified too.
- **SSHSIG** (``ssh-keygen -Y sign/verify``): Ed25519, ECDSA or RSA OpenSSH keys, a namespace
  (``weightpkg``), and an ``allowed_signers`` keyring with principals, ``namespaces=``,
  ``valid-after=`` and ``valid-before=``.
- **OpenSSF model-signing** (``model_signing sign key`` / ``verify key``): a Sigstore bundle v0.3
  holding a DSSE envelope around an in-toto Statement that lists every file of a model directory
  with its sha256, signed with an ECDSA P-256/P-384/P-521 key.

Files are hashed by streaming through one reused 1 MiB buffer; no weight file is read whole.
Key files that cannot be used raise :class:`~weightpkg.errors.UsageError` naming the file; a
signature that does not hold raises :class:`SignatureError`. The byte layouts are written down in
``docs/signing.md``.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import mmap
import os
import re
import secrets
import struct
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .core.digest import chunk_buffer, hash_stream
from .errors import SignatureError, UsageError, reading, write_atomically

MINISIGN = "minisign"
SSH = "ssh"
MODEL_SIGNING = "model-signing"

#: Signature files (not bundles) are small; a larger one is not a signature.
_SMALL_FILE_LIMIT = 1 << 20
#: A model-signing bundle lists every file of a model; allow big models, not unbounded input.
_BUNDLE_LIMIT = 64 << 20


@dataclass(frozen=True)
class Verified:
    """A signature that holds, and what it vouches for.

    ``key`` names the key that made it: a minisign key id (``9DF6BE6F143CE925``), an OpenSSH
    fingerprint (``SHA256:…``) or, for model-signing, the sha256 of the public key's PEM (the
    bundle's key hint). ``signer`` is the principal an ``allowed_signers`` keyring vouches for (SSH
    only). ``sha256`` is the signed file's sha256 (minisign) or the model's root digest
    (model-signing); ``files`` the model files the signature covers.
    """

    format: str
    file: str
    signature: str
    key: str
    signer: str | None = None
    trusted_comment: str | None = None
    sha256: str | None = None
    files: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.file,
            "signature": self.signature,
            "key": self.key,
            "signer": self.signer,
            "trusted_comment": self.trusted_comment,
            "sha256": self.sha256,
            "files": list(self.files),
        }


# ---------------------------------------------------------------------------------------------
# Reading and writing files


def _read_small(path: Path, what: str, limit: int = _SMALL_FILE_LIMIT) -> bytes:
    """The bytes of a key or signature file; UsageError naming the file if it cannot be had."""
    with reading(path, what), open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"{path}: larger than {limit} bytes, too large for {what}")
    return data


def _open_signed(path: Path) -> BinaryIO:
    try:
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


def _hash_file(path: Path, first: Any, *others: Any) -> None:
    """Feed a file to one or more hashlib objects in one pass through one reused buffer.

    With several, the others hash each chunk in a worker thread while the first hashes it here
    (hashlib releases the GIL), so BLAKE2b + SHA-256 take about as long as BLAKE2b alone.
    """
    buf = chunk_buffer()
    view = memoryview(buf)
    with _open_signed(path) as stream, ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
        while n := stream.readinto(buf):
            chunk = view[:n]
            pending = [pool.submit(other.update, chunk) for other in others]
            first.update(chunk)
            for job in pending:
                job.result()  # the buffer is reused only once every hasher is done with it


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start; never replace an existing file (keys)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise UsageError(f"{path}: already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# ---------------------------------------------------------------------------------------------
# minisign

_MINISIGN_UNTRUSTED = b"untrusted comment: "
_MINISIGN_TRUSTED = b"trusted comment: "
#: minisign reads the trusted-comment line with fgets into 8192 bytes: prefix, comment, newline, NUL.
MINISIGN_TRUSTED_COMMENT_MAX = 8192 - len(_MINISIGN_TRUSTED) - 2
_MINISIGN_KEY_LINE = re.compile(r"RW[A-Za-z0-9+/]{54}")


@dataclass(frozen=True)
class MinisignPublicKey:
    """An Ed25519 public key as minisign stores it: 8 key-id bytes and 32 key bytes."""

    key_id: bytes
    public_key: bytes
    origin: str = ""

    @property
    def id(self) -> str:
        """The key id as minisign prints it: the stored bytes reversed, upper-case hex."""
        return self.key_id[::-1].hex().upper()

    @property
    def line(self) -> str:
        """The base64 line (``RW…``) that ``minisign -P`` takes."""
        return base64.b64encode(b"Ed" + self.key_id + self.public_key).decode("ascii")

    @classmethod
    def from_line(cls, text: str, origin: str) -> MinisignPublicKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise UsageError(f"{origin}: not a minisign public key (bad base64)") from None
        if len(raw) != 42 or raw[:2] != b"Ed":
            raise UsageError(f"{origin}: not a minisign Ed25519 public key")
        return cls(raw[2:10], raw[10:], origin)

    @classmethod
    def from_file(cls, path: Path) -> MinisignPublicKey:
        lines = _read_small(path, "a minisign public key").decode("utf-8", "replace").splitlines()
        body = [line for line in lines if line.strip() and not line.startswith("untrusted comment:")]
        if len(body) != 1:
            raise UsageError(f"{path}: not a minisign public key (expected one base64 key line)")
        return cls.from_line(body[0], str(path))

    def verify(self, signature: bytes, message: bytes | mmap.mmap) -> bool:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def load_minisign_public_keys(source: str | os.PathLike[str]) -> tuple[MinisignPublicKey, ...]:
    """Public keys from a ``.pub`` file, a folder of ``.pub`` files (a keyring), or a base64 key
    line as ``minisign -P`` takes it."""
    text = os.fspath(source)
    path = Path(text)
    if isinstance(source, str) and _MINISIGN_KEY_LINE.fullmatch(text.strip()) and not path.exists():
        return (MinisignPublicKey.from_line(text, "public key"),)
    if path.is_dir():
        keys = tuple(MinisignPublicKey.from_file(p) for p in sorted(path.glob("*.pub")))
        if not keys:
            raise UsageError(f"{path}: no minisign public keys (*.pub) in this folder")
        return keys
    return (MinisignPublicKey.from_file(path),)


def _minisign_checksum(key_id: bytes, secret: bytes) -> bytes:
    return hashlib.blake2b(b"Ed" + key_id + secret, digest_size=32).digest()


def _load_minisign_secret_key(path: Path) -> tuple[bytes, ed25519.Ed25519PrivateKey]:
    """Key id and private key from an unencrypted (``minisign -G -W``) secret key file."""
    lines = _read_small(path, "a minisign secret key").decode("utf-8", "replace").splitlines()
    body = [line for line in lines if line.strip() and not line.startswith("untrusted comment:")]
    try:
        raw = base64.b64decode(body[0].strip(), validate=True) if len(body) == 1 else b""
    except ValueError:
        raw = b""
    if len(raw) != 158 or raw[:2] != b"Ed" or raw[4:6] != b"B2":
        raise UsageError(f"{path}: not a minisign secret key")
    kdf = raw[2:4]
    if kdf == b"Sc":
        raise UsageError(
            f"{path}: the minisign secret key is encrypted with a password; weightpkg reads only "
            "unencrypted keys (minisign -G -W), or sign with minisign -S"
        )
    if kdf != b"\0\0":
        raise UsageError(f"{path}: unknown minisign key derivation {kdf!r}")
    key_id, secret, checksum = raw[54:62], raw[62:126], raw[126:158]
    if checksum not in (bytes(32), _minisign_checksum(key_id, secret)):
        raise UsageError(f"{path}: minisign secret key checksum does not match (corrupt key file)")
    private = ed25519.Ed25519PrivateKey.from_private_bytes(secret[:32])
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if public != secret[32:]:
        raise UsageError(f"{path}: minisign secret key is inconsistent (public half does not match)")
    return key_id, private


def generate_minisign_keypair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``NAME.pub`` and an unencrypted ``NAME.key`` (mode 0600) as ``minisign -G -W`` would.

    Returns (public key path, secret key path); never overwrites an existing file.
    """
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"{name!r}: not a usable key name")
    folder = Path(directory)
    public_path, secret_path = folder / f"{name}.pub", folder / f"{name}.key"
    for path in (public_path, secret_path):
        if path.exists():
            raise UsageError(f"{path}: already exists; refusing to overwrite a key")
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = secrets.token_bytes(8)
    secret = seed + public
    raw = (
        b"Ed"
        + b"\0\0"
        + b"B2"
        + bytes(32)
        + bytes(8)
        + bytes(8)
        + key_id
        + secret
        + _minisign_checksum(key_id, secret)
    )
    key = MinisignPublicKey(key_id, public)
    secret_text = "untrusted comment: minisign encrypted secret key\n" + base64.b64encode(raw).decode() + "\n"
    _write_new(secret_path, secret_text.encode(), 0o600)
    public_text = f"untrusted comment: minisign public key {key.id}\n{key.line}\n"
    _write_new(public_path, public_text.encode(), 0o644)
    return public_path, secret_path


def _check_trusted_comment(comment: str, origin: str) -> bytes:
    data = comment.encode("utf-8")
    if "\n" in comment or "\r" in comment:
        raise UsageError(f"{origin}: a trusted comment is one line")
    if len(data) > MINISIGN_TRUSTED_COMMENT_MAX:
        raise UsageError(f"{origin}: trusted comment longer than {MINISIGN_TRUSTED_COMMENT_MAX} bytes")
    return data


def sign_minisign(
    file: str | os.PathLike[str],
    secret_key_path: str | os.PathLike[str],
    trusted_comment: str | None = None,
    signature_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Sign ``file`` as ``minisign -S`` does (prehashed "ED"); write and return ``FILE.minisig``.

    The default trusted comment binds the file: ``file:NAME<TAB>sha256:HEX`` (deterministic: no
    timestamp, and Ed25519 signatures are deterministic, so the same file and key give the same bytes).
    """
    path = Path(file)
    key_id, private = _load_minisign_secret_key(Path(secret_key_path))
    prehash, sha256 = hashlib.blake2b(digest_size=64), hashlib.sha256()
    _hash_file(path, prehash, sha256)
    if trusted_comment is None:
        if any(c in path.name for c in "\t\n\r"):
            raise UsageError(f"{path}: the file name holds a tab or line break; give a trusted comment")
        trusted_comment = f"file:{path.name}\tsha256:{sha256.hexdigest()}"
    comment = _check_trusted_comment(trusted_comment, str(path))
    signature = private.sign(prehash.digest())
    global_signature = private.sign(signature + comment)
    key_name = key_id[::-1].hex().upper()
    text = (
        _MINISIGN_UNTRUSTED
        + f"signature from weightpkg, minisign key {key_name}".encode()
        + b"\n"
        + base64.b64encode(b"ED" + key_id + signature)
        + b"\n"
        + _MINISIGN_TRUSTED
        + comment
        + b"\n"
        + base64.b64encode(global_signature)
        + b"\n"
    )
    out = Path(signature_path) if signature_path is not None else path.with_name(path.name + ".minisig")
    write_atomically(out, text)
    return out


@dataclass(frozen=True)
class _MinisignSignature:
    algorithm: bytes
    key_id: bytes
    signature: bytes
    trusted_comment: bytes
    global_signature: bytes


def _parse_minisig(data: bytes, fail: Any) -> _MinisignSignature:
    lines = [line.rstrip(b"\r") for line in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != 4:
        raise fail(f"not a minisign signature (expected 4 lines, found {len(lines)})")
    if not lines[0].startswith(_MINISIGN_UNTRUSTED):
        raise fail("not a minisign signature (no untrusted comment line)")
    if not lines[2].startswith(_MINISIGN_TRUSTED):
        raise fail("not a minisign signature (no trusted comment line)")
    try:
        raw = base64.b64decode(lines[1], validate=True)
        global_signature = base64.b64decode(lines[3], validate=True)
    except ValueError:
        raise fail("not a minisign signature (bad base64)") from None
    if len(raw) != 74 or raw[:2] not in (b"ED", b"Ed") or len(global_signature) != 64:
        raise fail("not a minisign Ed25519 signature")
    comment = lines[2][len(_MINISIGN_TRUSTED) :]
    return _MinisignSignature(raw[:2], raw[2:10], raw[10:], comment, global_signature)


def _comment_fields(comment: str) -> list[tuple[str, str]]:
    """``key:value`` fields of a trusted comment, tab-separated as minisign writes them (or spaces)."""
    parts = comment.split("\t") if "\t" in comment else comment.split()
    return [(key, value) for key, sep, value in (p.partition(":") for p in parts) if sep and key]


def verify_minisign(
    file: str | os.PathLike[str],
    public_key: str | os.PathLike[str],
    signature_path: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
) -> Verified:
    """Check ``file`` against its minisign signature (default ``FILE.minisig``) as ``minisign -V``
    does, then hold the trusted comment to what it claims: every ``sha256:`` field must be the
    file's sha256, every ``file:`` field its name (``name``, default the file's own name, for
    files kept under another name, as in the store).

    ``public_key`` is a ``.pub`` file, a folder of ``.pub`` files (the key whose id matches is
    used), or a key line as ``minisign -P`` takes it.
    """
    path = Path(file)
    sig_path = Path(signature_path) if signature_path is not None else path.with_name(path.name + ".minisig")

    def fail(reason: str) -> SignatureError:
        return SignatureError(path, MINISIGN, reason, signature=sig_path)

    keys = load_minisign_public_keys(public_key)
    sig = _parse_minisig(_read_small(sig_path, "a minisign signature"), fail)
    key_name = sig.key_id[::-1].hex().upper()
    key = next((k for k in keys if k.key_id == sig.key_id), None)
    if key is None:
        trusted = ", ".join(k.id for k in keys)
        raise fail(f"signed by key {key_name}, not by a trusted key ({trusted})")
    sha256 = hashlib.sha256()
    if sig.algorithm == b"ED":
        prehash = hashlib.blake2b(digest_size=64)
        _hash_file(path, prehash, sha256)
        valid = key.verify(sig.signature, prehash.digest())
    else:  # legacy "Ed": the signature covers the raw file; map it rather than read it
        _hash_file(path, sha256)
        with _open_signed(path) as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                valid = key.verify(sig.signature, b"")
            else:
                with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    valid = key.verify(sig.signature, mapped)
    if not valid:
        raise fail(f"does not match the file (key {key_name}): the file or the signature was altered")
    if not key.verify(sig.global_signature, sig.signature + sig.trusted_comment):
        raise fail(f"the trusted comment's signature does not verify (key {key_name}): it was altered")
    comment = sig.trusted_comment.decode("utf-8", "replace")
    actual, expected_name = sha256.hexdigest(), path.name if name is None else name
    for field, value in _comment_fields(comment):
        if field == "sha256" and value.lower() != actual:
            raise fail(f"the trusted comment names sha256 {value}, but the file's sha256 is {actual}")
        if field == "file" and value != expected_name:
            raise fail(f"the trusted comment names file {value!r}, not {expected_name!r}")
    return Verified(MINISIGN, str(path), str(sig_path), key_name, trusted_comment=comment, sha256=actual)


# ---------------------------------------------------------------------------------------------
# OpenSSH signatures (SSHSIG), as `ssh-keygen -Y sign` writes and `-Y verify` checks them

_SSHSIG_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_SSHSIG_END = "-----END SSH SIGNATURE-----"
_SSHSIG_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
_ECDSA_CURVES = {
    "secp256r1": ("nistp256", hashes.SHA256),
    "secp384r1": ("nistp384", hashes.SHA384),
    "secp521r1": ("nistp521", hashes.SHA512),
}
_RSA_SIGNATURES = {"rsa-sha2-256": hashes.SHA256, "rsa-sha2-512": hashes.SHA512}


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _ssh_mpint(value: int) -> bytes:
    return _ssh_string(value.to_bytes(value.bit_length() // 8 + 1, "big") if value else b"")


class _WireReader:
    """Reads the SSH wire encoding (RFC 4251 §5); ValueError on truncation."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def string(self) -> bytes:
        return self.take(self.u32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.pos == len(self.data)


def _ssh_fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _ssh_blob(public_key: Any) -> bytes:
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


_OPENSSH_PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----"


def _is_encrypted(data: bytes) -> bool:
    """Whether a private key file is protected by a passphrase, by its own markers: the cipher
    name of an OpenSSH key, ``ENCRYPTED`` in a PEM header (PKCS#8 or traditional)."""
    if _OPENSSH_PRIVATE not in data:
        return b"ENCRYPTED" in data
    body = data.split(_OPENSSH_PRIVATE, 1)[1].split(b"-----END", 1)[0]
    magic = b"openssh-key-v1\0"
    try:
        raw = base64.b64decode(b"".join(body.split()))
        return raw.startswith(magic) and _WireReader(raw[len(magic) :]).string() != b"none"
    except ValueError:
        return False


def _load_ssh_private_key(path: Path) -> Any:
    data = _read_small(path, "an OpenSSH private key")
    if _is_encrypted(data):
        raise UsageError(
            f"{path}: the private key is protected by a passphrase; weightpkg reads only unencrypted "
            "keys (or sign with ssh-keygen -Y sign)"
        )
    try:
        if _OPENSSH_PRIVATE in data:
            key: Any = serialization.load_ssh_private_key(data, None)
        else:
            key = serialization.load_pem_private_key(data, None)
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{path}: not an OpenSSH or PEM private key ({exc})") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _ECDSA_CURVES:
        raise UsageError(f"{path}: ECDSA curve {key.curve.name} is not one OpenSSH signs with")
    if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise UsageError(f"{path}: {type(key).__name__} keys cannot make SSH signatures; use Ed25519")
    return key


def _sshsig_signed_data(namespace: str, hash_name: str, digest: bytes) -> bytes:
    return (
        b"SSHSIG"
        + _ssh_string(namespace.encode())
        + _ssh_string(b"")
        + _ssh_string(hash_name.encode())
        + _ssh_string(digest)
    )


def _ssh_raw_sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _ssh_string(b"ssh-ed25519") + _ssh_string(key.sign(data))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve, digest = _ECDSA_CURVES[key.curve.name]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest())))
        return _ssh_string(f"ecdsa-sha2-{curve}".encode()) + _ssh_string(_ssh_mpint(r) + _ssh_mpint(s))
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    return _ssh_string(b"rsa-sha2-512") + _ssh_string(signature)


def sign_ssh(
    file: str | os.PathLike[str],
    private_key_path: str | os.PathLike[str],
    namespace: str = "weightpkg",
    signature_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Sign ``file`` as ``ssh-keygen -Y sign -f KEY -n NAMESPACE FILE`` does (sha512); write and
    return the armored signature, by default ``FILE.sig`` (replaced if it exists)."""
    if not namespace or "\0" in namespace:
        raise UsageError(f"{namespace!r}: an SSH signature namespace is a non-empty string")
    path = Path(file)
    key = _load_ssh_private_key(Path(private_key_path))
    digest = hashlib.sha512()
    _hash_file(path, digest)
    raw_signature = _ssh_raw_sign(key, _sshsig_signed_data(namespace, "sha512", digest.digest()))
    blob = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + _ssh_string(_ssh_blob(key.public_key()))
        + _ssh_string(namespace.encode())
        + _ssh_string(b"")
        + _ssh_string(b"sha512")
        + _ssh_string(raw_signature)
    )
    encoded = base64.b64encode(blob).decode("ascii")
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    text = "\n".join([_SSHSIG_BEGIN, *lines, _SSHSIG_END]) + "\n"
    out = Path(signature_path) if signature_path is not None else path.with_name(path.name + ".sig")
    write_atomically(out, text.encode("ascii"))
    return out


@dataclass(frozen=True)
class _SshSignature:
    public_blob: bytes
    namespace: str
    hash_name: str
    signature: bytes


def _parse_sshsig(data: bytes, fail: Any) -> _SshSignature:
    text = data.decode("ascii", "replace").replace("\r\n", "\n")
    if not text.startswith(_SSHSIG_BEGIN + "\n"):
        raise fail("not an SSH signature (no -----BEGIN SSH SIGNATURE----- line)")
    end = text.find("\n" + _SSHSIG_END)
    if end < 0:
        raise fail("not an SSH signature (no -----END SSH SIGNATURE----- line)")
    try:
        blob = base64.b64decode("".join(text[len(_SSHSIG_BEGIN) + 1 : end].split()), validate=True)
        reader = _WireReader(blob)
        if reader.take(6) != b"SSHSIG":
            raise ValueError("no SSHSIG magic")
        version = reader.u32()
        public_blob, namespace = reader.string(), reader.string().decode("utf-8")
        reader.string()  # reserved
        hash_name, signature = reader.string().decode("ascii"), reader.string()
        if not reader.done():
            raise ValueError("trailing data")
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(f"not an SSH signature ({exc})") from None
    if version != 1:
        raise fail(f"SSH signature version {version} is not supported (only 1)")
    if hash_name not in _SSHSIG_HASHES:
        raise fail(f"SSH signature hash {hash_name!r} is not supported (sha256, sha512)")
    return _SshSignature(public_blob, namespace, hash_name, signature)


def _ssh_raw_verify(public_blob: bytes, raw_signature: bytes, data: bytes) -> str | None:
    """None when the signature verifies; otherwise why not."""
    try:
        key_type = _WireReader(public_blob).string().decode("ascii")
        sig = _WireReader(raw_signature)
        sig_type, sig_body = sig.string().decode("ascii"), sig.string()
    except (ValueError, UnicodeDecodeError):
        return "malformed key or signature"
    if "-cert-" in key_type:
        return f"signatures made with certificates ({key_type}) are not supported"
    try:
        key: Any = serialization.load_ssh_public_key(key_type.encode() + b" " + base64.b64encode(public_blob))
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"unsupported or malformed {key_type} key ({exc})"
    try:
        if isinstance(key, ed25519.Ed25519PublicKey) and sig_type == "ssh-ed25519":
            key.verify(sig_body, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and sig_type == key_type:
            parts = _WireReader(sig_body)
            r, s = parts.mpint(), parts.mpint()
            if not parts.done() or r <= 0 or s <= 0:
                return "malformed ECDSA signature"
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_ECDSA_CURVES[key.curve.name][1]()))
        elif isinstance(key, rsa.RSAPublicKey) and sig_type in _RSA_SIGNATURES:
            key.verify(sig_body, data, padding.PKCS1v15(), _RSA_SIGNATURES[sig_type]())
        else:
            return f"signature type {sig_type} does not fit a {key_type} key (or is not allowed)"
    except InvalidSignature:
        return "incorrect signature: the file or the signature was altered"
    except ValueError:
        return "malformed signature"
    return None


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an OpenSSH ``allowed_signers`` file (ssh-keygen(1), ALLOWED SIGNERS)."""

    principals: str
    key_type: str
    key_blob: bytes
    line: int
    namespaces: str | None = None
    valid_after: int | None = None
    valid_before: int | None = None
    cert_authority: bool = False

    @property
    def fingerprint(self) -> str:
        return _ssh_fingerprint(self.key_blob)


_SSH_KEY_TYPE = re.compile(r"(?:ssh|ecdsa-sha2|sk)-[A-Za-z0-9@.\-]+")


def _match_pattern(name: str, pattern: str) -> bool:
    """OpenSSH match_pattern: ``*`` and ``?`` wildcards, case-sensitive, whole string."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


def _match_pattern_list(name: str, patterns: str) -> bool:
    """OpenSSH match_pattern_list: comma-separated; a matching ``!pattern`` rejects outright."""
    positive = False
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            if _match_pattern(name, pattern[1:]):
                return False
        elif _match_pattern(name, pattern):
            positive = True
    return positive


def _parse_ssh_time(text: str) -> int:
    """``YYYYMMDD[Z]`` or ``YYYYMMDDHHMM[SS][Z]``: local time, or UTC with ``Z`` (as ssh-keygen)."""
    utc = text.endswith("Z")
    digits = text[:-1] if utc else text
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if not digits.isdigit() or len(digits) not in formats:
        raise ValueError(f"invalid time {text!r}")
    parsed = time.strptime(digits, formats[len(digits)])
    return calendar.timegm(parsed) if utc else int(time.mktime(parsed))


def _next_field(text: str) -> tuple[str, str]:
    """One whitespace-separated field (quotes group, ``\\"`` escapes a quote) and the rest."""
    quoted, i = False, 0
    while i < len(text) and (quoted or text[i] not in " \t"):
        if text[i] == "\\" and quoted and text[i + 1 : i + 2] == '"':
            i += 1
        elif text[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise ValueError("unterminated quote")
    return text[:i], text[i:].lstrip(" \t")


_SSH_OPTION = re.compile(
    r'(cert-authority)(?=,|$)|(namespaces|valid-after|valid-before)="((?:[^"\\]|\\.)*)"', re.IGNORECASE
)


def _parse_ssh_options(text: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    rest = text
    while rest:
        match = _SSH_OPTION.match(rest)
        if match is None:
            raise ValueError(f"unknown or malformed option at {rest[:40]!r}")
        if match.group(1):
            options["cert-authority"] = True
        else:
            keyword, value = match.group(2).lower(), match.group(3).replace('\\"', '"')
            if keyword in options:
                raise ValueError(f"more than one {keyword} option")
            options[keyword] = value if keyword == "namespaces" else _parse_ssh_time(value)
        rest = rest[match.end() :]
        if rest:
            if not rest.startswith(",") or rest == ",":
                raise ValueError(f"malformed options near {rest[:40]!r}")
            rest = rest[1:]
    after, before = options.get("valid-after"), options.get("valid-before")
    if after is not None and before is not None and before <= after:
        raise ValueError("valid-before is not after valid-after")
    return options


def _parse_allowed_signer(text: str, number: int) -> AllowedSigner:
    if text.startswith('"'):
        close = text.find('"', 1)
        if close < 0:
            raise ValueError("unterminated quote in principals")
        principals, rest = text[1:close], text[close + 1 :].lstrip(" \t")
    else:
        principals, _, rest = re.sub(r"[ \t]+", " ", text, count=1).partition(" ")
    if not principals or not rest:
        raise ValueError("expected principals, options and a key")
    options: dict[str, Any] = {}
    first = rest.split(None, 1)[0]
    if not _SSH_KEY_TYPE.fullmatch(first):
        option_text, rest = _next_field(rest)
        options = _parse_ssh_options(option_text)
    fields = rest.split()
    if len(fields) < 2 or not _SSH_KEY_TYPE.fullmatch(fields[0]):
        raise ValueError("missing key")
    key_type = fields[0]
    try:
        blob = base64.b64decode(fields[1], validate=True)
        embedded = _WireReader(blob).string().decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid key (bad base64)") from None
    if embedded != key_type:
        raise ValueError(f"key type {key_type} does not match the key ({embedded})")
    return AllowedSigner(
        principals,
        key_type,
        blob,
        number,
        options.get("namespaces"),
        options.get("valid-after"),
        options.get("valid-before"),
        bool(options.get("cert-authority")),
    )


def read_allowed_signers(path: str | os.PathLike[str]) -> tuple[AllowedSigner, ...]:
    """Every entry of an ``allowed_signers`` file; a malformed line is a UsageError naming it
    (stricter than ssh-keygen, which only fails on a bad line whose principals match)."""
    keyring = Path(path)
    text = _read_small(keyring, "an allowed_signers file").decode("utf-8", "replace")
    signers = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip(" \t\r\n")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            signers.append(_parse_allowed_signer(stripped, number))
        except ValueError as exc:
            raise UsageError(f"{keyring}:{number}: not an allowed_signers line: {exc}") from None
    return tuple(signers)


def verify_ssh(
    file: str | os.PathLike[str],
    allowed_signers_path: str | os.PathLike[str],
    principal: str | None,
    namespace: str = "weightpkg",
    signature_path: str | os.PathLike[str] | None = None,
    *,
    now: float | None = None,
) -> Verified:
    """Check ``file`` as ``ssh-keygen -Y verify -f ALLOWED -I PRINCIPAL -n NAMESPACE -s SIG`` does.

    The signature (default ``FILE.sig``) must be made in ``namespace`` by a key that
    ``allowed_signers`` lists for ``principal`` (patterns allowed), with its ``namespaces=`` and
    ``valid-after=``/``valid-before=`` options holding at ``now`` (default: the current time).
    With ``principal=None`` any principal the key is listed for will do (as ``-Y find-principals``).
    """
    path = Path(file)
    sig_path = Path(signature_path) if signature_path is not None else path.with_name(path.name + ".sig")

    def fail(reason: str) -> SignatureError:
        return SignatureError(path, SSH, reason, signature=sig_path)

    signers = read_allowed_signers(allowed_signers_path)
    sig = _parse_sshsig(_read_small(sig_path, "an SSH signature"), fail)
    fingerprint = _ssh_fingerprint(sig.public_blob)
    if sig.namespace != namespace:
        raise fail(f"made for namespace {sig.namespace!r}, not {namespace!r}")
    digest = _SSHSIG_HASHES[sig.hash_name]()
    _hash_file(path, digest)
    why = _ssh_raw_verify(
        sig.public_blob, sig.signature, _sshsig_signed_data(namespace, sig.hash_name, digest.digest())
    )
    if why is not None:
        raise fail(f"key {fingerprint}: {why}")
    moment = time.time() if now is None else now
    refusals = []
    for entry in signers:
        if principal is not None and not _match_pattern_list(principal, entry.principals):
            continue
        if entry.cert_authority or entry.key_blob != sig.public_blob:
            continue
        where = f"{allowed_signers_path}:{entry.line}"
        if entry.namespaces is not None and not _match_pattern_list(namespace, entry.namespaces):
            refusals.append(f"{where} does not permit namespace {namespace!r}")
        elif entry.valid_after is not None and moment < entry.valid_after:
            refusals.append(f"{where}: the key is not valid yet")
        elif entry.valid_before is not None and moment > entry.valid_before:
            refusals.append(f"{where}: the key has expired")
        else:
            return Verified(
                SSH,
                str(path),
                str(sig_path),
                fingerprint,
                signer=principal if principal is not None else entry.principals,
            )
    if refusals:
        raise fail(f"key {fingerprint} is listed but refused: " + "; ".join(refusals))
    elsewhere = sorted({e.principals for e in signers if e.key_blob == sig.public_blob})
    if principal is not None and elsewhere:
        raise fail(f"key {fingerprint} is allowed for {', '.join(elsewhere)}, not for {principal!r}")
    listed = f"for {principal!r} " if principal is not None else ""
    raise fail(f"key {fingerprint} is not in {allowed_signers_path} {listed}(an unknown signer)")


# ---------------------------------------------------------------------------------------------
# OpenSSF model-signing: Sigstore bundle v0.3, DSSE, in-toto Statement v1

_BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
_INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_INTOTO_STATEMENT = "https://in-toto.io/Statement/v1"
MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
_MODEL_SIGNING_LEGACY_PREDICATE = "https://model_signing/Digests/v0.1"
#: What ``model_signing`` leaves out of a model by default (paths relative to the model root).
MODEL_SIGNING_GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
_EC_HASHES = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _public_key_hint(public_key: ec.EllipticCurvePublicKey) -> str:
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _check_ec_curve(key: Any, path: Path) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        kind = type(key).__name__
        raise UsageError(f"{path}: model-signing keys are ECDSA P-256, P-384 or P-521, not {kind}")
    if key.curve.name not in _EC_HASHES:
        raise UsageError(
            f"{path}: ECDSA curve {key.curve.name} is not one model-signing accepts (P-256, P-384, P-521)"
        )


def _load_ec_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read_small(path, "a PEM private key")
    if _is_encrypted(data):
        raise UsageError(f"{path}: the private key is encrypted; weightpkg reads only unencrypted keys")
    try:
        key = serialization.load_pem_private_key(data, None)
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{path}: not a PEM private key ({exc})") from None
    _check_ec_curve(key, path)
    return cast(ec.EllipticCurvePrivateKey, key)


def _load_ec_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    data = _read_small(path, "a PEM public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})") from None
    _check_ec_curve(key, path)
    return cast(ec.EllipticCurvePublicKey, key)


def _relative_inside(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as a POSIX string, or None when it lies outside."""
    try:
        return Path(os.path.abspath(path)).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _walk_model(root: Path, ignored: set[str]) -> tuple[dict[str, Path], list[str]]:
    """Every regular file under ``root`` by POSIX relative name, leaving out ``ignored`` paths (and
    all below them); and what cannot be signed: links, special files, names that are not UTF-8."""
    files: dict[str, Path] = {}
    problems: list[str] = []
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{prefix or '.'}: cannot list: {exc.strerror}")
            continue
        for entry in entries:
            name = prefix + entry.name
            if name in ignored:
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{name!r}: the name is not UTF-8")
                continue
            if entry.is_symlink():
                problems.append(f"{name}: a symbolic link (model-signing does not follow links)")
            elif entry.is_dir(follow_symlinks=False):
                pending.append((Path(entry.path), name + "/"))
            elif entry.is_file(follow_symlinks=False):
                files[name] = Path(entry.path)
            else:
                problems.append(f"{name}: not a regular file")
    return files, problems


def _hash_files(files: dict[str, Path]) -> dict[str, str]:
    """sha256 hex of each file, several files at once (hashlib releases the GIL)."""

    def one(path: Path) -> str:
        with _open_signed(path) as stream:
            return hash_stream(stream)[0].hex

    names = sorted(files)
    workers = max(1, min(8, os.cpu_count() or 1, len(names)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(names, pool.map(one, (files[n] for n in names)), strict=True))


def _model_order(name: str) -> tuple[str, ...]:
    """model_signing lists resources sorted as paths: component by component."""
    return tuple(name.split("/"))


def _root_digest(digests: Iterable[str]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()


def sign_model_dir(
    model_dir: str | os.PathLike[str],
    private_key_pem: str | os.PathLike[str],
    signature_path: str | os.PathLike[str],
) -> Path:
    """Sign every file of a model directory as ``model_signing sign key MODEL --private_key KEY
    --signature SIG`` does, leaving out ``.git``, ``.gitattributes``, ``.github``, ``.gitignore``
    at the model root and the signature file itself; write the bundle (JSON, sorted keys)."""
    root = Path(model_dir)
    if not root.is_dir() or root.is_symlink():
        raise UsageError(f"{root}: not a model directory")
    key = _load_ec_private_key(Path(private_key_pem))
    out = Path(signature_path)
    ignore_paths = set(MODEL_SIGNING_GIT_PATHS)
    inside = _relative_inside(out, root)
    if inside is not None:
        ignore_paths.add(inside)
    files, problems = _walk_model(root, ignore_paths)
    if problems:
        raise UsageError(f"{root}: cannot sign this model directory: " + "; ".join(problems))
    digests = _hash_files(files)
    names = sorted(digests, key=_model_order)
    resources = [{"name": n, "algorithm": "sha256", "digest": digests[n]} for n in names]
    root_digest = _root_digest(r["digest"] for r in resources)
    statement = {
        "_type": _INTOTO_STATEMENT,
        "subject": [{"name": root.resolve().name, "digest": {"sha256": root_digest}}],
        "predicateType": MODEL_SIGNING_PREDICATE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": sorted(ignore_paths),
            },
            "resources": resources,
        },
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = _EC_HASHES[key.curve.name]
    signature = key.sign(_pae(_INTOTO_PAYLOAD_TYPE, payload), ec.ECDSA(digest()))
    hint = _public_key_hint(key.public_key())
    bundle = {
        "mediaType": _BUNDLE_MEDIA_TYPES[0],
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": _INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    write_atomically(out, (json.dumps(bundle, sort_keys=True, indent=2) + "\n").encode())
    return out


def _get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]…, or None where the shape is not there."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    return base64.b64decode(value, validate=True)


def _signed_statement(bundle: Any, key: ec.EllipticCurvePublicKey, hint: str, fail: Any) -> dict[str, Any]:
    """The in-toto Statement a bundle carries, once its envelope's signature is checked."""
    if _get(bundle, "mediaType") not in _BUNDLE_MEDIA_TYPES:
        raise fail(f"not a Sigstore bundle v0.3 (mediaType {_get(bundle, 'mediaType')!r})")
    bundle_hint = _get(bundle, "verificationMaterial", "publicKey", "hint")
    if bundle_hint is not None and bundle_hint != hint:
        raise fail(f"made with the key whose hint is {bundle_hint}, not with the given key ({hint})")
    envelope = _get(bundle, "dsseEnvelope")
    if _get(envelope, "payloadType") != _INTOTO_PAYLOAD_TYPE:
        raise fail(f"the envelope holds {_get(envelope, 'payloadType')!r}, not an in-toto statement")
    signatures = _get(envelope, "signatures")
    try:
        payload = _b64(_get(envelope, "payload"))
        raw_signatures = [_b64(_get(s, "sig")) for s in signatures] if isinstance(signatures, list) else []
    except ValueError:
        raise fail("malformed DSSE envelope (bad base64)") from None
    if not raw_signatures:
        raise fail("the DSSE envelope holds no signature")
    signed = _pae(_INTOTO_PAYLOAD_TYPE, payload)
    digest = _EC_HASHES[key.curve.name]
    for raw in raw_signatures:
        try:
            key.verify(raw, signed, ec.ECDSA(digest()))
            break
        except (InvalidSignature, ValueError):
            continue
    else:
        raise fail("the signature does not verify with the given key: the bundle was altered")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise fail("the signed payload is not JSON") from None
    if _get(statement, "_type") != _INTOTO_STATEMENT:
        raise fail(f"the payload is not an in-toto Statement v1 ({_get(statement, '_type')!r})")
    predicate_type = _get(statement, "predicateType")
    if predicate_type == _MODEL_SIGNING_LEGACY_PREDICATE:
        raise fail("legacy model-signing v0.2 statements (Digests/v0.1) are not supported")
    if predicate_type != MODEL_SIGNING_PREDICATE:
        raise fail(f"the statement's predicate is {predicate_type!r}, not {MODEL_SIGNING_PREDICATE}")
    return statement


def _signed_manifest(statement: dict[str, Any], fail: Any) -> tuple[dict[str, str], set[str], str]:
    """(name → sha256, ignored paths, root digest) from a checked statement."""
    serialization_args = _get(statement, "predicate", "serialization")
    method, hash_type = _get(serialization_args, "method"), _get(serialization_args, "hash_type")
    if method != "files":
        raise fail(f"serialization method {method!r} is not supported (only 'files')")
    if hash_type != "sha256":
        raise fail(f"hash type {hash_type!r} is not supported (only sha256)")
    ignored: set[str] = set()
    for entry in _get(serialization_args, "ignore_paths") or []:
        if not isinstance(entry, str):
            raise fail("ignore_paths holds something other than a path")
        normal = PurePosixPath(entry)  # "" and "./" become "."
        if str(normal) == ".":
            raise fail(f"ignore_paths names the whole model ({entry!r})")
        if not normal.is_absolute() and ".." not in normal.parts:  # outside the model: skipped, as there
            ignored.add(str(normal))
    resources = _get(statement, "predicate", "resources")
    subjects = _get(statement, "subject")
    if not isinstance(resources, list) or not isinstance(subjects, list) or len(subjects) != 1:
        raise fail("the statement needs one subject and a list of resources")
    manifest: dict[str, str] = {}
    order: list[str] = []
    for resource in resources:
        name, algorithm, digest = (_get(resource, k) for k in ("name", "algorithm", "digest"))
        if (
            not isinstance(name, str)
            or algorithm != "sha256"
            or not isinstance(digest, str)
            or not _HEX64.fullmatch(digest)
        ):
            raise fail(f"malformed resource {resource!r} (expected a name and a sha256)")
        key = str(PurePosixPath(name))
        if key in manifest:
            raise fail(f"resource {name!r} is listed twice")
        manifest[key] = digest
        order.append(digest)
    root = _root_digest(order)
    claimed = _get(subjects[0], "digest", "sha256")
    if claimed != root:
        raise fail(f"inconsistent manifest: its root digest is {claimed}, its resources hash to {root}")
    return manifest, ignored, root


def verify_model_dir(
    model_dir: str | os.PathLike[str],
    public_key_pem: str | os.PathLike[str],
    signature_path: str | os.PathLike[str],
) -> Verified:
    """Check a model directory against a model-signing bundle as ``model_signing verify key MODEL
    --public_key PUB --signature SIG`` does: the key hint, the DSSE signature, the root digest,
    then every file: each must be listed with its sha256, and none listed may be missing. Every
    difference is reported at once (``SignatureError.problems``)."""
    root = Path(model_dir)
    sig_path = Path(signature_path)

    def fail(reason: str, problems: Iterable[str] = ()) -> SignatureError:
        return SignatureError(root, MODEL_SIGNING, reason, signature=sig_path, problems=problems)

    if not root.is_dir() or root.is_symlink():
        raise UsageError(f"{root}: not a model directory")
    key = _load_ec_public_key(Path(public_key_pem))
    hint = _public_key_hint(key)
    try:
        bundle = json.loads(_read_small(sig_path, "a model-signing bundle", _BUNDLE_LIMIT))
    except ValueError:
        raise fail("not a model-signing bundle (not JSON)") from None
    statement = _signed_statement(bundle, key, hint, fail)
    manifest, ignored, root_digest = _signed_manifest(statement, fail)
    ignored.update(MODEL_SIGNING_GIT_PATHS)
    inside = _relative_inside(sig_path, root)
    if inside is not None:
        ignored.add(inside)
    files, problems = _walk_model(root, ignored)
    digests = _hash_files(files)
    extra = sorted(set(digests) - set(manifest), key=_model_order)
    missing = sorted(set(manifest) - set(digests), key=_model_order)
    problems += [f"{name}: not in the signature (an extra file)" for name in extra]
    problems += [f"{name}: signed, but missing" for name in missing]
    problems += [
        f"{name}: sha256 {digests[name]}, but the signature says {manifest[name]}"
        for name in sorted(set(digests) & set(manifest), key=_model_order)
        if digests[name] != manifest[name]
    ]
    if problems:
        count = f"{len(problems)} difference{'s' if len(problems) > 1 else ''}"
        raise fail(f"the model differs from what was signed ({count}): " + "; ".join(problems), problems)
    return Verified(
        MODEL_SIGNING,
        str(root),
        str(sig_path),
        hint,
        sha256=root_digest,
        files=tuple(sorted(manifest, key=_model_order)),
    )


# ---------------------------------------------------------------------------------------------
# DSSE envelopes (for in-toto attestations): the keys above, the PAE of model-signing

DSSE = "dsse"
#: The payload type of an in-toto Statement inside a DSSE envelope.
IN_TOTO_PAYLOAD_TYPE = _INTOTO_PAYLOAD_TYPE


@dataclass(frozen=True)
class DsseKey:
    """A public key that may sign DSSE envelopes, under the key id weightpkg states for it: a
    minisign key's id as minisign prints it (``9DF6BE6F143CE925``), or the sha256 of an ECDSA
    key's PEM (the model-signing hint). The key id is an unsigned hint; the signature decides."""

    keyid: str
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    origin: str

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's over ``message`` (Ed25519, or DER ECDSA with the
        curve's hash, as model-signing and securesystemslib use)."""
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, message)
            else:
                self.public_key.verify(signature, message, ec.ECDSA(_EC_HASHES[self.public_key.curve.name]()))
        except (InvalidSignature, ValueError):
            return False
        return True


def load_dsse_public_keys(
    sources: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
) -> tuple[DsseKey, ...]:
    """Trusted keys for DSSE envelopes: minisign public keys (a ``.pub`` file, a folder of them, or
    an ``RW…`` line) and ECDSA P-256/384/521 PEM public keys, in the order given."""
    keys: list[DsseKey] = []
    for source in [sources] if isinstance(sources, (str, os.PathLike)) else sources:
        path = Path(source)
        if path.is_file() and _read_small(path, "a public key").lstrip().startswith(b"-----BEGIN"):
            public = _load_ec_public_key(path)
            keys.append(DsseKey(_public_key_hint(public), public, str(path)))
            continue
        for key in load_minisign_public_keys(source):
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(key.public_key)
            keys.append(DsseKey(key.id, public_key, key.origin))
    if not keys:
        raise UsageError("no trusted keys given to check a DSSE envelope against")
    return tuple(keys)


def sign_dsse(payload: bytes, payload_type: str, secret_key: str | os.PathLike[str]) -> dict[str, Any]:
    """A DSSE envelope (``payload``, ``payloadType``, ``signatures`` with ``keyid`` and ``sig``,
    base64) over ``payload``, signed with an unencrypted minisign secret key (Ed25519: the same
    payload and key give the same bytes) or an ECDSA PEM private key (as for model-signing)."""
    path = Path(secret_key)
    signed = _pae(payload_type, payload)
    if _read_small(path, "a secret key").lstrip().startswith(b"-----BEGIN"):
        private = _load_ec_private_key(path)
        keyid = _public_key_hint(private.public_key())
        signature = private.sign(signed, ec.ECDSA(_EC_HASHES[private.curve.name]()))
    else:
        key_id, ed_private = _load_minisign_secret_key(path)
        keyid = key_id[::-1].hex().upper()
        signature = ed_private.sign(signed)
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }


@dataclass(frozen=True)
class DsseCheck:
    """What a DSSE envelope's signatures say: the trusted key one of them verifies with (None
    when none does), the key ids of signatures by keys that are not trusted, and those of
    signatures that name a trusted key but do not verify with it (a payload or signature altered)."""

    payload_type: str
    payload: bytes
    key: DsseKey | None
    unknown_keyids: tuple[str, ...] = ()
    failed_keyids: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.key is not None


def _dsse_b64(value: Any) -> bytes:
    """DSSE fields are base64, standard or URL-safe (the DSSE spec allows both)."""
    if not isinstance(value, str):
        raise ValueError("not a base64 string")
    standard = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


def check_dsse(envelope: Any, keys: Iterable[DsseKey], origin: str) -> DsseCheck:
    """Check a parsed DSSE envelope against trusted keys; SignatureError (naming ``origin``) when
    it is not a DSSE envelope at all.

    A signature is tried with the trusted keys its ``keyid`` names, else (an unknown or absent key
    id) with every trusted key, since the key id is only a hint; one that verifies is enough.
    """
    trusted = tuple(keys)

    def fail(reason: str) -> SignatureError:
        return SignatureError(origin, DSSE, reason, signature=origin)

    payload_type, signatures = _get(envelope, "payloadType"), _get(envelope, "signatures")
    if not isinstance(payload_type, str) or not isinstance(signatures, list):
        raise fail("not a DSSE envelope (needs payload, payloadType and signatures)")
    try:
        payload = _dsse_b64(_get(envelope, "payload"))
        raw = [(_get(s, "keyid"), _dsse_b64(_get(s, "sig"))) for s in signatures]
    except (ValueError, TypeError):
        raise fail("malformed DSSE envelope (bad base64)") from None
    if not raw:
        raise fail("the DSSE envelope holds no signature")
    signed = _pae(payload_type, payload)
    unknown: list[str] = []
    failed: list[str] = []
    for keyid, signature in raw:
        named = [k for k in trusted if isinstance(keyid, str) and keyid and k.keyid == keyid]
        verifier = next((k for k in named or trusted if k.verify(signature, signed)), None)
        if verifier is not None:
            return DsseCheck(payload_type, payload, verifier)
        (failed if named else unknown).append(keyid if isinstance(keyid, str) else "")
    return DsseCheck(payload_type, payload, None, tuple(unknown), tuple(failed))


__all__ = (
    "DSSE",
    "IN_TOTO_PAYLOAD_TYPE",
    "MINISIGN",
    "MODEL_SIGNING",
    "SSH",
    "AllowedSigner",
    "DsseCheck",
    "DsseKey",
    "MinisignPublicKey",
    "SignatureError",
    "Verified",
    "check_dsse",
    "generate_minisign_keypair",
    "load_dsse_public_keys",
    "load_minisign_public_keys",
    "read_allowed_signers",
    "sign_dsse",
    "sign_minisign",
    "sign_model_dir",
    "sign_ssh",
    "verify_minisign",
    "verify_model_dir",
    "verify_ssh",
)
