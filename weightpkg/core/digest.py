"""SHA-256 digests and the renderings distributors use: hex, Nix base32 (also Guix's) and SRI."""

from __future__ import annotations

import base64
import hashlib
import mmap
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

#: Nix's base32 alphabet: digits and lower-case letters without e, o, u and t.
NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"
_NIX32_INDEX = {c: i for i, c in enumerate(NIX32_ALPHABET)}

#: Streaming reads use one buffer of this size, reused for the whole file.
CHUNK_SIZE = 1 << 20

_HEX64 = re.compile(r"[0-9a-f]{64}")


def nix32_encode(data: bytes) -> str:
    """Encode as Nix does: the last 5-bit group first, bits taken little-endian across bytes."""
    if not data:
        return ""
    length = (len(data) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        byte, bit = divmod(n * 5, 8)
        value = data[byte] >> bit
        if byte + 1 < len(data):
            value |= data[byte + 1] << (8 - bit)
        chars.append(NIX32_ALPHABET[value & 0x1F])
    return "".join(chars)


def nix32_decode(text: str, size: int) -> bytes:
    """Inverse of :func:`nix32_encode` for a digest of ``size`` bytes; ValueError if malformed."""
    if len(text) != (size * 8 - 1) // 5 + 1:
        raise ValueError(f"expected {(size * 8 - 1) // 5 + 1} base32 characters, got {len(text)}")
    out = bytearray(size)
    for n, char in enumerate(reversed(text)):
        try:
            digit = _NIX32_INDEX[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a Nix base32 character") from None
        byte, bit = divmod(n * 5, 8)
        out[byte] |= (digit << bit) & 0xFF
        carry = digit >> (8 - bit)
        if carry:
            if byte + 1 >= size:
                raise ValueError("base32 value does not fit the digest size")
            out[byte + 1] |= carry
    return bytes(out)


@dataclass(frozen=True, order=True)
class Digest:
    """A SHA-256 digest; the only algorithm weightpkg pins with."""

    value: bytes

    algorithm = "sha256"
    size = 32

    def __post_init__(self) -> None:
        if len(self.value) != self.size:
            raise ValueError(f"a sha256 digest has {self.size} bytes, not {len(self.value)}")

    @classmethod
    def from_hex(cls, text: str) -> Digest:
        if not _HEX64.fullmatch(text):
            raise ValueError(f"not a sha256: expected 64 lower-case hex digits, got {text!r}")
        return cls(bytes.fromhex(text))

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Accept hex, ``sha256:<hex|nix32>``, Nix base32 or SRI (``sha256-<base64>``)."""
        body = text.removeprefix("sha256:")
        if _HEX64.fullmatch(body):
            return cls(bytes.fromhex(body))
        if len(body) == 52:
            return cls(nix32_decode(body, cls.size))
        if text.startswith("sha256-"):
            raw = base64.b64decode(text.removeprefix("sha256-"), validate=True)
            return cls(raw)
        raise ValueError(f"not a sha256 digest in hex, Nix base32 or SRI form: {text!r}")

    @property
    def hex(self) -> str:
        return self.value.hex()

    @property
    def nix32(self) -> str:
        return nix32_encode(self.value)

    @property
    def sri(self) -> str:
        return "sha256-" + base64.b64encode(self.value).decode("ascii")

    def __str__(self) -> str:
        return self.hex


class StreamHasher:
    """SHA-256 and byte count of data fed in pieces; shared by every reader and downloader."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self._hash.digest())


def chunk_buffer(size: int = CHUNK_SIZE) -> mmap.mmap:
    """A page-aligned scratch buffer: the kernel copies into it about twice as fast as into a
    bytearray, whose data starts 16 bytes into a page (measured: docs/performance.md)."""
    return mmap.mmap(-1, size)


#: hash_stream reads ahead into two buffers of this size while it hashes the other one.
READ_AHEAD_CHUNK = 4 << 20


def hash_stream(stream: BinaryIO, buffer: bytearray | mmap.mmap | None = None) -> tuple[Digest, int]:
    """Hash a binary stream to its end through reused buffers; returns (digest, size).

    Reading (``readinto`` on an unbuffered file) and hashing both release the GIL, so a reader
    thread fills one page-aligned buffer while the other is hashed: the copy from the page cache
    then costs no wall time when a second core is free (docs/performance.md). Memory stays flat:
    two 4 MiB buffers whatever the file's size. With ``buffer`` given, one buffer, one thread.
    """
    hasher = StreamHasher()
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
        return hasher.digest(), hasher.size
    if buffer is not None:
        view = memoryview(buffer)
        while n := readinto(buffer):
            hasher.update(view[:n])
        return hasher.digest(), hasher.size
    return _hash_reading_ahead(readinto, hasher)


def _hash_reading_ahead(readinto: Any, hasher: StreamHasher) -> tuple[Digest, int]:
    import threading

    buffers = (chunk_buffer(READ_AHEAD_CHUNK), chunk_buffer(READ_AHEAD_CHUNK))
    views = tuple(memoryview(b) for b in buffers)
    filled = (threading.Semaphore(0), threading.Semaphore(0))
    free = (threading.Semaphore(1), threading.Semaphore(1))
    sizes = [0, 0]
    failure: list[BaseException] = []

    def read() -> None:
        index = 0
        try:
            while True:
                free[index].acquire()
                sizes[index] = readinto(buffers[index]) or 0
                filled[index].release()
                if not sizes[index]:
                    return
                index ^= 1
        except BaseException as exc:  # handed to the hashing side, raised there
            failure.append(exc)
            sizes[index] = 0
            filled[index].release()

    reader = threading.Thread(target=read, name="weightpkg-read-ahead", daemon=True)
    reader.start()
    index = 0
    while True:
        filled[index].acquire()
        if not sizes[index]:
            break
        hasher.update(views[index][: sizes[index]])
        free[index].release()
        index ^= 1
    reader.join()
    if failure:
        raise failure[0]
    return hasher.digest(), hasher.size
