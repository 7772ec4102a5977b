"""weightpkg export slsa and verify --attestation: the provenance of a real rebuild, signed as a DSSE
envelope, checked by the real in-toto-attestation (Statement v1, strict SLSA Provenance v1 fields)
and securesystemslib (the DSSE signature, with its own key classes), then by check_attestation."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import weightpkg
from weightpkg.builder import find_build
from weightpkg.core.recipe import Recipe
from weightpkg.errors import UsageError
from weightpkg.exports.slsa import (
    BUILD_TYPE,
    BUILDER_ID,
    RULES,
    AttestationReport,
    check_attestation,
    export_slsa,
    provenance_statement,
    statement_bytes,
)
from weightpkg.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    generate_minisign_keypair,
    load_minisign_public_keys,
    sign_dsse,
)
from weightpkg.store import Store

from .builders import build_wheel, toy_build_recipe
from .conftest import REPO, serve_wheels, wheelhouse_files
from .servers import SimpleIndex

DATA = b"some training data\n"
SCRIPT = 'open("out.bin", "wb").write(open("data.txt", "rb").read().upper())\n'


def require_module(name: str) -> ModuleType:
    """A real third-party validator; skip if absent, fail if WEIGHTPKG_REQUIRE_PEERS=1 (as
    conftest.require_peer does for programs)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} is not installed (pip install -e '.[test]'): {exc}"
        if os.environ.get("WEIGHTPKG_REQUIRE_PEERS") == "1":
            pytest.fail(f"required peer missing: {message}")
        pytest.skip(message)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_toy(folder: Path, *, published: bytes = DATA.upper(), requirements: tuple[str, ...] = ()) -> Path:
    """A recipe whose build upper-cases data.txt into out.bin; by default the published file is
    exactly what the build makes (bit-identical)."""
    return toy_build_recipe(folder, script=SCRIPT, data=DATA, published=published, requirements=requirements)


@dataclass
class Built:
    path: Path
    recipe: Recipe
    store: Store
    public: Path
    secret: Path
    folder: Path


@pytest.fixture
def built(tmp_path: Path, store_root: Path) -> Built:
    """The toy recipe rebuilt for real (--env current: under a second) and a minisign key pair."""
    path = write_toy(tmp_path / "toy")
    store = Store(store_root)
    weightpkg.rebuild(path, store, env_mode="current")
    public, secret = generate_minisign_keypair(tmp_path, "release")
    return Built(path, weightpkg.load_recipe(path), store, public, secret, tmp_path)


def export(b: Built, name: str = "toy.intoto.jsonl", **kwargs: Any) -> Path:
    out = b.folder / name
    out.write_text(
        export_slsa(b.recipe, b.store, key=kwargs.pop("key", b.secret), env_mode="current", **kwargs)
    )
    return out


def statement_of(envelope: Path) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(envelope.read_text())["payload"]))


def resign(b: Built, statement: dict[str, Any], name: str, key: Path | None = None) -> Path:
    """A statement changed by whoever holds ``key`` (the trusted one by default) and signed again."""
    out = b.folder / name
    envelope = sign_dsse(statement_bytes(statement), IN_TOTO_PAYLOAD_TYPE, key or b.secret)
    out.write_text(json.dumps(envelope) + "\n")
    return out


def check(b: Built, envelope: Path, trusted: Path | None = None) -> AttestationReport:
    return check_attestation(envelope, b.recipe, b.store, trusted_keys=[trusted or b.public])


def errors(report: AttestationReport) -> set[str]:
    found = {f.rule for f in report.findings if f.severity == "error"}
    assert found <= set(RULES), found
    return found


def minisign_sslib_key(public: Path) -> Any:
    """The trusted minisign key as securesystemslib's own key class, under the key id we state."""
    signer = require_module("securesystemslib.signer")
    [key] = load_minisign_public_keys(public)
    return signer.SSlibKey.from_crypto(
        ed25519.Ed25519PublicKey.from_public_bytes(key.public_key), keyid=key.id
    )


