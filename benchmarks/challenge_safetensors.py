#!/usr/bin/env python3
"""Benchmark: ``weightpkg.tensorfiles.compare_files`` of two 1 GiB safetensors files against
comparing them with safetensors' own loader and numpy.

The goal: on a warm page cache, whole-process wall time of a child that runs
``compare_files(A, B, atol)`` at most 0.45 x that of a child that opens both files with
``safetensors.safe_open(..., framework="numpy")`` and, per tensor, loads both with
``get_tensor`` and compares them with ``np.array_equal`` (and, where they differ, counts the
differing elements and takes ``np.max(np.abs(a - b))``, in the tensor's dtype, and its place),
measured as pairs in the same run. Peak anonymous memory of each child is printed too:
weightpkg's goal is at most the largest tensor + 64 MiB.

Run by hand, never as a test::

    python benchmarks/challenge_safetensors.py               # 256 x 4 MiB F32 tensors, 7 pairs
    python benchmarks/challenge_safetensors.py --big         # also: one 1 GiB F32 tensor
    python benchmarks/challenge_safetensors.py --json        # one JSON object on stdout

The files (A, and B: A with a few elements of one tensor nudged by 1e-4) are written once under
WORKDIR/challenge-safetensors and reused; --clean deletes that folder at the end. Memory is read
two ways, both printed: in every timed child, ``/proc/self/status`` at its end (``VmHWM``, the
peak RSS, which counts the mapped file pages too, and ``RssAnon``/``RssFile`` as they are then);
and in one extra untimed child per side, the peak of ``RssAnon`` sampled every millisecond by a
thread (``sampled peak RssAnon``), since Linux keeps no peak of anonymous memory itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hash_file
from hash_file import (
    MiB,
    gnu_time,
    log_facts,
    machine_facts,
    run_child,
    summary,
    warm_page_cache,
    weightpkg_command,
)

RATIO_GOAL = 0.45
ANON_SLACK_MIB = 64  # weightpkg's anonymous-memory goal: the largest tensor + this
ATOL = 1e-3
NUDGE = 1e-4
SUBDIR = "challenge-safetensors"

#: Common to both children: what /proc/self/status says at the end, and (with SAMPLE=1 in the
#: environment) a thread sampling RssAnon every millisecond for its peak.
_PRELUDE = r"""
import json, os, sys, threading, time
def _status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out
_peak = [0.0]
_stop = threading.Event()
def _sample():
    while not _stop.is_set():
        _peak[0] = max(_peak[0], _status()["RssAnon"])
        time.sleep(0.001)
if os.environ.get("SAMPLE") == "1":
    threading.Thread(target=_sample, daemon=True).start()
def _finish(result):
    _stop.set()
    memory = _status()
    memory["sampled_peak_RssAnon"] = max(_peak[0], memory["RssAnon"]) if os.environ.get("SAMPLE") else None
    print(json.dumps({"result": result, "memory": memory}, sort_keys=True))
"""

_WEIGHTPKG = (
    _PRELUDE
    + r"""
from weightpkg.tensorfiles import compare_files
c = compare_files(sys.argv[1], sys.argv[2], float(sys.argv[3]))
differs = {t.name: [t.differing, t.max_abs_diff, t.flat_index] for t in c.tensors if t.status != "identical"}
_finish({"verdict": c.verdict, "tensors": len(c.tensors), "differs": differs})
"""
)

_BASELINE = (
    _PRELUDE
    + r"""
import numpy as np
from safetensors import safe_open
differs = {}
with safe_open(sys.argv[1], framework="numpy") as fa, safe_open(sys.argv[2], framework="numpy") as fb:
    names = sorted(set(fa.keys()) | set(fb.keys()))
    for name in names:
        a, b = fa.get_tensor(name), fb.get_tensor(name)
        if a.dtype != b.dtype or a.shape != b.shape:
            differs[name] = "dtype or shape"
        elif not np.array_equal(a, b):
            d = np.abs(a - b)
            flat = int(np.argmax(d))
            differs[name] = [int(np.count_nonzero(a != b)), float(d.flat[flat]), flat]
        del a, b
