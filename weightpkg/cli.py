"""The command line: a thin click layer over the public API, and the only place that prints.

Exit codes: 0 all holds, 1 a check failed, 2 bad input or usage. Errors are one line per
problem, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import weightpkg
from weightpkg.errors import UsageError, WeightpkgError

if TYPE_CHECKING:
    from weightpkg.store import Store

_PROGRESS_INTERVAL = 0.5


@contextlib.contextmanager
def _errors_to_exit() -> Iterator[None]:
    """The one place that turns weightpkg's errors into messages and exit codes."""
    try:
        yield
    except WeightpkgError as exc:
        # Every message already begins with the file or thing it is about.
        for line in str(exc).splitlines() or [type(exc).__name__]:
            click.echo(line, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("weightpkg: interrupted; partial downloads are kept and resume next time", err=True)
        sys.exit(130)


class _Progress:
    """Progress on stderr, only when it is a terminal, at most twice a second."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, label: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < _PROGRESS_INTERVAL:
            return
        self.last = now
        amount = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        click.echo(f"\r\x1b[K{label[:60]}: {amount}", err=True, nl=False)
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            click.echo("\r\x1b[K", err=True, nl=False)


def _store(ctx: click.Context) -> Store:
    return weightpkg.open_store(ctx.obj.get("store"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(weightpkg.__version__, prog_name="weightpkg")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store root (default: $WEIGHTPKG_STORE, else $XDG_DATA_HOME/weightpkg/store).",
)
@click.pass_context
def cli(ctx: click.Context, store: Path | None) -> None:
    """Package pretrained weights by their provenance."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON: every problem with its line.")
def lint(recipes: tuple[str, ...], as_json: bool) -> None:
    """Check recipes: every problem as FILE:LINE: key: what is wrong (exit 2); TODO markers
    left by weightpkg init are warnings (exit 0)."""
    with _errors_to_exit():
        problems, warnings = weightpkg.lint_report(recipes)
        failing = {p.file for p in problems}
        files = [str(path) for path in weightpkg.find_recipes(recipes)]
        if as_json:
            from weightpkg.report import to_json

            def rows(found: list[weightpkg.Problem]) -> list[dict[str, object]]:
                return [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in found]

            click.echo(
                to_json(
                    {
                        "ok": [f for f in files if f not in failing],
                        "problems": rows(problems),
                        "warnings": rows(warnings),
                    }
                )
            )
        else:
            for problem in problems + warnings:
                click.echo(str(problem), err=True)
            todo = {p.file: 0 for p in warnings}
            for warning in warnings:
                todo[warning.file] += 1
            for path in files:
                if path not in failing:
                    n = todo.get(path, 0)
                    left = f" ({n} TODO marker{'s' if n != 1 else ''} to fill in)" if n else ""
                    click.echo(f"{path}: ok{left}")
        if problems:
            sys.exit(2)


@cli.command("hash")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON.")
@click.option(
    "--format",
    "form",
    type=click.Choice(["all", "hex", "base32", "sri"]),
    default="all",
    help="Print only one rendering, one line per file (base32 = nix-hash --base32 = guix hash).",
)
@click.option(
    "--content",
    is_flag=True,
    help="Also the canonical content digest of safetensors files (docs/content-digest.md).",
)
def hash_command(files: tuple[str, ...], as_json: bool, form: str, content: bool) -> None:
    """sha256 of files in hex, Nix/Guix base32 and SRI form."""
    with _errors_to_exit():
        results = []
        failures: list[str] = []
        for name in files:
            try:
                digest, size = weightpkg.hash_file(name)
            except WeightpkgError as exc:
                failures.append(str(exc))
                continue
            result = {
                "file": name,
                "size": size,
                "sha256": digest.hex,
                "nix32": digest.nix32,
                "sri": digest.sri,
            }
            if content:
                from weightpkg.tensorfiles import file_content_digest

                try:
                    result["content_sha256"] = file_content_digest(Path(name))
                except WeightpkgError as exc:
                    failures.append(str(exc))
                    continue
            results.append(result)
        if failures:
            raise UsageError("\n".join(failures))
        if as_json:
            from weightpkg.report import to_json

            click.echo(to_json(results))
            return
        for r in results:
            if form == "all":
                click.echo(f"{r['file']}: {r['size']} bytes")
                click.echo(f"  sha256  {r['sha256']}")
                click.echo(f"  base32  {r['nix32']}")
                click.echo(f"  sri     {r['sri']}")
                if content:
                    click.echo(f"  content {r['content_sha256']}")
            else:
                value = {"hex": r["sha256"], "base32": r["nix32"], "sri": r["sri"]}[form]
                if content:
                    value += f"  content-sha256:{r['content_sha256']}"
                click.echo(value if len(results) == 1 else f"{value}  {r['file']}")


