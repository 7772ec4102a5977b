"""Paths that try to leave their place are refused: in recipe keys (lint), through symlinks (fetch)
and inside archives (extraction).

Every path-bearing recipe key × every hostile form is a RecipeError naming the file, the line, the
key and the reason. A path source that reaches outside the recipe's folder through a symlink is
refused at fetch and nothing enters the store. Archives holding '../', absolute, backslashed,
linked and doubled members give up their legitimate member and write nothing anywhere else; a
hostile member asked for by name is refused with UnsafeArchiveError.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import weightpkg
from weightpkg.errors import FetchError, RecipeError, UnsafeArchiveError
from weightpkg.sources import FetchContext, FileSink
from weightpkg.sources.archive import extract_chain, open_member
from weightpkg.sources.path import resolve_inside

from .builders import SYMLINK_ATTR, build_wheel, patch_zip_member, report_lines, sha256
from .conftest import run_cli, serve_wheels
from .figures import count
from .servers import FileServer, SimpleIndex

PIN = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# --- 1. recipe keys -------------------------------------------------------------------------------

#: Every key that names a path, as a placeholder in the recipe below: where it appears (the key path
#: lint reports), and how a hostile value is written there (a string, or an element of a list).
TEMPLATE = """\
schema = 1
[package]
name = "escapes"
version = "1.0"
summary = "every path-bearing key of a recipe"
[license]
weights = "MIT"
upstream = "MIT"

[[weights]]
path = {weights_path}
sha256 = "{pin}"
size = 1
format = "other"

[[weights.sources]]
kind = "path"
path = {path_source}

[[weights.sources]]
kind = "hf"
repo = "org/model"
revision = "{commit}"
path = {hf_path}

[[weights.sources]]
kind = "pypi"
package = "pkg"
version = "1.0"
sha256 = "{pin}"
member = {pypi_member}

[[weights.sources]]
kind = "deb"
package = "pkg-data"
version = "1.0"
sha256 = "{pin}"
member = {deb_member}
urls = ["http://127.0.0.1:9/pkg-data.deb"]

[[inputs]]
name = "data"
role = "data"
path = {input_path}
sha256 = "{pin}"
size = 1
license = "MIT"
available = true

[[inputs.sources]]
kind = "path"
path = {input_source}

[[inputs.sources]]
kind = "recipe"
recipe = {recipe}
output = {output}

[build]
command = ["python", "train.py"]
outputs = {outputs}

