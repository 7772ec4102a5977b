"""Digests and their renderings, checked against Nix itself where it is installed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from weightpkg.core import digest as digest_module
from weightpkg.core.digest import (
    CHUNK_SIZE,
    READ_AHEAD_CHUNK,
    Digest,
    StreamHasher,
    ThreadedHasher,
    hash_stream,
    nix32_decode,
    nix32_encode,
)

from .conftest import require_peer

# Vectors from Nix's own documentation and Guix's tests/guix-hash.sh.
KNOWN = [
    (b"", "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"),
    (b"abc", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"),
    (b"hello world\n", "0ix4jahrkll5zg01wandq78jw3ab30q4nscph67rniqg5x7r0j59"),
]


@pytest.mark.parametrize(("data", "nix32"), KNOWN)
def test_nix32_matches_known_vectors(data: bytes, nix32: str) -> None:
    digest = Digest(hashlib.sha256(data).digest())
    assert digest.nix32 == nix32
    assert Digest.parse(nix32) == digest


def test_sri_and_hex_renderings() -> None:
    digest = Digest(hashlib.sha256(b"hello world\n").digest())
    assert digest.sri == "sha256-qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc="
    assert digest.hex == "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
    for text in (digest.hex, f"sha256:{digest.hex}", digest.nix32, digest.sri):
        assert Digest.parse(text) == digest


@pytest.mark.parametrize("size", [1, 5, 16, 20, 32, 64])
def test_nix32_round_trips_every_length(size: int) -> None:
    for seed in range(20):
        raw = hashlib.sha512(bytes([seed, size])).digest()[:size]
        assert nix32_decode(nix32_encode(raw), size) == raw


def test_bad_digests_are_refused_with_reasons() -> None:
    with pytest.raises(ValueError, match="64 lower-case hex digits"):
        Digest.from_hex("ABC")
    with pytest.raises(ValueError, match="not a Nix base32 character"):
        nix32_decode("e" * 52, 32)
    with pytest.raises(ValueError, match="expected 52 base32 characters"):
        nix32_decode("0" * 51, 32)
    with pytest.raises(ValueError, match="32 bytes"):
        Digest(b"short")


class CountingStream(io.RawIOBase):
    """A stream that records the size of every read, to prove the buffer is reused."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.buffers: set[int] = set()
        self.sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        self.buffers.add(id(buf))
        self.sizes.append(len(buf))
        return self.inner.readinto(buf)


def test_hash_stream_reads_ahead_into_two_reused_buffers() -> None:
    data = os.urandom(5 * READ_AHEAD_CHUNK + 123)
    stream = CountingStream(data)
    digest, size = hash_stream(stream)
    assert (digest.hex, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert len(stream.buffers) == 2, "two buffers, reused, however long the stream"
    assert set(stream.sizes) == {READ_AHEAD_CHUNK}
    assert len(stream.sizes) == 7  # 6 reads with data, one that finds the end


def test_hash_stream_with_a_given_buffer_reuses_it() -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    stream = CountingStream(data)
    digest, _ = hash_stream(stream, bytearray(CHUNK_SIZE))
    assert digest.hex == hashlib.sha256(data).hexdigest()
    assert len(stream.buffers) == 1 and set(stream.sizes) == {CHUNK_SIZE}


class FailingStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        raise OSError(5, "Input/output error")


def test_a_read_error_reaches_the_caller() -> None:
    with pytest.raises(OSError, match="Input/output error"):
        hash_stream(FailingStream())


@pytest.mark.parametrize("size", [0, 1, READ_AHEAD_CHUNK - 1, READ_AHEAD_CHUNK, READ_AHEAD_CHUNK + 1])
def test_hash_stream_at_buffer_boundaries(size: int) -> None:
    data = os.urandom(size)
    assert hash_stream(io.BytesIO(data)) == (Digest(hashlib.sha256(data).digest()), size)


def _sample_files(folder: Path) -> list[Path]:
    sizes = [0, 1, 55, 56, 64, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7]
    files = []
    for n in sizes:
        path = folder / f"f{n}.bin"
        path.write_bytes(os.urandom(n))
        files.append(path)
    return files


def test_hash_cli_json(tmp_path: Path, cli) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    done = cli("hash", "--json", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "file": str(path),
            "size": 12,
            "sha256": "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
            "nix32": "0ix4jahrkll5zg01wandq78jw3ab30q4nscph67rniqg5x7r0j59",
            "sri": "sha256-qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=",
        }
    ]