def sslib_verify(envelope: Path, key: Any) -> bytes:
    """securesystemslib's DSSE verification (threshold 1); its payload, or its VerificationError."""
    dsse = require_module("securesystemslib.dsse")
    parsed = dsse.Envelope.from_dict(json.loads(envelope.read_text()))
    parsed.verify([key], 1)
    assert parsed.payload_type == IN_TOTO_PAYLOAD_TYPE
    return bytes(parsed.payload)


def in_toto_validate(statement: dict[str, Any]) -> Any:
    """in-toto-attestation's checks: Statement v1 validation, and the predicate parsed strictly into
    the SLSA Provenance v1 protobuf (an unknown or misspelt field is a ParseError)."""
    json_format = require_module("google.protobuf.json_format")
    statement_pb2 = require_module("in_toto_attestation.v1.statement_pb2")
    statement_module = require_module("in_toto_attestation.v1.statement")
    provenance_pb2 = require_module("in_toto_attestation.predicates.provenance.v1.provenance_pb2")
    parsed = json_format.ParseDict(copy.deepcopy(statement), statement_pb2.Statement())
    statement_module.Statement.copy_from_pb(parsed).validate()
    return json_format.ParseDict(copy.deepcopy(statement["predicate"]), provenance_pb2.Provenance())


# --- the statement -------------------------------------------------------------------------------


def test_the_statement_is_slsa_provenance_v1_of_the_stored_build(built: Built) -> None:
    build = find_build(built.recipe, built.store, "current")
    assert build is not None
    statement = provenance_statement(built.recipe, build)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": "out.bin", "digest": {"sha256": sha256(DATA.upper())}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE == "https://weightpkg.dev/provenance/rebuild/v1"
    assert definition["externalParameters"] == {
        "recipe": {"file": "toy.toml", "sha256": sha256(built.path.read_bytes())},
        "package": {"name": "toy", "version": "1.0"},
        "envMode": "current",
    }
    internal = definition["internalParameters"]
    assert internal["command"] == ["python", "build.py"]
    assert internal["environment"]["PYTHONHASHSEED"] == "0"
    assert internal["environment"]["HOME"].startswith("$WEIGHTPKG_STORE/")
    assert set(internal) == {
        "command",
        "device",
        "environment",
        "interpreter",
        "isolation",
        "libraries",
        "platform",
    }
    # Every input with its digest; --env current installed nothing from pins, so no requirement.
    assert definition["resolvedDependencies"] == [
        {
            "name": "data.txt",
            "digest": {"sha256": sha256(DATA)},
            "annotations": {"role": "data", "path": "data.txt", "size": len(DATA)},
        },
        {
            "name": "build.py",
            "digest": {"sha256": sha256(SCRIPT.encode())},
            "annotations": {"role": "code", "path": "build.py", "size": len(SCRIPT)},
        },
    ]
    run = statement["predicate"]["runDetails"]
    assert run["builder"] == {
        "id": f"{BUILDER_ID}#current",
        "version": {"weightpkg": weightpkg.__version__, "buildProtocol": "1"},
    }
    assert run["metadata"] == {"invocationId": build.derivation.hex}  # no timestamps
    assert run["byproducts"] == [
        {
            "name": "toy-1.0.build-record.json",
            "digest": {"sha256": sha256(build.record_path.read_bytes())},
            "mediaType": "application/json",
        }
    ]
    in_toto_validate(statement)


def test_the_same_build_gives_the_same_bytes_in_any_store(built: Built, tmp_path: Path) -> None:
    first = export(built, "one.intoto.jsonl")
    again = export(built, "two.intoto.jsonl")
    assert first.read_bytes() == again.read_bytes(), "Ed25519 DSSE signatures are deterministic too"
    other = Store(tmp_path / "other-store")
    weightpkg.rebuild(built.path, other, env_mode="current")
    elsewhere = export_slsa(built.recipe, other, key=built.secret, env_mode="current")
    assert elsewhere.encode() == first.read_bytes()
    assert first.read_text().count("\n") == 1, "one envelope per line, as .intoto.jsonl"
    unsigned = export_slsa(built.recipe, other, env_mode="current")
    assert statement_bytes(json.loads(unsigned)) == statement_bytes(statement_of(first))


