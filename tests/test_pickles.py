"""The static pickle scanner (weightpkg.core.pickles): globals found, verdicts, bypasses, bounds.

Pickles here are made with ``pickle.dumps`` (dumping runs nothing) or written opcode by opcode.
Nothing is ever loaded: the payloads that would create a file prove it by leaving none.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import time
from pathlib import Path

import pytest

from weightpkg.core import pickles
from weightpkg.core.pickles import (
    DANGEROUS,
    SAFE_GLOBALS,
    Finding,
    classify_global,
    scan_pickle,
    sniff_pickle,
    verdict_of,
)


class Touch:
    """Pickles as ``os.system("touch PATH")``: loading it would create PATH."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def dotted(scan) -> set[str]:
    return {g.dotted for g in scan.globals}


def rules(scan) -> set[str]:
    return {f.rule for f in scan.findings}


def sbu(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


HARMLESS = {
    "ints": [0, 1, -1, 2**70, True, None],
    "floats": (1.5, float("inf"), complex(1, 2)),
    "text": "naïve",
    "bytes": b"\x00\x80\xff",
    "bytearray": bytearray(b"ab"),
    "set": {1, 2},
    "frozenset": frozenset({3}),
    "ordered": collections.OrderedDict(a=1, b=[1, 2]),
    "slice": slice(1, 2),
    "range": range(3),
    "nested": {"a": [{"b": (1, 2)}]},
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_harmless_data_is_safe_in_every_protocol(protocol: int) -> None:
    scan = scan_pickle(pickle.dumps(HARMLESS, protocol=protocol))
    assert scan.verdict == "safe", scan.findings
    assert scan.pickles == 1
    assert all(g.verdict == "safe" for g in scan.globals)
    assert not [f for f in scan.findings if f.severity != "info"]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_reduce_payload_is_dangerous_and_never_runs(protocol: int, tmp_path: Path) -> None:
    target = tmp_path / "PWNED"
    data = pickle.dumps(Touch(target), protocol=protocol)
    scan = scan_pickle(data)
    assert scan.verdict == "dangerous"
    assert dotted(scan) == {f"{os.system.__module__}.system"}  # posix.system on Linux
    finding = next(f for f in scan.findings if f.rule == "dangerous-global")
    assert finding.severity == "error"
    assert "posix.system" in finding.message and "shell" in finding.message
    assert not target.exists(), "scanning executed the payload"


def test_a_hand_written_payload_is_listed_and_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "PWNED"
    data = b"cos\nsystem\n(V" + f"touch {target}".encode() + b"\ntR."
    scan = scan_pickle(data)
    assert scan.verdict == "dangerous"
    assert dotted(scan) == {"os.system"}
    assert not target.exists()


def test_names_hidden_in_the_memo_are_resolved() -> None:
    """The known bypass: push module and name, memoize them, pop them, and fetch them back."""
    memoize = (
        b"\x80\x04" + sbu("os") + b"\x94" + b"0" + sbu("system") + b"\x94" + b"0"
        + b"h\x00h\x01\x93" + sbu("id") + b"\x85R."
    )
    assert dotted(scan_pickle(memoize)) == {"os.system"}
    long_get = (
        b"\x80\x04" + sbu("subprocess") + b"r\x07\x00\x00\x00" + b"0" + sbu("run") + b"r\x09\x00\x00\x00"
        + b"0j\x07\x00\x00\x00j\x09\x00\x00\x00\x93" + b")R."
    )
    assert dotted(scan_pickle(long_get)) == {"subprocess.run"}
    protocol0 = b"Vbuiltins\np5\n0Veval\np6\n0g5\ng6\n\x93(V1\ntR."
    scan = scan_pickle(protocol0)
    assert dotted(scan) == {"builtins.eval"} and scan.verdict == "dangerous"


def test_a_name_computed_at_load_time_is_dangerous() -> None:
    # STACK_GLOBAL whose module is the result of a call: no scanner can know it.
    data = b"\x80\x04c_codecs\nencode\n" + sbu("os") + sbu("latin1") + b"\x86R" + sbu("system") + b"\x93."
    scan = scan_pickle(data)
    assert scan.verdict == "dangerous"
    assert "unresolved-global" in rules(scan)
    assert dotted(scan) == {"_codecs.encode"}


def test_a_missing_memo_entry_is_reported() -> None:
    scan = scan_pickle(b"\x80\x04" + sbu("os") + b"h\x05\x93.")
    assert {"memo-missing", "unresolved-global"} <= rules(scan)
    assert scan.verdict == "dangerous"


def test_extension_codes_are_dangerous() -> None:
    scan = scan_pickle(b"\x80\x02\x82\x01)R.")
    assert scan.verdict == "dangerous"
    assert "extension-code" in rules(scan)


def test_build_on_an_imported_module_is_dangerous() -> None:
    """Rewriting a module's attributes, so a later import resolves to something else."""
    data = b"\x80\x04ctorch\n_utils\n}" + sbu("_rebuild_tensor") + sbu("builtins") + b"sb."
    scan = scan_pickle(data)
    assert scan.verdict == "dangerous"
    assert "global-mutation" in rules(scan)


def test_nested_pickles_are_scanned(tmp_path: Path) -> None:
    inner = pickle.dumps(Touch(tmp_path / "PWNED"), protocol=4)
    outer = pickle.dumps({"payload": inner}, protocol=4)
    scan = scan_pickle(outer)
    assert dotted(scan) == {"posix.system"}
    assert scan.verdict == "dangerous"
    assert "nested" in next(f.message for f in scan.findings if f.rule == "dangerous-global")
    as_text = pickle.dumps({"payload": inner.decode("latin-1")}, protocol=2)
    assert "posix.system" in dotted(scan_pickle(as_text))
    assert not (tmp_path / "PWNED").exists()


def test_every_pickle_of_a_sequence_is_scanned() -> None:
    data = pickle.dumps([1, 2], protocol=4) + pickle.dumps(Touch(Path("x")), protocol=2)
    scan = scan_pickle(data)
    assert scan.pickles == 2
    assert scan.verdict == "dangerous"


def test_a_protocol_0_pickle_after_the_first_is_found() -> None:
    data = pickle.dumps([1], protocol=4) + b"cos\nsystem\n(Vid\ntR."
    scan = scan_pickle(data)
    assert "os.system" in dotted(scan)
    assert "trailing-pickle" in rules(scan)


def test_trailing_bytes_that_are_not_a_pickle_are_noted() -> None:
    scan = scan_pickle(pickle.dumps([1], protocol=4) + b"\x00\x01\x02 junk")
    assert scan.verdict == "safe"
    assert rules(scan) == {"trailing-data"}


def _legacy_torch_prefix() -> bytes:
    parts = [
        pickles.TORCH_LEGACY_MAGIC,
        1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}},
        collections.OrderedDict(weight=1),
        ["0"],
    ]
    return b"".join(pickle.dumps(p, protocol=2) for p in parts)


