#!/usr/bin/env python3
"""Benchmark: ``weightpkg scan`` of large PyTorch checkpoints against ``picklescan`` on the same files.

The question (issue 4, docs/performance.md): how fast is the pickle scanner on a large legacy
(non-zip) checkpoint, and on a zip checkpoint, and how much memory does it need? The peer is
picklescan, the scanner people use for exactly this, run in the same invocation (pairs A B A B,
one warm-up pair not counted, medians).

Run by hand, never as a test (needs torch==2.13.0 to write the checkpoints, and picklescan)::

    python benchmarks/scan_checkpoint.py               # 1 GiB legacy + 1 GiB zip + a many-tensor one
    python benchmarks/scan_checkpoint.py --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hash_file
from hash_file import run_child, summary, weightpkg_command

MiB = 1 << 20


def write_checkpoints(workdir: Path, log) -> dict[str, Path]:
    """Three checkpoints: big tensors (legacy and zip), and many small tensors (a big pickle)."""
    import torch

    workdir.mkdir(parents=True, exist_ok=True)
    files = {
        "legacy-1GiB": workdir / "legacy-1GiB.pt",
        "zip-1GiB": workdir / "zip-1GiB.pt",
        "legacy-100k-tensors": workdir / "legacy-100k-tensors.pt",
    }
    if not files["legacy-1GiB"].exists() or not files["zip-1GiB"].exists():
        log("writing 1 GiB checkpoints (64 tensors of 16 MiB)")
        generator = torch.Generator().manual_seed(0)
        state = {f"layer{i}.weight": torch.rand(4 * MiB, generator=generator) for i in range(64)}
        torch.save(state, files["legacy-1GiB"], _use_new_zipfile_serialization=False)
        torch.save(state, files["zip-1GiB"])
    if not files["legacy-100k-tensors"].exists():
        log("writing a checkpoint of 100,000 small tensors (a large pickle)")
        state = {f"t{i}": torch.zeros(4) for i in range(100_000)}
        torch.save(state, files["legacy-100k-tensors"], _use_new_zipfile_serialization=False)
    return files


def bench(path: Path, weightpkg: list[str], picklescan: str, runs: int, log) -> dict:
    ours = [*weightpkg, "scan", "-q", str(path)]
    theirs = [picklescan, "--path", str(path)]
    run_child(ours), run_child(theirs)  # warm-up pair, not counted
    pairs = []
    for _ in range(runs):
        a, b = run_child(ours), run_child(theirs)
        pairs.append({"weightpkg": a, "picklescan": b, "ratio": a["wall_s"] / b["wall_s"]})
    size = path.stat().st_size
    wp = summary([p["weightpkg"]["wall_s"] for p in pairs])
    ps = summary([p["picklescan"]["wall_s"] for p in pairs])
    result = {
        "file": path.name,
        "bytes": size,
        "weightpkg_wall_s": wp,
        "picklescan_wall_s": ps,
        "median_paired_ratio": summary([p["ratio"] for p in pairs])["median"],
        "weightpkg_gb_per_s": size / wp["median"] / 1e9,
        "weightpkg_peak_rss_mib": max(p["weightpkg"]["maxrss_mib"] for p in pairs),
        "picklescan_peak_rss_mib": max(p["picklescan"]["maxrss_mib"] for p in pairs),
        "weightpkg_verdict": pairs[-1]["weightpkg"]["stdout"].strip(),
    }
    log(
        f"{path.name}: {size / 1e9:.2f} GB  weightpkg {wp['median']:.3f} s "
        f"({result['weightpkg_gb_per_s']:.1f} GB/s, {result['weightpkg_peak_rss_mib']:.1f} MiB)  "
        f"picklescan {ps['median']:.3f} s ({result['picklescan_peak_rss_mib']:.1f} MiB)  "
        f"ratio {result['median_paired_ratio']:.3f}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/weightpkg-bench/scan"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clean", action="store_true", help="delete the checkpoints at the end")
    args = parser.parse_args()

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    picklescan = shutil.which("picklescan")
    if picklescan is None:
        raise SystemExit("picklescan is not installed (pip install picklescan)")
    hash_file.TIME = hash_file.gnu_time()
    weightpkg, _ = weightpkg_command(None)
    files = write_checkpoints(args.workdir, log)
    results = [bench(path, weightpkg, picklescan, args.runs, log) for path in files.values()]
    if args.json:
        print(json.dumps({"results": results}, indent=2, sort_keys=True))
    if args.clean:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
