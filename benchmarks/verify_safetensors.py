#!/usr/bin/env python3
"""Benchmark: ``weightpkg verify`` of a 1 GiB safetensors file against ``openssl dgst -sha256`` of it.

The goal (issues 4 and 9, docs/performance.md): on a warm page cache, whole-process wall time of
``weightpkg --store S verify RECIPE`` (which re-hashes the store entry and parses its safetensors
header) at most 0.95 x that of ``openssl dgst -sha256 ENTRY`` of the same store entry, measured as
pairs in the same run, at 1 GiB and at 4 GiB; weightpkg's peak RSS the same at both and at most
64 MiB. With --cold, the same commands and ``dd`` each read the entry just evicted from the page
cache (posix_fadvise DONTNEED), as ratios against ``dd``.

Run by hand, never as a test::

    python benchmarks/verify_safetensors.py               # 1 GiB, 7 pairs
    python benchmarks/verify_safetensors.py --breakdown   # where weightpkg's time goes
    python benchmarks/verify_safetensors.py --json        # one JSON object on stdout
    python benchmarks/verify_safetensors.py --cold        # also: the entry evicted before each run

A valid safetensors file of random F32 tensors, its recipe and a store are made once under
--workdir and reused; --clean deletes them at the end. Only the standard library is used; the
child-process timing, peak RSS and machine facts come from hash_file.py beside this script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hash_file import (
    GiB,
    MiB,
    add_child_options,
    log_facts,
    machine_facts,
    openssl_digest,
    parse_size,
    prepare_children,
    rss_facts,
    run_child,
    size_label,
    summary,
    warm_page_cache,
)

RATIO_GOAL = 0.95
RSS_GOAL_MIB = 64.0
TENSOR_BYTES = 4 * MiB  # one F32 tensor of shape [1024, 1024]
TINY_TENSOR_BYTES = 256  # the breakdown's fixed-cost file: one F32 tensor of 64 values
SUBDIR = "verify-safetensors"  # everything this script makes lies under WORKDIR/SUBDIR


# ----------------------------------------------------------------------------- the test files


def safetensors_header(count: int, tensor_bytes: int) -> bytes:
    """The 8-byte length and JSON header of ``count`` F32 tensors, names sorted, padded to 8 bytes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt", "generator": "weightpkg benchmark"}}
    offset = 0
    for i in range(count):
        header[f"layer.{i:04d}.weight"] = {
            "dtype": "F32",
            "shape": [tensor_bytes // 4096, 1024] if tensor_bytes % 4096 == 0 else [tensor_bytes // 4],
            "data_offsets": [offset, offset + tensor_bytes],
        }
        offset += tensor_bytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # what the safetensors writer does: the data starts 8-aligned
    return struct.pack("<Q", len(text)) + text


def write_safetensors(path: Path, count: int, tensor_bytes: int, log) -> tuple[str, int]:
    """Write the file tensor by tensor (never one big allocation); returns (sha256 hex, size)."""
    header = safetensors_header(count, tensor_bytes)
    size = len(header) + count * tensor_bytes
    free = shutil.disk_usage(path.parent).free
    need = 2 * size + GiB  # the file, its copy in the store, and room to spare
    if free < need:
        raise SystemExit(f"{path.parent}: {free / GiB:.1f} GiB free, need {need / GiB:.1f} GiB")
    tensors = f"{count} F32 tensor{'s' if count != 1 else ''} of {tensor_bytes} bytes"
    log(f"writing {path} ({tensors}, {size} bytes) ...")
    digest = hashlib.sha256(header)
    partial = path.with_suffix(".partial")
    with open(partial, "wb", buffering=0) as handle:
        handle.write(header)
        for _ in range(count):
            chunk = os.urandom(tensor_bytes)
            digest.update(chunk)
            handle.write(chunk)
        os.fsync(handle.fileno())  # no writeback during the timed runs
    os.replace(partial, path)
    return digest.hexdigest(), size


def recipe_text(name: str, file_name: str, sha256: str, size: int) -> str:
    return f"""\
# Written by benchmarks/verify_safetensors.py: random tensors, nothing to publish.
schema = 1

[package]
name = "{name}"
version = "1.0"
summary = "Random F32 tensors for benchmarks/verify_safetensors.py"

[license]
weights = "MIT"
upstream = "MIT"

[[weights]]
path = "{file_name}"
sha256 = "{sha256}"
size = {size}
format = "safetensors"

[[weights.sources]]
kind = "path"
path = "{file_name}"
"""


def ensure_package(root: Path, label: str, count: int, tensor_bytes: int, log) -> tuple[Path, str, int]:
    """``root/recipe/bench-LABEL.toml`` and the safetensors file beside it, made once and reused
    (the pin is kept in a ``.sha256`` file beside it); returns (recipe, sha256 hex, size)."""
    folder = root / "recipe"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"bench-{label}.safetensors"
    pin = data.with_name(data.name + ".sha256")
    recipe = folder / f"bench-{label.lower()}.toml"
    size = len(safetensors_header(count, tensor_bytes)) + count * tensor_bytes
    if data.is_file() and data.stat().st_size == size and pin.is_file():
        sha256 = pin.read_text().strip()
        log(f"reusing {data}")
    else:
        for old in (root / "store" / "entries").glob(f"*-{data.name}"):  # an older file's entry
            old.unlink()
            log(f"  new test file: removed the old store entry {old}")
        sha256, size = write_safetensors(data, count, tensor_bytes, log)
        pin.write_text(sha256 + "\n")
    text = recipe_text(f"bench-verify-{label.lower()}", data.name, sha256, size)
    if not recipe.is_file() or recipe.read_text() != text:
        recipe.write_text(text)
    return recipe, sha256, size


def fetch_into_store(weightpkg: list[str], store: Path, recipe: Path, log) -> Path:
    """``weightpkg fetch`` once (a no-op when the entry is there); the store entry's path."""
    result = run_child([*weightpkg, "--store", str(store), "fetch", str(recipe)])
    log(f"  fetch {recipe.name}: {result['wall_s']:.2f} s")
    found = run_child([*weightpkg, "--store", str(store), "store", "path", str(recipe)])
    return Path(found["stdout"].strip())


_PYC_OF_WEIGHTPKG = "import importlib.util as u, weightpkg; print(u.cache_from_source(weightpkg.__file__))"


def bytecode_fact(python: str) -> str:
    """Whether weightpkg's modules start from cached bytecode or are compiled on every start."""
    prefix = os.environ.get("PYTHONPYCACHEPREFIX")
    if prefix and not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return f"written to PYTHONPYCACHEPREFIX={prefix} by the first runs, read from there after"
    where = subprocess.run([python, "-c", _PYC_OF_WEIGHTPKG], capture_output=True, text=True).stdout.strip()
    cached = bool(where) and Path(where).is_file()
    writing = "off (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    return f"weightpkg's .pyc {'cached' if cached else 'absent'}; bytecode writing {writing}"


# ----------------------------------------------------------------------------- measurements


def check_verify(weightpkg: list[str], store: Path, recipe: Path, sha256: str, count: int, log) -> dict:
    """One ``verify --json``: the entry was re-hashed (not merely found) and its header parsed."""
    argv = [*weightpkg, "--store", str(store), "verify", "--json", str(recipe)]
    result = run_child(argv)
    entry = json.loads(result["stdout"])["recipes"][0]["files"][0]
    if entry.get("status") != "ok" or entry.get("sha256") != sha256:
        raise SystemExit(f"verify --json did not pass the file: {result['stdout'][:2000]}")
    tensors = entry.get("details", {}).get("safetensors", {}).get("tensors")
    if tensors != count:
        raise SystemExit(f"verify parsed {tensors} tensors, the file has {count}")
    if entry.get("source") != "store":
        raise SystemExit(f"verify did not re-hash the store entry (source: {entry.get('source')!r})")
    log(f"  verify --json: status ok, source 'store' (re-hashed), {tensors} tensors in the header")
    return {"source": entry["source"], "tensors": tensors, "details": entry.get("details")}


def bench_pairs(
    weightpkg: list[str], openssl: str, store: Path, recipe: Path, entry: Path, sha256: str, runs: int, log
) -> dict:
    wp_argv = [*weightpkg, "--store", str(store), "verify", str(recipe)]
    os_argv = [openssl, "dgst", "-sha256", str(entry)]

    def check(a: dict, b: dict) -> None:
        if "verified:" not in a["stdout"]:
            raise SystemExit(f"weightpkg verify did not say verified: {a['stdout']}")
        if openssl_digest(b["stdout"]) != sha256:
            raise SystemExit(f"openssl printed {openssl_digest(b['stdout'])}, the pin is {sha256}")

    log("warm-up pair (not counted)")
    check(run_child(wp_argv), run_child(os_argv))
    log(f"{runs} pairs, weightpkg verify then openssl dgst (whole-process wall seconds):")
    header = ("pair", "weightpkg", "openssl", "ratio", "wp RSS MiB", "wp user+sys")
    log("  {:>4}  {:>9}  {:>9}  {:>6}  {:>10}  {:>11}".format(*header))
    pairs = []
    for i in range(1, runs + 1):
        a = run_child(wp_argv)
        b = run_child(os_argv)
        check(a, b)
        pair = {
            "weightpkg": {k: a[k] for k in ("wall_s", "user_s", "sys_s", "maxrss_mib")},
            "openssl": {k: b[k] for k in ("wall_s", "user_s", "sys_s", "maxrss_mib")},
            "ratio": a["wall_s"] / b["wall_s"],
        }
        pairs.append(pair)
        log(
            f"  {i:>4}  {a['wall_s']:>9.3f}  {b['wall_s']:>9.3f}  {pair['ratio']:>6.3f}"
            f"  {a['maxrss_mib']:>10.1f}  {a['user_s'] + a['sys_s']:>11.3f}"
        )
    wp_wall = summary([p["weightpkg"]["wall_s"] for p in pairs])
    os_wall = summary([p["openssl"]["wall_s"] for p in pairs])
    ratio = summary([p["ratio"] for p in pairs])
    return {
        "sha256": sha256,
        "pairs": pairs,
        "weightpkg_wall_s": wp_wall,
        "openssl_wall_s": os_wall,
        "weightpkg_cpu_s": summary([p["weightpkg"]["user_s"] + p["weightpkg"]["sys_s"] for p in pairs]),
        "openssl_cpu_s": summary([p["openssl"]["user_s"] + p["openssl"]["sys_s"] for p in pairs]),
        "ratio_of_medians": wp_wall["median"] / os_wall["median"],
        "median_paired_ratio": ratio["median"],
        "paired_ratio": ratio,
        "weightpkg_peak_rss_mib": max(p["weightpkg"]["maxrss_mib"] for p in pairs),
        "openssl_peak_rss_mib": max(p["openssl"]["maxrss_mib"] for p in pairs),
        "ratio_goal_met": ratio["median"] <= RATIO_GOAL,
    }


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache (it is clean: it was fsynced when stored)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_fraction(path: Path) -> float | None:
    """The fraction of the file in the page cache, from util-linux ``fincore``; None without it."""
    fincore = shutil.which("fincore")
    if fincore is None:
        return None
    done = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES", str(path)], capture_output=True, text=True
    )
    try:
        return int(done.stdout.split()[0]) / path.stat().st_size
    except (IndexError, ValueError):
        return None