def test_a_legacy_torch_file_stops_after_its_five_pickles() -> None:
    prefix = _legacy_torch_prefix()
    storage = struct.pack("<q", 4) + b"\x80\x02\x00\x00" * 4  # raw bytes that start like a pickle
    scan = scan_pickle(prefix + storage)
    assert scan.torch_legacy and scan.pickles == 5
    assert scan.end == len(prefix)
    assert scan.verdict == "safe", scan.findings
    assert not scan.findings


def test_a_truncated_legacy_torch_file_is_malformed() -> None:
    prefix = _legacy_torch_prefix()
    cut = prefix[: len(pickle.dumps(pickles.TORCH_LEGACY_MAGIC, protocol=2)) + 5]
    scan = scan_pickle(cut)
    assert scan.verdict == "malformed"
    assert "malformed-pickle" in rules(scan)


def test_truncated_and_broken_pickles_are_malformed_not_safe() -> None:
    data = pickle.dumps(HARMLESS, protocol=4)
    for cut in (1, 2, len(data) // 2, len(data) - 1):
        scan = scan_pickle(data[:cut])
        assert scan.verdict == "malformed", cut
        assert "malformed-pickle" in rules(scan)
    scan = scan_pickle(b"\x80\x04\xff.")
    assert scan.verdict == "malformed"
    assert "0xff is not a pickle opcode" in scan.findings[0].message
    assert scan_pickle(b"\x80\x04)0.").verdict == "malformed"  # POP of an empty stack: no MARK
    assert scan_pickle(b"\x80\x06N.").verdict == "malformed"  # protocol 6 does not exist


def test_what_is_not_a_pickle_says_so() -> None:
    for data in (b"\x89PNG\r\n\x1a\n", b"", b"cmod\n\xf8\n", b"{}"):
        scan = scan_pickle(data)
        assert scan.verdict == "malformed", data
        assert rules(scan) == {"not-a-pickle"}, data


def test_a_malformed_pickle_keeps_what_was_found_before_the_break() -> None:
    scan = scan_pickle(b"cbuiltins\nexec\n(X\x3e\x0a\x66\x20broken")
    assert scan.verdict == "dangerous"
    assert dotted(scan) == {"builtins.exec"}
    assert "malformed-pickle" in rules(scan)


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96", b"\x8d"])  # BINBYTES8, BYTEARRAY8, BINUNICODE8
def test_a_huge_length_claim_costs_no_memory(opcode: bytes) -> None:
    data = b"\x80\x05" + opcode + struct.pack("<Q", 2**62) + b"tiny"
    started = time.monotonic()
    for source in (data, io.BytesIO(data)):
        scan = scan_pickle(source)
        assert scan.verdict == "malformed"
        assert "needs 4611686018427387904 bytes" in scan.findings[0].message
    assert time.monotonic() - started < 1


def test_long_strings_are_skipped_not_kept() -> None:
    big = b"x" * (pickles.MAX_NESTED_SCAN + 10)
    data = b"\x80\x04\x8e" + struct.pack("<Q", len(big)) + big + b"."
    assert scan_pickle(io.BufferedReader(io.BytesIO(data))).verdict == "safe"


def test_streams_and_buffers_give_the_same_scan(tmp_path: Path) -> None:
    samples = [
        pickle.dumps(HARMLESS, protocol=p) for p in range(6)
    ] + [pickle.dumps(Touch(tmp_path / "x"), protocol=0), b"\x80\x04(", b"cos\nsys"]
    for data in samples:
        a = scan_pickle(data)
        b = scan_pickle(io.BytesIO(data))
        c = scan_pickle(memoryview(bytearray(data)))
        assert a == b == c


def test_a_newline_argument_without_a_newline_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles, "MAX_LINE", 1000)
    scan = scan_pickle(b"c" + b"a" * 5000)
    assert scan.verdict == "malformed"
    assert "no newline within 1000 bytes" in scan.findings[0].message