# --- a valid envelope passes all three -----------------------------------------------------------


def test_a_signed_export_passes_securesystemslib_in_toto_attestation_and_check_attestation(
    built: Built,
) -> None:
    envelope = export(built)
    payload = sslib_verify(envelope, minisign_sslib_key(built.public))
    statement = json.loads(payload)
    provenance = in_toto_validate(statement)
    assert provenance.build_definition.build_type == BUILD_TYPE
    assert (
        provenance.run_details.metadata.invocation_id
        == statement["predicate"]["runDetails"]["metadata"]["invocationId"]
    )
    assert [d.name for d in provenance.build_definition.resolved_dependencies] == ["data.txt", "build.py"]
    report = check(built, envelope)
    assert report.ok and report.findings == (), report.findings
    [key] = load_minisign_public_keys(built.public)
    assert report.key == key.id
    assert report.to_json()["verdict"] == "verified"
    assert report.to_json()["subjects"] == [{"name": "out.bin", "sha256": sha256(DATA.upper())}]


def test_an_ecdsa_pem_key_signs_and_verifies_as_well(built: Built) -> None:
    signer = require_module("securesystemslib.signer")
    private = ec.generate_private_key(ec.SECP256R1())
    secret = built.folder / "ec.pem"
    secret.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = built.folder / "ec.pub.pem"
    public.write_bytes(pem)
    envelope = export(built, "ec.intoto.jsonl", key=secret)
    keyid = json.loads(envelope.read_text())["signatures"][0]["keyid"]
    assert keyid == sha256(pem)  # the model-signing key hint
    in_toto_validate(
        json.loads(sslib_verify(envelope, signer.SSlibKey.from_crypto(private.public_key(), keyid=keyid)))
    )
    report = check(built, envelope, trusted=public)
    assert report.ok, report.findings
    assert report.key == keyid


# --- each way it can be wrong fails with its rule ---------------------------------------------------


def test_a_tampered_payload_is_a_bad_signature(built: Built) -> None:
    envelope = export(built)
    document = json.loads(envelope.read_text())
    statement = statement_of(envelope)
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    document["payload"] = base64.b64encode(statement_bytes(statement)).decode()
    tampered = built.folder / "tampered.intoto.jsonl"
    tampered.write_text(json.dumps(document))
    exceptions = require_module("securesystemslib.exceptions")
    with pytest.raises(exceptions.VerificationError, match="Found: 0, Expected 1"):
        sslib_verify(tampered, minisign_sslib_key(built.public))
    report = check(built, tampered)
    assert errors(report) == {"attestation-bad-signature", "attestation-subject-mismatch"}
    assert report.key is None
    [bad] = [f for f in report.findings if f.rule == "attestation-bad-signature"]
    assert bad.file == str(tampered)
    assert "does not verify: the statement or signature was altered" in bad.message


def test_a_key_that_is_not_trusted_is_an_unknown_key(built: Built) -> None:
    other_public, other_secret = generate_minisign_keypair(built.folder, "other")
    envelope = export(built, "other.intoto.jsonl", key=other_secret)
    exceptions = require_module("securesystemslib.exceptions")
    with pytest.raises(exceptions.VerificationError):
        sslib_verify(envelope, minisign_sslib_key(built.public))
    sslib_verify(envelope, minisign_sslib_key(other_public))  # a good signature, by the wrong key
    report = check(built, envelope)
    assert errors(report) == {"attestation-unknown-key"}
    [other] = load_minisign_public_keys(other_public)
    assert f"signed by key {other.id}, which is not a trusted key" in report.findings[0].message
    assert check(built, envelope, trusted=other_public).ok


