"""Rebuilding a recipe's outputs from its pinned inputs: the edge that runs other people's code.

A build gets a fresh working directory holding only the declared inputs, a Python environment
made of exactly the recipe's hash-pinned requirements (cached by the hash of that set), a pinned
environment and, where the kernel allows it, no network. Outputs enter the store only after the
command succeeded and every declared output is a regular file; a build record (deterministic
JSON) goes beside them. A build is named by its *derivation*: the hash of everything that
determines it (inputs' pins, command, environment, requirements), as in Nix.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from .acquire import Pin, fetch_context, obtain
from .core.digest import Digest, hash_stream
from .core.recipe import SEED_PLACEHOLDER, Input, Recipe
from .errors import BuildError, FetchError, IntegrityError, UsageError
from .store import Store, store_failure, write_all

EnvMode = Literal["venv", "current"]
#: Lines of build output and other news, for the terminal (the CLI decides where they go).
Log = Callable[[str], None]

#: Bumped whenever what a build does changes in a way that could change its outputs.
BUILD_PROTOCOL = 1
PINNED_ENV: Mapping[str, str] = {
    "LC_ALL": "C.UTF-8",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "SOURCE_DATE_EPOCH": "0",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
#: Set for CUDA builds only: what PyTorch and cuBLAS need for deterministic kernels.
CUDA_ENV: Mapping[str, str] = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class BuiltFile:
    path: str
    sha256: Digest
    size: int
    store_path: Path


@dataclass(frozen=True)
class Substitution:
    """An input replaced for one build (``--with-input``, ``rebuild --dependents``): the
    recipe's pin, the bytes used instead, and where they came from. Build records list them."""

    input: str
    pinned_sha256: str | None
    pinned_size: int | None
    sha256: Digest
    size: int
    origin: str

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "recipe_pin": {"sha256": self.pinned_sha256, "size": self.pinned_size},
            "used": {"sha256": self.sha256.hex, "size": self.size},
            "origin": self.origin,
        }


def substituted(
    recipe: Recipe, name: str, sha256: Digest, size: int, *, keep_sources: bool = False
) -> Recipe:
    """``recipe`` with input ``name`` pinned to other bytes. Without ``keep_sources`` they must
    already be in the store: the input's sources describe the recipe's bytes, not these. A
    recipe source delivers what its upstream publishes now, so it may be kept."""
    from dataclasses import replace

    if not any(i.name == name for i in recipe.inputs):
        known = ", ".join(i.name for i in recipe.inputs) or "none"
        raise UsageError(f"{recipe.origin}: no input named {name!r} (inputs: {known})")
    inputs = tuple(
        replace(i, sha256=sha256, size=size, sources=i.sources if keep_sources else (), available=True)
        if i.name == name
        else i
        for i in recipe.inputs
    )
    return replace(recipe, inputs=inputs)


def substitute_file(recipe: Recipe, store: Store, name: str, path: Path) -> tuple[Recipe, Substitution]:
    """Put the user's file in the store as input ``name`` and return the recipe that uses it."""
    item = next((i for i in recipe.inputs if i.name == name), None)
    if item is None:
        known = ", ".join(i.name for i in recipe.inputs) or "none"
        raise UsageError(f"{recipe.origin}: no input named {name!r} (inputs: {known})")
    if not path.is_file():
        raise UsageError(f"{path}: no such file (given for input {name!r})")
    stored = _ingest_output(store, path, PurePosixPath(_input_path(item)).name)
    change = Substitution(
        name,
        item.sha256.hex if item.sha256 else None,
        item.size,
        stored.sha256,
        stored.size,
        f"file {path.name} given with --with-input",
    )
    return substituted(recipe, name, stored.sha256, stored.size), change


@dataclass
class BuildResult:
    """A finished build: its outputs in the store and its record."""

    recipe_id: str
    derivation: Digest
    outputs: list[BuiltFile]
    record: dict[str, Any]
    record_path: Path
    log_path: Path
    reused: bool = False

    def output(self, path: str) -> BuiltFile | None:
        return next((o for o in self.outputs if o.path == path), None)


# --- the derivation ------------------------------------------------------------------------------