def test_the_memo_limit_degrades_conservatively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles, "MAX_MEMO", 3)
    data = b"\x80\x04N\x94N\x94N\x94" + sbu("os") + b"\x94" + sbu("system") + b"\x94" + b"h\x03h\x04\x93."
    scan = scan_pickle(data)
    assert "scan-limit" in rules(scan)
    assert scan.verdict == "dangerous"  # the names it could not keep are reported unresolved


def test_the_stack_limit_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickles, "MAX_STACK", 100)
    scan = scan_pickle(b"\x80\x04" + b"(N" * 200 + b".")
    assert scan.verdict == "malformed"
    assert "stack deeper than 100" in scan.findings[0].message


def test_classification_tables() -> None:
    safe = ["torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "collections.OrderedDict",
            "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.dtype",
            "builtins.set", "_codecs.encode", "torch.bfloat16", "torch.serialization._get_layout"]
    for name in safe:
        module, _, attr = name.rpartition(".")
        assert classify_global(module, attr).verdict == "safe", name
    dangerous = ["builtins.eval", "os.system", "posix.system", "nt.system", "subprocess.Popen",
                 "socket.socket", "runpy.run_path", "pickle.loads", "torch.load", "torch.hub.load",
                 "torch.serialization.load", "webbrowser.open", "ssl.get_server_certificate",
                 "operator.attrgetter", "_operator.methodcaller", "ctypes.CDLL", "asyncio.subprocess",
                 "requests.get", "httpx.Client", "bdb.Bdb", "pdb.run", "pip.main", "venv.create"]
    for name in dangerous:
        module, _, attr = name.rpartition(".")
        ref = classify_global(module, attr)
        assert ref.verdict == "dangerous", name
        assert ref.reason
    unknown = ["sklearn.linear_model.LogisticRegression", "functools.partial", "logging.getLogger",
               "pathlib.PosixPath", "types.SimpleNamespace", "_io.BytesIO", "copy.deepcopy",
               "torch.distributed.checkpoint.metadata.Metadata", "torch.nn.modules.linear.Linear"]
    for name in unknown:
        module, _, attr = name.rpartition(".")
        assert classify_global(module, attr).verdict == "unknown", name
    for module, name in [("logging", "FileHandler"), ("pathlib", "Path.write_text"), ("types", "CodeType"),
                         ("_io", "FileIO"), ("torch.distributed.rpc", "rpc_sync"), ("torch._C", "_jit_x")]:
        assert classify_global(module, name).verdict == "dangerous", (module, name)