def _run_verify(
    ctx: click.Context, recipes: tuple[str, ...], as_json: bool, verb: str, **options: Any
) -> None:
    progress = _Progress()
    with _errors_to_exit():
        store = _store(ctx)
        call = weightpkg.verify if verb == "verified" else weightpkg.fetch
        try:
            reports = call(recipes, store, progress=progress, **options)
        finally:
            progress.finish()
        from weightpkg.report import verify_json, verify_lines  # once the files are checked

        if as_json:
            click.echo(verify_json(reports))
        else:
            for line in verify_lines(reports, verb):
                click.echo(line)
        if not all(r.ok for r in reports):
            sys.exit(1)


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON report.")
@click.option("--all-sources", is_flag=True, help="Fetch from every declared source and compare.")
@click.option("--inputs", "with_inputs", is_flag=True, help="Also fetch and check available inputs.")
@click.option(
    "--policy",
    "policy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A distributor policy file (policies/*.toml) to enforce.",
)
@click.option(
    "--attestation",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also check this SLSA provenance (weightpkg export slsa) against the one recipe given.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEY",
    help="A public key the attestation may be signed with (minisign .pub, RW… line, or ECDSA PEM); "
    "default: the recipe's trusted-keys, else the policy's.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Check up to N files at once (default: one per CPU this process may use).",
)
@click.pass_context
def verify(
    ctx: click.Context,
    recipes: tuple[str, ...],
    as_json: bool,
    all_sources: bool,
    with_inputs: bool,
    policy: Path | None,
    attestation: Path | None,
    keys: tuple[str, ...],
    jobs: int | None,
) -> None:
    """Fetch what is missing and check every published file (exit 0 only if all holds)."""
    if keys and attestation is None:
        with _errors_to_exit():
            raise UsageError("--key names keys for --attestation, which was not given")
    _run_verify(
        ctx,
        recipes,
        as_json,
        "verified",
        all_sources=all_sources,
        with_inputs=with_inputs,
        policy=policy,
        attestation=attestation,
        attestation_keys=keys,
        jobs=jobs,
    )


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON report.")
@click.option("--inputs", "with_inputs", is_flag=True, help="Also fetch available inputs.")
@click.pass_context
def fetch(ctx: click.Context, recipes: tuple[str, ...], as_json: bool, with_inputs: bool) -> None:
    """Put published files into the store; only bytes matching their pins get in."""
    _run_verify(ctx, recipes, as_json, "fetched", with_inputs=with_inputs)


_ENV_OPTION = click.option(
    "--env",
    "env_mode",
    type=click.Choice(["venv", "current"]),
    default="venv",
    show_default=True,
    help="venv: a virtual environment of exactly the recipe's pinned requirements (cached); "
    "current: the interpreter running weightpkg.",
)