def bench_cold(
    weightpkg: list[str], openssl: str, store: Path, recipe: Path, entry: Path, sha256: str, runs: int, log
) -> dict:
    """Rounds of weightpkg verify, dd and openssl, order rotating, each reading the entry right
    after it was evicted ("cold, recycled" in research/perf-anchors.md: the timed command starts at
    once, so the kernel reuses the pages it just freed)."""
    argvs = {
        "weightpkg verify": [*weightpkg, "--store", str(store), "verify", str(recipe)],
        "dd": ["dd", f"if={entry}", "of=/dev/null", "bs=8M"],
        "openssl dgst -sha256": [openssl, "dgst", "-sha256", str(entry)],
    }
    evict(entry)
    left = resident_fraction(entry)
    log(
        "cold: the entry is evicted before every command; fincore after an eviction: "
        + ("not installed" if left is None else f"{left:.1%} resident")
    )
    names = list(argvs)
    log(f"cold: warm-up round (not counted), then {runs} rounds, order rotating (wall seconds):")
    for name in names:
        evict(entry)
        run_child(argvs[name])
    log("  round  " + "  ".join(f"{n:>20}" for n in names) + "  wp/dd  openssl/dd")
    rounds = []
    for i in range(runs):
        shift = i % len(names)
        walls = {}
        for name in names[shift:] + names[:shift]:
            evict(entry)
            done = run_child(argvs[name])
            if name == "weightpkg verify" and "verified:" not in done["stdout"]:
                raise SystemExit(f"weightpkg verify did not say verified: {done['stdout']}")
            if name.startswith("openssl") and openssl_digest(done["stdout"]) != sha256:
                raise SystemExit(f"openssl printed {done['stdout']!r}, the pin is {sha256}")
            walls[name] = done["wall_s"]
        rounds.append(walls)
        log(
            f"  {i + 1:>5}  "
            + "  ".join(f"{walls[n]:>20.3f}" for n in names)
            + f"  {walls['weightpkg verify'] / walls['dd']:>5.2f}"
            + f"  {walls['openssl dgst -sha256'] / walls['dd']:>10.2f}"
        )
    return {
        "resident_after_eviction": left,
        "rounds": rounds,
        "wall_s": {name: summary([r[name] for r in rounds]) for name in names},
        "ratio_to_dd": {name: summary([r[name] / r["dd"] for r in rounds]) for name in names if name != "dd"},
        "weightpkg_to_openssl": summary([r["weightpkg verify"] / r["openssl dgst -sha256"] for r in rounds]),
    }


