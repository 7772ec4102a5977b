#!/usr/bin/env python3
"""Benchmark: ``weightpkg --version`` start-up against a bare ``python -c pass``.

The goal (issue 9, docs/performance.md): the median whole-process wall time of
``weightpkg --version`` (the installed console script, else ``python -m weightpkg``) is at most
50 ms above the median of ``python -c pass`` run by the same interpreter (the real binary, never a
pyenv shim), measured in the same run. ``python -m weightpkg --version`` is timed beside it.

Run by hand, never as a test::

    python benchmarks/startup.py                  # 21 rounds
    python benchmarks/startup.py --breakdown      # also: python -X importtime, the slowest imports
    python benchmarks/startup.py --json           # one JSON object on stdout
    python benchmarks/startup.py --runs 3         # a smoke run

Nothing is written to disk (except bytecode with --pycache-prefix). Only the standard library is
used; the child-process timing and machine facts come from hash_file.py beside this script.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hash_file import (
    add_child_options,
    log_facts,
    machine_facts,
    prepare_children,
    rss_facts,
    run_child,
    summary,
)
from verify_safetensors import bytecode_fact, import_profile

GOAL_MS = 50.0
BASE = "python -c pass"


def columns(python: str, weightpkg: list[str]) -> dict[str, list[str]]:
    out = {
        BASE: [python, "-c", "pass"],
        "python -m weightpkg --version": [python, "-m", "weightpkg", "--version"],
    }
    if len(weightpkg) == 1:  # the console script (or --weightpkg CMD)
        out["weightpkg --version"] = [*weightpkg, "--version"]
    return out


def bench_rounds(argvs: dict[str, list[str]], runs: int, log) -> dict:
    names = list(argvs)
    log(f"warm-up round (not counted), then {runs} rounds, order rotating (whole-process wall ms):")
    for name in names:
        run_child(argvs[name])
    log("  round  " + "  ".join(f"{n[:30]:>30}" for n in names))
    rounds = []
    for i in range(runs):
        shift = i % len(names)
        results = {}
        for name in names[shift:] + names[:shift]:
            r = run_child(argvs[name])
            results[name] = {k: r[k] for k in ("wall_s", "user_s", "sys_s", "maxrss_mib")}
        rounds.append(results)
        log(f"  {i + 1:>5}  " + "  ".join(f"{results[n]['wall_s'] * 1000:>30.1f}" for n in names))
    out: dict = {"rounds": rounds, "columns": {}}
    base = [r[BASE]["wall_s"] for r in rounds]
    for name in names:
        walls = [r[name]["wall_s"] for r in rounds]
        out["columns"][name] = {
            "argv": argvs[name],
            "wall_s": summary(walls),
            "cpu_s": summary([r[name]["user_s"] + r[name]["sys_s"] for r in rounds]),
            "peak_rss_mib": max(r[name]["maxrss_mib"] for r in rounds),
            "minus_base_ms": {
                "difference_of_medians": (statistics.median(walls) - statistics.median(base)) * 1000,
                "median_of_paired_differences": statistics.median(
                    (w - b) * 1000 for w, b in zip(walls, base, strict=True)
                ),
            },
        }
    return out


def top_imports(argv: list[str], rounds: int, top: int) -> list[dict]:
    """The ``top`` imports with the largest median cumulative time in ``-X importtime`` of argv
    (each module once, with its nesting depth and self time), largest first."""
    cumulative: dict[str, list[int]] = {}
    self_us: dict[str, list[int]] = {}
    depth: dict[str, int] = {}
    for _ in range(rounds):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            own, cum, raw = line[len("import time:") :].split("|", 2)
            name = raw[1:].rstrip()
            module = name.strip()
            depth[module] = (len(name) - len(name.lstrip())) // 2
            cumulative.setdefault(module, []).append(int(cum))
            self_us.setdefault(module, []).append(int(own))
    rows = [
        {
            "module": module,
            "depth": depth[module],
            "cumulative_us": statistics.median(values),
            "self_us": statistics.median(self_us[module]),
        }
        for module, values in cumulative.items()
        if len(values) == rounds
    ]
    rows.sort(key=lambda r: -r["cumulative_us"])
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="timed rounds after the warm-up (default: 21)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also print python -X importtime's slowest imports of weightpkg --version",
    )
    parser.add_argument("--top", type=int, default=25, help="with --breakdown: how many imports (default 25)")
    add_child_options(parser, pycache=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/weightpkg-bench"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    openssl = shutil.which("openssl") or "openssl"
    facts = machine_facts(openssl, weightpkg, python, args.workdir)
    facts.update(rss_facts())
    facts["bytecode"] = bytecode_fact(python)
    log_facts(facts, log)

    argvs = columns(python, weightpkg)
    result = bench_rounds(argvs, args.runs, log)
    judged = "weightpkg --version" if "weightpkg --version" in argvs else "python -m weightpkg --version"

    breakdown = None
    if args.breakdown:
        target = argvs[judged]
        # python -X importtime -m weightpkg --version, or python -X importtime SCRIPT --version
        argv = [python, "-X", "importtime", *(target[1:] if target[0] == python else target)]
        rows = top_imports(argv, args.runs, args.top)
        packages = import_profile(argv, args.runs)
        breakdown = {"argv": argv, "top_imports": rows, "per_package_us": packages}
        log(f"python -X importtime of {judged} (median of {args.runs}; importtime itself inflates them):")
        log(f"  {'cumulative ms':>13}  {'self ms':>8}  module (indented by nesting depth)")
        for row in rows:
            log(
                f"  {row['cumulative_us'] / 1000:>13.1f}  {row['self_us'] / 1000:>8.1f}  "
                f"{'  ' * row['depth']}{row['module']}"
            )
        log("  cumulative ms per top-level package (nested packages also count in their importer's):")
        for root, value in list(packages.items())[:12]:
            log(f"    {root:<40} {value / 1000:8.1f}")

    log(f"results, medians of {args.runs} rounds:")
    base = result["columns"][BASE]["wall_s"]["median"] * 1000
    for name, column in result["columns"].items():
        wall = column["wall_s"]
        extra = ""
        if name != BASE:
            d = column["minus_base_ms"]
            extra = (
                f"  +{d['difference_of_medians']:.1f} ms over {BASE} "
                f"(median of paired differences +{d['median_of_paired_differences']:.1f} ms)"
            )
        log(
            f"  {name:<30} {wall['median'] * 1000:7.1f} ms"
            f"  [{wall['min'] * 1000:.1f}-{wall['max'] * 1000:.1f}]"
            f"  peak RSS {column['peak_rss_mib']:.1f} MiB{extra}"
        )
    over = result["columns"][judged]["minus_base_ms"]["difference_of_medians"]
    result["goal"] = {"judged": judged, "difference_ms": over, "goal_ms": GOAL_MS, "met": over <= GOAL_MS}
    verdict = "met" if over <= GOAL_MS else "MISSED"
    log(
        f"  {judged} - {BASE}: +{over:.1f} ms (difference of medians; base {base:.1f} ms); "
        f"goal <= +{GOAL_MS:.0f} ms: {verdict}"
    )

    if args.json:
        report = {"machine": facts, "runs": args.runs, **result}
        if breakdown is not None:
            report["breakdown"] = breakdown
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
