"""The url source against a real loopback HTTP server: mirrors, resuming, refusing wrong bytes."""

from __future__ import annotations

import os
from pathlib import Path

import weightpkg

from .builders import pinned, report_lines, sha256, write_recipe
from .servers import Fault, FileServer, closed_port

MIB = 1 << 20
BIG = os.urandom(3 * MIB + 123)  # more than one 1 MiB chunk, so a drop mid-body keeps bytes
SMALL = os.urandom(100_000)  # less than one chunk


def url_recipe(folder: Path, data: bytes, url: str, *mirrors: str, name: str = "w.bin") -> Path:
    source: dict = {"kind": "url", "url": url}
    if mirrors:
        source["mirrors"] = list(mirrors)
    return write_recipe(folder, [pinned(name, data, [source])])


def partial_path(store_root: Path, data: bytes) -> Path:
    return store_root / "tmp" / f"{sha256(data)}.partial"


def entries(store_root: Path) -> list[Path]:
    folder = store_root / "entries"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def partials(store_root: Path) -> list[Path]:
    folder = store_root / "tmp"
    return sorted(folder.glob("*.partial")) if folder.is_dir() else []


def assert_stored(store_root: Path, data: bytes, name: str = "w.bin") -> Path:
    found = entries(store_root)
    assert [p.name.split("-", 1)[1] for p in found] == [name]
    assert found[0].read_bytes() == data
    assert partials(store_root) == []
    return found[0]


def gets(server: FileServer, path: str) -> list[str | None]:
    """The Range header of each GET of ``path``, in order (None: a plain GET)."""
    return [rng for method, p, rng in server.requests if method == "GET" and p == path]


# --- plain fetches ------------------------------------------------------------------------------


def test_fetch_api_puts_served_bytes_in_the_store(tmp_path: Path, store_root: Path,
                                                  file_server: FileServer) -> None:
    file_server.files["/w.bin"] = BIG
    url = f"{file_server.url}/w.bin"
    recipe = url_recipe(tmp_path, BIG, url)
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok
    [f] = report.files
    assert (f.status, f.source, f.notes) == ("ok", f"source 1 (url {url})", [])
    entry = assert_stored(store_root, BIG)
    assert f.store_path == str(entry)
    assert oct(entry.stat().st_mode & 0o777) == "0o444"
    assert (store_root / "packages" / "test-pkg-1.0.json").is_file()
    assert gets(file_server, "/w.bin") == [None]


def test_cli_fetch_then_verify_uses_the_store(tmp_path: Path, store_root: Path, file_server: FileServer,
                                              cli) -> None:
    file_server.files["/w.bin"] = SMALL
    url = f"{file_server.url}/w.bin"
    recipe = url_recipe(tmp_path, SMALL, url)
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 0, done.stderr
    assert report_lines(done.stdout) == [
        f"{recipe}: w.bin: ok (sha256 {sha256(SMALL)[:12]}…, {len(SMALL)} bytes; from source 1 (url {url}))",
        f"{recipe}: fetched: test-pkg 1.0 (1 file)",
    ]
    assert done.stderr == ""
    assert_stored(store_root, SMALL)
    again = cli("--store", str(store_root), "verify", str(recipe))
    assert again.returncode == 0, again.stderr
    assert report_lines(again.stdout) == [
        f"{recipe}: w.bin: ok (sha256 {sha256(SMALL)[:12]}…, {len(SMALL)} bytes; in the store)",
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]
    assert gets(file_server, "/w.bin") == [None]  # verify found it in the store: no second download


def test_file_url(tmp_path: Path, store_root: Path, cli) -> None:
    local = tmp_path / "elsewhere" / "w.bin"
    local.parent.mkdir()
    local.write_bytes(SMALL)
    url = local.as_uri()
    assert url.startswith("file:///")
    recipe = url_recipe(tmp_path / "recipe", SMALL, url)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stderr
    assert report_lines(done.stdout)[0] == (
        f"{recipe}: w.bin: ok (sha256 {sha256(SMALL)[:12]}…, {len(SMALL)} bytes; from source 1 (url {url}))"
    )
    assert_stored(store_root, SMALL)


# --- mirrors ------------------------------------------------------------------------------------


