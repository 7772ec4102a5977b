#!/usr/bin/env python3
"""Benchmark: one ``weightpkg verify DIR`` of 100 small recipes against 100 ``weightpkg verify ONE`` runs.

Goal (issue 9): one invocation over a folder uses both cores, and its cost is linear in the
bytes (equal slopes between consecutive file sizes; give three sizes or more). It reports how much
one invocation over a folder of recipes saves
against a sequential loop of one invocation per recipe (the ratio), whether that one invocation
uses more than one core (user+sys CPU / wall), and the cost per byte at two or more file sizes
(is it linear in the bytes, and how does its slope compare with ``openssl dgst -sha256`` of the
same store entries in one process?).

Run by hand, never as a test::

    python benchmarks/verify_many.py                                   # 100 recipes, 1 MiB and 4 MiB files
    python benchmarks/verify_many.py --count 10 --file-size 1M,2M --runs 2   # a smoke run
    python benchmarks/verify_many.py --json                            # one JSON object on stdout

For each file size, ``--count`` recipes (each pinning one safetensors file of that size, random F32
tensors of 1 MiB, with a ``kind = "path"`` source beside it) and a store holding them are made once
under --workdir and reused; --clean deletes them at the end. Only the standard library is used;
the child-process timing and machine facts come from hash_file.py beside this script.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hash_file import (
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
from verify_safetensors import bytecode_fact, recipe_text, safetensors_header

TENSOR_BYTES = MiB  # F32 [256, 1024]
SUBDIR = "verify-many"
ONE = "one verify DIR"
LOOP = "loop of verify ONE"
SSL = "openssl dgst (all entries)"


# ----------------------------------------------------------------------------- the recipes


def ensure_recipes(root: Path, count: int, file_size: int, log) -> tuple[Path, list[Path], dict[str, str]]:
    """``root/recipes/`` with ``count`` recipes and their files, made once; (folder, recipes, pins)."""
    folder = root / "recipes"
    done = root / "done.json"
    tensors = file_size // TENSOR_BYTES
    label = size_label(file_size).replace(" ", "")
    names = [f"bench-many-{label.lower()}-{i:03d}" for i in range(count)]
    if done.is_file() and json.loads(done.read_text()).get("names") == names:
        log(f"reusing {folder}")
        pins = json.loads(done.read_text())["pins"]
    else:
        if root.exists():
            shutil.rmtree(root)
        folder.mkdir(parents=True)
        log(f"writing {count} recipes, each one file of {tensors} x 1 MiB F32 tensors, to {folder} ...")
        start = time.perf_counter()
        header = safetensors_header(tensors, TENSOR_BYTES)
        pins = {}
        for name in names:
            data = os.urandom(file_size)
            blob = header + data
            (folder / f"{name}.safetensors").write_bytes(blob)
            pins[name] = hashlib.sha256(blob).hexdigest()
            text = recipe_text(name, f"{name}.safetensors", pins[name], len(blob))
            (folder / f"{name}.toml").write_text(text.replace("verify_safetensors.py", "verify_many.py"))
        os.sync()  # no writeback during the timed runs
        done.write_text(json.dumps({"names": names, "pins": pins}) + "\n")
        log(f"  written in {time.perf_counter() - start:.1f} s")
    return folder, [folder / f"{n}.toml" for n in names], pins


# ----------------------------------------------------------------------------- measurements


def run_loop(argvs: list[list[str]]) -> dict:
    """Each argv in turn; wall around the whole loop, CPU summed, the largest peak RSS."""
    start = time.perf_counter()
    results = [run_child(argv) for argv in argvs]
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "user_s": sum(r["user_s"] for r in results),
        "sys_s": sum(r["sys_s"] for r in results),
        "maxrss_mib": max(r["maxrss_mib"] for r in results),
        "stdout": "".join(r["stdout"] for r in results),
    }


def bench_size(
    weightpkg: list[str], openssl: str, root: Path, count: int, file_size: int, runs: int, log
) -> dict:
    folder, recipes, pins = ensure_recipes(root, count, file_size, log)
    store = root / "store"
    fetched = run_child([*weightpkg, "--store", str(store), "fetch", str(folder)])
    log(f"  store {store}: fetch {fetched['wall_s']:.2f} s")
    found = run_child([*weightpkg, "--store", str(store), "store", "path", str(folder)])
    entries = [Path(line) for line in found["stdout"].split()]
    if len(entries) != count:
        raise SystemExit(f"store path listed {len(entries)} entries, expected {count}")
    total = sum(p.stat().st_size for p in entries)
    warm = sum(warm_page_cache(p) for p in entries)
    log(f"  warming the page cache: {warm:.2f} s to read {count} entries ({total} bytes)")

    one_argv = [*weightpkg, "--store", str(store), "verify", str(folder)]
    loop_argvs = [[*weightpkg, "--store", str(store), "verify", str(r)] for r in recipes]
    ssl_argv = [openssl, "dgst", "-sha256", *map(str, entries)]

    report = json.loads(run_child([*one_argv[:-1], "--json", str(folder)])["stdout"])
    files = [f for r in report["recipes"] for f in r["files"]]
    bad = [f for f in files if f.get("status") != "ok" or f.get("source") != "store"]
    if len(report["recipes"]) != count or len(files) != count or bad:
        raise SystemExit(
            f"verify --json of {folder}: {len(files)} files, not all ok from the store: {bad[:3]}"
        )
    log(f"  verify --json DIR: {count} recipes, {count} files ok, source 'store' (re-hashed)")

    def check(name: str, result: dict) -> None:
        if name == SSL:
            got = sorted(openssl_digest(line) for line in result["stdout"].splitlines() if line.strip())
            if got != sorted(pins.values()):
                raise SystemExit("openssl printed other digests than the pins")
        elif result["stdout"].count("verified:") < count:
            raise SystemExit(f"{name}: fewer than {count} 'verified:' lines: {result['stdout'][-2000:]}")

    run = {
        ONE: lambda: run_child(one_argv),
        LOOP: lambda: run_loop(loop_argvs),
        SSL: lambda: run_child(ssl_argv),
    }
    names = list(run)
    log(f"  warm-up round (not counted), then {runs} rounds, order rotating (whole-process wall seconds):")
    for name in names:
        check(name, run[name]())
    heads = ("round", "one verify", "loop", "openssl", "one/loop", "one cpu/wall")
    log("    {:>5}  {:>10}  {:>10}  {:>10}  {:>9}  {:>12}".format(*heads))
    rounds = []
    for i in range(runs):
        shift = i % len(names)
        results = {}
        for name in names[shift:] + names[:shift]:
            r = run[name]()
            check(name, r)
            results[name] = {k: r[k] for k in ("wall_s", "user_s", "sys_s", "maxrss_mib")}
        one = results[ONE]
        ratio = one["wall_s"] / results[LOOP]["wall_s"]
        cores = (one["user_s"] + one["sys_s"]) / one["wall_s"]
        rounds.append({"runs": results, "ratio": ratio})
        log(
            f"    {i + 1:>5}  {one['wall_s']:>10.3f}  {results[LOOP]['wall_s']:>10.3f}  "
            f"{results[SSL]['wall_s']:>10.3f}  {ratio:>9.3f}  {cores:>12.2f}"
        )
    out: dict = {
        "file_size": file_size,
        "count": count,
        "total_bytes": total,
        "rounds": rounds,
        "columns": {},
    }
    for name in names:
        walls = [r["runs"][name]["wall_s"] for r in rounds]
        cpus = [r["runs"][name]["user_s"] + r["runs"][name]["sys_s"] for r in rounds]
        out["columns"][name] = {
            "wall_s": summary(walls),
            "cpu_s": summary(cpus),
            "cpu_per_wall": summary([c / w for c, w in zip(cpus, walls, strict=True)]),
            "peak_rss_mib": max(r["runs"][name]["maxrss_mib"] for r in rounds),
            "ms_per_recipe": summary(walls)["median"] / count * 1000,
            "s_per_gb": summary(walls)["median"] / (total / 1e9),
        }
    out["ratio_one_over_loop"] = summary([r["ratio"] for r in rounds])
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
    parser.add_argument("--count", type=int, default=100, help="recipes per file size (default: 100)")
    parser.add_argument(
        "--file-size",
        default="1M,4M",
        help="tensor data per file, comma-separated, each a multiple of 1 MiB (default: 1M,4M)",
    )
    parser.add_argument("--size", dest="file_size", help=argparse.SUPPRESS)  # the house-style name
    parser.add_argument("--runs", type=int, default=5, help="timed rounds after the warm-up (default: 5)")
    add_child_options(parser, pycache=True)
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    parser.add_argument("--clean", action="store_true", help=f"delete WORKDIR/{SUBDIR} at the end")
    args = parser.parse_args()
    if args.runs < 1 or args.count < 1:
        parser.error("--runs and --count must be at least 1")
    try:
        sizes = sorted({parse_size(s) for s in args.file_size.split(",") if s.strip()})
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if not sizes or any(s < TENSOR_BYTES or s % TENSOR_BYTES for s in sizes):
        parser.error("--file-size: each size must be a multiple of 1 MiB")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    facts = machine_facts(args.openssl, weightpkg, python, args.workdir)
    facts.update(rss_facts())
    facts["bytecode"] = bytecode_fact(python)
    log_facts(facts, log)

    base = args.workdir / SUBDIR
    results = []
    try:
        for file_size in sizes:
            label = size_label(file_size).replace(" ", "")
            log(f"{args.count} recipes of one {label} file each:")
            root = base / f"{label.lower()}-x{args.count}"
            results.append(bench_size(weightpkg, args.openssl, root, args.count, file_size, args.runs, log))
    finally:
        if args.clean and base.exists():
            shutil.rmtree(base)
            log(f"deleted {base}")

    log(f"results, medians of {args.runs} rounds:")
    for r in results:
        log(f"  {args.count} x {size_label(r['file_size'])} ({r['total_bytes']} bytes):")
        for name, c in r["columns"].items():
            log(
                f"    {name:<27} {c['wall_s']['median']:7.3f} s"
                f"  [{c['wall_s']['min']:.3f}-{c['wall_s']['max']:.3f}]"
                f"  {c['ms_per_recipe']:6.1f} ms/recipe  {c['s_per_gb']:6.3f} s/GB"
                f"  cpu/wall {c['cpu_per_wall']['median']:.2f}  peak RSS {c['peak_rss_mib']:.1f} MiB"
            )
        ratio = r["ratio_one_over_loop"]
        cores = r["columns"][ONE]["cpu_per_wall"]["median"]
        log(
            f"    ratio one/loop {ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f}); "
            f"one verify uses {'more than one core' if cores > 1.05 else 'one core at most'} "
            f"(cpu/wall {cores:.2f})"
        )
    slopes = []
    for a, b in itertools.pairwise(results):
        extra = (b["total_bytes"] - a["total_bytes"]) / 1e9
        slope = {
            name: (b["columns"][name]["wall_s"]["median"] - a["columns"][name]["wall_s"]["median"]) / extra
            for name in (ONE, LOOP, SSL)
        }
        fixed = a["columns"][ONE]["wall_s"]["median"] - slope[ONE] * a["total_bytes"] / 1e9
        slopes.append({"from": a["file_size"], "to": b["file_size"], "s_per_gb": slope, "one_fixed_s": fixed})
        log(
            f"  marginal cost {size_label(a['file_size'])} -> {size_label(b['file_size'])}: one verify "
            f"{slope[ONE]:.3f} s/GB, loop {slope[LOOP]:.3f} s/GB, openssl {slope[SSL]:.3f} s/GB; "
            f"one verify's fixed part {fixed:.3f} s for {args.count} recipes, start-up included"
        )
    if len(slopes) > 1:
        values = [s["s_per_gb"][ONE] for s in slopes]
        log(
            f"  one verify's slopes {', '.join(f'{v:.3f}' for v in values)} s/GB "
            "(equal slopes: linear in bytes)"
        )
    both = all(r["columns"][ONE]["cpu_per_wall"]["median"] > 1.05 for r in results)
    log(f"  goal: one verify uses both cores at every size: {'met' if both else 'MISSED'}")
    if len(slopes) > 1:
        values = [s["s_per_gb"][ONE] for s in slopes]
        spread = max(values) / min(values) if min(values) > 0 else float("inf")
        verdict = "met" if spread <= 1.25 else "MISSED"
        log(f"  goal: linear in bytes (largest slope / smallest {spread:.2f}, at most 1.25): {verdict}")
    else:
        log("  goal: linear in bytes: not judged (give three sizes or more, e.g. --file-size 1M,4M,16M)")

    if args.json:
        report = {
            "machine": facts,
            "runs": args.runs,
            "count": args.count,
            "sizes": results,
            "slopes": slopes,
        }
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