_finish({"tensors": len(names), "differs": differs})
"""
)


# ----------------------------------------------------------------------------- the test files


def header_bytes(count: int, shape: tuple[int, int]) -> bytes:
    """8-byte length and JSON header of ``count`` F32 tensors, names sorted, padded to 8 bytes."""
    size = shape[0] * shape[1] * 4
    header: dict[str, object] = {"__metadata__": {"format": "pt", "generator": "weightpkg benchmark"}}
    for i in range(count):
        header[f"layer.{i:04d}.weight"] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [i * size, (i + 1) * size],
        }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def ensure_pair(folder: Path, label: str, count: int, shape: tuple[int, int], log) -> tuple[Path, Path, str]:
    """A.safetensors and B.safetensors: random normal F32 tensors, written 4 MiB at a time; in B, three
    elements of one tensor (one at its first element, two in its last 4 MiB) are nudged by 1e-4.
    Returns the paths and the name of the nudged tensor."""
    import numpy as np  # only this script's writer needs numpy; the children import their own

    folder.mkdir(parents=True, exist_ok=True)
    a_path, b_path = folder / f"{label}-A.safetensors", folder / f"{label}-B.safetensors"
    changed_index = count // 2
    changed = f"layer.{changed_index:04d}.weight"
    header = header_bytes(count, shape)
    elements = shape[0] * shape[1]
    size = len(header) + count * elements * 4
    if all(p.is_file() and p.stat().st_size == size for p in (a_path, b_path)):
        log(f"reusing {a_path} and {b_path}")
        return a_path, b_path, changed
    free = shutil.disk_usage(folder).free
    if free < 2 * size + (1 << 30):
        need = 2 * size / (1 << 30) + 1
        raise SystemExit(f"{folder}: {free / (1 << 30):.1f} GiB free, need {need:.1f} GiB")
    log(f"writing {a_path} and {b_path} ({count} F32 tensors {list(shape)}, {size} bytes each) ...")
    rng = np.random.default_rng(20261123)
    piece = 1 << 20  # elements per write: 4 MiB
    nudged = {0, elements - 7, elements - piece // 2} if elements > piece else {0, elements - 7}
    with open(a_path, "wb", buffering=0) as fa, open(b_path, "wb", buffering=0) as fb:
        fa.write(header)
        fb.write(header)
        for i in range(count):
            for start in range(0, elements, piece):
                values = rng.standard_normal(min(piece, elements - start), dtype=np.float32)
                fa.write(values.tobytes())
                if i == changed_index:
                    for at in nudged:
                        if start <= at < start + values.size:
                            values[at - start] += np.float32(NUDGE)
                fb.write(values.tobytes())
        os.fsync(fa.fileno())
        os.fsync(fb.fileno())
    return a_path, b_path, changed


# ----------------------------------------------------------------------------- measurements


def child(argv: list[str]) -> dict:
    result = run_child(argv)
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    return {**{k: v for k, v in result.items() if k != "stdout"}, **report}


def check(wp: dict, base: dict, changed: str) -> None:
    """Both sides must find exactly the nudged tensor, the same count of elements and the same max |Δ|."""
    ours, theirs = wp["result"]["differs"], base["result"]["differs"]
    if set(ours) != {changed} or set(theirs) != {changed}:
        found = f"weightpkg {sorted(ours)}, baseline {sorted(theirs)}"
        raise SystemExit(f"expected only {changed} to differ: {found}")
    (n1, d1, at1), (n2, d2, at2) = ours[changed], theirs[changed]
    if n1 != n2 or at1 != at2 or abs(d1 - d2) > 1e-6 * abs(d2):  # the baseline subtracts in float32
        raise SystemExit(f"disagree on {changed}: weightpkg {ours[changed]}, baseline {theirs[changed]}")
    if wp["result"]["verdict"] != "within-tolerance":
        raise SystemExit(f"weightpkg's verdict is {wp['result']['verdict']}, expected within-tolerance")


def bench(python: str, a: Path, b: Path, changed: str, runs: int, log) -> dict:
    wp_argv = [python, "-c", _WEIGHTPKG, str(a), str(b), str(ATOL)]
    base_argv = [python, "-c", _BASELINE, str(a), str(b)]
    log("warm-up pair (not counted), checking that both find the same difference")
    check(child(wp_argv), child(base_argv), changed)
    log(f"{runs} pairs, weightpkg then baseline (whole-process wall s; memory MiB at the child's end):")
    head = ("pair", "weightpkg", "baseline", "ratio", "wp VmHWM", "wp RssAnon", "base VmHWM", "base RssAnon")
    log("  {:>4}  {:>9}  {:>9}  {:>6}  {:>9}  {:>10}  {:>10}  {:>12}".format(*head))
    pairs = []
    for i in range(1, runs + 1):
        wp, base = child(wp_argv), child(base_argv)
        check(wp, base, changed)
        pairs.append({"weightpkg": wp, "baseline": base, "ratio": wp["wall_s"] / base["wall_s"]})
        log(
            f"  {i:>4}  {wp['wall_s']:>9.3f}  {base['wall_s']:>9.3f}  {wp['wall_s'] / base['wall_s']:>6.3f}"
            f"  {wp['memory']['VmHWM']:>9.1f}  {wp['memory']['RssAnon']:>10.1f}"
            f"  {base['memory']['VmHWM']:>10.1f}  {base['memory']['RssAnon']:>12.1f}"
        )
    log("one more child each with a thread sampling RssAnon every millisecond (untimed):")
    os.environ["SAMPLE"] = "1"
    try:
        wp_sampled, base_sampled = child(wp_argv), child(base_argv)
    finally:
        del os.environ["SAMPLE"]
    wp_peak = wp_sampled["memory"]["sampled_peak_RssAnon"]
    base_peak = base_sampled["memory"]["sampled_peak_RssAnon"]
    log(f"  sampled peak RssAnon: weightpkg {wp_peak:.1f} MiB, baseline {base_peak:.1f} MiB")
    wp_wall = summary([p["weightpkg"]["wall_s"] for p in pairs])
    base_wall = summary([p["baseline"]["wall_s"] for p in pairs])
    ratio = summary([p["ratio"] for p in pairs])
    return {
        "pairs": pairs,
        "weightpkg_wall_s": wp_wall,
        "baseline_wall_s": base_wall,
        "weightpkg_cpu_s": summary([p["weightpkg"]["user_s"] + p["weightpkg"]["sys_s"] for p in pairs]),
        "baseline_cpu_s": summary([p["baseline"]["user_s"] + p["baseline"]["sys_s"] for p in pairs]),
        "median_paired_ratio": ratio["median"],
        "paired_ratio": ratio,
        "ratio_of_medians": wp_wall["median"] / base_wall["median"],
        "ratio_goal_met": ratio["median"] <= RATIO_GOAL,
        "weightpkg_vmhwm_mib": max(p["weightpkg"]["memory"]["VmHWM"] for p in pairs),
        "baseline_vmhwm_mib": max(p["baseline"]["memory"]["VmHWM"] for p in pairs),
        "weightpkg_rss_anon_at_end_mib": max(p["weightpkg"]["memory"]["RssAnon"] for p in pairs),
        "baseline_rss_anon_at_end_mib": max(p["baseline"]["memory"]["RssAnon"] for p in pairs),
        "weightpkg_sampled_peak_anon_mib": wp_peak,
        "baseline_sampled_peak_anon_mib": base_peak,
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/weightpkg-bench"),
        help=f"scratch folder; this script uses WORKDIR/{SUBDIR} (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed pairs after the warm-up (default: 7)")
    parser.add_argument("--big", action="store_true", help="also compare two files of one 1 GiB tensor")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    parser.add_argument("--clean", action="store_true", help=f"delete WORKDIR/{SUBDIR} at the end")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    hash_file.TIME = gnu_time()
    weightpkg, python = weightpkg_command(None)
    folder = args.workdir / SUBDIR
    facts = machine_facts(shutil.which("openssl") or "openssl", weightpkg, python, folder)
    facts.pop("openssl", None)
    versions = "import numpy, safetensors; print(numpy.__version__, safetensors.__version__)"
    numpy_version, safetensors_version = hash_file.capture([python, "-c", versions]).split()
    facts.update(numpy=numpy_version, safetensors=safetensors_version)
    facts["memory_source"] = (
        "/proc/self/status at the child's end (VmHWM: peak RSS including mapped file pages; RssAnon, "
        "RssFile: then), and a 1 ms RssAnon sampling thread in one extra child per side"
    )
    log_facts(facts, log)

    cases = [("many", 256, (1024, 1024))]
    if args.big:
        cases.append(("big", 1, (262144, 1024)))
    report: dict = {"machine": facts, "runs": args.runs, "atol": ATOL, "cases": {}}
    try:
        for label, count, shape in cases:
            a, b, changed = ensure_pair(folder, label, count, shape, log)
            for path in (a, b):
                log(f"warming the page cache: {warm_page_cache(path):.2f} s to read {path.name}")
            largest_mib = shape[0] * shape[1] * 4 / MiB
            log(f"case {label!r}: {count} F32 tensor(s) {list(shape)}, {changed} nudged in B")
            result = bench(python, a, b, changed, args.runs, log)
            result["anon_goal_mib"] = largest_mib + ANON_SLACK_MIB
            result["anon_goal_met"] = result["weightpkg_sampled_peak_anon_mib"] <= result["anon_goal_mib"]
            report["cases"][label] = result
            wp, base = result["weightpkg_wall_s"], result["baseline_wall_s"]
            log(f"results, case {label!r}, medians of {args.runs} pairs:")
            log(
                f"  weightpkg compare_files   {wp['median']:.3f} s [{wp['min']:.3f}-{wp['max']:.3f}]"
                f"  cpu {result['weightpkg_cpu_s']['median']:.3f} s"
            )
            log(
                f"  safe_open + get_tensor    {base['median']:.3f} s [{base['min']:.3f}-{base['max']:.3f}]"
                f"  cpu {result['baseline_cpu_s']['median']:.3f} s"
            )
            verdict = "met" if result["ratio_goal_met"] else "MISSED"
            log(
                f"  ratio weightpkg/baseline  {result['median_paired_ratio']:.3f} (median of paired ratios; "
                f"ratio of medians {result['ratio_of_medians']:.3f}); goal <= {RATIO_GOAL}: {verdict}"
            )
            verdict = "met" if result["anon_goal_met"] else "MISSED"
            log(
                f"  sampled peak RssAnon      weightpkg {result['weightpkg_sampled_peak_anon_mib']:.1f} MiB, "
                f"baseline {result['baseline_sampled_peak_anon_mib']:.1f} MiB; "
                f"goal <= {result['anon_goal_mib']:.0f} MiB: {verdict}"
            )
            log(
                f"  VmHWM (incl. file pages)  weightpkg {result['weightpkg_vmhwm_mib']:.1f} MiB, "
                f"baseline {result['baseline_vmhwm_mib']:.1f} MiB"
            )
    finally:
        if args.clean and folder.exists():
            shutil.rmtree(folder)
            log(f"deleted {folder}")
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