[reproducibility]
level = "bit-identical"
"""

VALID = {
    "weights_path": "w.bin",
    "path_source": "files/w.bin",
    "hf_path": "w.bin",
    "pypi_member": "pkg/w.bin",
    "deb_member": ["usr/share/pkg/w.zip", "w.bin"],
    "input_path": "data.csv",
    "input_source": "files/data.csv",
    "recipe": "upstream/data.toml",
    "output": "data.csv",
    "outputs": ["w.bin"],
}

#: (placeholder, how the hostile value is placed, the key path lint must name).
KEYS: list[tuple[str, Callable[[str], object], str]] = [
    ("weights_path", lambda v: v, "weights[0].path"),
    ("path_source", lambda v: v, "weights[0].sources[0].path"),
    ("hf_path", lambda v: v, "weights[0].sources[1].path"),
    ("pypi_member", lambda v: v, "weights[0].sources[2].member"),
    ("pypi_member", lambda v: ["pkg/w.zip", v], "weights[0].sources[2].member[1]"),
    ("deb_member", lambda v: v, "weights[0].sources[3].member"),
    ("deb_member", lambda v: [v, "w.bin"], "weights[0].sources[3].member[0]"),
    ("input_path", lambda v: v, "inputs[0].path"),
    ("input_source", lambda v: v, "inputs[0].sources[0].path"),
    ("recipe", lambda v: v, "inputs[0].sources[1].recipe"),
    ("output", lambda v: v, "inputs[0].sources[1].output"),
    ("outputs", lambda v: ["w.bin", v], "build.outputs[1]"),
]

ESCAPES = "contains '..' and would escape its folder"
ABSOLUTE = "is absolute; it must be relative"
BACKSLASH = "contains a backslash; use '/' as the separator"
#: Each hostile form and the reason lint must give.
HOSTILE = {
    "/etc/passwd": ABSOLUTE,
    "//etc/passwd": ABSOLUTE,
    "../x": ESCAPES,
    "a/../../x": ESCAPES,
    "x/..": ESCAPES,
    "a\\b": BACKSLASH,
    "..\\x": BACKSLASH,
    "C:\\x": BACKSLASH,
    "C:/x": ABSOLUTE,
    "a\x00b": "contains a NUL character",
    ".": "names the folder itself, not a file",
    "": "must not be empty",
}


def recipe_text(**values: object) -> str:
    """The template with each placeholder written as a TOML value (JSON's escapes are TOML's)."""
    chosen = {**VALID, **values}
    return TEMPLATE.format(pin=PIN, commit=COMMIT, **{k: json.dumps(v) for k, v in chosen.items()})


def test_the_template_is_a_valid_recipe(tmp_path: Path) -> None:
    """Every refusal below is the hostile value's doing, not the template's."""
    path = tmp_path / "escapes.toml"
    path.write_text(recipe_text())
    recipe = weightpkg.load_recipe(path)
    assert [s.kind for s in recipe.weights[0].sources] == ["path", "hf", "pypi", "deb"]
    assert [s.kind for s in recipe.inputs[0].sources] == ["path", "recipe"]


@pytest.mark.parametrize("hostile", list(HOSTILE), ids=[repr(h) for h in HOSTILE])
@pytest.mark.parametrize(("placeholder", "place", "key"), KEYS, ids=[k for _, _, k in KEYS])
def test_a_hostile_path_in_any_key_is_a_located_recipe_error(
    tmp_path: Path, placeholder: str, place: Callable[[str], object], key: str, hostile: str
) -> None:
    path = tmp_path / "escapes.toml"
    path.write_text(recipe_text(**{placeholder: place(hostile)}))
    with pytest.raises(RecipeError) as caught:
        weightpkg.load_recipe(path)
    reason = HOSTILE[hostile]
    message = reason if not hostile else f"path {hostile!r} {reason}"
    [problem] = [p for p in caught.value.problems if p.key == key and p.message == message]
    assert problem.file == str(path) and problem.line is not None
    assert f"{path}:{problem.line}: {key}: {message}" in str(caught.value).split("\n")
    line = path.read_text().split("\n")[problem.line - 1]
    assert line.split("=")[0].strip() == key.split(".")[-1].split("[")[0], line
    count("path escapes refused")


def test_lint_refuses_an_escaping_path_in_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "escapes.toml"
    path.write_text(recipe_text(path_source="../../etc/passwd"))
    done = run_cli("lint", str(path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"{path}:18: weights[0].sources[0].path: path '../../etc/passwd' {ESCAPES}\n"
    done = run_cli("--store", str(tmp_path / "store"), "fetch", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == f"{path}:18: weights[0].sources[0].path: path '../../etc/passwd' {ESCAPES}\n"
    assert entries(tmp_path / "store") == []
    count("path escapes refused", 2)


@pytest.mark.parametrize("hostile", ["../x", "/etc/passwd", "a\\b", "", "a/./b"])
def test_fetch_refuses_an_unsafe_path_even_without_lint(tmp_path: Path, hostile: str) -> None:
    """The source itself checks: a caller that builds a recipe in code, past lint, is refused too."""
    with pytest.raises(FetchError, match=r"^path .*: the path (is|contains)"):
        resolve_inside(tmp_path, hostile)
    count("path escapes refused")


# --- 2. symlinks ----------------------------------------------------------------------------------

SECRET = b"bytes outside the recipe's folder\n"


def path_recipe(folder: Path, source: str, data: bytes) -> Path:
    """A recipe in ``folder`` publishing ``data`` from the path source ``source``: the pin matches,
    so only the path check stands between the bytes and the store."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / "pkg.toml"
    recipe.write_text(
        f'schema = 1\n[package]\nname = "pkg"\nversion = "1.0"\nsummary = "s"\n'
        f'[license]\nweights = "MIT"\nupstream = "MIT"\n'
        f'[[weights]]\npath = "w.bin"\nsha256 = "{sha256(data)}"\nsize = {len(data)}\nformat = "other"\n'
        f'[[weights.sources]]\nkind = "path"\npath = {json.dumps(source)}\n'
    )
    return recipe


