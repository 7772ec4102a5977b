"""weightpkg: package pretrained weights by their provenance.

The public API: load and lint recipes, fetch their files into a content-addressed store, and
verify them. The CLI (``weightpkg``) uses nothing else.
"""

from __future__ import annotations

__version__ = "0.1.0"

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Problem, RecipeError, UsageError, WeightpkgError

if TYPE_CHECKING:
    from .builder import BuildResult, EnvMode, Substitution
    from .challenges import ChallengeReport
    from .core.digest import Digest
    from .core.recipe import Recipe
    from .load import LoadedRecipe
    from .sources import Progress
    from .store import Store
    from .verification import RecipeReport

__all__ = [
    "Problem",
    "RecipeError",
    "WeightpkgError",
    "__version__",
    "challenge",
    "fetch",
    "find_recipes",
    "hash_file",
    "lint",
    "lint_report",
    "load_recipe",
    "open_store",
    "rebuild",
    "sign_recipe",
    "verify",
]


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and model one recipe; RecipeError lists every problem with its line."""
    return _load_with_lines(path)[0]


def _load_with_lines(path: str | Path) -> tuple[Recipe, LoadedRecipe]:
    """The recipe, and the file as read (its parsed TOML and the line of each key)."""
    from .core.recipe import RecipeInvalid, recipe_from_mapping
    from .load import read_recipe

    loaded = read_recipe(path)
    try:
        return recipe_from_mapping(loaded.data, str(path)), loaded
    except RecipeInvalid as exc:
        problems = [Problem(str(path), key, message, loaded.line_of(key)) for key, message in exc.problems]
        problems.sort(key=lambda p: (p.line or 0, p.key))
        raise RecipeError(problems) from None


def find_recipes(paths: Iterable[str | Path]) -> list[Path]:
    """Recipe files named directly, or the ``*.toml`` files directly inside named folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(path.glob("*.toml"))
            if not inside:
                raise UsageError(f"{path}: no recipes (*.toml) in this folder")
            found.extend(inside)
        else:
            found.append(path)
    return found


def lint(paths: Iterable[str | Path]) -> list[Problem]:
    """Every problem in every recipe, in file then line order; empty when all are well-formed."""
    return lint_report(paths)[0]


def lint_report(paths: Iterable[str | Path]) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) of every recipe, in file then line order. A warning is a TODO marker
    in a well-formed recipe: it lints, but no policy passes it until a person fills it in."""
    from .core.todo import todo_markers

    problems: list[Problem] = []
    warnings: list[Problem] = []
    for path in find_recipes(paths):
        try:
            _, loaded = _load_with_lines(path)
        except RecipeError as exc:
            problems.extend(exc.problems)
            continue
        for key, value in todo_markers(loaded.data):
            shown = value if len(value) <= 80 else value[:77] + "..."
            message = f"warning: to be filled in: {shown}"
            warnings.append(Problem(str(path), key, message, loaded.line_of(key)))
    return problems, warnings


def hash_file(path: str | Path) -> tuple[Digest, int]:
    """sha256 and size of a file, streamed through one reused 1 MiB buffer."""
    from .core.digest import hash_stream
    from .errors import reading

    with reading(path), open(path, "rb", buffering=0) as handle:
        return hash_stream(handle)


def open_store(root: str | Path | None = None) -> Store:
    """The store at ``root`` (default: ``$WEIGHTPKG_STORE`` or the XDG data folder)."""
    from .store import Store, default_store_root

    store = Store(root if root is not None else default_store_root())
    if store.root.exists() and not store.root.is_dir():
        raise UsageError(f"{store.root}: the store must be a folder, and this is a file")
    return store


def _load_all(files: Iterable[Path]) -> list[Recipe]:
    """Every recipe of ``files`` (from find_recipes), each file once; two recipes for one
    package-version would share (and overwrite) one manifest in the store, so that is an error too."""
    recipes: list[Recipe] = []
    problems: list[Problem] = []
    seen_files: set[Path] = set()
    packages: dict[str, str] = {}
    for path in files:
        if path.resolve() in seen_files:
            continue
        seen_files.add(path.resolve())
        try:
            recipe = load_recipe(path)
        except RecipeError as exc:
            problems.extend(exc.problems)
            continue
        if recipe.id in packages:
            problems.append(
                Problem(str(path), "package", f"{recipe.id} is also defined by {packages[recipe.id]}")
            )
        packages.setdefault(recipe.id, str(path))
        recipes.append(recipe)
    if problems:
        raise RecipeError(problems)
    return recipes


def verify(
    paths: Iterable[str | Path],
    store: Store | None = None,
    *,
    all_sources: bool = False,
    with_inputs: bool = False,
    policy: str | Path | None = None,
    attestation: str | Path | None = None,
    attestation_keys: Iterable[str] = (),
    progress: Progress | None = None,
    jobs: int | None = None,
) -> list[RecipeReport]:
    """Fetch what is missing, check every published file of every recipe, and judge each
    package by the policy file if one is given. With ``attestation`` (one recipe only), also
    check that SLSA provenance against the recipe and the store, with ``attestation_keys``, else
    the recipe's trusted keys, else the policy's. Up to ``jobs`` files are checked at once
    (default: one per CPU this process may use)."""
    from .checks import hashing_ahead  # light: hashing starts before the recipe model is imported

    files = find_recipes(paths)
    store = store or open_store()
    with hashing_ahead(files, store, jobs) as ahead:
        from .load import read_policy, resolve_keys
        from .verification import fetch_recipes

        rules = read_policy(policy) if policy is not None else None
        recipes = _load_all(files)
        if attestation is not None and len(recipes) != 1:
            raise UsageError(
                f"--attestation checks one recipe's provenance; {len(recipes)} recipes were given"
            )
        reports = fetch_recipes(
            recipes,
            store,
            with_inputs=with_inputs,
            all_sources=all_sources,
            policy=rules,
            progress=progress,
            jobs=jobs,
            ahead=ahead,
        )
    if attestation is not None:
        from .exports.slsa import check_attestation

        [recipe], [report] = recipes, reports
        keys = tuple(attestation_keys)
        if not keys and recipe.signatures is not None:
            keys = resolve_keys(recipe.signatures.trusted_keys, Path(recipe.origin).parent)
        if not keys and rules is not None:
            keys = rules.trusted_keys
        if not keys:
            raise UsageError(
                f"{attestation}: no key to check it with: give --key, or name trusted-keys in the "
                "recipe's [signatures] or the policy"
            )
        checked = check_attestation(attestation, recipe, store, trusted_keys=keys)
        report.attestation = checked.to_json()
        report.attestation_findings = list(checked.findings)
    return reports


def fetch(
    paths: Iterable[str | Path],
    store: Store | None = None,
    *,
    with_inputs: bool = False,
    progress: Progress | None = None,
) -> list[RecipeReport]:
    """Put every published file (and inputs if asked) into the store, admitting only matches."""
    from .verification import fetch_recipes

    store = store or open_store()
    return fetch_recipes(
        _load_all(find_recipes(paths)), store, with_inputs=with_inputs, check=False, progress=progress
    )


def rebuild(
    path: str | Path,
    store: Store | None = None,
    *,
    env_mode: EnvMode = "venv",
    log: Callable[[str], None] | None = None,
    record_duration: bool = False,
    timeout: float | None = None,
    seed: int | None = None,
    with_inputs: Mapping[str, str | Path] | None = None,
) -> BuildResult:
    """Rebuild a recipe's outputs from its pinned inputs and add them to the store, with a build
    record beside them. BuildError (nothing enters the store) when an input's pin does not
    match, the command fails, or a declared output is missing.

    ``seed`` builds with another seed than the published one (the recipe must declare
    ``[seeds]``); ``with_inputs`` (input name → file) rebuilds with those files in place of the
    recipe's inputs, as a variant whose record names each substitution."""
    from .builder import rebuild as run_rebuild

    store = store or open_store()
    recipe = load_recipe(path)
    variant, changes = _substitute(recipe, store, with_inputs)
    return run_rebuild(
        variant,
        store,
        env_mode=env_mode,
        log=log,
        record_duration=record_duration,
        timeout=timeout,
        seed=seed,
        substitutions=changes,
    )


