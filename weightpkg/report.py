"""Findings → lines for people, or deterministic JSON for machines (sorted keys, no clock)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .verification import FileReport, RecipeReport


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)


def short(hex_digest: str) -> str:
    return hex_digest[:12] + "…"


def file_lines(recipe: str, f: FileReport) -> list[str]:
    head = f"{recipe}: {f.path}"
    lines = [f"{head}: note: {note}" for note in f.notes]
    if f.status == "ok":
        facts = [f"sha256 {short(f.sha256)}", f"{f.size} bytes"]
        if st := f.details.get("safetensors"):
            facts.append(f"safetensors, {st['tensors']} tensors")
            if "content_sha256" in st:
                facts.append(f"content-sha256 {short(st['content_sha256'])} as pinned")
        origin = f"in the {f.source}" if (f.source or "store").startswith("store") else f"from {f.source}"
        lines.append(f"{head}: ok ({', '.join(facts)}; {origin})")
    else:
        lines.append(f"{head}: FAILED: {f.problem}")
    for s in f.sources:
        declared = f"; declares {s.declared_license}" if s.declared_license else ""
        lines.append(f"{head}: {s.source}: {s.status}: {s.detail}{declared}")
    return lines


def verify_lines(reports: Sequence[RecipeReport], verb: str = "verified") -> list[str]:
    lines = []
    for r in reports:
        for f in r.files:
            lines.extend(file_lines(r.recipe, f))
        if r.ml_class and verb == "verified":  # fetch only brings files; verify judges
            lines.append(f"{r.recipe}: ML-Policy class: {r.ml_class} ({'; '.join(r.class_reasons)})")
        for finding in r.policy_findings:
            lines.append(f"{r.recipe}: POLICY {r.policy}: {finding.rule}: {finding.message}")
        if r.attestation is not None:
            lines.extend(_attestation_lines(r))
        count = f"{len(r.files)} file{'s' if len(r.files) != 1 else ''}"
        if r.ok:
            lines.append(f"{r.recipe}: {verb}: {r.package} {r.version} ({count})")
        else:
            failed = sum(1 for f in r.files if f.status != "ok")
            broken = sum(1 for p in r.policy_findings if p.severity == "error")
            why = [f"{failed} of {count} failed"] if failed else []
            if broken:
                why.append(f"{broken} policy rule{'s' if broken != 1 else ''} broken")
            if any(f.severity == "error" for f in r.attestation_findings):
                why.append("the attestation failed")
            lines.append(f"{r.recipe}: FAILED: {r.package} {r.version} ({'; '.join(why)})")
    return lines


def _attestation_lines(r: RecipeReport) -> list[str]:
    a = r.attestation or {}
    lines = [
        f"{r.recipe}: ATTESTATION {'WARNING' if f.severity == 'warning' else 'FAILED'}: {f.rule}: {f.message}"
        for f in r.attestation_findings
    ]
    subjects = ", ".join(f"{s['name']} {short(str(s['sha256']))}" for s in a.get("subjects", []))
    if a.get("verdict") == "verified":
        lines.append(f"{r.recipe}: attestation {a['envelope']}: verified, signed by {a['key']} ({subjects})")
    else:
        lines.append(f"{r.recipe}: attestation {a.get('envelope')}: FAILED")
    return lines


def verify_json(reports: Sequence[RecipeReport]) -> str:
    return to_json(
        {
            "verdict": "verified" if all(r.ok for r in reports) else "failed",
            "recipes": [r.to_json() for r in reports],
        }
    )