def test_hash_cli_missing_file_is_a_usage_error(tmp_path: Path, cli) -> None:
    done = cli("hash", str(tmp_path / "nope.bin"))
    assert done.returncode == 2
    assert f"{tmp_path / 'nope.bin'}: no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_hash_base32_equals_nix_hash(tmp_path: Path, cli) -> None:
    nix_hash = require_peer("nix-hash")
    files = _sample_files(tmp_path)
    ours = cli("hash", "--format", "base32", *map(str, files))
    assert ours.returncode == 0, ours.stderr
    lines = ours.stdout.splitlines()
    assert len(lines) == len(files)
    for line, path in zip(lines, files, strict=True):
        value, name = line.split("  ")
        assert name == str(path)
        theirs = subprocess.run(
            [nix_hash, "--type", "sha256", "--flat", "--base32", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        assert value == theirs, path


def test_hash_sri_equals_nix_hash_file(tmp_path: Path, cli) -> None:
    nix = require_peer("nix")
    files = _sample_files(tmp_path)[:5]
    ours = cli("hash", "--format", "sri", *map(str, files))
    assert ours.returncode == 0, ours.stderr
    env = dict(os.environ, NIX_STATE_DIR=str(tmp_path / "nix-state"), NIX_CONF_DIR=str(tmp_path))
    (tmp_path / "nix.conf").write_text("substituters =\nexperimental-features = nix-command\n")
    for line, path in zip(ours.stdout.splitlines(), files, strict=True):
        value = line.split("  ")[0]
        theirs = subprocess.run(
            [nix, "--extra-experimental-features", "nix-command", "hash", "file", str(path)],
            capture_output=True, text=True, check=True, env=env,
        ).stdout.strip()
        assert value == theirs, path


def test_read_ahead_buffers_are_kept_for_the_next_file() -> None:
    # Fresh buffers cost a page fault per page on first touch: a second file reuses the first's.
    first, second = CountingStream(os.urandom(2 * READ_AHEAD_CHUNK)), CountingStream(os.urandom(3))
    hash_stream(first)
    hash_stream(second)
    assert len(first.buffers | second.buffers) == 2
    assert len(digest_module._SPARE_BUFFERS) <= digest_module._MAX_SPARE_BUFFERS


class ThreadRecordingFile(io.FileIO):
    def readinto(self, buf) -> int:  # type: ignore[override]
        self.threads = getattr(self, "threads", set()) | {threading.current_thread().name}
        return super().readinto(buf)


@pytest.mark.parametrize(("size", "in_caller"), [(0, True), (READ_AHEAD_CHUNK - 1, True),
                                                 (READ_AHEAD_CHUNK, False), (READ_AHEAD_CHUNK + 9, False)])
def test_a_file_that_fits_one_buffer_is_read_without_a_thread(tmp_path: Path, size: int,
                                                              in_caller: bool) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    with ThreadRecordingFile(path) as handle:
        assert hash_stream(handle) == (Digest(hashlib.sha256(data).digest()), size)
    assert (handle.threads == {threading.current_thread().name}) is in_caller


def test_threaded_hasher_equals_hashlib_whatever_the_caller_does_with_its_buffer() -> None:
    pieces = [os.urandom(n) for n in (0, 1, 1000, CHUNK_SIZE, 3 * CHUNK_SIZE + 5, 7)]
    hasher = ThreadedHasher(depth=2)
    reused = bytearray(4 * CHUNK_SIZE)
    for piece in pieces:
        reused[: len(piece)] = piece
        hasher.update(memoryview(reused)[: len(piece)])
        reused[: len(piece)] = bytes(len(piece))  # the caller reuses its buffer at once
        hasher.update(b"")
    assert hasher.size == sum(map(len, pieces))
    assert hasher.digest().hex == hashlib.sha256(b"".join(pieces)).hexdigest()
    hasher.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        hasher.update(b"more")


def test_threaded_hasher_continues_a_hash_already_begun() -> None:
    start = StreamHasher()
    start.update(b"resumed ")
    hasher = ThreadedHasher(start)
    assert hasher.size == 8
    hasher.update(b"download")
    assert hasher.digest().hex == hashlib.sha256(b"resumed download").hexdigest()
