#!/usr/bin/env python3
"""Benchmark: ``weightpkg hash`` of a big file against ``openssl dgst -sha256`` of the same file.

The goal (docs/performance.md): on a warm page cache, whole-process wall time of
``weightpkg hash --format hex FILE`` at most 1.0 x that of ``openssl dgst -sha256 FILE``,
measured as pairs in the same run, and weightpkg's peak RSS at most 64 MiB.

Run by hand, never as a test::

    python benchmarks/hash_file.py                 # 1 GiB, 7 pairs
    python benchmarks/hash_file.py --size 4G       # RSS must stay flat as the file grows
    python benchmarks/hash_file.py --breakdown     # where weightpkg's time goes
    python benchmarks/hash_file.py --json          # one JSON object on stdout

The random test file is written once under --workdir and reused; --clean deletes it at the end.
Only the standard library is used. Each command runs as its own child process: wall time is
taken around spawn and reap, CPU time comes from ``os.wait4``, and peak RSS from GNU time's ``%M``
when ``/usr/bin/time`` is there (else ``ru_maxrss`` from ``os.wait4`` after a plain fork, which
cannot read below the memory the fork copied; the floor is printed as ``peak_rss_floor_mib``).
The ratio goal is judged on the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
WRITE_CHUNK = 8 * MiB
RATIO_GOAL = 1.0
RSS_GOAL_MIB = 64.0


# ----------------------------------------------------------------------------- running children


def gnu_time() -> str | None:
    """``/usr/bin/time`` if it is GNU time (``-f``/``-o``), else None."""
    path = shutil.which("time", path="/usr/bin:/bin")
    if path is None:
        return None
    with tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run([path, "-f", "%M", "-o", report.name, "true"], capture_output=True)
        return path if done.returncode == 0 and report.read().strip().isdigit() else None


#: How peak RSS is read; set once in main(). ``ru_maxrss`` of a child started with vfork (what
#: subprocess does) is at least the *parent's* peak RSS, and after fork at least the anonymous memory
#: it copied, so the clean reading comes from a small C parent: GNU time's ``%M``.
TIME: str | None = None


def run_child(argv: list[str]) -> dict:
    """Run ``argv`` to completion; wall seconds, user/sys CPU seconds, peak RSS (MiB) and stdout.

    Wall time is taken here around spawn and reap; CPU time comes from ``os.wait4`` (it includes
    the command when GNU time wraps it). Output goes to temporary files, not pipes, so nothing can
    block the child and nothing else reaps it.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as report,
    ):
        if TIME:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [TIME, "-f", "%M", "-o", report.name, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
            pid = proc.pid
        else:
            start = time.perf_counter()
            pid = os.fork()
            if pid == 0:  # a real fork, not vfork: the child does not inherit this script's peak
                try:
                    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                    os.dup2(out.fileno(), 1)
                    os.dup2(err.fileno(), 2)
                    os.execvp(argv[0], argv)
                finally:
                    os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        if TIME:
            proc.returncode = os.waitstatus_to_exitcode(status)
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        peak_kib = int(report.read().strip().splitlines()[-1]) if TIME and code == 0 else usage.ru_maxrss
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}: {stderr.strip()}")
    return {
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_mib": peak_kib / 1024,  # Linux reports KiB
        "stdout": stdout,
    }


