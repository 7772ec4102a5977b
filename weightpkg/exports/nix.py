"""A recipe as a Nix expression that ``nix-build`` builds with nothing but Nix itself.

Every file comes from a fixed-output derivation pinned by the recipe's sha256, so Nix checks every
byte itself: plain files through ``builtin:fetchurl`` (``<nix/fetchurl.nix>``), members of wheels
and .debs through a fetch of the archive (pinned by the archive's sha256) and an extraction that
is fixed-output on the member's sha256. Without nixpkgs there is no unzip or tar in the Nix
store, so extraction, assembly and the rebuild run a host Python as the builder: impure, valid
with the sandbox off only (or with a Python from the store), and said so in the expression.

A rebuildable recipe also gets ``build`` (an input-addressed derivation running the recipe's
command, for ``nix-build --check``) and ``rebuild`` (its published files, each fixed-output on the
*published* sha256, so Nix itself refuses a rebuild that is not bit-identical).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from ..builder import build_command, build_env
from ..core.digest import Digest
from ..core.recipe import DebSource, Input, PathSource, PypiSource, Recipe, UrlSource
from ..errors import UsageError
from ..sources.recipe import expanded_sources

#: PyPI's files host, in the layout nixpkgs' ``fetchPypi`` uses for wheels: the host redirects
#: ``/packages/{python tag}/{first letter}/{project}/{file name}`` to where the file really lies.
PYPI_FILES = "https://files.pythonhosted.org/packages/{python_tag}/{letter}/{package}/{filename}"
#: The Hugging Face Hub, whose ``/{repo}/resolve/{revision}/{path}`` serves a file at a commit.
HF_ENDPOINT = "https://huggingface.co"
#: The host interpreter that extracts members and assembles packages (standard library only).
DEFAULT_EXTRACT_PYTHON = "/usr/bin/python3"

#: Placeholders a template for archives may use; a base URL without "{" gets "/{filename}" added.
PYPI_FIELDS = ("filename", "package", "version", "python_tag", "letter")
DEBIAN_FIELDS = ("filename", "package", "version", "architecture")

_STORE_NAME_CHARS = re.compile(r"[A-Za-z0-9+\-._?=]")
#: Nix refuses store path names over 211 characters, and a derivation's file adds ".drv".
_STORE_NAME_MAX = 207
_URL_SCHEMES = ("http", "https", "file")


# --- Nix text -------------------------------------------------------------------------------------


def nix_string(text: str) -> str:
    """``text`` as a double-quoted Nix string literal: ``\\``, ``"`` and ``${`` escaped, so
    nothing in a recipe can end the string or splice code into the expression."""
    if "\x00" in text:
        raise UsageError(f"{text!r}: a NUL character cannot be written in a Nix string")
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


def nix_indented_string(text: str, indent: str = "") -> str:
    """``text`` as a Nix ``''…''`` string, each line indented by ``indent``, which Nix strips again:
    readable in the expression, unlike a double-quoted string. ``''`` and ``${`` are escaped as
    ``'''`` and ``''${``; ``text`` must end with a newline (so no quote can touch the closing
    ``''``) and hold no CR or NUL."""
    if not text.endswith("\n") or "\r" in text or "\x00" in text:
        raise ValueError("an indented Nix string needs text ending in a newline, without CR or NUL")
    escaped = text.replace("''", "'''").replace("${", "''${")
    # Nix strips the indentation common to all lines, the text's own too; a first space written
    # as the escape ''\<space> is no indentation, so exactly ``indent`` is stripped.
    lines = [
        indent + ("''\\" + line if line.startswith(" ") else line) if line else ""
        for line in escaped.splitlines()
    ]
    return "''\n" + "\n".join(lines) + "\n" + indent + "''"


def store_name(text: str) -> str:
    """A name Nix accepts for a derivation and its store path (letters, digits and ``+-._?=``, not
    starting with a dot, at most 207 characters): other characters become ``-``."""
    name = "".join(c if _STORE_NAME_CHARS.fullmatch(c) else "-" for c in text).lstrip(".")
    name = name[:_STORE_NAME_MAX]
    return name or "file"


def store_name_problem(name: str) -> str | None:
    """Why Nix would refuse ``name`` as a derivation or store path name, or None."""
    if not name:
        return "is empty"
    if len(name) > _STORE_NAME_MAX:
        return f"is longer than {_STORE_NAME_MAX} characters"
    if name.startswith("."):
        return "starts with a dot (newer Nix refuses '.', '..', '.-…' and '..-…'; this export, all)"
    bad = sorted({c for c in name if not _STORE_NAME_CHARS.fullmatch(c)})
    if bad:
        return f"contains {''.join(bad)!r}; Nix allows only letters, digits and +-._?="
    return None


def _hash_literal(digest: Digest) -> str:
    return nix_string(digest.nix32)


def _list(items: Iterable[str]) -> str:
    return "[ " + " ".join(items) + " ]"


# --- where archives and files come from ----------------------------------------------------------


@dataclass(frozen=True)
class _Origins:
    """The export's options on where files come from, checked once."""

    recipe_dir: Path
    pypi_base: str | None
    debian_base: str | None
    path_base: str | None
    hf_endpoint: str


def _check_base(option: str, value: str | None, fields: Sequence[str]) -> None:
    if value is None:
        return
    scheme = urlsplit(value).scheme
    if scheme not in _URL_SCHEMES:
        raise UsageError(f"{option} {value!r}: not an http, https or file URL")
    for found in re.findall(r"\{([^{}]*)\}", value):
        if found not in fields:
            allowed = ", ".join("{" + f + "}" for f in fields)
            raise UsageError(f"{option} {value!r}: unknown placeholder {{{found}}} (allowed: {allowed})")


def _from_base(base: str, fields: Mapping[str, str]) -> str:
    """A file's URL: ``base`` with its placeholders filled, or ``base/filename``."""
    if "{" not in base:
        return base.rstrip("/") + "/" + quote(fields["filename"], safe="+~")
    for key, value in fields.items():
        base = base.replace("{" + key + "}", quote(value, safe="+~"))
    return base


def deb_filename(source: DebSource) -> str | None:
    """The .deb's name as Debian's pool writes it (no epoch), or None without an architecture."""
    if source.architecture is None:
        return None
    version = source.version.split(":", 1)[1] if ":" in source.version else source.version
    return f"{source.package}_{version}_{source.architecture}.deb"


def _wheel_fields(source: PypiSource) -> dict[str, str] | None:
    if source.wheel is None:
        return None
    parts = source.wheel.removesuffix(".whl").split("-")
    python_tag = parts[-3] if len(parts) >= 5 else "py3"
    return {
        "filename": source.wheel,
        "package": source.package,
        "version": source.version,
        "python_tag": python_tag,
        "letter": source.package[:1],
    }


def _archive_urls(source: PypiSource | DebSource, origins: _Origins) -> tuple[list[str], str | None]:
    """The URLs of a wheel or .deb, in order, and why there are none when there are none."""
    if isinstance(source, PypiSource):
        fields = _wheel_fields(source)
        if fields is None:
            return [], "names no wheel file (key 'wheel'), so no URL can be formed for it"
        if origins.pypi_base is None:
            why = "needs a PyPI files base URL (--pypi-base, or pypi for PyPI itself)"
            return [], f"{why} to fetch {source.wheel}"
        return [_from_base(origins.pypi_base, fields)], None
    urls = list(source.urls)
    filename = deb_filename(source)
    if origins.debian_base is not None and filename is not None:
        fields = {
            "filename": filename,
            "package": source.package,
            "version": source.version,
            "architecture": source.architecture or "",
        }
        urls.append(_from_base(origins.debian_base, fields))
    if urls:
        return urls, None
    if filename is None:
        return [], "has no urls and no architecture, so no .deb file name can be formed for it"
    return [], f"has no urls; it needs a Debian base URL (--debian-base) to fetch {filename}"


def _archive_name(source: PypiSource | DebSource) -> str:
    if isinstance(source, PypiSource) and source.wheel:
        return source.wheel
    if isinstance(source, DebSource) and (name := deb_filename(source)):
        return name
    return f"{source.package}-{source.version}"


def _plain_urls(source: Any, origins: _Origins) -> tuple[list[str], str | None]:
    """URLs of a file that is fetched as it is (path, url and hf sources)."""
    if isinstance(source, UrlSource):
        return list(source.urls), None
    if isinstance(source, PathSource):
        if origins.path_base is not None:
            return [origins.path_base.rstrip("/") + "/" + quote(source.path, safe="/+~")], None
        return [(origins.recipe_dir / source.path).resolve().as_uri()], None
    if getattr(source, "kind", None) == "hf":
        ref = getattr(source, "repo_ref", None) or source.repo
        path = quote(source.path, safe="/+~")
        return [f"{origins.hf_endpoint.rstrip('/')}/{ref}/resolve/{source.revision}/{path}"], None
    return [], f"is of kind {getattr(source, 'kind', '?')!r}, which this export cannot fetch"


# --- the expression -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alternative:
    """One way of getting a file: a Nix expression for a derivation, and what it is."""

    what: str
    expression: str


#: A file's attribute name, its alternatives, why some sources give none, and its pin.
_Entry = tuple[str, list[_Alternative], list[str], Digest]


def _entry(
    what: str,
    key: str,
    path: str,
    sha256: Digest,
    sources: Sequence[Any],
    origins: _Origins,
    problems: list[str],
) -> list[_Entry]:
    """The file's entry, or none and a problem when its path is not plain or no source gives a URL."""
    normal = posixpath.normpath(path)
    if path.startswith("/") or normal != path or ".." in PurePosixPath(path).parts:
        problems.append(f"{what}: path {path!r} is not a plain relative path")
        return []
    found, skipped = _alternatives(PurePosixPath(path).name, sha256, sources, origins)
    if not found:
        reasons = "".join(f"\n  {line}" for line in skipped) or "\n  it has no sources"
        problems.append(f"{what}: no source gives a URL Nix can fetch:{reasons}")
        return []
    return [(key, found, skipped, sha256)]


def _alternatives(
    name: str, sha256: Digest, sources: Sequence[Any], origins: _Origins
) -> tuple[list[_Alternative], list[str]]:
    """Every derivation that yields the file (one per source and URL, all with the same output
    path) and, for each source that yields none, why."""
    found: list[_Alternative] = []
    skipped: list[str] = []
    file_name = nix_string(store_name(name))
    for source in sources:
        if isinstance(source, (PypiSource, DebSource)):
            urls, why = _archive_urls(source, origins)
            archive = nix_string(store_name(_archive_name(source)))
            members = _list(nix_string(m) for m in source.member)
            for url in urls:
                fetch = f"(fetch {archive} {nix_string(url)} {_hash_literal(source.sha256)})"
                found.append(
                    _Alternative(
                        f"{source.describe()} from {url}",
                        f"(member {file_name} {fetch} {members} {_hash_literal(sha256)})",
                    )
                )
        else:
            urls, why = _plain_urls(source, origins)
            for url in urls:
                found.append(
                    _Alternative(
                        f"{source.describe()} from {url}",
                        f"(fetch {file_name} {nix_string(url)} {_hash_literal(sha256)})",
                    )
                )
        if why is not None:
            skipped.append(f"{source.describe()} {why}")
    return found, skipped


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines() or [""]]


def _attr_block(entries: Sequence[_Entry], indent: str) -> list[str]:
    lines: list[str] = []
    for key, found, skipped, digest in entries:
        lines.append(f"{indent}{nix_string(key)} = [  # sha256 {digest.hex}")
        for alternative in found:
            lines.extend(_comment(alternative.what, indent + "  "))
            lines.append(f"{indent}  {alternative.expression}")
        for why in skipped:
            lines.extend(_comment(f"skipped: {why}", indent + "  "))
        lines.append(f"{indent}];")
    return lines


def _input_path(item: Input) -> str:
    return item.path or item.name


def nix_expression(
    recipe: Recipe,
    *,
    recipe_dir: Path | str,
    pypi_base: str | None = None,
    debian_base: str | None = None,
    path_base: str | None = None,
    hf_endpoint: str = HF_ENDPOINT,
    extract_python: str = DEFAULT_EXTRACT_PYTHON,
    build_python: str | None = None,
) -> str:
    """The text of a Nix expression for ``recipe`` (deterministic: the same arguments give the
    same bytes).

    ``pypi_base``/``debian_base``: where wheels and .debs lie, as a base URL (the file name is
    appended) or a template (see PYPI_FIELDS, DEBIAN_FIELDS; PYPI_FILES is PyPI itself); a .deb's
    own ``urls`` come first. ``path_base``: a base URL for files beside the recipe, else
    ``file://`` URLs under ``recipe_dir``. ``extract_python`` and ``build_python`` are the
    defaults of the expression's ``extractPython`` and ``python`` arguments. UsageError when a
    file or input has no source that gives a URL, naming the recipe, the file and each source.
    """
    _check_base("pypi_base", pypi_base, PYPI_FIELDS)
    _check_base("debian_base", debian_base, DEBIAN_FIELDS)
    _check_base("path_base", path_base, ())
    _check_base("hf_endpoint", hf_endpoint, ())
    for option, value in (("extract_python", extract_python), ("build_python", build_python)):
        if value is not None and not value.startswith("/"):
            raise UsageError(f"{option} {value!r}: must be an absolute path (a derivation's builder)")
    origins = _Origins(Path(recipe_dir), pypi_base, debian_base, path_base, hf_endpoint)
    # The schema allows versions Nix does not ("1.0~rc1"); room is kept for "-rebuild".
    package_name = store_name(recipe.id)[: _STORE_NAME_MAX - len("-rebuild")]

    problems: list[str] = []  # every one is reported, not only the first
    files: list[_Entry] = []
    for weight in recipe.weights:
        what = f"weights {weight.path!r}"
        files += _entry(what, weight.path, weight.path, weight.sha256, weight.sources, origins, problems)
    inputs: list[_Entry] = []
    unavailable = []
    for item in recipe.inputs:
        what = f"input {item.name!r}"
        if not item.available:
            unavailable.append(f"{item.name} ({item.role}): {item.unavailable_reason or 'not available'}")
        elif item.sha256 is None:
            problems.append(f"{what}: has no sha256, so Nix cannot pin it")
        else:
            path = _input_path(item)
            sources = expanded_sources(item.sources, origins.recipe_dir)
            inputs += _entry(what, item.name, path, item.sha256, sources, origins, problems)
    if problems:
        raise UsageError("\n".join(f"{recipe.origin}: {problem}" for problem in problems))

    lines = _header(recipe, package_name)
    lines += [
        "{ extractPython ? " + nix_string(extract_python),
        "  # The interpreter of the rebuild, holding exactly the recipe's [build] requirements.",
        ", python ? " + (nix_string(build_python) if build_python else "null"),
        "}:",
        "",
        "let",
        "  # Extracts members, assembles packages, runs builds: standard library only.",
        '  helper = builtins.toFile "weightpkg-nix-helper.py" ' + nix_indented_string(HELPER, "    ") + ";",
        "",
        "  # A file fetched by Nix's builtin fetcher, fixed-output on its sha256.",
        "  fetch = name: url: sha256: import <nix/fetchurl.nix> { inherit name url sha256; };",
        "",
        "  # One member of a wheel or .deb (or of a zip or tar inside it), fixed-output on its sha256.",
        "  member = name: archive: members: sha256: derivation {",
        "    inherit name archive;",
        "    system = builtins.currentSystem;",
        "    builder = extractPython;",
        '    args = [ "-I" helper "member" ];',
        "    members = builtins.toJSON members;",
        '    outputHashMode = "flat";',
        '    outputHashAlgo = "sha256";',
        "    outputHash = sha256;",
        "  };",
        "",
        "  # A folder holding each file at its path.",
        "  assemble = name: files: derivation {",
        "    inherit name;",
        "    system = builtins.currentSystem;",
        "    builder = extractPython;",
        '    args = [ "-I" helper "assemble" ];',
        "    files = builtins.toJSON files;",
        "  };",
        "",
        "  # Every published file from each of its sources and URLs, in the recipe's order of",
        "  # preference. The alternatives of one file share one output path (a fixed-output path",
        "  # depends only on name and hash): any one of them in the store stands for all.",
        "  sources = {",
        *_attr_block(files, "    "),
        "  };",
        "  files = builtins.mapAttrs (path: builtins.head) sources;",
        "",
    ]
    if unavailable:
        lines += ["  # Inputs that are not available, so not fetched:"]
        lines += _comment("\n".join(f"  {entry}" for entry in unavailable), "  ")
    lines += [
        "  inputSources = {",
        *_attr_block(inputs, "    "),
        "  };",
        "  inputs = builtins.mapAttrs (name: builtins.head) inputSources;",
        "",
        f"  package = assemble {nix_string(package_name)} [",
        *(
            f"    {{ path = {nix_string(w.path)}; src = files.{nix_string(w.path)}; }}"
            for w in recipe.weights
        ),
        "  ];",
    ]
    extra = ["sources", "files", "inputSources", "inputs", "helper"]
    if recipe.rebuildable and recipe.build is not None:
        lines += _rebuild_lines(recipe, package_name)
        extra += ["build", "rebuilt", "rebuild"]
    lines += [
        "in",
        "package // {",
        f"  inherit {' '.join(extra)};",
        "  meta = {",
        f"    description = {nix_string(recipe.package.summary)};",
        *([f"    homepage = {nix_string(recipe.package.homepage)};"] if recipe.package.homepage else []),
        f"    license = {nix_string(recipe.license.weights)};",
        f"    reproducibility = {nix_string(recipe.reproducibility.level)};",
        "  };",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _recipe_file(recipe: Recipe) -> str:
    """The recipe's file name, without the folder it was read from (which is not the package's)."""
    return PurePosixPath(Path(recipe.origin).as_posix()).name


def _header(recipe: Recipe, package_name: str) -> list[str]:
    recipe_file = _recipe_file(recipe)
    usage = [
        f"{recipe.id}: {recipe.package.summary}",
        f"Written by `weightpkg export nix` from {recipe_file}; export again rather than edit.",
        "",
        *(
            [f"Named {package_name} in Nix, which allows only letters, digits and +-._?= in names."]
            if package_name != recipe.id
            else []
        ),
        "Nix alone builds it (no nixpkgs), and checks every byte against the recipe's sha256:",
        "  nix-build FILE.nix                          the package: every published file at its path",
        "  nix-build FILE.nix -A 'files.\"PATH\"'        one published file, from its first source",
        "  nix-build FILE.nix -A 'sources.\"PATH\".N'    the same file from its N-th source or URL",
        "      (add --check to fetch it again and compare: every source can be checked this way)",
        "  nix-build FILE.nix -A 'inputs.\"NAME\"'       one input of the build",
    ]
    if recipe.rebuildable:
        usage += [
            "  nix-build FILE.nix -A rebuild --argstr python /abs/venv/bin/python",
            "      the package made again from its inputs; each file is fixed-output on the",
            "      published sha256, so Nix fails with a hash mismatch unless the rebuild is bit-identical",
            "  nix-build FILE.nix -A build --check --argstr python /abs/venv/bin/python",
            "      run the build once more and compare bit for bit with the last one",
            "  A fixed-output path depends only on its name and hash: once `rebuilt` files are in the",
            "  store, Nix does not build them again; --check (or a fresh store) redoes the comparison.",
        ]
    else:
        usage += [f"No rebuild: {recipe.reproducibility.reason or 'the recipe is not rebuildable'}."]
    usage += [
        "",
        "Impure, by necessity, and limits (read before use):",
        "- builtin:fetchurl tries one URL per derivation, so each source and mirror is its own",
        "  derivation under `sources`; the package uses the first. Nix's hashed-mirrors setting",
        "  also applies to every fetch.",
        "- Without nixpkgs the Nix store has no unzip or tar: members of wheels and .debs are",
        "  extracted, and packages assembled, by a host Python (argument extractPython, standard",
        "  library only). That needs `sandbox = false`, or a Python from the store, e.g.",
        "  --arg extractPython '(import <nixpkgs> {}).python3 + \"/bin/python3\"'.",
        "  Every extracted member is still fixed-output on its sha256: Nix checks it.",
        "- data.tar.zst inside a .deb needs a Python with compression.zstd (3.14 or later).",
    ]
    if recipe.rebuildable:
        usage += [
            "- The build runs the recipe's command with the interpreter passed as `python` (an",
            "  absolute path, e.g. the environment `weightpkg rebuild` makes from the pinned",
            "  requirements). It lies outside the Nix store, so Nix does not track it: it is part of",
            "  the build only through its path. With the sandbox off the build can reach the",
            "  network (weightpkg rebuild takes it away; Nix here does not).",
        ]
    return [*_comment("\n".join(usage)), ""]


def _rebuild_lines(recipe: Recipe, package_name: str) -> list[str]:
    assert recipe.build is not None
    build = recipe.build
    env = build_env(recipe)
    staged = [
        f"      {{ path = {nix_string(_input_path(i))}; src = inputs.{nix_string(i.name)}; }}"
        for i in recipe.inputs
    ]
    lines = [
        "",
        "  # The recipe's build: inputs staged at their paths in a fresh folder, the command run with",
        "  # `python` standing for the interpreter, in the pinned environment of `weightpkg rebuild`.",
        "  build = derivation {",
        f"    name = {nix_string(package_name + '-build')};",
        "    system = builtins.currentSystem;",
        "    builder = if python == null",
        "      then throw "
        + nix_string(
            f"{_recipe_file(recipe)}: the build needs an interpreter holding the recipe's "
            "requirements: pass --argstr python /abs/path/bin/python"
        ),
        "      else python;",
        '    args = [ "-I" helper "build" ];',
        "    interpreter = python;",
        "    inputs = builtins.toJSON [",
        *staged,
        "    ];",
        f"    command = builtins.toJSON {_list(nix_string(a) for a in build_command(recipe))};",
        "    buildEnv = builtins.toJSON {",
        *(f"      {nix_string(k)} = {nix_string(v)};" for k, v in env.items()),
        "    };",
        f"    buildOutputs = builtins.toJSON {_list(nix_string(o) for o in build.outputs)};",
        "  };",
        "",
        "  # Each published file taken from the build, fixed-output on the published sha256.",
        "  rebuilt = {",
    ]
    for weight in recipe.weights:
        lines += [
            f"    {nix_string(weight.path)} = derivation {{  # sha256 {weight.sha256.hex}",
            f"      name = {nix_string(store_name('rebuilt-' + PurePosixPath(weight.path).name))};",
            "      system = builtins.currentSystem;",
            "      builder = extractPython;",
            '      args = [ "-I" helper "copy" ];',
            f'      src = "${{build}}/{nix_string(weight.path)[1:-1]}";',
            '      outputHashMode = "flat";',
            '      outputHashAlgo = "sha256";',
            f"      outputHash = {_hash_literal(weight.sha256)};",
            "    };",
        ]
    lines += [
        "  };",
        f"  rebuild = assemble {nix_string(package_name + '-rebuild')} [",
        *(
            f"    {{ path = {nix_string(w.path)}; src = rebuilt.{nix_string(w.path)}; }}"
            for w in recipe.weights
        ),
        "  ];",
    ]
    return lines


#: The builder program of member, assembly, copy and build derivations, run by a host Python.
HELPER = r'''"""weightpkg's builder for Nix derivations (written by weightpkg export nix).

member:   $archive (zip, tar or .deb) -> $out, following $members through nested archives
assemble: $files ([{path, src}]) -> $out/path for each
copy:     $src -> $out
build:    stage $inputs at their paths, run $command with $buildEnv, copy $buildOutputs to $out
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile


def fail(message):
    sys.stderr.write("weightpkg-nix-helper: " + message + "\n")
    sys.exit(1)


def checked_relative(path):
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or "" in parts or "." in parts:
        fail("refusing path %r: not a plain relative path" % path)
    return path


def tar_name(name):
    while name.startswith("./"):
        name = name[2:]
    return name


def ar_member(path, prefix):
    """(offset, size, name) of the one member of an ar archive (a .deb) starting with prefix."""
    found = []
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            fail("%s: not an ar archive" % path)
        position = 8
        while position + 60 <= size:
            handle.seek(position)
            header = handle.read(60)
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            length = int(header[48:58].decode("ascii").strip())
            if name.startswith(prefix):
                found.append((position + 60, length, name))
            position += 60 + length + (length & 1)
    if len(found) != 1:
        fail("%s: expected one %s* member, found %d" % (path, prefix, len(found)))
    return found[0]


def open_member(path, member, scratch):
    """A readable stream of member inside the archive at path."""
    with open(path, "rb") as probe:
        magic = probe.read(8)
    if magic.startswith(b"!<arch>\n"):
        offset, length, name = ar_member(path, "data.tar")
        if name.endswith(".zst"):
            try:
                from compression import zstd
            except ImportError:
                fail("%s: %s needs Python 3.14 or later (compression.zstd)" % (path, name))
            else:
                opener = zstd.open
        else:
            opener = None
        data = os.path.join(scratch, "data.tar" + str(len(os.listdir(scratch))))
        with open(path, "rb") as source, open(data, "wb") as target:
            source.seek(offset)
            left = length
            while left:
                chunk = source.read(min(left, 1 << 20))
                if not chunk:
                    fail("%s: %s is truncated" % (path, name))
                target.write(chunk)
                left -= len(chunk)
        if opener is not None:
            plain = data + ".tar"
            with opener(data, "rb") as source, open(plain, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
            data = plain
        return open_tar_member(tarfile.open(data, "r:*"), member, path)
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        archive = zipfile.ZipFile(path)
        infos = [i for i in archive.infolist() if i.filename == member]
        if len(infos) != 1:
            fail("%s: member %r found %d times" % (path, member, len(infos)))
        info = infos[0]
        if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
            fail("%s: member %r is not a regular file" % (path, member))
        return archive.open(info)
    if tarfile.is_tarfile(path):
        return open_tar_member(tarfile.open(path, "r:*"), member, path)
    fail("%s: neither a zip, a tar nor a .deb" % path)


def open_tar_member(archive, member, path):
    found = [i for i in archive.getmembers() if tar_name(i.name) == tar_name(member)]
    if len(found) != 1:
        fail("%s: member %r found %d times" % (path, member, len(found)))
    if not found[0].isfile():
        fail("%s: member %r is not a regular file" % (path, member))
    return archive.extractfile(found[0])


def copy_file(source, target):
    directory = os.path.dirname(target)
    if directory:
        os.makedirs(directory, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, 0o444)


def member(out):
    members = json.loads(os.environ["members"])
    scratch = os.path.join(os.environ["NIX_BUILD_TOP"], "scratch")
    os.makedirs(scratch, exist_ok=True)
    current = os.environ["archive"]
    for depth, name in enumerate(members):
        target = out if depth == len(members) - 1 else os.path.join(scratch, "nested-%d" % depth)
        with open_member(current, name, scratch) as stream, open(target, "wb") as sink:
            shutil.copyfileobj(stream, sink, 1 << 20)
        current = target


def assemble(out):
    os.makedirs(out)
    for item in json.loads(os.environ["files"]):
        copy_file(item["src"], os.path.join(out, checked_relative(item["path"])))


def build(out):
    interpreter = os.environ["interpreter"]
    if not os.path.isabs(interpreter):
        fail("python %r: must be an absolute path" % interpreter)
    top = os.environ["NIX_BUILD_TOP"]
    workdir = os.path.join(top, "build")
    home = os.path.join(top, "home")
    os.makedirs(workdir)
    os.makedirs(os.path.join(home, "tmp"))
    for item in json.loads(os.environ["inputs"]):
        copy_file(item["src"], os.path.join(workdir, checked_relative(item["path"])))
    env = json.loads(os.environ["buildEnv"])
    env["PATH"] = os.path.dirname(interpreter) + ":/usr/bin:/bin"
    env["HOME"] = home
    env["TMPDIR"] = os.path.join(home, "tmp")
    command = json.loads(os.environ["command"])
    argv = [interpreter if i == 0 and a == "python" else a for i, a in enumerate(command)]
    print("$ " + " ".join(command), flush=True)
    code = subprocess.call(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL)
    if code != 0:
        fail("the build command exited with %d" % code)
    os.makedirs(out)
    for name in json.loads(os.environ["buildOutputs"]):
        produced = os.path.join(workdir, checked_relative(name))
        if os.path.islink(produced) or not os.path.isfile(produced):
            fail("the build did not produce %r as a regular file" % name)
        copy_file(produced, os.path.join(out, name))


def copy(out):
    source = os.environ["src"]
    if os.path.islink(source) or not os.path.isfile(source):
        fail("%s: not a regular file" % source)
    shutil.copyfile(source, out)


MODES = {"member": member, "assemble": assemble, "build": build, "copy": copy}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        fail("usage: weightpkg-nix-helper.py member|assemble|build|copy")
    MODES[sys.argv[1]](os.environ["out"])
'''
