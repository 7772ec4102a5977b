"""SHA-256 digests and the renderings distributors use: hex, Nix base32 (also Guix's) and SRI."""

from __future__ import annotations

import base64
import hashlib
import mmap
import os
import re
import stat
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


class Digest:
    """A SHA-256 digest; the only algorithm weightpkg pins with. Immutable, ordered by value.

    Written out rather than a frozen dataclass, so that verify can start hashing before the
    dataclass machinery (dataclasses and inspect, about 8 ms) is imported."""

    __slots__ = ("value",)

    value: bytes

    algorithm = "sha256"
    size = 32

    def __init__(self, value: bytes) -> None:
        if len(value) != self.size:
            raise ValueError(f"a sha256 digest has {self.size} bytes, not {len(value)}")
        object.__setattr__(self, "value", bytes(value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Digest is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Digest is immutable: cannot delete {name}")

    def __reduce__(self) -> tuple[type[Digest], tuple[bytes]]:
        return (Digest, (self.value,))  # copy and pickle without __setattr__

    def __repr__(self) -> str:
        return f"Digest(value={self.value!r})"

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == other.value if isinstance(other, Digest) else NotImplemented

    def __lt__(self, other: Digest) -> bool:
        return self.value < other.value if isinstance(other, Digest) else NotImplemented

    def __le__(self, other: Digest) -> bool:
        return self.value <= other.value if isinstance(other, Digest) else NotImplemented

    def __gt__(self, other: Digest) -> bool:
        return self.value > other.value if isinstance(other, Digest) else NotImplemented

    def __ge__(self, other: Digest) -> bool:
        return self.value >= other.value if isinstance(other, Digest) else NotImplemented

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

    def close(self) -> None:
        """Nothing to release here; a ThreadedHasher ends its thread."""


class ThreadedHasher(StreamHasher):
    """A StreamHasher that hashes on a helper thread, so that receiving and writing a download
    overlap its hashing (hashlib releases the GIL): the two together cost the slower of them
    rather than their sum when a second core is free.

    Pieces wait in a queue of at most ``depth``, as bytes: anything else is copied first, since
    its owner may reuse the buffer once ``update`` returns. ``size`` counts what was handed in.
    """

    def __init__(self, start: StreamHasher | None = None, depth: int = 8) -> None:
        import queue
        import threading

        self._inner = start or StreamHasher()
        self.size = self._inner.size
        self._failure: BaseException | None = None
        self._pending: queue.Queue[bytes | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="weightpkg-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._pending.get()) is not None:
            if self._failure is None:
                try:
                    self._inner.update(piece)
                except BaseException as exc:  # raised to the owner by digest()
                    self._failure = exc

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if not self._thread.is_alive():
            raise ValueError("this hasher is closed")
        piece = data if isinstance(data, bytes) else bytes(data)
        self.size += len(piece)
        self._pending.put(piece)

    def digest(self) -> Digest:
        self.close()
        if self._failure is not None:
            raise self._failure
        return self._inner.digest()

    def close(self) -> None:
        """Let the thread hash what is queued and end; idempotent."""
        if self._thread.is_alive():
            self._pending.put(None)
            self._thread.join()


def chunk_buffer(size: int = CHUNK_SIZE) -> mmap.mmap:
    """A page-aligned scratch buffer: the kernel copies into it about twice as fast as into a
    bytearray, whose data starts 16 bytes into a page (measured: docs/performance.md)."""
    return mmap.mmap(-1, size)


#: hash_stream reads ahead into two buffers of this size while it hashes the other one.
READ_AHEAD_CHUNK = 4 << 20

#: Read-ahead buffers kept for the next file: a fresh buffer's pages cost a fault each on first
#: touch (about 0.5 s per GiB on the project machine), which made many small files hash at half
#: speed. list.pop and list.append are atomic, so threads share the pool without a lock.
_SPARE_BUFFERS: list[mmap.mmap] = []
_MAX_SPARE_BUFFERS = 8


def _take_buffer() -> mmap.mmap:
    try:
        return _SPARE_BUFFERS.pop()
    except IndexError:
        return chunk_buffer(READ_AHEAD_CHUNK)


def _give_back(*buffers: mmap.mmap) -> None:
    for buffer in buffers:
        if len(_SPARE_BUFFERS) < _MAX_SPARE_BUFFERS:
            _SPARE_BUFFERS.append(buffer)


def hash_stream(stream: BinaryIO, buffer: bytearray | mmap.mmap | None = None) -> tuple[Digest, int]:
    """Hash a binary stream to its end through reused buffers; returns (digest, size).

    Reading (``readinto`` on an unbuffered file) and hashing both release the GIL, so a reader
    thread fills one page-aligned buffer while the other is hashed: the copy from the page cache
    then costs no wall time when a second core is free (docs/performance.md). Memory stays flat:
    two 4 MiB buffers whatever the file's size, kept for the next file; a file that fits one
    buffer is read in the calling thread. With ``buffer`` given, one buffer, one thread.
    """
    hasher = StreamHasher()
    readinto = getattr(stream, "readinto", None)
    if readinto is None:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
        return hasher.digest(), hasher.size
    if buffer is not None:
        _hash_into(readinto, buffer, hasher)
    elif _fits_one_buffer(stream):  # no thread to start: one read, one update
        pooled = _take_buffer()
        try:
            _hash_into(readinto, pooled, hasher)
        finally:
            _give_back(pooled)
    else:
        _hash_reading_ahead(readinto, hasher)
    return hasher.digest(), hasher.size


def _hash_into(readinto: Any, buffer: bytearray | mmap.mmap, hasher: StreamHasher) -> None:
    with memoryview(buffer) as view:
        while n := readinto(buffer):
            hasher.update(view[:n])


def _fits_one_buffer(stream: BinaryIO) -> bool:
    """A regular file no larger than one read-ahead buffer (a file that grows is still read to
    its end, in more than one read)."""
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size < READ_AHEAD_CHUNK


def _hash_reading_ahead(readinto: Any, hasher: StreamHasher) -> None:
    import threading

    _read_ahead(readinto, hasher, (_take_buffer(), _take_buffer()), threading)


def _read_ahead(
    readinto: Any, hasher: StreamHasher, buffers: tuple[mmap.mmap, mmap.mmap], threading: Any
) -> None:
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
    for view in views:
        view.release()
    # Only now, with the reader ended: after an exception above it might still write into them.
    _give_back(*buffers)
    if failure:
        raise failure[0]