def build_seed(recipe: Recipe, seed: int | None = None) -> int | None:
    """The seed a build runs with: the one asked for, else the published one, else none."""
    if seed is not None and recipe.seeds is None:
        raise UsageError(f"{recipe.origin}: the recipe declares no [seeds], so its seed cannot be varied")
    if seed is not None and not 0 <= seed <= 0xFFFFFFFF:
        raise UsageError(f"seed {seed} is outside 0…4294967295")
    return seed if seed is not None else (recipe.seeds.published if recipe.seeds else None)


def build_env(recipe: Recipe, seed: int | None = None) -> dict[str, str]:
    """The variables a build runs with, before paths are added: pinned defaults, then the
    recipe's own ``[build.env]`` (which wins), then the seed where the recipe passes it so."""
    assert recipe.build is not None
    env = {**PINNED_ENV, "WEIGHTPKG_DEVICE": recipe.build.device}
    if recipe.build.device == "cuda":
        env.update(CUDA_ENV)
    env.update(recipe.build.env)
    chosen = build_seed(recipe, seed)
    if recipe.seeds is not None and recipe.seeds.env and chosen is not None:
        env[recipe.seeds.env] = str(chosen)
    return dict(sorted(env.items()))


def build_command(recipe: Recipe, seed: int | None = None) -> list[str]:
    """The build command as run, ``{seed}`` replaced by the build's seed."""
    assert recipe.build is not None
    chosen = build_seed(recipe, seed)
    return [arg.replace(SEED_PLACEHOLDER, str(chosen)) for arg in recipe.build.command]


def derivation(recipe: Recipe, env_mode: EnvMode = "venv", seed: int | None = None) -> Digest:
    """What determines a build's outputs, hashed: the same derivation means the same build."""
    assert recipe.build is not None
    described = {
        "protocol": BUILD_PROTOCOL,
        "command": build_command(recipe, seed),
        "outputs": list(recipe.build.outputs),
        "requirements": sorted(recipe.build.requirements),
        "env": build_env(recipe, seed),
        "env_mode": env_mode,
        "device": recipe.build.device,
        "inputs": sorted(
            (
                {"name": i.name, "path": _input_path(i), "sha256": i.sha256.hex if i.sha256 else None}
                for i in recipe.inputs
            ),
            key=lambda item: str(item["name"]),
        ),
        "python": platform.python_version() if env_mode == "venv" else sys.executable,
    }
    return Digest(hashlib.sha256(_canonical(described)).digest())


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _input_path(item: Input) -> str:
    return item.path or item.name


def check_buildable(recipe: Recipe) -> None:
    """Refuse, before anything is fetched, a recipe that declares no complete build."""
    if recipe.build is None:
        raise BuildError(f"{recipe.origin}: the recipe has no [build] table, so it cannot be rebuilt")
    missing = [i.name for i in recipe.inputs if not i.available]
    if missing:
        raise BuildError(
            f"{recipe.origin}: cannot rebuild: input {', '.join(repr(m) for m in missing)} is not available"
        )


# --- isolation and environment -------------------------------------------------------------------


#: unshare's options for a new PID namespace whose processes all die with unshare (its child,
#: PID 1 there, gets SIGKILL when unshare dies, and takes the namespace with it), with its own
#: /proc so that a build's os.getpid() and /proc agree.
PID_NAMESPACE = ["--pid", "--fork", "--kill-child", "--mount-proc"]
PID_NAMESPACE_NOTE = "; processes: a new PID namespace, so nothing the build starts outlives it"


