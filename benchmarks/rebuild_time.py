#!/usr/bin/env python3
"""Benchmark: ``weightpkg rebuild`` of a recipe against running its training command bare.

The goal (issue 5, docs/performance.md): whole-process wall time of
``weightpkg --store S rebuild -q RECIPE`` (inputs already in the store, build environment
already made: what a repeated rebuild costs) at most 1.2 x that of the recipe's build command run
by hand in the same environment, in a folder holding the same inputs, with the same variables,
measured as interleaved pairs in the same run, each pair in the other order from the last.

Run by hand, never as a test::

    python benchmarks/rebuild_time.py                                # digits-mlp, 7 pairs
    python benchmarks/rebuild_time.py recipes/fashion-mnist-mlp.toml --runs 3
    python benchmarks/rebuild_time.py --json
    python benchmarks/rebuild_time.py --pycache-prefix /tmp/weightpkg-bench/pyc   # as a wheel install

The first (untimed) rebuild fetches the inputs and makes the environment; it needs the package
indexes the recipe's sources and requirements come from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(argv: list[str], **kwargs: object) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", type=Path, default=REPO / "recipes" / "digits-mlp.toml")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--store", type=Path, default=Path("/tmp/weightpkg-bench/rebuild-store"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pycache-prefix",
        type=Path,
        help="run weightpkg with PYTHONPYCACHEPREFIX=DIR and bytecode writing on, so its modules are "
        "compiled once (in the first, untimed rebuild) as in a wheel install, not on every start",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.pycache_prefix:  # weightpkg inherits this; the bare command gets the record's environment
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(args.pycache_prefix.resolve())
    weightpkg = [sys.executable, "-m", "weightpkg", "--store", str(args.store)]
    first = subprocess.run(
        [*weightpkg, "rebuild", "-q", "--json", str(args.recipe)], capture_output=True, text=True
    )
    if first.returncode != 0:
        print(first.stderr, file=sys.stderr)
        return 1
    record = json.loads(first.stdout)
    store = str(args.store.absolute())
    env = {k: v.replace("$WEIGHTPKG_STORE", store) for k, v in record["environment"].items()}
    python = record["interpreter"]["executable"].replace("$WEIGHTPKG_STORE", store)
    argv = [python if i == 0 and a == "python" else a for i, a in enumerate(record["command"])]
    results: dict[str, list[float]] = {"weightpkg": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="bare-build-") as scratch:

        def bare() -> float:
            folder = Path(scratch) / "build"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for item in record["inputs"]:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(store) / item["store_path"], target)
            home = Path(scratch) / "home"
            (home / "tmp").mkdir(parents=True, exist_ok=True)
            bare_env = {**env, "HOME": str(home), "TMPDIR": str(home / "tmp")}
            return timed(argv, cwd=folder, env=bare_env)

        for run in range(args.runs):  # each pair in the other order from the last: no order bias
            if run % 2:
                results["bare"].append(bare())
            results["weightpkg"].append(timed([*weightpkg, "rebuild", "-q", str(args.recipe)]))
            if not run % 2:
                results["bare"].append(bare())
    if args.pycache_prefix:
        bytecode = f"cached in {args.pycache_prefix}"
    elif os.environ.get("PYTHONDONTWRITEBYTECODE"):
        bytecode = "not written (PYTHONDONTWRITEBYTECODE): weightpkg compiles its modules on every start"
    else:
        bytecode = "Python's default (__pycache__ beside the modules)"
    ratios = [w / b for w, b in zip(results["weightpkg"], results["bare"], strict=True)]
    summary = {
        "recipe": str(args.recipe),
        "runs": args.runs,
        "weightpkg_median_s": round(statistics.median(results["weightpkg"]), 3),
        "bare_median_s": round(statistics.median(results["bare"]), 3),
        "ratio_median_of_pairs": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "goal": 1.2,
        "isolation": record["isolation"],
        "weightpkg_bytecode": bytecode,
        "machine": {
            "cpu": record["platform"]["cpu"]["model"],
            "count": record["platform"]["cpu"]["count"],
            "python": platform.python_version(),
        },
    }
    summary["met"] = summary["ratio_median_of_pairs"] <= 1.2
    if args.json:
        print(json.dumps(summary, sort_keys=True, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