def _substitutions(values: tuple[str, ...]) -> dict[str, Path]:
    """``--with-input NAME=PATH`` pairs; UsageError for a malformed or repeated one."""
    found: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--with-input {value!r}: expected NAME=PATH (an input's name, a file)")
        if name in found:
            raise UsageError(f"--with-input: input {name!r} is given twice")
        found[name] = Path(path)
    return found


_WITH_INPUT_OPTION = click.option(
    "--with-input",
    "with_input",
    multiple=True,
    metavar="NAME=PATH",
    help="Build with this file in place of the input NAME (repeatable); the record names it.",
)


def _build_echo(quiet: bool) -> Any:
    def echo(line: str) -> None:
        if not quiet:
            prefixes = ("building ", "creating ", "$ ", "input ", "rebuilding ")
            click.echo(line if line.startswith(prefixes) else f"  | {line}", err=True)

    return echo


@cli.command()
@click.argument("recipe")
@_ENV_OPTION
@_WITH_INPUT_OPTION
@click.option("--seed", type=int, help="Build with this seed instead of the published one.")
@click.option(
    "--seeds",
    "seed_count",
    type=int,
    help="Train N variants (the published seed and the N-1 after it), run the functional check "
    "and every stress test on each, and report the spread.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --seeds: also draw the spread as a PNG here.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --seeds: also write the JSON report here.",
)
@click.option(
    "--dependents",
    is_flag=True,
    help="Rebuild every recipe built from this one, in order, and challenge each against what it "
    "published before.",
)
@click.option(
    "--in",
    "search",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="With --dependents: where to look for them (repeatable; default: the recipe's folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the build record (or report) as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Do not echo the build's output.")
@click.option("--record-duration", is_flag=True, help="Put the build's duration in its record.")
@click.option("--timeout", type=float, help="Kill the build command after this many seconds.")
@click.pass_context
def rebuild(
    ctx: click.Context,
    recipe: str,
    env_mode: str,
    with_input: tuple[str, ...],
    seed: int | None,
    seed_count: int | None,
    plot: Path | None,
    report_file: Path | None,
    dependents: bool,
    search: tuple[Path, ...],
    as_json: bool,
    quiet: bool,
    record_duration: bool,
    timeout: float | None,
) -> None:
    """Rebuild a recipe's outputs from its pinned inputs into the store.

    Every input is fetched and checked first; the command runs in a fresh folder holding only
    the inputs, with a pinned environment and no network where the kernel allows it. Variants
    (--seed, --with-input) get store entries of their own; the published files are untouched.
    """
    from weightpkg.report import to_json

    echo = _build_echo(quiet)
    with _errors_to_exit():
        modes = [m for m, on in (("--seeds", seed_count is not None), ("--dependents", dependents)) if on]
        if len(modes) > 1 or (modes and (with_input or seed is not None)):
            given = (
                modes + (["--with-input"] if with_input else []) + (["--seed"] if seed is not None else [])
            )
            raise UsageError(f"{' and '.join(given)} cannot be combined")
        if (plot or report_file) and seed_count is None:
            raise UsageError("--plot and --report go with --seeds")
        if search and not dependents:
            raise UsageError("--in goes with --dependents")
        if seed_count is not None:
            _rebuild_seeds(ctx, recipe, env_mode, seed_count, plot, report_file, as_json, echo)
            return
        if dependents:
            _rebuild_dependents(ctx, recipe, env_mode, search, as_json, echo)
            return
        result = weightpkg.rebuild(
            recipe,
            _store(ctx),
            env_mode=env_mode,  # type: ignore[arg-type]
            log=echo,
            record_duration=record_duration,
            timeout=timeout,
            seed=seed,
            with_inputs=_substitutions(with_input),
        )
        if as_json:
            click.echo(to_json(result.record))
            return
        for change in result.record.get("substitutions", []):
            click.echo(
                f"{recipe}: input {change['input']} substituted: {change['origin']}, "
                f"sha256 {change['used']['sha256']}"
            )
        if "seed" in result.record:
            chosen = result.record["seed"]
            which = (
                "the published seed" if chosen["value"] == chosen["published"] else "not the published seed"
            )
            click.echo(f"{recipe}: seed {chosen['value']} ({which}), passed as {chosen['passed_as']}")
        for output in result.outputs:
            click.echo(f"{recipe}: built {output.path}: sha256 {output.sha256.hex}, {output.size} bytes")
            click.echo(f"  {output.store_path}")
        click.echo(f"{recipe}: build record {result.record_path}")
        click.echo(f"{recipe}: isolation: {result.record['isolation']}")


def _rebuild_seeds(
    ctx: click.Context,
    recipe: str,
    env_mode: str,
    count: int,
    plot: Path | None,
    report_file: Path | None,
    as_json: bool,
    echo: Any,
) -> None:
    from weightpkg.errors import write_atomically
    from weightpkg.report import to_json
    from weightpkg.seeds import seed_sensitivity, seed_table

    report = seed_sensitivity(
        weightpkg.load_recipe(recipe),
        _store(ctx),
        count,
        env_mode=env_mode,  # type: ignore[arg-type]
        log=echo,
    )
    text = to_json(report.to_json())
    if report_file is not None:
        write_atomically(report_file, (text + "\n").encode())
    if plot is not None:
        from weightpkg.plots import seed_plot

        seed_plot(report, plot)
    if as_json:
        click.echo(text)
    else:
        for line in seed_table(report):
            click.echo(line)
        if plot is not None:
            click.echo(f"{recipe}: plot {plot}")
    if not report.ok:
        sys.exit(1)


def _rebuild_dependents(
    ctx: click.Context, recipe: str, env_mode: str, search: tuple[Path, ...], as_json: bool, echo: Any
) -> None:
    from weightpkg.propagate import dependents_lines, rebuild_dependents
    from weightpkg.report import to_json

    report = rebuild_dependents(
        recipe,
        _store(ctx),
        search=search,
        env_mode=env_mode,  # type: ignore[arg-type]
        log=echo,
    )
    if as_json:
        click.echo(to_json(report.to_json()))
    else:
        for line in dependents_lines(report):
            click.echo(line)
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.argument("recipe")
@_ENV_OPTION
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON report.")
@click.option("--sources", "with_sources", is_flag=True, help="Also fetch every declared source and compare.")
@click.option(
    "--rebuild", "force_rebuild", is_flag=True, help="Build again even if the store has this build."
)
@click.option("--no-functional", is_flag=True, help="Skip the recipe's functional check.")
@_WITH_INPUT_OPTION
@click.option("--quiet", "-q", is_flag=True, help="Do not echo the build's output.")
@click.pass_context
def challenge(
    ctx: click.Context,
    recipe: str,
    env_mode: str,
    as_json: bool,
    with_sources: bool,
    force_rebuild: bool,
    no_functional: bool,
    with_input: tuple[str, ...],
    quiet: bool,
) -> None:
    """Compare the published files with a rebuild from source (exit 0 identical or within
    the recipe's tolerance, 1 otherwise). With --with-input, show how a build with your own
    input differs from the published files (exit 0 once it is built and compared)."""
    from weightpkg.challenges import challenge_lines
    from weightpkg.report import to_json

    with _errors_to_exit():
        report = weightpkg.challenge(
            recipe,
            _store(ctx),
            env_mode=env_mode,  # type: ignore[arg-type]
            force_rebuild=force_rebuild,
            with_sources=with_sources,
            functional=not no_functional,
            log=_build_echo(quiet),
            with_inputs=_substitutions(with_input),
        )
        if as_json:
            click.echo(to_json(report.to_json()))
        else:
            for line in challenge_lines(report):
                click.echo(line)
        if not report.ok:
            sys.exit(1)


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option(
    "--format",
    "form",
    type=click.Choice(["text", "json", "dot", "svg", "png"]),
    default="text",
    show_default=True,
    help="svg and png are drawn by Graphviz's dot and need --output.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def graph(recipes: tuple[str, ...], form: str, output: Path | None) -> None:
    """Show the provenance graph of recipes (files or folders): each recipe, the files it is
    built from and those it publishes, with hashes and licences, and which recipes are built
    from another's output. Recipes named by recipe sources are followed."""
    from weightpkg.errors import write_atomically
    from weightpkg.graphview import lineage_dot, lineage_lines, render_picture
    from weightpkg.lineage import lineage_of
    from weightpkg.report import to_json

    with _errors_to_exit():
        if form in ("svg", "png") and output is None:
            raise UsageError(f"--format {form} writes a picture: give --output FILE.{form}")
        lineage = lineage_of(recipes)
        if form in ("svg", "png"):
            assert output is not None
            render_picture(lineage_dot(lineage), output, form)  # type: ignore[arg-type]
            click.echo(f"{output}: {len(lineage.recipes)} recipes drawn")
            return
        if form == "json":
            text = to_json(lineage.to_json()) + "\n"
        elif form == "dot":
            text = lineage_dot(lineage)
        else:
            text = "".join(f"{line}\n" for line in lineage_lines(lineage))
        if output is not None:
            write_atomically(output, text.encode())
        else:
            click.echo(text, nl=False)


@cli.command()
@click.argument("recipes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON.")
def outdated(recipes: tuple[str, ...], as_json: bool) -> None:
    """List the recipes whose published files were built from bytes their upstream recipes no
    longer publish, directly or through another outdated recipe (exit 1 if any, 2 if a recipe
    source cannot be followed)."""
    from weightpkg.lineage import lineage_of
    from weightpkg.lineage import outdated as find_outdated
    from weightpkg.report import to_json

    with _errors_to_exit():
        lineage = lineage_of(recipes)
        stale = find_outdated(lineage)
        if as_json:
            click.echo(
                to_json({"outdated": [o.to_json() for o in stale], "problems": list(lineage.problems)})
            )
        else:
            for item in stale:
                click.echo(f"{item.origin}: outdated ({item.id})")
                for reason in item.reasons():
                    click.echo(f"  {reason}")
            if stale:
                order = ", ".join(o.origin for o in stale)
                click.echo(f"{len(stale)} outdated; rebuild in this order: {order}")
                roots = sorted({lineage.recipe(p.upstream).origin for o in stale for p in o.stale})
                for root in roots:
                    click.echo(f"  weightpkg rebuild --dependents {root}")
            else:
                click.echo(f"nothing outdated among {len(lineage.recipes)} recipes")
            for problem in lineage.problems:
                click.echo(f"problem: {problem}", err=True)
        if lineage.problems:
            sys.exit(2)
        if stale:
            sys.exit(1)


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--atol", type=float, help="Absolute tolerance: tensors within it count as matching.")
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON.")
def diff(a: Path, b: Path, atol: float | None, as_json: bool) -> None:
    """Compare two safetensors files tensor by tensor, without loading them whole.

    Exit 0 when identical, equal in content, or within --atol; 1 when they differ; 2 when a
    file cannot be read or is not valid safetensors.
    """
    from weightpkg.core.tensors import describe
    from weightpkg.tensorfiles import compare_files

    with _errors_to_exit():
        comparison = compare_files(a, b, atol)
        if as_json:
            from weightpkg.report import to_json

            click.echo(to_json({"a": str(a), "b": str(b), **comparison.to_json()}))
        else:
            for line in describe(comparison, str(a), str(b)):
                click.echo(line)
        if comparison.verdict not in ("identical", "same-content", "within-tolerance"):
            sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Only the one verdict line per file.")
def scan(paths: tuple[str, ...], as_json: bool, quiet: bool) -> None:
    """Check files without a recipe: pickles (never loaded), zips, npy, safetensors headers.

    Exit 1 if anything is dangerous or malformed, 2 if a file cannot be read.
    """
    from weightpkg.scan import scan_paths

    with _errors_to_exit():
        scans = scan_paths(paths)
        if as_json:
            from weightpkg.report import to_json

            click.echo(to_json({"files": [s.to_json() for s in scans]}))
        else:
            for result in scans:
                lines = result.lines()
                for line in lines[:1] if quiet else lines:
                    click.echo(line)
        if any(s.failed for s in scans):
            sys.exit(1)


@cli.group()
def sign() -> None:
    """Make signatures: minisign keys, a recipe's files, any file, a model directory."""


@sign.command("keygen")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="weightpkg", show_default=True, help="Key file name (NAME.pub, NAME.key).")
def sign_keygen(directory: Path, name: str) -> None:
    """Write a new unencrypted minisign key pair (never overwrites)."""
    from weightpkg.signing import generate_minisign_keypair

    with _errors_to_exit():
        directory.mkdir(parents=True, exist_ok=True)
        for path in generate_minisign_keypair(directory, name):
            click.echo(str(path))


@sign.command("recipe")
@click.argument("recipe")
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="minisign secret key.",
)
@click.pass_context
def sign_recipe(ctx: click.Context, recipe: str, key: Path) -> None:
    """Sign each published file (fetched and checked first) into RECIPE's .signatures folder."""
    with _errors_to_exit():
        for path in weightpkg.sign_recipe(recipe, key, _store(ctx)):
            click.echo(str(path))