@functools.cache
def network_isolation() -> tuple[list[str], str]:
    """The command prefix that takes the network away, and what it is, tried for real: a new
    network namespace as root, else one inside a new user namespace, else none (said so). Each
    comes with a new PID namespace where the kernel allows one, else without."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "none: unshare (util-linux) is not installed; the build can reach the network"
    users = [[], ["--map-root-user"]] if os.geteuid() == 0 else [["--map-root-user"]]
    attempts = [[unshare, *user, "--net", *pids, "--"] for user in users for pids in (PID_NAMESPACE, [])]
    for prefix in attempts:
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            kind = "a new network namespace" + (
                " in a new user namespace" if "--map-root-user" in prefix else ""
            )
            pids = PID_NAMESPACE_NOTE if "--pid" in prefix else ""
            return prefix, f"network: {kind} (unshare), holding only a loopback interface that is down{pids}"
    return [], "none: the kernel refused a new network namespace here; the build can reach the network"


def _requirements_key(requirements: Sequence[str]) -> Digest:
    """Environments are shared between builds with the same requirement set and interpreter."""
    described = {
        "requirements": sorted(r.strip() for r in requirements),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "machine": platform.machine(),
        "base": sys.base_prefix,
    }
    return Digest(hashlib.sha256(_canonical(described)).digest())


def ensure_environment(store: Store, requirements: Sequence[str], log: Log) -> Path:
    """The interpreter of a virtual environment holding exactly ``requirements``, made once per
    requirement set under ``envs/`` (an unfinished one is made again)."""
    key = _requirements_key(requirements)
    name = f"{key.nix32}-python{platform.python_version()}"
    root = store.root / "envs" / name
    python = root / "bin" / "python"
    done_marker = root / ".weightpkg-complete"
    if done_marker.is_file():
        return python
    with _writing(store, root, "cannot make the build environment"):
        (store.root / "envs").mkdir(parents=True, exist_ok=True)
    with store.lock(f"env-{key.hex}"):
        if done_marker.is_file():
            return python
        with _writing(store, root, "cannot clear an unfinished build environment"):
            if root.exists():
                shutil.rmtree(root)
        log(f"creating the build environment {root} ({len(requirements)} pinned requirements)")
        import venv

        has_pip = _has_pip()
        try:
            venv.EnvBuilder(with_pip=not has_pip, symlinks=True, clear=True).create(root)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BuildError(f"{root}: cannot create the virtual environment: {exc}") from None
        if requirements:
            listing = root / "requirements.txt"
            with _writing(store, listing, "cannot list the build requirements"):
                listing.write_text("".join(f"{r.strip()}\n" for r in sorted(requirements)), "utf-8")
            pip = (
                [sys.executable, "-m", "pip", "--python", str(python)]
                if has_pip
                else [str(python), "-m", "pip"]
            )
            command = [
                *pip,
                "install",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                "--no-input",
                "--disable-pip-version-check",
                "--quiet",
                "-r",
                str(listing),
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                shutil.rmtree(root, ignore_errors=True)
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
                raise BuildError(
                    f"cannot install the build requirements (pip exited {done.returncode}):\n{tail}"
                )
        marker = json.dumps({"requirements": sorted(requirements)}, indent=2) + "\n"
        with _writing(store, done_marker, "cannot mark the build environment complete"):
            done_marker.write_text(marker, "utf-8")
    return python


def _has_pip() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


_FACTS_PROGRAM = """
import json, platform, sys
from importlib import metadata
names = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if name:
        names[name.lower().replace("_", "-")] = dist.version
print(json.dumps({"implementation": sys.implementation.name, "version": platform.python_version(),
                  "executable": sys.executable, "libraries": dict(sorted(names.items()))}))