def _substitute(
    recipe: Recipe, store: Store, with_inputs: Mapping[str, str | Path] | None
) -> tuple[Recipe, list[Substitution]]:
    from .builder import substitute_file

    changes = []
    for name, file in sorted((with_inputs or {}).items()):
        recipe, change = substitute_file(recipe, store, name, Path(file))
        changes.append(change)
    return recipe, changes


def challenge(
    path: str | Path,
    store: Store | None = None,
    *,
    env_mode: EnvMode = "venv",
    force_rebuild: bool = False,
    with_sources: bool = False,
    functional: bool = True,
    log: Callable[[str], None] | None = None,
    with_inputs: Mapping[str, str | Path] | None = None,
) -> ChallengeReport:
    """Compare a recipe's published files with what its source rebuilds (reusing a stored
    build of the same derivation unless ``force_rebuild``), then run its functional check.
    With ``with_inputs``, what the substituted inputs change instead (no pass or fail)."""
    from .challenges import challenge_recipe

    store = store or open_store()
    recipe = load_recipe(path)
    variant, changes = _substitute(recipe, store, with_inputs)
    return challenge_recipe(
        recipe,
        store,
        variant=variant if changes else None,
        substitutions=changes,
        env_mode=env_mode,
        force_rebuild=force_rebuild,
        with_sources=with_sources,
        functional=functional,
        log=log,
    )


def sign_recipe(path: str | Path, secret_key: str | Path, store: Store | None = None) -> list[Path]:
    """Sign every published file of a recipe with a minisign key, after fetching it (only
    pinned bytes are ever signed). Signatures go to ``<recipe>.signatures/<path>.minisig``, their
    trusted comment binding the file's name and sha256."""
    from .signing import sign_minisign
    from .verification import fetch_recipe, signature_path

    recipe = load_recipe(path)
    store = store or open_store()
    report = fetch_recipe(recipe, store, check=True, signatures=False)
    failed = [f for f in report.files if f.status != "ok" or f.store_path is None]
    if failed:
        raise UsageError("\n".join(f"{path}: {f.path}: cannot sign: {f.problem}" for f in failed))
    written = []
    for f in report.files:
        target = signature_path(recipe, f.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        comment = f"file:{Path(f.path).name}\tsha256:{f.sha256}"
        written.append(sign_minisign(f.store_path, secret_key, comment, target))
    return written