@sign.command("file")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--minisign-key", type=click.Path(dir_okay=False, path_type=Path), help="minisign secret key.")
@click.option("--ssh-key", type=click.Path(dir_okay=False, path_type=Path), help="OpenSSH private key.")
@click.option("--namespace", default="weightpkg", show_default=True, help="SSH signature namespace.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Signature file.")
def sign_file(
    file: Path, minisign_key: Path | None, ssh_key: Path | None, namespace: str, output: Path | None
) -> None:
    """Sign FILE with minisign (FILE.minisig) or ssh-keygen's SSHSIG format (FILE.sig)."""
    from weightpkg.signing import sign_minisign, sign_ssh

    with _errors_to_exit():
        if (minisign_key is None) == (ssh_key is None):
            raise UsageError("give exactly one of --minisign-key and --ssh-key")
        if minisign_key is not None:
            click.echo(str(sign_minisign(file, minisign_key, signature_path=output)))
        else:
            click.echo(str(sign_ssh(file, ssh_key, namespace, output)))


@sign.command("model")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="EC private key (PEM), as model_signing sign key takes.",
)
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The bundle to write."
)
def sign_model(directory: Path, key: Path, output: Path) -> None:
    """Sign a model directory as an OpenSSF model-signing bundle."""
    from weightpkg.signing import sign_model_dir

    with _errors_to_exit():
        click.echo(str(sign_model_dir(directory, key, output)))


