#!/usr/bin/env python3
"""Benchmark: checking a 4-shard model directory, ``weightpkg verify`` against ``model_signing verify key``.

The goal (issue 9, docs/performance.md): on a warm page cache, whole-process wall time of
``weightpkg --store S verify RECIPE`` (the recipe pins the four shards; the store already holds
them, so verify re-hashes every store entry and parses every safetensors header) at most 0.6 x
that of ``model_signing verify key --signature SIG --public_key PUB DIR`` on the same model,
measured in the same run. A third column, ``weightpkg check-signature DIR --model-key PUB
--signature SIG``, does exactly model_signing's job (hash the directory, check the manifest and
the ECDSA signature) and is printed beside it.

Run by hand, never as a test::

    python benchmarks/verify_model_dir.py              # 1 GiB in 4 shards, 7 rounds
    python benchmarks/verify_model_dir.py --json       # one JSON object on stdout
    python benchmarks/verify_model_dir.py --size 32M --runs 2   # a smoke run

The shards, recipe, store, key pair and signature are made once under --workdir and reused;
--clean deletes them at the end. The signature is made by the real ``model_signing sign key``
(found on PATH, else in /tmp/ci/main/.venv/bin, else --model-signing); without model_signing the
script signs with ``weightpkg sign model``, skips the model_signing column and says so. Only the
standard library is used (the key pair comes from the openssl command); the child-process timing
and machine facts come from hash_file.py beside this script.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hash_file import (
    GiB,
    MiB,
    add_child_options,
    capture,
    log_facts,
    machine_facts,
    parse_size,
    prepare_children,
    rss_facts,
    run_child,
    summary,
    warm_page_cache,
)
from verify_safetensors import bytecode_fact, safetensors_header, write_safetensors

RATIO_GOAL = 0.6
SHARDS = 4
TENSOR_BYTES = 4 * MiB  # one F32 tensor of shape [1024, 1024]
SUBDIR = "verify-model-dir"
CI_MODEL_SIGNING = Path("/tmp/ci/main/.venv/bin/model_signing")

WP = "weightpkg verify"
MS = "model_signing verify key"
CS = "weightpkg check-signature"
SHORT = {WP: "verify", MS: "model_signing", CS: "check-sig"}


# ----------------------------------------------------------------------------- model_signing


def find_model_signing(explicit: str | None) -> tuple[str | None, str]:
    """The model_signing command and how it was found, or (None, why not)."""
    candidates = [explicit] if explicit else [shutil.which("model_signing"), str(CI_MODEL_SIGNING)]
    tried = []
    for candidate in candidates:
        if not candidate:
            continue
        if not Path(candidate).is_file():
            tried.append(f"{candidate}: not there")
            continue
        done = subprocess.run([candidate, "--help"], capture_output=True, text=True)
        if done.returncode != 0:  # model-signing 1.1.1 fails at import without pyopenssl
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            tried.append(f"{candidate}: --help exited {done.returncode} ({tail})")
            continue
        return candidate, "ok"
    return None, "; ".join(tried) or "not found on PATH"


def model_signing_version(command: str) -> str:
    """The model-signing distribution's version, read by the command's own interpreter."""
    first = Path(command).read_text(errors="replace").splitlines()[0]
    if not first.startswith("#!"):
        return "unknown"
    python = first[2:].strip().split()[0]
    code = "import importlib.metadata as m; print(m.version('model-signing'))"
    return capture([python, "-c", code])


# ----------------------------------------------------------------------------- the model


def recipe_text(shards: list[tuple[str, str, int]]) -> str:
    out = [
        "# Written by benchmarks/verify_model_dir.py: random tensors, nothing to publish.",
        "schema = 1",
        "",
        "[package]",
        'name = "bench-model-dir"',
        'version = "1.0"',
        'summary = "Four shards of random F32 tensors for benchmarks/verify_model_dir.py"',
        "",
        "[license]",
        'weights = "MIT"',
        'upstream = "MIT"',
    ]
    for name, sha256, size in shards:
        out += [
            "",
            "[[weights]]",
            f'path = "{name}"',
            f'sha256 = "{sha256}"',
            f"size = {size}",
            'format = "safetensors"',
            "",
            "[[weights.sources]]",
            'kind = "path"',
            f'path = "model/{name}"',
        ]
    return "\n".join(out) + "\n"


def ensure_model(root: Path, size: int, log) -> tuple[Path, list[tuple[str, str, int]], bool]:
    """``root/model/`` with 4 shards of ``size / 4`` bytes of tensor data, and ``root/bench.toml``
    pinning them; (recipe, [(name, sha256, size)], whether the shards were (re)written)."""
    model = root / "model"
    pins = root / "pins.json"
    per_shard = size // SHARDS
    count = per_shard // TENSOR_BYTES
    shard_size = len(safetensors_header(count, TENSOR_BYTES)) + per_shard
    names = [f"model-{i:05d}-of-{SHARDS:05d}.safetensors" for i in range(1, SHARDS + 1)]
    known = json.loads(pins.read_text()) if pins.is_file() else {}
    if all((model / n).is_file() and (model / n).stat().st_size == shard_size for n in names) and set(
        known
    ) == set(names):
        log(f"reusing {model}")
        shards = [(n, known[n], shard_size) for n in names]
        written = False
    else:
        for stale in (model, root / "store", root / "model.sig", root / "model.sig.by"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        model.mkdir(parents=True)
        shards = []
        for name in names:
            sha256, written_size = write_safetensors(model / name, count, TENSOR_BYTES, log)
            shards.append((name, sha256, written_size))
        pins.write_text(json.dumps({n: s for n, s, _ in shards}, indent=1) + "\n")
        written = True
    recipe = root / "bench.toml"
    text = recipe_text(shards)
    if not recipe.is_file() or recipe.read_text() != text:
        recipe.write_text(text)
    return recipe, shards, written


def ensure_keys(root: Path, openssl: str, log) -> tuple[Path, Path]:
    """An ECDSA P-256 key pair (PKCS#8 private key, SubjectPublicKeyInfo public key, PEM)."""
    keys = root / "keys"
    private, public = keys / "ec.pem", keys / "ec.pub.pem"
    if private.is_file() and public.is_file():
        return private, public
    keys.mkdir(parents=True, exist_ok=True)
    for argv in (
        [openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(private)],
        [openssl, "pkey", "-in", str(private), "-pubout", "-out", str(public)],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    log(f"made an ECDSA P-256 key pair in {keys}")
    return private, public


def ensure_signature(
    root: Path, model: Path, private: Path, weightpkg: list[str], model_signing: str | None, log
) -> tuple[Path, str]:
    """``root/model.sig`` (outside the model), made once; (path, what made it)."""
    signature, by_file = root / "model.sig", root / "model.sig.by"
    wanted = "model_signing sign key" if model_signing else "weightpkg sign model"
    if signature.is_file() and by_file.is_file() and by_file.read_text().strip() == wanted:
        log(f"reusing {signature} (made by {wanted})")
        return signature, wanted
    if model_signing:
        argv = [model_signing, "sign", "key", str(model), "--private_key", str(private)]
        argv += ["--signature", str(signature)]
    else:
        argv = [*weightpkg, "sign", "model", str(model), "--key", str(private), "--output", str(signature)]
    result = run_child(argv)
    by_file.write_text(wanted + "\n")
    log(f"signed {model} with {wanted} in {result['wall_s']:.2f} s")
    return signature, wanted


# ----------------------------------------------------------------------------- measurements


def check_once(argvs: dict[str, list[str]], shards: list[tuple[str, str, int]], count: int, log) -> dict:
    """Untimed: verify --json passed all four files, re-hashed from the store, headers parsed;
    model_signing and check-signature accepted the signature."""
    wp_json = [*argvs[WP][:-1], "--json", argvs[WP][-1]]
    files = json.loads(run_child(wp_json)["stdout"])["recipes"][0]["files"]
    pins = {name: sha256 for name, sha256, _ in shards}
    for entry in files:
        if entry.get("status") != "ok" or entry.get("sha256") != pins.get(entry.get("path")):
            raise SystemExit(f"verify --json did not pass {entry.get('path')}: {json.dumps(entry)[:2000]}")
        if entry.get("source") != "store":
            raise SystemExit(f"verify did not re-hash the store entry (source: {entry.get('source')!r})")
        tensors = entry.get("details", {}).get("safetensors", {}).get("tensors")
        if tensors != count:
            raise SystemExit(f"verify parsed {tensors} tensors of {entry['path']}, it has {count}")
    if len(files) != SHARDS:
        raise SystemExit(f"verify checked {len(files)} files, the recipe pins {SHARDS}")
    log(f"  verify --json: {SHARDS} files ok, source 'store' (re-hashed), {count} tensors each")
    out = {"verify_files": len(files)}
    for name in (MS, CS):
        if name in argvs:
            result = run_child(argvs[name])  # raises unless it exits 0
            said = (result["stdout"].strip().splitlines() or ["(nothing on stdout)"])[-1]
            log(f"  {name}: exit 0, {said[:120]}")
            out[name] = said
    return out


def bench_rounds(argvs: dict[str, list[str]], runs: int, log) -> dict:
    """One uncounted round, then ``runs`` rounds; the order rotates each round."""
    names = list(argvs)
    log(f"warm-up round (not counted), then {runs} rounds, order rotating (whole-process wall seconds):")
    for name in names:
        run_child(argvs[name])
    heads = [SHORT[n] for n in names] + (["verify/ms", "check-sig/ms"] if MS in names else [])
    log("  round  " + "  ".join(f"{h:>13}" for h in heads))
    rounds = []
    for i in range(runs):
        shift = i % len(names)
        results = {}
        for name in names[shift:] + names[:shift]:
            r = run_child(argvs[name])
            results[name] = {k: r[k] for k in ("wall_s", "user_s", "sys_s", "maxrss_mib")}
        one = {"order": names[shift:] + names[:shift], "runs": results}
        cells = [f"{results[n]['wall_s']:>13.3f}" for n in names]
        if MS in names:
            one["ratio_verify"] = results[WP]["wall_s"] / results[MS]["wall_s"]
            cells.append(f"{one['ratio_verify']:>13.3f}")
            if CS in names:
                one["ratio_check_signature"] = results[CS]["wall_s"] / results[MS]["wall_s"]
                cells.append(f"{one['ratio_check_signature']:>13.3f}")
            else:
                cells.append(f"{'-':>13}")
        rounds.append(one)
        log(f"  {i + 1:>5}  " + "  ".join(cells))
    out: dict = {"rounds": rounds, "columns": {}}
    for name in names:
        walls = [r["runs"][name]["wall_s"] for r in rounds]
        cpus = [r["runs"][name]["user_s"] + r["runs"][name]["sys_s"] for r in rounds]
        out["columns"][name] = {
            "argv": argvs[name],
            "wall_s": summary(walls),
            "cpu_s": summary(cpus),
            "cpu_per_wall": summary([c / w for c, w in zip(cpus, walls, strict=True)]),
            "peak_rss_mib": max(r["runs"][name]["maxrss_mib"] for r in rounds),
        }
    if MS in names:
        out["ratio_verify"] = summary([r["ratio_verify"] for r in rounds])
        out["ratio_verify_of_medians"] = (
            out["columns"][WP]["wall_s"]["median"] / out["columns"][MS]["wall_s"]["median"]
        )
        out["ratio_goal_met"] = out["ratio_verify"]["median"] <= RATIO_GOAL
        if CS in names:
            out["ratio_check_signature"] = summary([r["ratio_check_signature"] for r in rounds])
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
        "--size",
        type=parse_size,
        default=GiB,
        help="tensor data of the 4 shards together, a multiple of 16 MiB (default: 1G)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed rounds after the warm-up (default: 7)")
    add_child_options(parser, pycache=True)
    parser.add_argument(
        "--model-signing",
        help=f"the model_signing command (default: on PATH, else {CI_MODEL_SIGNING})",
    )
    parser.add_argument(
        "--no-check-signature", action="store_true", help="leave out the weightpkg check-signature column"
    )
    parser.add_argument("--openssl", default=shutil.which("openssl") or "openssl")
    parser.add_argument(
        "--clean", action="store_true", help=f"delete WORKDIR/{SUBDIR} (model, store, keys) at the end"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.size < SHARDS * TENSOR_BYTES or args.size % (SHARDS * TENSOR_BYTES):
        parser.error("--size must be a multiple of 16 MiB (4 shards of 4 MiB tensors)")

    def log(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    weightpkg, python = prepare_children(args, log)
    model_signing, why = find_model_signing(args.model_signing)
    facts = machine_facts(args.openssl, weightpkg, python, args.workdir)
    facts.update(rss_facts())
    facts["bytecode"] = bytecode_fact(python)
    facts["model_signing"] = (
        f"{model_signing} (model-signing {model_signing_version(model_signing)})"
        if model_signing
        else f"NOT FOUND: {why}"
    )
    log_facts(facts, log)
    if model_signing is None:
        log(
            "note: model_signing is not available, so its column is skipped and the goal is not judged; "
            "install `model-signing pyopenssl` (or pass --model-signing) to compare"
        )

    root = args.workdir / SUBDIR
    root.mkdir(parents=True, exist_ok=True)
    store = root / "store"
    count = args.size // SHARDS // TENSOR_BYTES
    try:
        recipe, shards, _ = ensure_model(root, args.size, log)
        model = root / "model"
        private, public = ensure_keys(root, args.openssl, log)
        signature, signed_by = ensure_signature(root, model, private, weightpkg, model_signing, log)
        fetched = run_child([*weightpkg, "--store", str(store), "fetch", str(recipe)])
        log(f"store {store}: fetch {fetched['wall_s']:.2f} s")
        found = run_child([*weightpkg, "--store", str(store), "store", "path", str(recipe)])
        entries = [Path(line) for line in found["stdout"].split()]
        total = sum(size for _, _, size in shards)
        warm = sum(warm_page_cache(p) for p in [*entries, *(model / n for n, _, _ in shards)])
        log(f"warming the page cache: {warm:.2f} s to read the 4 entries and the 4 shards ({2 * total} B)")

        argvs = {WP: [*weightpkg, "--store", str(store), "verify", str(recipe)]}
        if model_signing:
            argvs[MS] = [model_signing, "verify", "key", "--signature", str(signature)]
            argvs[MS] += ["--public_key", str(public), str(model)]
        if not args.no_check_signature:
            argvs[CS] = [*weightpkg, "check-signature", str(model), "--model-key", str(public)]
            argvs[CS] += ["--signature", str(signature)]
        check = check_once(argvs, shards, count, log)
        result = bench_rounds(argvs, args.runs, log)
    finally:
        if args.clean and root.exists():
            shutil.rmtree(root)
            log(f"deleted {root}")

    gb = total / 1e9
    log(f"results, {SHARDS} shards, {total} bytes ({count} tensors each), medians of {args.runs} rounds:")
    for name, column in result["columns"].items():
        wall, cpu = column["wall_s"], column["cpu_s"]
        log(
            f"  {name:<27} {wall['median']:.3f} s ({gb / wall['median']:.2f} GB/s)"
            f"  [{wall['min']:.3f}-{wall['max']:.3f}]  cpu {cpu['median']:.3f} s"
            f"  cpu/wall {column['cpu_per_wall']['median']:.2f}  peak RSS {column['peak_rss_mib']:.1f} MiB"
        )
    if MS in result["columns"]:
        ratio = result["ratio_verify"]
        verdict = "met" if result["ratio_goal_met"] else "MISSED"
        log(
            f"  ratio verify/model_signing  {ratio['median']:.3f} (median of per-round ratios, "
            f"{ratio['min']:.3f}-{ratio['max']:.3f}; "
            f"ratio of medians {result['ratio_verify_of_medians']:.3f}); "
            f"goal <= {RATIO_GOAL}: {verdict}"
        )
        if "ratio_check_signature" in result:
            ratio = result["ratio_check_signature"]
            log(
                f"  ratio check-signature/model_signing  {ratio['median']:.3f} "
                f"({ratio['min']:.3f}-{ratio['max']:.3f}; no goal, same job as model_signing)"
            )
    else:
        log(f"  goal verify <= {RATIO_GOAL} x model_signing: not judged (model_signing not available: {why})")

    if args.json:
        report = {
            "machine": facts,
            "model": {
                "shards": [{"name": n, "sha256": s, "size": z} for n, s, z in shards],
                "tensors_per_shard": count,
                "tensor_bytes": TENSOR_BYTES,
                "signature_made_by": signed_by,
                "check": check,
            },
            "runs": args.runs,
            **result,
        }
        print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