def test_mirrors_are_tried_in_order_and_failures_noted(tmp_path: Path, store_root: Path,
                                                       file_server: FileServer, cli) -> None:
    file_server.files["/good/w.bin"] = SMALL
    missing = f"{file_server.url}/gone/w.bin"
    good = f"{file_server.url}/good/w.bin"
    recipe = url_recipe(tmp_path, SMALL, missing, good)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stderr
    assert report_lines(done.stdout) == [
        f"{recipe}: w.bin: note: source 1 (url {missing}): HTTP 404 Not Found",
        f"{recipe}: w.bin: ok (sha256 {sha256(SMALL)[:12]}…, {len(SMALL)} bytes; from source 1 (url {good}))",
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]
    assert [p for _, p, _ in file_server.requests] == ["/gone/w.bin", "/good/w.bin"]
    assert_stored(store_root, SMALL)


def test_a_mirror_serving_wrong_bytes_is_passed_over(tmp_path: Path, store_root: Path,
                                                     file_server: FileServer, cli) -> None:
    wrong = bytes(len(SMALL))
    file_server.files["/bad/w.bin"] = wrong
    file_server.files["/good/w.bin"] = SMALL
    bad, good = f"{file_server.url}/bad/w.bin", f"{file_server.url}/good/w.bin"
    recipe = url_recipe(tmp_path, SMALL, bad, good)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stderr
    assert report_lines(done.stdout)[0] == (
        f"{recipe}: w.bin: note: source 1 (url {bad}): w.bin: sha256 mismatch: "
        f"expected {sha256(SMALL)}, got {sha256(wrong)}"
    )
    assert gets(file_server, "/good/w.bin") == [None]  # the wrong bytes were not resumed from
    assert_stored(store_root, SMALL)


def test_all_mirrors_failing_names_every_url_and_its_cause(tmp_path: Path, store_root: Path,
                                                           file_server: FileServer, cli) -> None:
    missing = f"{file_server.url}/gone/w.bin"
    refused = f"http://127.0.0.1:{closed_port()}/w.bin"
    absent = (tmp_path / "no-such-file.bin").as_uri()
    recipe = url_recipe(tmp_path, SMALL, missing, refused, absent)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert report_lines(done.stdout) == [
        f"{recipe}: w.bin: note: source 1 (url {missing}): HTTP 404 Not Found",
        f"{recipe}: w.bin: note: source 1 (url {refused}): connection refused",
        f"{recipe}: w.bin: note: source 1 (url {absent}): no such file",
        f"{recipe}: w.bin: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert "Traceback" not in done.stderr
    assert entries(store_root) == [] and partials(store_root) == []


def test_closed_port_is_connection_refused_in_one_line(tmp_path: Path, store_root: Path, cli) -> None:
    url = f"http://127.0.0.1:{closed_port()}/w.bin"
    recipe = url_recipe(tmp_path, SMALL, url)
    done = cli("--store", str(store_root), "fetch", str(recipe))
    assert done.returncode == 1
    assert report_lines(done.stdout) == [
        f"{recipe}: w.bin: note: source 1 (url {url}): connection refused",
        f"{recipe}: w.bin: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""


# --- wrong bytes never get in -------------------------------------------------------------------


def test_server_serving_other_bytes_fails_and_stores_nothing(tmp_path: Path, store_root: Path,
                                                             file_server: FileServer, cli) -> None:
    other = os.urandom(len(SMALL))
    file_server.files["/w.bin"] = other
    recipe = url_recipe(tmp_path, SMALL, f"{file_server.url}/w.bin")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    assert (
        f"{recipe}: w.bin: FAILED: sha256 mismatch: expected {sha256(SMALL)}, got {sha256(other)} "
        f"(from source 1 (url {file_server.url}/w.bin))"
    ) in report_lines(done.stdout)
    assert report_lines(done.stdout)[-1] == f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)"
    assert entries(store_root) == []
    assert partials(store_root) == []
    assert list((store_root / "tmp").iterdir()) == []
    assert not (store_root / "packages" / "test-pkg-1.0.json").exists()


def test_body_longer_than_the_pin_is_refused_and_leaves_no_partial(tmp_path: Path, store_root: Path,
                                                                   file_server: FileServer, cli) -> None:
    file_server.files["/w.bin"] = SMALL + b"trailing bytes the pin does not cover"
    recipe = url_recipe(tmp_path, SMALL, f"{file_server.url}/w.bin")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    size = len(SMALL)
    assert (
        f"{recipe}: w.bin: FAILED: size mismatch: expected {size} bytes, got more than {size} bytes "
        f"(from source 1 (url {file_server.url}/w.bin))"
    ) in report_lines(done.stdout)
    assert entries(store_root) == []
    assert list((store_root / "tmp").iterdir()) == []


# --- resuming -----------------------------------------------------------------------------------


def test_dropped_connection_is_resumed_with_a_range_request(tmp_path: Path, store_root: Path,
                                                            file_server: FileServer, cli) -> None:
    cut = 1_500_000
    file_server.files["/w.bin"] = BIG
    file_server.faults["/w.bin"] = Fault(cut_after=cut, times=1)
    recipe = url_recipe(tmp_path, BIG, f"{file_server.url}/w.bin")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = gets(file_server, "/w.bin")
    assert first is None
    assert second is not None and second.startswith("bytes=") and second.endswith("-")
    kept = int(second.removeprefix("bytes=").removesuffix("-"))
    assert 0 < kept <= cut
    assert_stored(store_root, BIG)


def test_dropped_connection_keeps_the_bytes_received(tmp_path: Path, store_root: Path,
                                                     file_server: FileServer, cli) -> None:
    """A drop before the first full read chunk must not throw away what arrived (nor give up)."""
    cut = 50_000
    file_server.files["/w.bin"] = SMALL
    file_server.faults["/w.bin"] = Fault(cut_after=cut, times=1)
    recipe = url_recipe(tmp_path, SMALL, f"{file_server.url}/w.bin")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert gets(file_server, "/w.bin") == [None, f"bytes={cut}-"]
    assert_stored(store_root, SMALL)


def test_interrupted_fetch_resumes_from_the_partial(tmp_path: Path, store_root: Path,
                                                    file_server: FileServer) -> None:
    half = len(BIG) // 2
    partial = partial_path(store_root, BIG)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG[:half])
    file_server.files["/w.bin"] = BIG
    recipe = url_recipe(tmp_path, BIG, f"{file_server.url}/w.bin")
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    assert gets(file_server, "/w.bin") == [f"bytes={half}-"]
    assert not partial.exists()
    assert_stored(store_root, BIG)


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, store_root: Path,
                                                file_server: FileServer, cli) -> None:
    half = len(BIG) // 2
    partial = partial_path(store_root, BIG)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG[:half])
    file_server.files["/w.bin"] = BIG
    file_server.faults["/w.bin"] = Fault(ignore_range=True)
    recipe = url_recipe(tmp_path, BIG, f"{file_server.url}/w.bin")
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout)[0].startswith(f"{recipe}: w.bin: ok (")  # no notes: nothing failed
    assert gets(file_server, "/w.bin") == [f"bytes={half}-"]  # asked to resume, got the whole body once
    assert_stored(store_root, BIG)