def test_python_2_names_are_judged_under_their_python_3_names() -> None:
    assert classify_global("__builtin__", "eval").verdict == "dangerous"
    assert classify_global("__builtin__", "set").verdict == "safe"
    assert classify_global("__builtin__", "xrange").verdict == "safe"  # → builtins.range
    assert classify_global("httplib", "HTTPSConnection").verdict == "dangerous"  # → http.client
    assert classify_global("copy_reg", "_reconstructor").verdict == "safe"


def test_dotted_names_that_walk_to_dangerous_places_are_dangerous() -> None:
    """Protocol 4 resolves ``a.b.c`` by getattr: any module that imported os exposes os.system."""
    for module, name in [("collections", "os.system"), ("numpy", "sys.modules"),
                         ("torch._utils", "_rebuild_tensor.__globals__"),
                         ("json", "decoder.__builtins__")]:
        assert classify_global(module, name).verdict == "dangerous", (module, name)


def test_torchscript_classes_are_safe_only_in_a_torchscript_archive() -> None:
    assert classify_global("__torch__.model", "Net").verdict == "unknown"
    assert classify_global("__torch__.model", "Net", torchscript=True).verdict == "safe"
    data = b"\x80\x02c__torch__.model\nNet\n)\x81."
    assert scan_pickle(data).verdict == "unknown"
    assert scan_pickle(data, torchscript=True).verdict == "safe"


def test_every_safe_entry_says_why_and_few_overlap_the_dangerous_table() -> None:
    assert all(reason.strip() for reason in SAFE_GLOBALS.values())
    assert all(reason.strip() for reason in DANGEROUS.values())
    overlaps = set()
    for name in SAFE_GLOBALS:
        parts = name.split(".")
        if any(".".join(parts[:i]) in DANGEROUS for i in range(1, len(parts) + 1)):
            overlaps.add(name)
    # Exact allowlist entries inside a dangerous module: each is reviewed in its reason.
    assert overlaps == {"torch.serialization._get_layout"} | {
        n for n in SAFE_GLOBALS if n.startswith("torch.jit._pickle.")
    }


def test_sniffing_tells_pickles_from_text() -> None:
    assert sniff_pickle(pickle.dumps([1], protocol=2))
    assert sniff_pickle(b"cos\nsystem\n(Vid\ntR.")
    assert sniff_pickle(b"(S'x'\ni__builtin__\nexec\n.")
    for text in (b"class Net(Module):\n  pass\n", b"import torch, numpy as np\nx = 1\n", b"col1,col2\n1,2\n",
                 b"hello world.", b"", b"\x80"):
        assert not sniff_pickle(text), text


def test_numpy_arrays_pickle_as_safe_globals() -> None:
    np = pytest.importorskip("numpy")
    for protocol in (2, 4, 5):
        for array in (np.arange(6.0).reshape(2, 3), np.array([{"a": 1}], dtype=object), np.float32(2)):
            scan = scan_pickle(pickle.dumps(array, protocol=protocol))
            assert scan.verdict == "safe", (protocol, scan.findings)


def test_the_verdict_order() -> None:
    err = Finding("zip-bad-crc", "error", "x")
    dang = Finding("dangerous-global", "error", "x")
    unk = Finding("unknown-global", "warning", "x")
    assert verdict_of([]) == "safe"
    assert verdict_of([unk]) == "unknown"
    assert verdict_of([unk, err]) == "malformed"
    assert verdict_of([unk, err, dang]) == "dangerous"
    assert verdict_of([Finding("trailing-data", "info", "x")]) == "safe"