def entries(store_root: Path) -> list[bytes]:
    folder = store_root / "entries"
    return [p.read_bytes() for p in folder.iterdir()] if folder.exists() else []


def fetch_note(recipe: Path, store_root: Path) -> str:
    """The one failure note of fetching the recipe's only file (which must fail)."""
    [report] = weightpkg.fetch([recipe], store=weightpkg.open_store(store_root))
    [file] = report.files
    assert file.status == "failed", file
    [note] = file.notes
    return note


def test_a_symlink_to_a_file_outside_is_refused(tmp_path: Path, store_root: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.bin").write_bytes(SECRET)
    recipe = path_recipe(tmp_path / "recipe", "files/w.bin", SECRET)
    (tmp_path / "recipe" / "files").mkdir()
    (tmp_path / "recipe" / "files" / "w.bin").symlink_to("../../outside/secret.bin")
    root = (tmp_path / "recipe").resolve()
    assert fetch_note(recipe, store_root) == (
        f"source 1 (path files/w.bin): resolves to {root.parent / 'outside' / 'secret.bin'}, "
        f"outside the recipe's folder {root}"
    )
    assert entries(store_root) == []
    count("path escapes refused")


def test_an_absolute_symlink_to_a_system_file_is_refused(tmp_path: Path, store_root: Path) -> None:
    passwd = Path("/etc/passwd")
    if not passwd.is_file():
        pytest.skip("no /etc/passwd here")
    recipe = path_recipe(tmp_path / "recipe", "passwd", passwd.read_bytes())
    (tmp_path / "recipe" / "passwd").symlink_to(passwd)
    assert "outside the recipe's folder" in fetch_note(recipe, store_root)
    assert entries(store_root) == []
    count("path escapes refused")


def test_a_symlinked_directory_leading_outside_is_refused(tmp_path: Path, store_root: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "w.bin").write_bytes(SECRET)
    recipe = path_recipe(tmp_path / "recipe", "files/w.bin", SECRET)
    (tmp_path / "recipe" / "files").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert "outside the recipe's folder" in fetch_note(recipe, store_root)
    assert entries(store_root) == []
    count("path escapes refused")


def test_a_symlink_inside_pointing_inside_is_fine(tmp_path: Path, store_root: Path) -> None:
    """The check resolves links; it does not refuse them: an alias within the folder works."""
    data = b"the weights\n"
    recipe = path_recipe(tmp_path / "recipe", "files/alias.bin", data)
    (tmp_path / "recipe" / "real").mkdir()
    (tmp_path / "recipe" / "real" / "w.bin").write_bytes(data)
    (tmp_path / "recipe" / "files").mkdir()
    (tmp_path / "recipe" / "files" / "alias.bin").symlink_to("../real/w.bin")
    [report] = weightpkg.fetch([recipe], store=weightpkg.open_store(store_root))
    assert [f.status for f in report.files] == ["ok"]
    assert entries(store_root) == [data]


DATA = b"x,y\n1,2\n"


def recipe_source_setup(tmp_path: Path, upstream_outside: bool) -> Path:
    """A recipe whose input comes from another recipe (kind = "recipe") under up/; up/ is a real
    folder, or a symlink to a folder outside the recipe's."""
    folder = tmp_path / "recipe"
    upstream_dir = tmp_path / "elsewhere" if upstream_outside else folder / "up"
    upstream_dir.mkdir(parents=True)
    (upstream_dir / "data.csv").write_bytes(DATA)
    (upstream_dir / "data.toml").write_text(
        f'schema = 1\n[package]\nname = "data"\nversion = "1.0"\nsummary = "s"\nkind = "data"\n'
        f'[license]\nweights = "MIT"\nupstream = "MIT"\n'
        f'[[weights]]\npath = "data.csv"\nsha256 = "{sha256(DATA)}"\nsize = {len(DATA)}\nformat = "csv"\n'
        f'[[weights.sources]]\nkind = "path"\npath = "data.csv"\n'
    )
    weights = b"w"
    recipe = path_recipe(folder, "w.bin", weights)
    (folder / "w.bin").write_bytes(weights)
    if upstream_outside:
        (folder / "up").symlink_to(upstream_dir, target_is_directory=True)
    with recipe.open("a") as handle:
        handle.write(
            f'[[inputs]]\nname = "data"\nrole = "data"\npath = "data.csv"\nsha256 = "{sha256(DATA)}"\n'
            f'size = {len(DATA)}\nlicense = "MIT"\navailable = true\n'
            f'[[inputs.sources]]\nkind = "recipe"\nrecipe = "up/data.toml"\noutput = "data.csv"\n'
        )
    return recipe


@pytest.mark.parametrize("outside", [False, True], ids=["inside", "symlinked-outside"])
def test_a_recipe_source_through_a_symlinked_folder(tmp_path: Path, store_root: Path, outside: bool) -> None:
    recipe = recipe_source_setup(tmp_path, outside)
    [report] = weightpkg.fetch([recipe], store=weightpkg.open_store(store_root), with_inputs=True)
    statuses = {f.path: f.status for f in report.files}
    if not outside:
        assert statuses == {"w.bin": "ok", "data.csv": "ok"}
        assert sorted(entries(store_root)) == sorted([b"w", DATA])
        return
    assert statuses == {"w.bin": "ok", "data.csv": "failed"}
    [failed] = [f for f in report.files if f.path == "data.csv"]
    assert len(failed.notes) == 1 and "outside the recipe's folder" in failed.notes[0], failed.notes
    assert entries(store_root) == [b"w"]
    count("path escapes refused")


# --- 3. archive members ---------------------------------------------------------------------------

#: A name nobody else uses, so a search of all of /tmp for it finds only what these tests wrote.
EVIL = f"evil-{uuid.uuid4().hex[:12]}"
PAYLOAD = os.urandom(4096)
WANTED = "data/w.bin"
#: Member names that try to leave the extraction folder (each also asked for by name below).
HOSTILE_MEMBERS = [f"../{EVIL}", f"../../../../../../tmp/{EVIL}", f"/abs/{EVIL}", f"a\\..\\..\\{EVIL}",
                   f"data/../../{EVIL}"]


def hostile_zip(path: Path) -> Path:
    """A zip whose only sound member is data/w.bin, between names that escape and a symlink."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")
        for name in HOSTILE_MEMBERS[:2]:
            zf.writestr(name, b"evil")
        zf.writestr(WANTED, PAYLOAD)
        for name in HOSTILE_MEMBERS[2:]:
            zf.writestr(name, b"evil")
        zf.writestr("link", "/etc/passwd")
    patch_zip_member(path, "link", external_attr=SYMLINK_ATTR)
    return path


def hostile_tar(path: Path, mode: str) -> Path:
    """The same in a tar (plain or compressed), plus a symlinked folder, a hard link and a device."""
    with tarfile.open(path, mode) as tf:

        def add(name: str, data: bytes = b"evil", **fields: object) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data) if not fields else 0
            for key, value in fields.items():
                setattr(info, key, value)
            tf.addfile(info, io.BytesIO(data) if not fields else None)

        add("data", type=tarfile.SYMTYPE, linkname="/tmp")  # a folder that is a link out
        for name in HOSTILE_MEMBERS:
            add(name)
        add(WANTED, PAYLOAD)
        add("link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add(f"data/{EVIL}", type=tarfile.SYMTYPE, linkname=f"../../{EVIL}")
        add("hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        add("device", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    return path


ARCHIVES: dict[str, Callable[[Path], Path]] = {
    "zip": lambda d: hostile_zip(d / "a.zip"),
    "tar": lambda d: hostile_tar(d / "a.tar", "w"),
    "tar.gz": lambda d: hostile_tar(d / "a.tar.gz", "w:gz"),
    "tar.xz": lambda d: hostile_tar(d / "a.tar.xz", "w:xz"),
    "tar.bz2": lambda d: hostile_tar(d / "a.tar.bz2", "w:bz2"),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) and what it is."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[str(path.relative_to(root))] = kind
    return found


def extract(tmp_path: Path, archive: Path, members: list[str]) -> bytes:
    out = tmp_path / "out" / "member.bin"
    out.parent.mkdir(exist_ok=True)
    with FileSink(out) as sink:
        ctx = FetchContext(recipe_dir=tmp_path, workdir=tmp_path / "work")
        extract_chain(archive, members, sink, ctx, "t")
    return out.read_bytes()


@pytest.mark.parametrize("kind", list(ARCHIVES))
def test_the_sound_member_comes_out_and_nothing_else_is_written(tmp_path: Path, kind: str) -> None:
    archive = ARCHIVES[kind](tmp_path)
    before = snapshot(tmp_path)
    assert extract(tmp_path, archive, [WANTED]) == PAYLOAD
    added = {path: what for path, what in snapshot(tmp_path).items() if path not in before}
    assert added == {"out": "dir", "out/member.bin": "file"}, added
    assert not [p for p in snapshot(tmp_path.parent) if EVIL in p]
    assert not Path("/abs").exists() and not Path(f"/tmp/{EVIL}").exists()


@pytest.mark.parametrize("member", HOSTILE_MEMBERS)
@pytest.mark.parametrize("kind", list(ARCHIVES))
def test_a_member_named_to_escape_is_refused(tmp_path: Path, kind: str, member: str) -> None:
    archive = ARCHIVES[kind](tmp_path)
    with pytest.raises(UnsafeArchiveError) as caught:
        extract(tmp_path, archive, [member])
    reason = BACKSLASH if "\\" in member else ABSOLUTE if member.startswith("/") else ESCAPES
    assert str(caught.value) == f"{archive.name}: member {member!r}: the name {reason}"
    assert not (tmp_path / "out" / "member.bin").read_bytes()
    count("path escapes refused")


@pytest.mark.parametrize("kind", list(ARCHIVES))
def test_link_members_are_refused(tmp_path: Path, kind: str) -> None:
    archive = ARCHIVES[kind](tmp_path)
    names = ["link"] if kind == "zip" else ["link", "hard", f"data/{EVIL}"]
    for name in names:
        with pytest.raises(UnsafeArchiveError, match=r"is (a symbolic link|a link to '[^']+'); name its"):
            extract(tmp_path, archive, [name])
        count("path escapes refused")
    if kind != "zip":
        with pytest.raises(UnsafeArchiveError, match="'device': is not a regular file"):
            extract(tmp_path, archive, ["device"])
        count("path escapes refused")


def zip_with(path: Path, names: list[str]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")
        for i, name in enumerate(names):
            zf.writestr(name, f"copy {i}".encode())
    return path


def tar_with(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for i, name in enumerate(names):
            data = f"copy {i}".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "alias", ["data/./w.bin", "data//w.bin", "./data/w.bin", "/data/w.bin", "x/../data/w.bin", "data\\w.bin"]
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_member_that_lands_where_the_wanted_one_does_is_refused(tmp_path: Path, kind: str,
                                                                   alias: str) -> None:
    """Two names an extractor writes to one file: which did the pin check read? Refused, not guessed."""
    make = zip_with if kind == "zip" else tar_with
    for order in ([WANTED, alias], [alias, WANTED]):
        archive = make(tmp_path / f"a.{kind}", order)
        if kind == "tar.gz" and alias == "./data/w.bin":  # tar names are read without './'
            match = "appears twice in the archive"
        else:
            match = rf"appears (2 times|twice) in the archive \(also as {re.escape(repr(alias))}\)"
        with pytest.raises(UnsafeArchiveError, match=match):
            extract(tmp_path, archive, [WANTED])
        count("path escapes refused")


def test_open_member_checks_the_name_before_opening_the_archive(tmp_path: Path) -> None:
    """Whoever calls it (init lists members from the archive itself), a hostile name never reaches
    zipfile or tarfile: the archive need not even exist."""
    with pytest.raises(UnsafeArchiveError, match=r"^x.zip: member '../x': the name contains '..'"), \
            open_member(tmp_path / "missing.zip", "../x", "x.zip"):
        pass
    count("path escapes refused")


# --- end to end: a .deb and a wheel holding hostile members ---------------------------------------


def ar(members: dict[str, bytes]) -> bytes:
    """An ar archive (the .deb container), written by hand so data.tar can hold anything."""
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def hostile_deb(tmp_path: Path) -> bytes:
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz") as tf:
        text = b"Package: wpkgtest-evil\nVersion: 1.0\nArchitecture: all\nDescription: x\n"
        info = tarfile.TarInfo("./control")
        info.size = len(text)
        tf.addfile(info, io.BytesIO(text))
    data = hostile_tar(tmp_path / "data.tar.xz", "w:xz").read_bytes()
    return ar({"debian-binary": b"2.0\n", "control.tar.xz": control.getvalue(), "data.tar.xz": data})


def test_a_deb_with_hostile_members_end_to_end(tmp_path: Path, store_root: Path,
                                              file_server: FileServer) -> None:
    """verify through the real deb source (apt-get tried first, then the loopback URL): the sound
    member is admitted, a link member is refused, and nothing named evil appears anywhere."""
    deb = hostile_deb(tmp_path)
    file_server.files["/pool/evil.deb"] = deb
    url = f"{file_server.url}/pool/evil.deb"
    work = tmp_path / "recipes"
    work.mkdir()

    def recipe(member: str, data: bytes) -> Path:
        source = {"kind": "deb", "package": "wpkgtest-evil", "version": "1.0", "sha256": sha256(deb),
                  "member": member, "urls": [url]}
        path = work / f"{member.replace('/', '-')}.toml"
        path.write_text(
            f'schema = 1\n[package]\nname = "evil"\nversion = "1.0"\nsummary = "s"\n'
            f'[license]\nweights = "MIT"\nupstream = "MIT"\n'
            f'[[weights]]\npath = "w.bin"\nsha256 = "{sha256(data)}"\nsize = {len(data)}\nformat = "other"\n'
            f"[[weights.sources]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items())
        )
        return path

    before = snapshot(tmp_path)
    good = recipe(WANTED, PAYLOAD)
    done = run_cli("--store", str(store_root), "verify", str(good))
    assert done.returncode == 0, done.stdout + done.stderr
    assert entries(store_root) == [PAYLOAD]

    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").is_file() else b"root\n"
    bad = recipe("link", passwd)
    done = run_cli("--store", str(store_root), "verify", str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    notes = [ln for ln in report_lines(done.stdout) if f"from {url}" in ln]
    assert notes == [f"{bad}: w.bin: note: source 1 (deb wpkgtest-evil=1.0 from {url}): wpkgtest-evil.deb!/"
                     "data.tar.xz: member 'link': is a link to '/etc/passwd'; name its target instead"]
    assert entries(store_root) == [PAYLOAD]
    count("path escapes refused")
    added = [p for p in snapshot(tmp_path) if p not in before]
    allowed = ("recipes", "store", "default-store")
    assert not [p for p in added if EVIL in p or not p.startswith(allowed)], added


def test_a_wheel_with_a_doubled_member_end_to_end(tmp_path: Path, store_root: Path, simple_index: SimpleIndex,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel holding pkg/model.bin and pkg/./model.bin (pip installs whichever comes last): the
    pypi source through pip refuses to choose, even where the first copy matches the pin."""
    first = b"the copy a scanner reads\n"
    members = {"wpt_doubled/__init__.py": b"", "pkg/model.bin": first, "pkg/./model.bin": b"other\n"}
    wheel = build_wheel(tmp_path / "wheels", "wpt-doubled", "1.0", members)
    serve_wheels(simple_index, monkeypatch, wheel)
    source = {"kind": "pypi", "package": "wpt-doubled", "version": "1.0",
              "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "member": "pkg/model.bin"}
    recipe = tmp_path / "doubled.toml"
    recipe.write_text(
        f'schema = 1\n[package]\nname = "doubled"\nversion = "1.0"\nsummary = "s"\n'
        f'[license]\nweights = "MIT"\nupstream = "MIT"\n'
        f'[[weights]]\npath = "model.bin"\nsha256 = "{sha256(first)}"\nsize = {len(first)}\n'
        'format = "other"\n'
        f"[[weights.sources]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in source.items())
    )
    done = run_cli("--store", str(store_root), "verify", str(recipe))
    assert done.returncode == 1, done.stdout + done.stderr
    twice = "appears 2 times in the archive (also as 'pkg/./model.bin')"
    refusal = f"{wheel.name}: member 'pkg/model.bin': {twice}"
    assert refusal in done.stdout, done.stdout
    assert entries(store_root) == []
    count("path escapes refused")


def test_nothing_named_evil_anywhere_under_tmp() -> None:
    """The widest check, once: no file this module's archives named escaped anywhere under /tmp."""
    found = []
    for folder, dirs, files in os.walk("/tmp", onerror=lambda exc: None):
        found += [os.path.join(folder, n) for n in dirs + files if EVIL in n]
    assert not found