def test_a_corrupt_partial_is_dropped_and_the_download_starts_over(tmp_path: Path, store_root: Path,
                                                                   file_server: FileServer, cli) -> None:
    half = len(SMALL) // 2
    partial = partial_path(store_root, SMALL)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(bytes(half))  # not what the server holds
    file_server.files["/w.bin"] = SMALL
    url = f"{file_server.url}/w.bin"
    recipe = url_recipe(tmp_path, SMALL, url)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout)[0] == (
        f"{recipe}: w.bin: note: source 1 (url {url}): resumed bytes did not match; starting over"
    )
    assert gets(file_server, "/w.bin") == [f"bytes={half}-", None]
    assert_stored(store_root, SMALL)


def test_a_complete_partial_is_committed_without_downloading(tmp_path: Path, store_root: Path,
                                                             file_server: FileServer) -> None:
    partial = partial_path(store_root, BIG)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG)
    file_server.files["/w.bin"] = BIG
    recipe = url_recipe(tmp_path, BIG, f"{file_server.url}/w.bin")
    [report] = weightpkg.fetch([recipe], weightpkg.open_store(store_root))
    assert report.ok, report.to_json()
    assert report.files[0].source == "a complete earlier download"
    assert gets(file_server, "/w.bin") == []
    assert_stored(store_root, BIG)


def test_a_server_whose_file_changed_size_is_not_resumed(tmp_path: Path, store_root: Path,
                                                         file_server: FileServer, cli) -> None:
    # The partial holds the start of the pinned file; the server now has a longer file.
    half = len(BIG) // 2
    partial = partial_path(store_root, BIG)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG[:half])
    file_server.files["/w.bin"] = BIG + b"appended"
    url = f"{file_server.url}/w.bin"
    recipe = url_recipe(tmp_path, BIG, url)
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    # The 206 announced a different total: resuming was refused and the whole body fetched,
    # which is longer than the pin, so nothing entered the store.
    assert gets(file_server, "/w.bin")[:2] == [f"bytes={half}-", None]
    assert entries(store_root) == [] and partials(store_root) == []
