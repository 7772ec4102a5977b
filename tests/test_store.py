"""The store: only pinned bytes get in, atomically; partials resume; one writer per entry."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from weightpkg.core.digest import Digest
from weightpkg.errors import IntegrityError, StoreError
from weightpkg.store import Store, default_store_root, entry_name

DATA = os.urandom(3 * (1 << 20) + 17)
DIGEST = Digest(hashlib.sha256(DATA).digest())


def add(store: Store, data: bytes, digest: Digest = DIGEST, size: int | None = None,
        name: str = "w.bin") -> Path:
    with store.ingest(digest, len(data) if size is None else size, name) as ingest:
        if ingest.present:
            return ingest.final
        for start in range(ingest.offset, len(data), 1 << 20):
            ingest.write(data[start : start + (1 << 20)])
        return ingest.commit()


def test_entry_is_named_like_a_nix_store_path(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = add(store, DATA)
    assert path.name == f"{DIGEST.nix32}-w.bin"
    assert path.parent == tmp_path / "entries"
    assert path.read_bytes() == DATA
    assert not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_entry_names_keep_only_store_path_characters() -> None:
    digest = DIGEST
    assert entry_name(digest, "my model (v2).bin") == f"{digest.nix32}-my_model__v2_.bin"
    assert entry_name(digest, ".hidden") == f"{digest.nix32}-hidden"


def test_wrong_bytes_never_enter_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tampered = bytearray(DATA)
    tampered[12345] ^= 1
    with pytest.raises(IntegrityError) as caught:
        add(store, bytes(tampered))
    assert caught.value.expected == DIGEST.hex
    assert caught.value.actual == hashlib.sha256(tampered).hexdigest()
    assert list((tmp_path / "entries").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_truncated_bytes_never_enter_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(IntegrityError, match="size mismatch: expected 3145745 bytes, got 3145744 bytes"):
        add(store, DATA[:-1], size=len(DATA))
    assert list((tmp_path / "entries").iterdir()) == []


def test_a_partial_never_grows_past_the_pinned_size(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(IntegrityError, match="more than 10 bytes"):
        add(store, DATA, size=10)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_interrupted_ingest_resumes_from_the_partial(tmp_path: Path) -> None:
    store = Store(tmp_path)
    half = len(DATA) // 2
    with store.ingest(DIGEST, len(DATA), "w.bin") as ingest:
        ingest.write(DATA[:half])  # then the process "dies": no commit
    partial = tmp_path / "tmp" / f"{DIGEST.hex}.partial"
    assert partial.stat().st_size == half
    with store.ingest(DIGEST, len(DATA), "w.bin") as ingest:
        assert ingest.offset == half
        ingest.write(DATA[half:])
        path = ingest.commit()
    assert path.read_bytes() == DATA
    assert not partial.exists()


def test_present_entry_is_reported_present(tmp_path: Path) -> None:
    store = Store(tmp_path)
    add(store, DATA)
    with store.ingest(DIGEST, len(DATA), "w.bin") as ingest:
        assert ingest.present
    assert store.lookup(DIGEST, "w.bin") == store.entry_path(DIGEST, "w.bin")
    assert store.lookup(DIGEST, "other-name.bin") == store.entry_path(DIGEST, "w.bin")


def _writer(root: str, barrier) -> str:
    barrier.wait()
    return str(add(Store(root), DATA))


def test_concurrent_writers_end_with_one_intact_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            paths = pool.starmap(_writer, [(str(tmp_path), barrier)] * 4)
    assert len(set(paths)) == 1
    assert Path(paths[0]).read_bytes() == DATA
    assert [p.name for p in (tmp_path / "entries").iterdir()] == [Path(paths[0]).name]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_manifest_is_deterministic_json(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.write_manifest("pkg-1.0", {"b": 1, "a": {"z": 2, "y": [3]}})
    text = first.read_text()
    assert text == json.dumps({"a": {"y": [3], "z": 2}, "b": 1}, indent=2, sort_keys=True) + "\n"
    again = store.write_manifest("pkg-1.0", {"a": {"y": [3], "z": 2}, "b": 1})
    assert again.read_text() == text


def test_check_finds_a_tampered_entry_and_repair_removes_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    path = add(store, DATA)
    assert store.check().problems == []
    path.chmod(0o644)
    with open(path, "r+b") as handle:
        handle.seek(100)
        flipped = bytes([handle.read(1)[0] ^ 0xFF])
        handle.seek(100)
        handle.write(flipped)
    found = store.check()
    assert len(found.problems) == 1
    assert str(path) in found.problems[0] and "content changed" in found.problems[0]
    assert [e.path for e in found.altered] == [path]
    assert store.repair(found.altered) == [path]
    assert store.check().problems == []


def test_check_reports_strays_and_bad_manifests_without_crashing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    add(store, DATA)
    overflow = tmp_path / "entries" / ("z" * 52 + "-evil")
    overflow.write_bytes(b"x")
    (tmp_path / "entries" / f"{DIGEST.nix32}-dir").mkdir()
    (tmp_path / "packages" / "cut.json").write_text('{"files": [')
    (tmp_path / "packages" / "odd.json").write_text('{"files": ["oops"]}')
    problems = store.check().problems
    assert f"{overflow}: not a store entry (unexpected name or file type)" in problems
    directory = tmp_path / "entries" / f"{DIGEST.nix32}-dir"
    assert f"{directory}: not a store entry (unexpected name or file type)" in problems
    assert any(p.startswith(f"{tmp_path / 'packages' / 'cut.json'}: unreadable manifest") for p in problems)
    assert f"{tmp_path / 'packages' / 'odd.json'}: malformed manifest (expected files with store paths)" \
        in problems
    assert [e.name for e in store.entries()] == [f"{DIGEST.nix32}-w.bin"]


def test_gc_keeps_what_manifests_refer_to(tmp_path: Path) -> None:
    store = Store(tmp_path)
    kept = add(store, DATA)
    other = b"other bytes"
    dropped = add(store, other, Digest(hashlib.sha256(other).digest()), name="o.bin")
    store.write_manifest("pkg-1.0", {"files": [{"path": "w.bin", "store_path": f"entries/{kept.name}"}]})
    partial = tmp_path / "tmp" / "abandoned.partial"
    partial.write_bytes(b"x")
    run = tmp_path / "tmp" / "run-killed"
    (run / "nested").mkdir(parents=True)
    assert store.gc(dry_run=True) == [dropped, run]
    assert dropped.exists()
    store.gc()
    assert kept.exists() and not dropped.exists() and not run.exists()
    assert partial.exists(), "partial downloads are kept for resuming"
    assert store.gc(partials=True) == [partial]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_gc_refuses_while_a_manifest_is_unreadable(tmp_path: Path) -> None:
    store = Store(tmp_path)
    kept = add(store, DATA)
    files = [{"path": "w", "store_path": f"entries/{kept.name}"}]
    manifest = store.write_manifest("pkg-1.0", {"files": files})
    manifest.write_text(manifest.read_text()[:20])
    with pytest.raises(StoreError, match="refusing to collect garbage while manifests are unreadable"):
        store.gc()
    assert kept.exists()


def test_lookup_ignores_what_is_not_a_regular_file_of_the_pinned_size(tmp_path: Path) -> None:
    store = Store(tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(DATA)
    (tmp_path / "entries").mkdir()
    (tmp_path / "entries" / f"{DIGEST.nix32}-link.bin").symlink_to(outside)
    (tmp_path / "entries" / f"{DIGEST.nix32}-dir.bin").mkdir()
    (tmp_path / "entries" / f"{DIGEST.nix32}-short.bin").write_bytes(DATA[:10])
    assert store.lookup(DIGEST, "w.bin", len(DATA)) is None


def test_adopt_rehashes_the_entry_it_links_from(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = add(store, DATA)
    with store.ingest(DIGEST, len(DATA), "renamed.bin") as ingest:
        second = ingest.adopt(first)
    assert second.read_bytes() == DATA and second.stat().st_ino == first.stat().st_ino
    first.chmod(0o644)
    first.write_bytes(DATA[:-1] + b"X")
    with store.ingest(DIGEST, len(DATA), "third.bin") as ingest, pytest.raises(IntegrityError):
        ingest.adopt(first)
    assert not (tmp_path / "entries" / f"{DIGEST.nix32}-third.bin").exists()


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEIGHTPKG_STORE", str(tmp_path / "explicit"))
    assert default_store_root() == tmp_path / "explicit"
    monkeypatch.delenv("WEIGHTPKG_STORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_root() == tmp_path / "xdg" / "weightpkg" / "store"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_root() == tmp_path / "home" / ".local" / "share" / "weightpkg" / "store"


def test_a_big_file_is_hashed_on_a_helper_thread_and_resumed(tmp_path: Path) -> None:
    # From OVERLAP_FROM up, bytes are hashed on a thread and synced to disk as they arrive; the
    # writer may reuse its buffer at once, and a partial resumes into a new threaded hash.
    from weightpkg.store import OVERLAP_FROM

    store = Store(tmp_path)
    data = os.urandom(OVERLAP_FROM + 3 * (1 << 20) + 5)
    digest = Digest(hashlib.sha256(data).digest())
    buffer = bytearray(1 << 20)
    stop_at = OVERLAP_FROM // 2
    with store.ingest(digest, len(data), "big.bin") as ingest:
        for start in range(0, stop_at, len(buffer)):
            piece = data[start : min(start + len(buffer), stop_at)]
            buffer[: len(piece)] = piece
            ingest.write(memoryview(buffer)[: len(piece)])
            buffer[:] = bytes(len(buffer))  # reused by the writer before the hash thread got to it
    # the run ends here, as an interrupted download would; the partial is kept
    with store.ingest(digest, len(data), "big.bin") as ingest:
        assert ingest.offset == stop_at
        for start in range(stop_at, len(data), len(buffer)):
            ingest.write(data[start : start + len(buffer)])
        path = ingest.commit()
    assert path.read_bytes() == data
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name in ("weightpkg-hash", "weightpkg-write-behind")]


def test_a_big_file_with_one_wrong_byte_never_enters(tmp_path: Path) -> None:
    from weightpkg.store import OVERLAP_FROM

    store = Store(tmp_path)
    data = bytearray(os.urandom(OVERLAP_FROM + 1))
    digest = Digest(hashlib.sha256(data).digest())
    data[-1] ^= 1
    with pytest.raises(IntegrityError), store.ingest(digest, len(data), "big.bin") as ingest:
        for start in range(0, len(data), 1 << 20):
            ingest.write(bytes(data[start : start + (1 << 20)]))
        ingest.commit()
    assert list((tmp_path / "entries").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