"""


def interpreter_facts(python: Path | str, env_root: Path | None = None) -> dict[str, Any]:
    """Version and installed distributions of the interpreter a build runs with.

    Asking costs a Python start-up and a scan of site-packages (about 60 ms here, a third of a
    repeated small rebuild's fixed cost), so for an environment under ``envs/`` the answer is kept
    beside it, stamped with its site-packages folders' modification times: installing or
    removing a distribution there changes the stamp, and the interpreter is asked again.
    """
    cache = env_root / FACTS_CACHE if env_root is not None else None
    stamp = _environment_stamp(env_root) if env_root is not None else None
    if cache is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            kept = json.loads(cache.read_text("utf-8"))
            if kept["stamp"] == stamp and isinstance(kept["facts"], dict):
                return dict(kept["facts"])
    done = subprocess.run(
        [str(python), "-I", "-c", _FACTS_PROGRAM],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    if done.returncode != 0:
        raise BuildError(
            f"{python}: cannot ask the build interpreter for its versions: {done.stderr.strip()}"
        )
    facts: dict[str, Any] = json.loads(done.stdout)
    if cache is not None:
        with contextlib.suppress(OSError):  # a read-only store only loses the shortcut
            partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
            partial.write_text(json.dumps({"stamp": stamp, "facts": facts}, sort_keys=True), "utf-8")
            partial.replace(cache)
    return facts


#: Where :func:`interpreter_facts` keeps an environment's answer, inside the environment.
FACTS_CACHE = ".weightpkg-facts.json"


def _environment_stamp(env_root: Path) -> list[list[Any]]:
    """What changes when a distribution is installed into or removed from an environment."""
    stamp: list[list[Any]] = []
    for folder in [*sorted(env_root.glob("lib*/python*/site-packages")), env_root / "pyvenv.cfg"]:
        with contextlib.suppress(OSError):
            st = folder.stat()
            stamp.append([str(folder.relative_to(env_root)), st.st_mtime_ns, st.st_ino])
    return stamp


def cpu_facts() -> dict[str, Any]:
    """The CPU model and its flags, which decide which SIMD kernels numerical code runs."""
    model: str | None = None
    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text("utf-8", "replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = sorted(value.split())
    return {"model": model, "flags": flags, "count": os.cpu_count(), "machine": platform.machine()}


# --- running the build ---------------------------------------------------------------------------


def fetch_inputs(recipe: Recipe, store: Store, ctx: Any) -> dict[str, Path]:
    """Every input in the store with its pin checked; stops before any build at the first failure."""
    found: dict[str, Path] = {}
    for item in recipe.inputs:
        if item.sha256 is None or item.size is None:
            raise BuildError(f"{recipe.origin}: input {item.name!r} has no sha256 and size to check")
        pin = Pin(_input_path(item), item.sha256, item.size)
        try:
            got = obtain(store, pin, item.sources, ctx)
        except IntegrityError as exc:
            raise BuildError(
                f"{recipe.origin}: input {item.name!r}: {exc.mismatch}; the build command was not run"
            ) from None
        except FetchError as exc:
            attempts = "".join(f"\n  {a}" for a in exc.attempts)
            raise BuildError(
                f"{recipe.origin}: input {item.name!r}: no source delivered it; the build command was not run"
                + attempts
            ) from None
        found[item.name] = got.store_path
    return found


def _stage_inputs(recipe: Recipe, stored: Mapping[str, Path], workdir: Path) -> None:
    for item in recipe.inputs:
        target = workdir / _input_path(item)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stored[item.name], target)
        target.chmod(0o444)


def _command(
    argv: Sequence[str], python: Path | str, substitutions: Mapping[str, str] | None = None
) -> list[str]:
    out = [str(python) if i == 0 and arg == "python" else arg for i, arg in enumerate(argv)]
    for key, value in (substitutions or {}).items():
        out = [arg.replace("{" + key + "}", value) for arg in out]
    return out


class LogUnwritable(BuildError):
    """A command's log cannot be written (the disk is full): the command is stopped, or never
    started, rather than run with no record of what it said."""

    def __init__(self, log_file: Path, error: OSError, outcome: str) -> None:
        self.error = error
        self.outcome = outcome
        super().__init__(f"{log_file}: cannot write the log: {error.strerror}; {outcome}")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Any:
    """libc's prctl, resolved before any fork (a forked child should call, not look up)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _dies_with_us() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when this process dies, however it
    dies (SIGKILL included), so a build never outlives a killed weightpkg. It survives the exec
    of unshare and of the command (neither is set-user-ID); unshare passes it on to its own child
    (``--kill-child``). The kernel ties it to the thread that starts the child, which waits for
    the child in :func:`run_isolated`. None where there is no prctl: the process group is still
    killed on the way out of every error this process lives through."""
    prctl = _prctl()
    if prctl is None:
        return None
    import ctypes

    parent = os.getpid()

    def setup() -> None:
        prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL))
        if os.getppid() != parent:  # we died before the request was made: follow now
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's process group (it leads its own session): the command and whatever
    it started that stayed in the group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.kill()


def run_isolated(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_file: Path,
    log: Log,
    timeout: float | None = None,
) -> tuple[int, list[str], float]:
    """Run ``argv`` without network (where possible), echoing its output line by line to
    ``log`` and keeping it in ``log_file``; the exit code, the last lines, and seconds taken.

    Nothing the command starts outlives this call, nor this process if it is killed: the
    command leads its own process group, killed on every way out; it gets SIGKILL from the
    kernel when this process dies; and in a PID namespace (see :func:`network_isolation`) its
    descendants die with it.
    """
    prefix, _ = network_isolation()
    tail: list[str] = []
    started = time.monotonic()
    try:
        keep = open(log_file, "ab", buffering=0)  # a full disk shows at the write, not at close
    except OSError as exc:
        raise LogUnwritable(log_file, exc, "the command was not run") from None
    with keep:
        try:
            process = subprocess.Popen(
                [*prefix, *argv],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_dies_with_us(),
            )
        except OSError as exc:
            raise BuildError(f"cannot run {argv[0]}: {exc.strerror}") from None
        timer = threading.Timer(timeout, _kill_group, (process,)) if timeout else None
        if timer:
            timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                tail = [*tail[-(LOG_TAIL_LINES - 1) :], line]
                log(line)
                try:
                    write_all(keep, raw)
                except OSError as exc:
                    raise LogUnwritable(log_file, exc, "the command was stopped") from None
            if hasattr(os, "waitid"):  # exited but not reaped: its pid, the group's id, stays ours
                os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            _kill_group(process)  # stragglers the command left in its group
            code = process.wait()
        except BaseException:
            _kill_group(process)
            process.wait()
            raise
        finally:
            if timer:
                timer.cancel()
    return code, tail, time.monotonic() - started


def _ingest_output(store: Store, path: Path, name: str) -> BuiltFile:
    with open(path, "rb", buffering=0) as handle:
        digest, size = hash_stream(handle)
    with store.ingest(digest, size, name) as ingest:
        if not ingest.present:
            with open(path, "rb") as handle:
                while chunk := handle.read(4 << 20):
                    ingest.write(chunk)
            ingest.commit()
        stored = store.lookup(digest, name, size)
    assert stored is not None
    return BuiltFile(name, digest, size, stored)


def _ingest_bytes(store: Store, data: bytes, name: str) -> Path:
    digest = Digest(hashlib.sha256(data).digest())
    with store.ingest(digest, len(data), name) as ingest:
        if not ingest.present:
            ingest.write(data)
            ingest.commit()
    stored = store.lookup(digest, name, len(data))
    assert stored is not None
    return stored


def build_manifest_id(recipe: Recipe, variant: Digest | None = None) -> str:
    """``<id>.build`` for the recipe's own build; a variant (another seed, a substituted
    input) is kept beside it under its derivation, so neither replaces the other."""
    return f"{recipe.id}.build" if variant is None else f"{recipe.id}.build-{variant.nix32[:20]}"


def is_variant(recipe: Recipe, seed: int | None, substitutions: Sequence[Substitution]) -> bool:
    return bool(substitutions) or (seed is not None and seed != build_seed(recipe))


def find_build(
    recipe: Recipe,
    store: Store,
    env_mode: EnvMode = "venv",
    *,
    seed: int | None = None,
    substitutions: Sequence[Substitution] = (),
) -> BuildResult | None:
    """The stored build of this exact derivation, if one is there and its files are intact in size."""
    drv = derivation(recipe, env_mode, seed)
    manifest = store.read_manifest(
        build_manifest_id(recipe, drv if is_variant(recipe, seed, substitutions) else None)
    )
    if not manifest or manifest.get("derivation") != drv.hex:
        return None
    outputs = []
    for item in manifest.get("outputs", []):
        path = store.root / item["store_path"]
        if not path.is_file() or path.stat().st_size != item["size"]:
            return None
        outputs.append(BuiltFile(item["path"], Digest.from_hex(item["sha256"]), item["size"], path))
    record_path = store.root / manifest["record"]
    try:
        record = json.loads(record_path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return BuildResult(
        recipe.id,
        Digest.from_hex(manifest["derivation"]),
        outputs,
        record,
        record_path,
        store.root / manifest["log"],
        reused=True,
    )


def rebuild(
    recipe: Recipe,
    store: Store,
    *,
    env_mode: EnvMode = "venv",
    log: Log | None = None,
    record_duration: bool = False,
    timeout: float | None = None,
    progress: Any = None,
    seed: int | None = None,
    substitutions: Sequence[Substitution] = (),
) -> BuildResult:
    """Fetch and check every input, build in a fresh folder, and add the outputs to the store.

    ``seed`` builds with another seed than the published one; ``recipe`` may be a variant whose
    inputs were substituted (:func:`substitute_file`), which ``substitutions`` then describes.
    """
    say: Log = log or (lambda line: None)
    check_buildable(recipe)
    assert recipe.build is not None
    build = recipe.build
    drv = derivation(recipe, env_mode, seed)
    log_path = store.root / "logs" / f"{drv.nix32}-{recipe.id}.log"
    with store.session(), fetch_context(recipe, store, progress) as ctx:
        stored_inputs = fetch_inputs(recipe, store, ctx)
        python: Path | str = (
            sys.executable if env_mode == "current" else ensure_environment(store, build.requirements, say)
        )
        facts = interpreter_facts(python, None if env_mode == "current" else Path(python).parent.parent)
        _, isolation = network_isolation()
        with build_folder(store, drv) as (workdir, home):
            with _writing(store, workdir, "cannot put the inputs in the build folder"):
                _stage_inputs(recipe, stored_inputs, workdir)
            return _run_build(
                recipe,
                store,
                drv,
                stored_inputs,
                python,
                facts,
                isolation,
                workdir,
                home,
                log_path,
                say,
                record_duration=record_duration,
                timeout=timeout,
                seed=seed,
                substitutions=substitutions,
            )


def _run_env(recipe: Recipe, python: Path | str, home: Path, seed: int | None = None) -> dict[str, str]:
    """The whole environment a build (or its functional check) sees: nothing of the caller's."""
    paths = {"PATH": f"{Path(python).parent}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home / "tmp")}
    return {**build_env(recipe, seed), **paths}


@contextlib.contextmanager
def _writing(store: Store, what: Path, doing: str) -> Iterator[None]:
    """The OS's errors while writing ``what`` in the store as one StoreError line (a full disk
    named as such), not a traceback."""
    try:
        yield
    except OSError as exc:
        raise store_failure(str(what), doing, exc, store.root) from None


@contextlib.contextmanager
def build_folder(store: Store, drv: Digest) -> Iterator[tuple[Path, Path]]:
    """``tmp/build-<derivation>/{build,home}``: fresh, the same path every time the same
    derivation is built (a path can end up in outputs), one build of it at a time, removed after."""
    with store.lock(f"build-{drv.hex}"):
        root = store.root / "tmp" / f"build-{drv.nix32}"
        shutil.rmtree(root, ignore_errors=True)
        workdir, home = root / "build", root / "home"
        try:
            with _writing(store, root, "cannot make the build folder"):
                for folder in (workdir, home / "tmp"):
                    folder.mkdir(parents=True)
            yield workdir, home
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _run_build(
    recipe: Recipe,
    store: Store,
    drv: Digest,
    stored_inputs: Mapping[str, Path],
    python: Path | str,
    facts: dict[str, Any],
    isolation: str,
    workdir: Path,
    home: Path,
    log_path: Path,
    say: Log,
    *,
    record_duration: bool,
    timeout: float | None,
    seed: int | None,
    substitutions: Sequence[Substitution],
) -> BuildResult:
    assert recipe.build is not None
    build = recipe.build
    run_env = _run_env(recipe, python, home, seed)
    command = build_command(recipe, seed)
    argv = _command(command, python)
    with _writing(store, log_path, "cannot start the build log"):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
    say(f"building {recipe.id} in {workdir} ({isolation})")
    for change in substitutions:
        say(f"input {change.input}: {change.origin}, sha256 {change.sha256.hex[:12]}…, not the recipe's pin")
    say("$ " + " ".join(command))
    try:
        code, tail, seconds = run_isolated(
            argv, cwd=workdir, env=run_env, log_file=log_path, log=say, timeout=timeout
        )
    except LogUnwritable as exc:
        outcome = f"; {exc.outcome} and nothing entered the store"
        raise store_failure(
            str(log_path), "cannot write the build log", exc.error, store.root, outcome
        ) from None
    if code != 0:
        shown = "\n".join(f"  {line}" for line in tail)
        raise BuildError(
            f"{recipe.origin}: the build command exited with {code}; nothing entered the store "
            f"(log: {log_path})\n{shown}"
        )
    outputs = []
    for name in build.outputs:
        produced = workdir / name
        if produced.is_symlink() or not produced.is_file():
            raise BuildError(
                f"{recipe.origin}: the build did not produce {name!r} as a regular file; "
                f"nothing entered the store (log: {log_path})"
            )
    for name in build.outputs:
        outputs.append(_ingest_output(store, workdir / name, name))
    record = build_record(recipe, drv, stored_inputs, python, facts, isolation, run_env, outputs, store)
    record["command"] = command
    chosen = build_seed(recipe, seed)
    if recipe.seeds is not None and chosen is not None:
        record["seed"] = {
            "value": chosen,
            "published": recipe.seeds.published,
            "passed_as": recipe.seeds.passed_as,
        }
    record["substitutions"] = [change.to_json() for change in substitutions]
    if record_duration:
        record["duration_s"] = round(seconds, 3)
    text = json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    record_path = _ingest_bytes(store, text.encode(), f"{recipe.id}.build-record.json")
    variant = is_variant(recipe, seed, substitutions)
    store.write_manifest(
        build_manifest_id(recipe, drv if variant else None),
        {
            "kind": "build",
            "variant": variant,
            "recipe": recipe.id,
            "derivation": drv.hex,
            "outputs": [_built_json(o, store) for o in outputs],
            "record": store_relative(record_path, store),
            "log": store_relative(log_path, store),
            "files": [
                *({"store_path": store_relative(o.store_path, store)} for o in outputs),
                {"store_path": store_relative(record_path, store)},
                *({"store_path": store_relative(p, store)} for p in stored_inputs.values()),
            ],
        },
    )
    return BuildResult(recipe.id, drv, outputs, record, record_path, log_path)


def _portable(value: str, store: Store) -> str:
    """Paths inside the store written as ``$WEIGHTPKG_STORE/…``, so that records of the same
    build in two stores are the same bytes."""
    return value.replace(str(store.root), "$WEIGHTPKG_STORE")


def store_relative(path: Path, store: Store) -> str:
    """A store path as manifests write it: relative to the store's root."""
    return str(path.relative_to(store.root))


def _built_json(item: BuiltFile, store: Store) -> dict[str, Any]:
    return {
        "path": item.path,
        "sha256": item.sha256.hex,
        "size": item.size,
        "store_path": store_relative(item.store_path, store),
    }


def build_record(
    recipe: Recipe,
    drv: Digest,
    stored_inputs: Mapping[str, Path],
    python: Path | str,
    facts: Mapping[str, Any],
    isolation: str,
    run_env: Mapping[str, str],
    outputs: Sequence[BuiltFile],
    store: Store,
) -> dict[str, Any]:
    """Everything that went into the build and what came out, without timestamps."""
    from . import __version__

    assert recipe.build is not None
    recipe_file = Path(recipe.origin)
    recipe_hash = None
    with contextlib.suppress(OSError):
        recipe_hash = hashlib.sha256(recipe_file.read_bytes()).hexdigest()
    return {
        "schema": 1,
        "builder": {"name": "weightpkg", "version": __version__, "protocol": BUILD_PROTOCOL},
        "recipe": {"id": recipe.id, "file": recipe_file.name, "sha256": recipe_hash},
        "derivation": drv.hex,
        "inputs": [
            {
                "name": item.name,
                "role": item.role,
                "path": _input_path(item),
                "sha256": item.sha256.hex if item.sha256 else None,
                "size": item.size,
                "store_path": store_relative(stored_inputs[item.name], store),
            }
            for item in recipe.inputs
        ],
        "command": list(recipe.build.command),
        "environment": {k: _portable(v, store) for k, v in sorted(run_env.items())},
        "requirements": sorted(recipe.build.requirements),
        "interpreter": {
            "implementation": facts["implementation"],
            "version": facts["version"],
            "executable": _portable(str(facts["executable"]), store),
        },
        "libraries": facts["libraries"],
        "platform": {
            "system": platform.system(),
            "kernel": platform.release(),
            "libc": "-".join(platform.libc_ver()) or None,
            "cpu": cpu_facts(),
        },
        "device": recipe.build.device,
        "isolation": isolation,
        "outputs": [_built_json(o, store) for o in outputs],
    }


@contextlib.contextmanager
def evaluation_folder(recipe: Recipe, store: Store, progress: Any = None) -> Iterator[tuple[Path, Path]]:
    """A fresh folder holding the recipe's inputs (as a build sees them) and a home beside it."""
    with store.session(), fetch_context(recipe, store, progress) as ctx:
        stored = fetch_inputs(recipe, store, ctx)
        workdir = ctx.scratch("eval")  # the run's scratch folder is unique, so these are new
        home = ctx.scratch("home")
        (home / "tmp").mkdir()
        _stage_inputs(recipe, stored, workdir)
        yield workdir, home


def run_functional(
    recipe: Recipe,
    store: Store,
    weights: Mapping[str, Path],
    *,
    env_mode: EnvMode = "venv",
    log: Log | None = None,
) -> dict[str, float]:
    """The recipe's functional metric for each weights file (label → file), run in the build
    environment with the inputs beside it; the command prints a JSON object holding the metric."""
    check = recipe.reproducibility.functional
    if check is None or not check.command:
        raise BuildError(f"{recipe.origin}: reproducibility.functional has no command to run")
    printed = run_evaluations(
        recipe, store, weights, {"functional": check.command}, env_mode=env_mode, log=log
    )
    return {
        label: metric_of(recipe, objects["functional"], check.metric) for label, objects in printed.items()
    }


def run_evaluations(
    recipe: Recipe,
    store: Store,
    weights: Mapping[str, Path],
    commands: Mapping[str, Sequence[str]],
    *,
    env_mode: EnvMode = "venv",
    log: Log | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run each evaluation command (the functional check, a stress test) on each weights file,
    in the build environment with the recipe's inputs beside it: label → command name → the
    last JSON object the command printed."""
    say: Log = log or (lambda line: None)
    check_buildable(recipe)
    assert recipe.build is not None
    python: Path | str = (
        sys.executable if env_mode == "current" else ensure_environment(store, recipe.build.requirements, say)
    )
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with evaluation_folder(recipe, store) as (workdir, home):
        env = _run_env(recipe, python, home)
        for label, path in weights.items():
            staged = home / f"{label}-{path.name}"
            shutil.copyfile(path, staged)
            results[label] = {}
            for name, command in commands.items():
                argv = _command(command, python, {"weights": str(staged)})
                lines: list[str] = []
                code, tail, _ = run_isolated(
                    argv, cwd=workdir, env=env, log_file=home / "evaluation.log", log=lines.append
                )
                what = "the functional check" if name == "functional" else f"evaluation {name!r}"
                if code != 0:
                    shown = "\n".join(f"  {line}" for line in tail)
                    raise BuildError(f"{recipe.origin}: {what} exited with {code} on {label}:\n{shown}")
                printed = _last_json_object(lines)
                if printed is None:
                    raise BuildError(f"{recipe.origin}: {what} printed no JSON object on {label}")
                results[label][name] = printed
    return results


def _last_json_object(lines: Sequence[str]) -> dict[str, Any] | None:
    for line in reversed(lines):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def metric_of(
    recipe: Recipe,
    printed: Mapping[str, Any],
    metric: str,
    *,
    what: str = "the functional check",
    where: str = "",
) -> float:
    """The number ``metric`` in what an evaluation (``what``, run ``where``) printed;
    BuildError naming the evaluation and the keys it did print if it is not one."""
    value = printed.get(metric)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    keys = ", ".join(sorted(printed)) or "none"
    raise BuildError(
        f"{recipe.origin}: {what} printed no number for {metric!r}{where} "
        f"(its JSON object has the keys: {keys})"
    )
