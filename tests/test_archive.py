"""Members read out of real zip and tar files: corruption and tricks are refused, never raised raw."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from weightpkg.errors import UnsafeArchiveError
from weightpkg.sources import FetchContext, FileSink
from weightpkg.sources.archive import extract_chain

PAYLOAD = os.urandom(1 << 16) * 4  # compressible, so deflate/xz have a stream to break


def ctx(tmp_path: Path) -> FetchContext:
    return FetchContext(recipe_dir=tmp_path, workdir=tmp_path / "scratch")


def extract(tmp_path: Path, archive: Path, members: list[str]) -> bytes:
    out = tmp_path / "out.bin"
    with FileSink(out) as sink:
        extract_chain(archive, members, sink, ctx(tmp_path), "test")
    return out.read_bytes()


def corrupt_middle(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))


def test_nested_zip_then_tar(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:xz") as tf:
        info = tarfile.TarInfo("./data/w.bin")
        info.size = len(PAYLOAD)
        tf.addfile(info, io.BytesIO(PAYLOAD))
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/inner.tar.xz", inner.getvalue())
    assert extract(tmp_path, outer, ["pkg/inner.tar.xz", "data/w.bin"]) == PAYLOAD


def test_corrupt_deflate_stream_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.bin", PAYLOAD)
    corrupt_middle(archive)
    with pytest.raises(UnsafeArchiveError, match=r"a.zip: member 'w.bin': (corrupt|cannot be read)"):
        extract(tmp_path, archive, ["w.bin"])


def test_corrupt_xz_tar_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        info = tarfile.TarInfo("w.bin")
        info.size = len(PAYLOAD)
        tf.addfile(info, io.BytesIO(PAYLOAD))
    corrupt_middle(archive)
    with pytest.raises(UnsafeArchiveError, match=r"a.tar.xz: member 'w.bin': (corrupt|not a readable)"):
        extract(tmp_path, archive, ["w.bin"])


def test_duplicate_and_link_members_in_a_tar_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        for _ in range(2):
            info = tarfile.TarInfo("twice.bin")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("link.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeArchiveError, match="appears twice in the archive"):
        extract(tmp_path, archive, ["twice.bin"])
    with pytest.raises(UnsafeArchiveError, match=r"is a link to '../../etc/passwd'; name its target instead"):
        extract(tmp_path, archive, ["link.bin"])


def test_duplicate_zip_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("w.bin", b"one")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("w.bin", b"two")
    with pytest.raises(UnsafeArchiveError, match="appears 2 times in the archive"):
        extract(tmp_path, archive, ["w.bin"])


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "plain.bin"
    path.write_bytes(b"just bytes")
    with pytest.raises(UnsafeArchiveError, match="the archive is neither zip nor tar"):
        extract(tmp_path, path, ["x"])


def test_a_nested_member_cannot_outgrow_its_declared_size(tmp_path: Path) -> None:
    sink_path = tmp_path / "limited.bin"
    with FileSink(sink_path, limit=10) as sink, pytest.raises(Exception, match="more than 10 bytes"):
        sink.write(b"x" * 11)