@cli.command("check-signature")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--minisign-key", help="minisign public key: a .pub file, a folder of them, or an RW… line.")
@click.option(
    "--allowed-signers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH allowed_signers keyring.",
)
@click.option("--principal", help="With --allowed-signers: who must have signed (default: anyone listed).")
@click.option("--namespace", default="weightpkg", show_default=True)
@click.option(
    "--model-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="EC public key (PEM) for a model-signing bundle; TARGET is the model directory.",
)
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Signature file (default: TARGET.minisig or TARGET.sig).",
)
@click.option("--json", "as_json", is_flag=True)
def check_signature(
    target: Path,
    minisign_key: str | None,
    allowed_signers: Path | None,
    principal: str | None,
    namespace: str,
    model_key: Path | None,
    signature: Path | None,
    as_json: bool,
) -> None:
    """Check one signature of a file or model directory; exit 1 if it does not hold."""
    from weightpkg import signing

    with _errors_to_exit():
        chosen = [x for x in (minisign_key, allowed_signers, model_key) if x is not None]
        if len(chosen) != 1:
            raise UsageError("give exactly one of --minisign-key, --allowed-signers and --model-key")
        if minisign_key is not None:
            verified = signing.verify_minisign(target, minisign_key, signature)
        elif allowed_signers is not None:
            verified = signing.verify_ssh(target, allowed_signers, principal, namespace, signature)
        else:
            if signature is None:
                raise UsageError("--model-key needs --signature (the bundle)")
            verified = signing.verify_model_dir(target, model_key, signature)
        if as_json:
            from weightpkg.report import to_json

            click.echo(to_json(verified.to_json()))
        else:
            click.echo(f"{target}: {verified.format} signature holds (key {verified.key})")