#: verify's phases in one process, each timed from inside: what the entry point imports, the
#: recipe load (TOML, jsonschema import and validation, licence checks), the rest of verify's
#: imports, the ML-Policy classification (license_expression), the hash loop over the store
#: entry, and the safetensors header check.
_PHASES = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
import weightpkg.cli
t1 = time.perf_counter()
import weightpkg
recipe = weightpkg.load_recipe(sys.argv[1])
t2 = time.perf_counter()
from weightpkg.core.digest import hash_stream
from weightpkg.verification import FileReport, check_safetensors
t3 = time.perf_counter()
from weightpkg.core.policy import classify
classify(recipe)
t4 = time.perf_counter()
with open(sys.argv[2], "rb", buffering=0) as f:
    hash_stream(f)
t5 = time.perf_counter()
report = FileReport("x", "0" * 64, 0, "safetensors")
check_safetensors(Path(sys.argv[2]), report)
assert report.status == "ok", report.problem
t6 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)
"""
_PHASE_NAMES = (
    "import weightpkg.cli",
    "load_recipe (TOML, jsonschema, licences)",
    "import the verify path (verification, store, ...)",
    "classify: ML-Policy class (license_expression)",
    "hash loop over the store entry",
    "safetensors header check",
)


def import_profile(argv: list[str], rounds: int) -> dict[str, float]:
    """Median ``-X importtime`` cumulative microseconds per top-level package, counting each
    import of a package from outside it once (so the figure includes what it pulled in first)."""
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
        rows = []  # (depth, root package, cumulative us), in the order printed (children first)
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            _, cumulative, raw = line.split("|", 2)  # "import time: SELF | CUMULATIVE |   name"
            name = raw[1:].rstrip()  # two spaces of indent per level of nesting
            depth = (len(name) - len(name.lstrip())) // 2
            rows.append((depth, name.strip().split(".")[0], int(cumulative)))
        totals: dict[str, float] = {}
        for i, (depth, root, cumulative) in enumerate(rows):
            parent = next((r for r in rows[i + 1 :] if r[0] < depth), None)  # printed after its children
            if parent is None or parent[1] != root:
                totals[root] = totals.get(root, 0) + cumulative
        totals["(all imports)"] = sum(c for d, _, c in rows if d == 0)
        for root, value in totals.items():
            samples.setdefault(root, []).append(value)
    medians = {root: sorted(v)[len(v) // 2] for root, v in samples.items() if len(v) == rounds}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def bench_breakdown(
    weightpkg: list[str],
    openssl: str,
    python: str,
    store: Path,
    recipe: Path,
    entry: Path,
    tiny_recipe: Path,
    tiny_entry: Path,
    runs: int,
    log,
) -> dict:
    """Median whole-process cost of each layer of ``weightpkg verify``, interleaved run by run."""
    steps = {
        "python -S -c pass (no site)": [python, "-S", "-c", "pass"],
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import weightpkg.cli'": [python, "-c", "import weightpkg.cli"],
        "weightpkg --version": [*weightpkg, "--version"],
        "python -c 'weightpkg.load_recipe(R)'": [
            python,
            "-c",
            f"import weightpkg; weightpkg.load_recipe({str(recipe)!r})",
        ],
        "python -c 'import click'": [python, "-c", "import click"],
        "python -c 'import jsonschema'": [python, "-c", "import jsonschema"],
        "python -c 'import license_expression'": [python, "-c", "import license_expression"],
        "weightpkg verify, tiny safetensors": [*weightpkg, "--store", str(store), "verify", str(tiny_recipe)],
        "openssl dgst -sha256, tiny file": [openssl, "dgst", "-sha256", str(tiny_entry)],
        "weightpkg hash --format hex, the entry": [*weightpkg, "hash", "--format", "hex", str(entry)],
        "weightpkg verify, the big file": [*weightpkg, "--store", str(store), "verify", str(recipe)],
        "child: verify's phases, timed inside": [python, "-c", _PHASES, str(recipe), str(entry)],
    }
    log(f"breakdown, {runs} interleaved rounds after one warm-up (median whole-process wall s):")
    walls: dict[str, list[float]] = {name: [] for name in steps}
    rss: dict[str, float] = dict.fromkeys(steps, 0.0)
    phases: list[list[float]] = [[] for _ in _PHASE_NAMES]
    for round_ in range(runs + 1):
        for name, argv in steps.items():
            result = run_child(argv)
            if round_ == 0:
                continue
            walls[name].append(result["wall_s"])
            rss[name] = max(rss[name], result["maxrss_mib"])
            if _PHASES in argv:
                for i, value in enumerate(result["stdout"].split()):
                    phases[i].append(float(value))
    out: dict = {name: {"wall_s": summary(v), "maxrss_mib": rss[name]} for name, v in walls.items()}
    for name, value in out.items():
        log(f"  {name:<52} {value['wall_s']['median']:8.3f}  {value['maxrss_mib']:6.1f} MiB")
    log("  phases inside one process (in-process timer, medians):")
    out["phases_s"] = {}
    for name, values in zip(_PHASE_NAMES, phases, strict=True):
        out["phases_s"][name] = summary(values)
        log(f"    {name:<50} {out['phases_s'][name]['median']:8.3f}")

    script = weightpkg[0] if len(weightpkg) == 1 else None
    if script is not None:
        argv = [python, "-X", "importtime", script, "--store", str(store), "verify", str(tiny_recipe)]
        profile = import_profile(argv, runs)
        out["importtime_us"] = profile
        log(f"  python -X importtime of verify (median of {runs}; cumulative ms per top-level package,")
        log("  nested packages also count in their importer's figure; importtime itself inflates them):")
        for root, value in list(profile.items())[:16]:
            log(f"    {root:<50} {value / 1000:8.1f}")
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/weightpkg-bench"),
        help=f"scratch folder; this script uses WORKDIR/{SUBDIR} (default: %(default)s)",
    )
    parser.add_argument(
        "--size", type=parse_size, default=GiB, help="tensor data size, a multiple of 4 MiB (default: 1G)"
    )
    parser.add_argument("--runs", type=int, default=7, help="timed pairs after the warm-up (default: 7)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time interpreter start-up, imports, the recipe load and the hash loop",
    )
    add_child_options(parser, pycache=True)
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also rounds of verify, dd and openssl, each on the entry just evicted from the page cache",
    )
    parser.add_argument(
        "--clean", action="store_true", help=f"delete WORKDIR/{SUBDIR} (files, recipes, store) at the end"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.size < TENSOR_BYTES or args.size % TENSOR_BYTES:
        parser.error("--size must be a multiple of 4 MiB")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    facts = machine_facts(args.openssl, weightpkg, python, args.workdir)
    facts.update(rss_facts())
    facts["bytecode"] = bytecode_fact(python)
    log_facts(facts, log)

    root = args.workdir / SUBDIR
    store = root / "store"
    count = args.size // TENSOR_BYTES
    label = size_label(args.size).replace(" ", "")
    try:
        recipe, sha256, size = ensure_package(root, label, count, TENSOR_BYTES, log)
        tiny_recipe, _, _ = ensure_package(root, "tiny", 1, TINY_TENSOR_BYTES, log)
        log(f"store {store}:")
        entry = fetch_into_store(weightpkg, store, recipe, log)
        tiny_entry = fetch_into_store(weightpkg, store, tiny_recipe, log)
        log(f"  entry {entry}")
        log(f"warming the page cache: {warm_page_cache(entry):.2f} s to read {size} bytes")
        check = check_verify(weightpkg, store, recipe, sha256, count, log)
        result = bench_pairs(weightpkg, args.openssl, store, recipe, entry, sha256, args.runs, log)
        breakdown = (
            bench_breakdown(
                weightpkg,
                args.openssl,
                python,
                store,
                recipe,
                entry,
                tiny_recipe,
                tiny_entry,
                args.runs,
                log,
            )
            if args.breakdown
            else None
        )
        cold = (
            bench_cold(weightpkg, args.openssl, store, recipe, entry, sha256, args.runs, log)
            if args.cold
            else None
        )
    finally:
        if args.clean and root.exists():
            shutil.rmtree(root)
            log(f"deleted {root}")

    wp, ossl = result["weightpkg_wall_s"], result["openssl_wall_s"]
    gb = size / 1e9
    log(f"results, {size} bytes ({count} tensors), medians of {args.runs} pairs:")
    log(
        f"  weightpkg verify               {wp['median']:.3f} s ({gb / wp['median']:.2f} GB/s)"
        f"  [{wp['min']:.3f}-{wp['max']:.3f}]  cpu {result['weightpkg_cpu_s']['median']:.3f} s"
    )
    log(
        f"  openssl dgst -sha256           {ossl['median']:.3f} s ({gb / ossl['median']:.2f} GB/s)"
        f"  [{ossl['min']:.3f}-{ossl['max']:.3f}]  cpu {result['openssl_cpu_s']['median']:.3f} s"
    )
    verdict = "met" if result["ratio_goal_met"] else "MISSED"
    ratio = result["paired_ratio"]
    log(
        f"  ratio weightpkg/openssl        {ratio['median']:.3f} (median of paired ratios, "
        f"{ratio['min']:.3f}-{ratio['max']:.3f}; ratio of medians {result['ratio_of_medians']:.3f}); "
        f"goal <= {RATIO_GOAL}: {verdict}"
    )
    log(
        f"  weightpkg peak RSS             {result['weightpkg_peak_rss_mib']:.1f} MiB "
        f"(openssl {result['openssl_peak_rss_mib']:.1f} MiB); goal <= {RSS_GOAL_MIB:.0f} MiB: "
        + ("met" if result["weightpkg_peak_rss_mib"] <= RSS_GOAL_MIB else "MISSED")
    )
    if cold is not None:
        log(f"cold, {size} bytes evicted before each command, medians of {args.runs} rounds:")
        for name, wall in cold["wall_s"].items():
            to_dd = cold["ratio_to_dd"].get(name)
            extra = f"  {to_dd['median']:.2f} x dd (median of per-round ratios)" if to_dd else ""
            log(
                f"  {name:<22} {wall['median']:.3f} s ({gb / wall['median']:.2f} GB/s)"
                f"  [{wall['min']:.3f}-{wall['max']:.3f}]{extra}"
            )
        log(f"  weightpkg/openssl, cold     {cold['weightpkg_to_openssl']['median']:.3f}")

    if args.json:
        report = {
            "machine": facts,
            "file": {"size_bytes": size, "tensors": count, "tensor_bytes": TENSOR_BYTES, "check": check},
            "runs": args.runs,
            **result,
        }
        if breakdown is not None:
            report["breakdown"] = breakdown
        if cold is not None:
            report["cold"] = cold
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