def test_a_subject_digest_changed_is_a_subject_mismatch(built: Built) -> None:
    statement = statement_of(export(built))
    statement["subject"][0]["digest"]["sha256"] = sha256(b"other weights")
    envelope = resign(built, statement, "subject.intoto.jsonl")
    in_toto_validate(
        json.loads(sslib_verify(envelope, minisign_sslib_key(built.public)))
    )  # well-formed, signed
    report = check(built, envelope)
    assert errors(report) == {"attestation-subject-mismatch"}
    [finding] = report.findings
    assert (
        f"subject 'out.bin': sha256 {sha256(b'other weights')} is not the recipe's published file"
        in finding.message
    )
    statement["subject"].append({"name": "extra.bin", "digest": {"sha256": sha256(b"x")}})
    statement["subject"][0]["digest"]["sha256"] = sha256(DATA.upper())
    report = check(built, resign(built, statement, "extra.intoto.jsonl"))
    assert [f.message for f in report.findings] == [
        "subject 'extra.bin' is not an output of toy-1.0's build (out.bin)"
    ]


def test_an_input_digest_changed_is_an_input_mismatch(built: Built) -> None:
    statement = statement_of(export(built))
    statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"] = sha256(
        b"poisoned"
    )
    envelope = resign(built, statement, "input.intoto.jsonl")
    in_toto_validate(json.loads(sslib_verify(envelope, minisign_sslib_key(built.public))))
    report = check(built, envelope)
    assert errors(report) == {"attestation-input-mismatch"}
    assert [f.message for f in report.findings] == [
        f"input 'data.txt': the attestation says sha256 {sha256(b'poisoned')}, the recipe pins {sha256(DATA)}"
    ]
    del statement["predicate"]["buildDefinition"]["resolvedDependencies"][1]
    report = check(built, resign(built, statement, "dropped.intoto.jsonl"))
    assert "input 'build.py' (sha256 " in " ".join(f.message for f in report.findings)


def test_a_statement_of_another_recipe_is_a_recipe_mismatch(built: Built) -> None:
    envelope = export(built)
    statement = statement_of(envelope)
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    external["package"]["version"] = "2.0"
    external["entryPoint"] = "anything.py"
    report = check(built, resign(built, statement, "renamed.intoto.jsonl"))
    assert errors(report) == {"attestation-recipe-mismatch", "attestation-unexpected-parameter"}
    # The recipe file edited after the build: the attestation is of another file.
    built.path.write_text(built.path.read_text().replace('summary = "a toy build"', 'summary = "edited"'))
    edited = weightpkg.load_recipe(built.path)
    report = check_attestation(envelope, edited, built.store, trusted_keys=[built.public])
    assert errors(report) == {"attestation-recipe-mismatch"}
    assert "(another recipe, or changed since the build)" in report.findings[0].message
    with pytest.raises(UsageError, match="the recipe changed since it was rebuilt"):
        export_slsa(edited, built.store, key=built.secret, env_mode="current")


def test_a_statement_of_another_build_type_or_builder_is_refused(built: Built) -> None:
    statement = statement_of(export(built))
    statement["predicate"]["runDetails"]["builder"]["id"] = f"{BUILDER_ID}#venv"
    assert errors(check(built, resign(built, statement, "builder.intoto.jsonl"))) == {"attestation-builder"}
    statement["predicate"]["buildDefinition"]["buildType"] = "https://example.org/another/v1"
    assert errors(check(built, resign(built, statement, "type.intoto.jsonl"))) == {"attestation-build-type"}
    statement["_type"] = "https://in-toto.io/Statement/v0.1"
    statement["predicateType"] = "https://slsa.dev/provenance/v0.2"
    assert errors(check(built, resign(built, statement, "old.intoto.jsonl"))) == {"attestation-statement"}
    other = built.folder / "other-type.json"
    envelope = sign_dsse(statement_bytes(statement_of(export(built))), "application/json", built.secret)
    other.write_text(json.dumps(envelope))
    assert errors(check(built, other)) == {"attestation-payload-type"}


def test_another_derivation_is_only_a_warning(built: Built) -> None:
    # The derivation of a --env current build names the interpreter: elsewhere it differs.
    statement = statement_of(export(built))
    statement["predicate"]["runDetails"]["metadata"]["invocationId"] = "f" * 64
    report = check(built, resign(built, statement, "elsewhere.intoto.jsonl"))
    assert report.ok
    assert [(f.severity, f.rule) for f in report.findings] == [("warning", "attestation-derivation")]