@cli.group()
def store() -> None:
    """Inspect and maintain the store."""


@store.command("path")
@click.argument("recipes", nargs=-1)
@click.pass_context
def store_path(ctx: click.Context, recipes: tuple[str, ...]) -> None:
    """The store root, or the entry of each file of RECIPES (missing ones say so)."""
    with _errors_to_exit():
        st = _store(ctx)
        if not recipes:
            click.echo(str(st.root))
            return
        missing = False
        for path in weightpkg.find_recipes(recipes):
            recipe = weightpkg.load_recipe(path)
            for w in recipe.weights:
                found = st.lookup(w.sha256, Path(w.path).name)
                if found is None:
                    missing = True
                    click.echo(f"{path}: {w.path}: not in the store", err=True)
                else:
                    click.echo(str(found))
        if missing:
            sys.exit(1)


@store.command("ls")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def store_ls(ctx: click.Context, as_json: bool) -> None:
    """List the packages and entries in the store."""
    with _errors_to_exit():
        st = _store(ctx)
        entries = st.entries()
        packages, unreadable = st.read_manifests()
        for line in unreadable:
            click.echo(line, err=True)
        if as_json:
            from weightpkg.report import to_json

            listing = {
                "packages": sorted(packages),
                "entries": [{"name": e.name, "sha256": e.digest.hex, "size": e.size} for e in entries],
            }
            click.echo(to_json(listing))
        else:
            for name in sorted(packages):
                click.echo(f"package {name}")
            for e in entries:
                click.echo(f"{e.name}  {e.size} bytes")
        if unreadable:
            sys.exit(1)


@store.command("verify")
@click.option("--repair", is_flag=True, help="Delete entries whose bytes changed (fetch again).")
@click.option("--json", "as_json", is_flag=True, help="Deterministic JSON.")
@click.pass_context
def store_verify(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Re-hash every entry; exit 1 if any changed or a manifest points at a missing one."""
    with _errors_to_exit():
        st = _store(ctx)
        found = st.check()
        removed = st.repair(found.altered) if repair else []
        count = len(st.entries())
        if as_json:
            from weightpkg.report import to_json

            click.echo(
                to_json(
                    {
                        "store": str(st.root),
                        "entries": count,
                        "problems": found.problems,
                        "removed": [str(p) for p in removed],
                    }
                )
            )
            sys.exit(1 if found.problems else 0)
        for line in found.problems:
            click.echo(line, err=True)
        for path in removed:
            click.echo(f"removed {path}")
        if found.problems:
            click.echo(f"{st.root}: {len(found.problems)} problem(s) in {count} entries", err=True)
            sys.exit(1)
        click.echo(f"{st.root}: {count} entries verified")


@store.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--partials", is_flag=True, help="Also remove partial downloads kept for resuming.")
@click.pass_context
def store_gc(ctx: click.Context, dry_run: bool, partials: bool) -> None:
    """Remove entries no package manifest refers to, and the scratch of killed runs."""
    with _errors_to_exit():
        removed = _store(ctx).gc(dry_run=dry_run, partials=partials)
        for path in removed:
            click.echo(f"{'would remove' if dry_run else 'removed'} {path}")
        click.echo(f"{len(removed)} path(s) {'to remove' if dry_run else 'removed'}")


@cli.group()
def export() -> None:
    """Hand a package to another system in its own format (docs/integrations.md)."""


def _write_export(text: str, output: Path | None) -> None:
    """Stdout, or ``output`` written whole, so a reader never sees half."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from weightpkg.errors import write_atomically

    write_atomically(output, (text if text.endswith("\n") else text + "\n").encode("utf-8"))


_OUTPUT = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to stdout."
)