def capture(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unavailable ({exc})"


# ----------------------------------------------------------------------------- the commands


def weightpkg_command(explicit: str | None) -> tuple[list[str], str]:
    """The real entry point (never a pyenv shim, which adds ~80 ms); returns (argv prefix, python).

    A venv's interpreter is kept as named, not resolved: resolving its symlink would run the base
    interpreter, outside the venv (with the base's ``.pth`` hooks, which a venv does not load)."""
    python = unshimmed(sys.executable)
    if explicit:
        return explicit.split(), python
    script = Path(sys.prefix) / "bin" / "weightpkg"
    if script.is_file():
        first = script.read_text(errors="replace").splitlines()[0]
        if first.startswith("#!"):
            python = unshimmed(first[2:].strip().split()[0])
        return [str(script)], python
    return [python, "-m", "weightpkg"], python


def unshimmed(python: str) -> str:
    """``python`` itself, or the interpreter a pyenv shim would run."""
    return os.path.realpath(python) if "/shims/" in python else python


PYCACHE_HELP = (
    "run every child with PYTHONPYCACHEPREFIX=DIR and bytecode writing on, so weightpkg's modules "
    "are compiled once (in the warm-up) as in a wheel install, not on every start"
)


def add_child_options(parser: argparse.ArgumentParser, *, pycache: bool) -> None:
    """The options of every benchmark that times weightpkg in child processes."""
    parser.add_argument("--weightpkg", help="command to run instead of the installed entry point")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text")
    parser.add_argument(
        "--no-time", action="store_true", help="read peak RSS from os.wait4, not /usr/bin/time (coarser)"
    )
    if pycache:
        parser.add_argument("--pycache-prefix", type=Path, help=PYCACHE_HELP)


def prepare_children(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[list[str], str]:
    """Set how children are timed (GNU time or wait4) and whether they cache bytecode; return the
    weightpkg command they run and its python, warning when it is a pyenv shim (whose start-up
    would be counted)."""
    global TIME
    TIME = None if args.no_time else gnu_time()  # run_child reads it
    # `python -c`/`-m` children must import the weightpkg under test, not the checkout that the
    # current folder may be (Python 3.11's -P: no unsafe first entry on sys.path).
    os.environ["PYTHONSAFEPATH"] = "1"
    prefix = getattr(args, "pycache_prefix", None)
    if prefix:  # the children inherit this environment
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(prefix.resolve())
    weightpkg, python = weightpkg_command(args.weightpkg)
    if any("/shims/" in part for part in [*weightpkg, python]):
        log(f"warning: {weightpkg[0]} is a shim; its start-up cost will be counted")
    return weightpkg, python


def rss_facts() -> dict[str, object]:
    """How the children's peak RSS is read, and the least it reads (that of ``true``)."""
    source = f"GNU time %M ({TIME})" if TIME else "os.wait4 ru_maxrss after fork (includes the copied memory)"
    return {"peak_rss_source": source, "peak_rss_floor_mib": round(run_child(["true"])["maxrss_mib"], 1)}


def log_facts(facts: dict, log: Callable[[str], None]) -> None:
    log("machine:")
    for key, value in facts.items():
        log(f"  {key:<18} {value}")


def openssl_digest(output: str) -> str:
    # "SHA2-256(path)= <hex>" (3.x) or "SHA256(path)= <hex>" (1.1)
    return output.strip().rsplit("= ", 1)[-1].strip()


# ----------------------------------------------------------------------------- the test file


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size like 1G, 4G or 512M, not {text!r}")
    return int(match[1]) * {"": 1, "K": 1 << 10, "M": MiB, "G": GiB}[match[2].upper()]


def size_label(size: int) -> str:
    if size % GiB == 0:
        return f"{size // GiB} GiB"
    if size % MiB == 0:
        return f"{size // MiB} MiB"
    return f"{size} B"


def ensure_file(workdir: Path, size: int, log) -> Path:
    """A file of ``size`` random bytes, written once in chunks (never one big allocation) and reused."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"rand-{size_label(size).replace(' ', '')}.bin"
    if path.is_file() and path.stat().st_size == size:
        log(f"reusing {path}")
        return path
    free = shutil.disk_usage(workdir).free
    if free < size + GiB:
        raise SystemExit(f"{workdir}: {free / GiB:.1f} GiB free, need {size / GiB + 1:.1f} GiB")
    log(f"writing {size_label(size)} of random bytes to {path} ...")
    partial = path.with_suffix(".partial")
    start = time.perf_counter()
    with open(partial, "wb", buffering=0) as handle:
        left = size
        while left:
            n = min(WRITE_CHUNK, left)
            handle.write(os.urandom(n))
            left -= n
        os.fsync(handle.fileno())  # no writeback during the timed runs
    os.replace(partial, path)
    log(f"  written in {time.perf_counter() - start:.1f} s")
    return path


def warm_page_cache(path: Path) -> float:
    start = time.perf_counter()
    buf = bytearray(WRITE_CHUNK)
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buf):
            pass
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- machine facts


def machine_facts(openssl: str, weightpkg: list[str], python: str, workdir: Path) -> dict:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())  # the first CPU's entries
    except OSError:
        pass
    cpu = info.get("model name", platform.processor() or "unknown")
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    flags = set(info.get("flags", "").split())
    mem_total = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "sha_ni": "sha_ni" in flags,
        "nproc": usable,
        "memory": mem_total,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": capture([python, "-c", "import sys; print(sys.version.split()[0])"]),
        "python_path": python,
        "openssl": capture([openssl, "version"]),
        "weightpkg": capture([*weightpkg, "--version"]),
        "weightpkg_command": " ".join(weightpkg),
        "workdir": str(workdir),
    }


# ----------------------------------------------------------------------------- measurements


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def bench_pairs(path: Path, weightpkg: list[str], openssl: str, runs: int, log) -> dict:
    wp_argv = [*weightpkg, "hash", "--format", "hex", str(path)]
    os_argv = [openssl, "dgst", "-sha256", str(path)]

    log("checking that both agree (this pair is the warm-up, not counted)")
    wp, ossl = run_child(wp_argv), run_child(os_argv)
    wp_hex, os_hex = wp["stdout"].strip(), openssl_digest(ossl["stdout"])
    if wp_hex != os_hex:
        raise SystemExit(f"digests differ: weightpkg {wp_hex}, openssl {os_hex}")
    log(f"  sha256 {wp_hex}")

    log(f"{runs} pairs, weightpkg then openssl (whole-process wall seconds):")
    header = ("pair", "weightpkg", "openssl", "ratio", "wp RSS MiB", "wp user+sys")
    log("  {:>4}  {:>9}  {:>9}  {:>6}  {:>10}  {:>11}".format(*header))
    pairs = []
    for i in range(1, runs + 1):
        a = run_child(wp_argv)
        b = run_child(os_argv)
        if a["stdout"].strip() != wp_hex or openssl_digest(b["stdout"]) != wp_hex:
            raise SystemExit(f"pair {i}: a digest changed between runs")
        pair = {
            "weightpkg": {k: v for k, v in a.items() if k != "stdout"},
            "openssl": {k: v for k, v in b.items() if k != "stdout"},
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
    wp_rss = max(p["weightpkg"]["maxrss_mib"] for p in pairs)
    os_rss = max(p["openssl"]["maxrss_mib"] for p in pairs)
    return {
        "sha256": wp_hex,
        "pairs": pairs,
        "weightpkg_wall_s": wp_wall,
        "openssl_wall_s": os_wall,
        "weightpkg_cpu_s": summary([p["weightpkg"]["user_s"] + p["weightpkg"]["sys_s"] for p in pairs]),
        "openssl_cpu_s": summary([p["openssl"]["user_s"] + p["openssl"]["sys_s"] for p in pairs]),
        "ratio_of_medians": wp_wall["median"] / os_wall["median"],
        "median_paired_ratio": ratio["median"],
        "paired_ratio": ratio,
        "weightpkg_peak_rss_mib": wp_rss,
        "openssl_peak_rss_mib": os_rss,
        "ratio_goal_met": ratio["median"] <= RATIO_GOAL,
        "rss_goal_met": wp_rss <= RSS_GOAL_MIB,
    }


_IN_PROCESS = """
import sys, time
t0 = time.perf_counter()
from weightpkg.core.digest import CHUNK_SIZE, hash_stream
t1 = time.perf_counter()
if sys.argv[2] == "aligned":  # what-if: a page-aligned buffer handed to the same loop
    import mmap
    buffer = mmap.mmap(-1, CHUNK_SIZE)
else:
    buffer = None  # hash_stream's own bytearray
with open(sys.argv[1], "rb", buffering=0) as f:
    hash_stream(f, buffer)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

_ALIGNMENT = (
    "import ctypes; b = bytearray(1 << 20); print(ctypes.addressof(ctypes.c_char.from_buffer(b)) % 4096)"
)


def bench_breakdown(path: Path, weightpkg: list[str], openssl: str, python: str, runs: int, log) -> dict:
    """Median whole-process cost of each layer of ``weightpkg hash``, interleaved run by run."""
    tiny = path.parent / "tiny-1KiB.bin"
    if not tiny.is_file() or tiny.stat().st_size != 1024:
        tiny.write_bytes(os.urandom(1024))
    steps = {
        "python -S -c pass (no site)": [python, "-S", "-c", "pass"],
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import weightpkg.cli'": [python, "-c", "import weightpkg.cli"],
        "weightpkg --version": [*weightpkg, "--version"],
        "weightpkg hash --format hex, 1 KiB file": [*weightpkg, "hash", "--format", "hex", str(tiny)],
        "openssl dgst -sha256, 1 KiB file": [openssl, "dgst", "-sha256", str(tiny)],
        "child: hash_stream(file)": [python, "-c", _IN_PROCESS, str(path), "default"],
        "child: hash_stream(file, aligned buf)": [python, "-c", _IN_PROCESS, str(path), "aligned"],
    }
    log(f"breakdown, {runs} interleaved rounds after one warm-up (median whole-process wall s):")
    walls: dict[str, list[float]] = {name: [] for name in steps}
    rss: dict[str, float] = dict.fromkeys(steps, 0.0)
    loops: dict[str, list[float]] = {"default": [], "aligned": []}
    for round_ in range(runs + 1):
        for name, argv in steps.items():
            result = run_child(argv)
            if round_ == 0:
                continue
            walls[name].append(result["wall_s"])
            rss[name] = max(rss[name], result["maxrss_mib"])
            if argv[-2] == str(path):
                loops[argv[-1]].append(float(result["stdout"].split()[1]))
    out = {name: {"wall_s": summary(v), "maxrss_mib": rss[name]} for name, v in walls.items()}
    size = path.stat().st_size
    for mode, label in (("default", "bytearray"), ("aligned", "aligned buf")):
        loop = summary(loops[mode])
        out[f"loop only (in-process timer), {label}"] = {
            "wall_s": loop,
            "maxrss_mib": None,
            "gb_per_s": size / loop["median"] / 1e9,
        }
    offset = int(run_child([python, "-c", _ALIGNMENT])["stdout"])
    out["bytearray(1 MiB) address % 4096"] = offset
    for name, value in out.items():
        if isinstance(value, int):
            log(f"  {name:<44} {value}")
            continue
        peak = value["maxrss_mib"]
        extra = f"{peak:6.1f} MiB" if peak is not None else f"{value['gb_per_s']:.2f} GB/s"
        log(f"  {name:<44} {value['wall_s']['median']:8.3f}  {extra}")
    return out


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/weightpkg-bench"),
        help="scratch folder for the cached test file (default: %(default)s)",
    )
    parser.add_argument("--size", type=parse_size, default=GiB, help="test file size: 1G (default), 4G, 512M")
    parser.add_argument("--runs", type=int, default=7, help="timed pairs after the warm-up (default: 7)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time interpreter start-up, imports and the in-process hashing loop",
    )
    add_child_options(parser, pycache=False)
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    parser.add_argument("--clean", action="store_true", help="delete the test file at the end")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    facts = machine_facts(args.openssl, weightpkg, python, args.workdir)
    facts.update(rss_facts())
    log_facts(facts, log)

    path = ensure_file(args.workdir, args.size, log)
    try:
        log(f"warming the page cache: {warm_page_cache(path):.2f} s to read {size_label(args.size)}")
        result = bench_pairs(path, weightpkg, args.openssl, args.runs, log)
        breakdown = (
            bench_breakdown(path, weightpkg, args.openssl, python, args.runs, log) if args.breakdown else None
        )
    finally:
        if args.clean:
            for leftover in (path, args.workdir / "tiny-1KiB.bin"):
                if leftover.exists():
                    leftover.unlink()
                    log(f"deleted {leftover}")

    wp, ossl = result["weightpkg_wall_s"], result["openssl_wall_s"]
    gb = args.size / 1e9
    log(f"results, {size_label(args.size)}, medians of {args.runs} pairs:")
    log(
        f"  weightpkg hash --format hex   {wp['median']:.3f} s ({gb / wp['median']:.2f} GB/s)"
        f"  [{wp['min']:.3f}-{wp['max']:.3f}]  cpu {result['weightpkg_cpu_s']['median']:.3f} s"
    )
    log(
        f"  openssl dgst -sha256          {ossl['median']:.3f} s ({gb / ossl['median']:.2f} GB/s)"
        f"  [{ossl['min']:.3f}-{ossl['max']:.3f}]  cpu {result['openssl_cpu_s']['median']:.3f} s"
    )
    verdict = "met" if result["ratio_goal_met"] else "MISSED"
    log(
        f"  ratio weightpkg/openssl        {result['median_paired_ratio']:.3f} (median of paired ratios; "
        f"ratio of medians {result['ratio_of_medians']:.3f}); goal <= {RATIO_GOAL}: {verdict}"
    )
    verdict = "met" if result["rss_goal_met"] else "MISSED"
    log(
        f"  weightpkg peak RSS             {result['weightpkg_peak_rss_mib']:.1f} MiB "
        f"(openssl {result['openssl_peak_rss_mib']:.1f} MiB); goal <= {RSS_GOAL_MIB:.0f} MiB: {verdict}"
    )

    if args.json:
        report = {"machine": facts, "size_bytes": args.size, "runs": args.runs, **result}
        if breakdown is not None:
            report["breakdown"] = breakdown
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