def test_what_is_not_an_envelope_is_malformed(built: Built) -> None:
    junk = built.folder / "junk.json"
    junk.write_text("not json")
    assert errors(check(built, junk)) == {"attestation-malformed"}
    junk.write_text(
        json.dumps({"payload": "!!", "payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": [{"sig": "AA=="}]})
    )
    assert [f.message for f in check(built, junk).findings] == ["malformed DSSE envelope (bad base64)"]
    with pytest.raises(UsageError, match="no such file"):
        check(built, built.folder / "missing.intoto.jsonl")


# --- subjects: the published file, or the store's build ----------------------------------------------


def test_a_subject_that_differs_from_the_published_file_must_be_the_stores_build(
    tmp_path: Path, store_root: Path
) -> None:
    path = write_toy(tmp_path / "toy", published=b"published elsewhere")  # a tolerance-style package
    store = Store(store_root)
    weightpkg.rebuild(path, store, env_mode="current")
    recipe = weightpkg.load_recipe(path)
    public, secret = generate_minisign_keypair(tmp_path, "release")
    envelope = tmp_path / "toy.intoto.jsonl"
    envelope.write_text(export_slsa(recipe, store, key=secret, env_mode="current"))
    assert check_attestation(envelope, recipe, store, trusted_keys=[public]).ok
    empty = Store(tmp_path / "empty-store")
    report = check_attestation(envelope, recipe, empty, trusted_keys=[public])
    assert errors(report) == {"attestation-subject-mismatch"}
    assert report.findings[0].message.endswith("and no build of it in the store")


# --- export needs a stored build -----------------------------------------------------------------------


def test_export_needs_a_stored_build_of_the_recipe(tmp_path: Path, store_root: Path) -> None:
    path = write_toy(tmp_path / "toy")
    recipe = weightpkg.load_recipe(path)
    store = Store(store_root)
    with pytest.raises(
        UsageError, match=r"no stored build of toy-1.0 .*: run `weightpkg rebuild --env current "
    ):
        export_slsa(recipe, store, env_mode="current")
    weightpkg.rebuild(path, store, env_mode="current")
    with pytest.raises(UsageError, match=r"environment mode venv"):
        export_slsa(recipe, store)  # built with --env current: the venv derivation is another build
    no_build = weightpkg.load_recipe(REPO / "recipes" / "silero-vad.toml")
    with pytest.raises(UsageError, match=r"has no \[build\] table"):
        export_slsa(no_build, store)


# --- a venv build: its pinned requirements are dependencies ----------------------------------------