@export.command("cyclonedx")
@click.argument("recipe")
@click.option("--timestamp", help="metadata.timestamp (RFC 3339, with a time zone); default: none.")
@click.option(
    "--with-build",
    "env_mode",
    type=click.Choice(["venv", "current"]),
    help="Add what the stored rebuild of RECIPE (in its venv, or --env current) measured.",
)
@_OUTPUT
@click.pass_context
def export_cyclonedx(
    ctx: click.Context, recipe: str, timestamp: str | None, env_mode: str | None, output: Path | None
) -> None:
    """A CycloneDX 1.6 ML-BOM: the model with its files, hashes, licences and model card (the
    functional check, the bias notes), its data and code, and how it is built."""
    with _errors_to_exit():
        from weightpkg.exports.cyclonedx import cyclonedx_json

        loaded = weightpkg.load_recipe(recipe)
        record = None
        if env_mode is not None:
            from weightpkg.builder import find_build

            built = find_build(loaded, _store(ctx), env_mode)  # type: ignore[arg-type]
            if built is None:
                raise UsageError(
                    f"{recipe}: no stored build in the {env_mode} environment; run "
                    f"weightpkg rebuild{' --env current' if env_mode == 'current' else ''} {recipe} first"
                )
            record = built.record
        _write_export(cyclonedx_json(loaded, timestamp=timestamp, build_record=record), output)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, list[str]]:
    """KEY=VALUE options, repeatable, into KEY → [VALUE, …]."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise UsageError(f"{option} {value!r}: expected KEY=VALUE")
        out.setdefault(key, []).append(rest)
    return out


@export.command("guix")
@click.argument("recipe")
@click.option(
    "--debian-source",
    "debian_sources",
    multiple=True,
    metavar="PACKAGE=SOURCE",
    help="The Debian source package (COMPONENT/SOURCE) of a binary package, for its pool URL.",
)
@click.option(
    "--archive-url",
    "archive_urls",
    multiple=True,
    metavar="KEY=URL",
    help="A URL for a wheel or .deb, KEY being its sha256 or file name (tried before derived ones).",
)
@click.option(
    "--license-uri",
    "license_uris",
    multiple=True,
    metavar="ID=URI",
    help="What to cite for a licence Guix has no variable for.",
)
@_OUTPUT
def export_guix(
    recipe: str,
    debian_sources: tuple[str, ...],
    archive_urls: tuple[str, ...],
    license_uris: tuple[str, ...],
    output: Path | None,
) -> None:
    """A Guix package definition (guix build -f FILE): an origin per archive or file with its
    nix-base32 sha256, phases that extract and check each member, licences and the bias notes."""
    with _errors_to_exit():
        from weightpkg.exports.guix import guix_package

        loaded = weightpkg.load_recipe(recipe)
        text = guix_package(
            loaded,
            recipe_dir=Path(recipe).parent,
            output_dir=output.parent if output is not None else None,
            debian_sources={k: v[-1] for k, v in _pairs(debian_sources, "--debian-source").items()},
            archive_urls=_pairs(archive_urls, "--archive-url"),
            license_uris={k: v[-1] for k, v in _pairs(license_uris, "--license-uri").items()},
        )
        _write_export(text, output)


@export.command("nix")
@click.argument("recipe")
@click.option(
    "--pypi-base",
    metavar="URL",
    help="Where wheels lie: a base URL (the wheel's file name is appended), a template with "
    "{filename} {package} {version} {python_tag} {letter}, or 'pypi' for PyPI's own file URLs.",
)
@click.option(
    "--debian-base",
    metavar="URL",
    help="Where .debs lie (a base URL or a template), after each deb source's own urls.",
)
@click.option(
    "--path-base",
    metavar="URL",
    help="A base URL for the files beside the recipe (default: file:// URLs of this checkout).",
)
@click.option(
    "--hf-endpoint", metavar="URL", help="The Hugging Face Hub (default: $HF_ENDPOINT or huggingface.co)."
)
@click.option(
    "--extract-python",
    metavar="PATH",
    help="The host python3 that extracts archive members (default /usr/bin/python3; needs sandbox = false).",
)
@click.option(
    "--python",
    "build_python",
    metavar="PATH",
    help="The interpreter of the rebuild derivation (e.g. the venv weightpkg rebuild made).",
)
@_OUTPUT
def export_nix(
    recipe: str,
    pypi_base: str | None,
    debian_base: str | None,
    path_base: str | None,
    hf_endpoint: str | None,
    extract_python: str | None,
    build_python: str | None,
    output: Path | None,
) -> None:
    """A Nix expression: a fixed-output derivation per published file, input and archive, the
    package assembled from them, and for a rebuildable recipe the build (nix-build -A build
    --check) and the rebuilt files checked against the published sha256 (-A rebuild)."""
    with _errors_to_exit():
        import os

        from weightpkg.exports import nix

        loaded = weightpkg.load_recipe(recipe)
        text = nix.nix_expression(
            loaded,
            recipe_dir=Path(recipe).parent.resolve(),
            pypi_base=nix.PYPI_FILES if pypi_base == "pypi" else pypi_base,
            debian_base=debian_base,
            path_base=path_base,
            hf_endpoint=hf_endpoint or os.environ.get("HF_ENDPOINT") or nix.HF_ENDPOINT,
            extract_python=extract_python or nix.DEFAULT_EXTRACT_PYTHON,
            build_python=build_python,
        )
        _write_export(text, output)


@export.command("slsa")
@click.argument("recipe")
@click.option("--key", type=click.Path(dir_okay=False), help="Sign as a DSSE envelope with this secret key.")
@click.option(
    "--env",
    "env_mode",
    type=click.Choice(["venv", "current"]),
    default="venv",
    show_default=True,
    help="Which stored build to attest: the one rebuilt in its venv, or with --env current.",
)
@_OUTPUT
@click.pass_context
def export_slsa(ctx: click.Context, recipe: str, key: str | None, env_mode: str, output: Path | None) -> None:
    """An in-toto Statement with SLSA Provenance v1 for the stored rebuild of RECIPE; with --key,
    signed as a DSSE envelope (docs/provenance.md). Run weightpkg rebuild first."""
    with _errors_to_exit():
        from weightpkg.exports.slsa import export_slsa as render

        loaded = weightpkg.load_recipe(recipe)
        _write_export(render(loaded, _store(ctx), key=key, env_mode=env_mode), output)  # type: ignore[arg-type]


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="PATH",
    help="A file inside the wheel, .deb or Hub repository to publish (repeatable); outer.zip::inner "
    "for a file inside an archive inside it. Default: every file with a weights extension.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the recipe here."
)
@click.option("--name", help="The package name (default: the source's).")
@click.option("--version", "version", help="The package version (default: the source's).")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
def init(
    sources: tuple[str, ...],
    members: tuple[str, ...],
    output: Path | None,
    name: str | None,
    version: str | None,
    force: bool,
) -> None:
    """Write a recipe skeleton from a wheel (a .whl file or NAME==VERSION), a .deb, a Hub
    repository (hf:ORG/NAME@COMMIT) or local files.

    Hashes, sizes, formats and declared licences are real; what only a person can state is a
    TODO marker, which lint warns of and verify --policy refuses.
    """
    with _errors_to_exit():
        from weightpkg.core.todo import todo_markers
        from weightpkg.init import write_skeleton
        from weightpkg.load import tomllib

        text, origin = write_skeleton(
            sources, members=members, output=output, name=name, version=version, force=force
        )
        if output is None:
            click.echo(text, nl=False)
            return
        todos = len(todo_markers(tomllib.loads(text)))
        files = ", ".join(f"{f.path} ({f.format})" for f in origin.files)
        click.echo(f"{output}: written from {origin.description}: {files}; {todos} TODO markers to fill in")


def main() -> None:
    cli(prog_name="weightpkg")
