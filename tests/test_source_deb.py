"""The deb source: a real .deb (dpkg-deb) served from loopback, apt-get tried first and passed over."""

from __future__ import annotations

from pathlib import Path

import pytest

from .builders import build_deb, pinned, report_lines, safetensors_bytes, sha256, write_recipe
from .conftest import require_peer
from .servers import FileServer

pytestmark = pytest.mark.peer("dpkg-deb")

PACKAGE = "wpkgtest-model"  # no apt archive has it, so apt-get download fails before any network
MODEL = safetensors_bytes({"w": ("F32", [4], bytes(range(16)))})
MEMBER = "usr/share/wpkgtest-model/model.safetensors"


@pytest.fixture
def deb(tmp_path: Path) -> Path:
    require_peer("dpkg-deb")
    return build_deb(tmp_path / "debs", PACKAGE, "1.0", {MEMBER: MODEL, "usr/share/doc/x/README": b"hi\n"})


def deb_source(deb: Path, url: str, member: str = MEMBER, *, pin: str | None = None) -> dict:
    return {"kind": "deb", "package": PACKAGE, "version": "1.0", "sha256": pin or sha256(deb.read_bytes()),
            "member": member, "urls": [url]}


def serve(file_server: FileServer, deb: Path) -> str:
    file_server.files[f"/pool/{deb.name}"] = deb.read_bytes()
    return f"{file_server.url}/pool/{deb.name}"


def apt_note(lines: list[str], recipe: Path) -> str:
    """The one note about apt-get; it must say why apt could not deliver."""
    prefix = f"{recipe}: model.safetensors: note: source 1 (deb {PACKAGE}=1.0 via apt-get): "
    notes = [ln for ln in lines if ln.startswith(prefix)]
    assert len(notes) == 1, lines
    reason = notes[0].removeprefix(prefix)
    assert reason.startswith("apt-get")
    assert f"Unable to locate package {PACKAGE}" in reason or "apt-get is not installed" in reason
    return notes[0]


def test_member_of_a_deb_from_its_url_after_apt_fails(tmp_path: Path, store_root: Path,
                                                      file_server: FileServer, deb: Path, cli) -> None:
    member = MEMBER  # the tarball says ./usr/...; recipes name members in normal form
    url = serve(file_server, deb)
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [deb_source(deb, url, member)],
                                            "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = report_lines(done.stdout)
    assert lines[0] == apt_note(lines, recipe)
    assert lines[1:] == [
        f"{recipe}: model.safetensors: ok (sha256 {sha256(MODEL)[:12]}…, {len(MODEL)} bytes, safetensors, "
        f"1 tensors; from source 1 (deb {PACKAGE}=1.0 from {url}))",
        f"{recipe}: verified: test-pkg 1.0 (1 file)",
    ]
    [entry] = (store_root / "entries").iterdir()
    assert entry.read_bytes() == MODEL
    assert list((store_root / "tmp").iterdir()) == []
    assert [p for _, p, _ in file_server.requests] == [f"/pool/{deb.name}"]


def test_wrong_deb_sha256_fails(tmp_path: Path, store_root: Path, file_server: FileServer, deb: Path,
                                cli) -> None:
    url = serve(file_server, deb)
    wrong = "3" * 64
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [deb_source(deb, url, pin=wrong)],
                                            "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    lines = report_lines(done.stdout)
    apt_note(lines, recipe)
    assert (
        f"{recipe}: model.safetensors: note: source 1 (deb {PACKAGE}=1.0 from {url}): "
        f"package {PACKAGE}.deb: sha256 mismatch: expected {wrong}, got {sha256(deb.read_bytes())}"
    ) in lines
    assert lines[-2:] == [
        f"{recipe}: model.safetensors: FAILED: no source delivered it",
        f"{recipe}: FAILED: test-pkg 1.0 (1 of 1 file failed)",
    ]
    assert done.stderr == ""
    assert list((store_root / "entries").iterdir()) == []
    assert list((store_root / "tmp").iterdir()) == []


def test_missing_member_says_no_such_member(tmp_path: Path, store_root: Path, file_server: FileServer,
                                            deb: Path, cli) -> None:
    url = serve(file_server, deb)
    member = "usr/lib/wpkgtest-model/weights.bin"
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL, [deb_source(deb, url, member)],
                                            "safetensors")])
    done = cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1
    lines = report_lines(done.stdout)
    apt_note(lines, recipe)
    [note] = [ln for ln in lines if f"from {url}" in ln]
    assert note.startswith(
        f"{recipe}: model.safetensors: note: source 1 (deb {PACKAGE}=1.0 from {url}): "
        f"{PACKAGE}.deb!/data.tar.xz: member '{member}': no such member"
    )
    assert lines[-2] == f"{recipe}: model.safetensors: FAILED: no source delivered it"
    assert done.stderr == ""


def test_dot_slash_member_is_a_lint_error_naming_the_normal_form(tmp_path: Path, deb: Path, cli) -> None:
    recipe = write_recipe(tmp_path, [pinned("model.safetensors", MODEL,
                                            [deb_source(deb, "http://127.0.0.1:9/x.deb", f"./{MEMBER}")],
                                            "safetensors")])
    done = cli("lint", str(recipe))
    assert done.returncode == 2
    assert f"weights[0].sources[0].member: path './{MEMBER}' is not in normal form; write '{MEMBER}'" \
        in done.stderr