def test_a_venv_build_lists_its_pinned_requirements(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = build_wheel(tmp_path / "wheels", "wpt_helper", "1.0", {"wpt_helper/__init__.py": b"VALUE = 41\n"})
    simple_index.add_wheel(wheel)
    monkeypatch.setenv("PIP_INDEX_URL", simple_index.url + "/simple")
    pin = sha256(wheel.read_bytes())
    path = write_toy(tmp_path / "toy", requirements=(f"wpt_helper==1.0 --hash=sha256:{pin}",))
    store = Store(store_root)
    weightpkg.rebuild(path, store)
    recipe = weightpkg.load_recipe(path)
    public, secret = generate_minisign_keypair(tmp_path, "release")
    envelope = tmp_path / "toy.intoto.jsonl"
    envelope.write_text(export_slsa(recipe, store, key=secret))
    statement = statement_of(envelope)
    assert statement["predicate"]["buildDefinition"]["resolvedDependencies"][2:] == [
        {"uri": "pkg:pypi/wpt-helper@1.0", "digest": {"sha256": pin}}
    ]
    assert statement["predicate"]["runDetails"]["builder"]["id"] == f"{BUILDER_ID}#venv"
    in_toto_validate(statement)
    assert check_attestation(envelope, recipe, store, trusted_keys=[public]).ok
    statement["predicate"]["buildDefinition"]["resolvedDependencies"][2]["digest"]["sha256"] = "1" * 64
    changed = tmp_path / "changed.intoto.jsonl"
    changed.write_text(json.dumps(sign_dsse(statement_bytes(statement), IN_TOTO_PAYLOAD_TYPE, secret)))
    report = check_attestation(changed, recipe, store, trusted_keys=[public])
    assert errors(report) == {"attestation-requirement-mismatch"}
    assert report.findings[0].message == (
        f"pkg:pypi/wpt-helper@1.0: the attestation says sha256 {'1' * 64}, the recipe pins {pin}"
    )


# --- a shipped recipe -------------------------------------------------------------------------------


def test_the_shipped_digits_mlp_rebuild_is_attested(
    tmp_path: Path, store_root: Path, simple_index: SimpleIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_wheels(simple_index, monkeypatch, *wheelhouse_files("scikit_learn-*.whl"))
    shutil.copytree(REPO / "recipes" / "digits-mlp", tmp_path / "digits-mlp")
    path = tmp_path / "digits-mlp.toml"
    shutil.copyfile(REPO / "recipes" / "digits-mlp.toml", path)
    store = Store(store_root)
    weightpkg.rebuild(path, store, env_mode="current")  # numpy is weightpkg's own dependency
    recipe = weightpkg.load_recipe(path)
    public, secret = generate_minisign_keypair(tmp_path, "release")
    envelope = tmp_path / "digits-mlp.intoto.jsonl"
    envelope.write_text(export_slsa(recipe, store, key=secret, env_mode="current"))
    statement = json.loads(sslib_verify(envelope, minisign_sslib_key(public)))
    in_toto_validate(statement)
    [published] = recipe.weights
    assert statement["subject"] == [{"name": published.path, "digest": {"sha256": published.sha256.hex}}]
    assert {
        d["name"]: d["digest"]["sha256"]
        for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    } == {i.name: i.sha256.hex for i in recipe.inputs if i.sha256}
    report = check_attestation(envelope, recipe, store, trusted_keys=[public])
    assert report.ok and report.findings == (), report.findings


def test_the_cli_exports_signed_provenance_and_verify_checks_it(built: Built, cli) -> None:
    store = ["--store", str(built.store.root)]
    envelope = built.folder / "out.intoto.jsonl"
    done = cli(*store, "export", "slsa", "--env", "current", "--key", str(built.secret), "-o", str(envelope),
               str(built.path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(envelope.read_text())["payloadType"] == "application/vnd.in-toto+json"
    bare = cli(*store, "export", "slsa", "--env", "current", str(built.path))
    assert json.loads(bare.stdout)["predicateType"] == "https://slsa.dev/provenance/v1"

    args = [*store, "verify", "--attestation", str(envelope), "--key", str(built.public)]
    verified = cli(*args, str(built.path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{built.path}: attestation {envelope}: verified, signed by" in verified.stdout
    report = json.loads(cli(*args, "--json", str(built.path)).stdout)["recipes"][0]
    assert report["attestation"]["verdict"] == "verified" and report["verdict"] == "verified"

    (built.folder / "other").mkdir()
    other_public, _ = generate_minisign_keypair(built.folder / "other", "other")
    other = ["--key", str(other_public)]
    refused = cli(*store, "verify", "--attestation", str(envelope), *other, str(built.path))
    assert refused.returncode == 1
    assert "ATTESTATION FAILED: attestation-unknown-key" in refused.stdout
    assert refused.stdout.splitlines()[-1].endswith("(the attestation failed)")

    no_key = cli(*store, "verify", "--attestation", str(envelope), str(built.path))
    assert no_key.returncode == 2 and "no key to check it with" in no_key.stderr
    digits = str(REPO / "recipes" / "digits-mlp.toml")
    two = cli(*store, "verify", "--attestation", str(envelope), "--key", str(built.public), str(built.path),
              digits)  # fmt: skip
    assert two.returncode == 2 and "checks one recipe's provenance" in two.stderr
    unbuilt = cli("--store", str(built.folder / "empty-store"), "export", "slsa", str(built.path))
    assert unbuilt.returncode == 2 and "rebuild" in unbuilt.stderr and "Traceback" not in unbuilt.stderr
