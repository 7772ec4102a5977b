"""`weightpkg lint` and `load_recipe` on malformed recipes: the exact words, file and line of every problem.

In the style of pypa/packaging's tests: one small recipe per failure mode and the full expected
text. Each failing recipe is checked three ways: ``weightpkg.load_recipe`` raises RecipeError whose
``problems`` carry (file, line, key, message); ``weightpkg.lint`` returns the same problems; and the
real CLI (``python -m weightpkg lint``) exits 2, prints exactly ``FILE:LINE: key: message`` lines on
stderr, and never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import weightpkg

from .builders import sha256
from .conftest import REPO
from .guards import deadline, recipe_error

PIN = "a" * 64
WHEEL_PIN = "b" * 64
DATA = b"abc"

# The base recipe; the tests below change one thing and name the lines that problems point at.
BASE = f"""\
schema = 1

[package]
name = "demo"
version = "1.0"
summary = "a demo package"

[license]
weights = "MIT"
upstream = "MIT"

[[weights]]
path = "w.bin"
sha256 = "{PIN}"
size = 3
format = "other"

[[weights.sources]]
kind = "path"
path = "files/w.bin"
"""
# line  1  schema
# line  3  [package]          4 name, 5 version, 6 summary
# line  8  [license]          9 weights, 10 upstream
# line 12  [[weights]]        13 path, 14 sha256, 15 size, 16 format
# line 18  [[weights.sources]] 19 kind, 20 path

AVAILABLE_INPUT = f"""
[[inputs]]
name = "data"
role = "data"
available = true
sha256 = "{WHEEL_PIN}"
size = 1
license = "CC0-1.0"

[[inputs.sources]]
kind = "path"
path = "files/data.bin"
"""
# line 22  [[inputs]]  23 name, 24 role, 25 available, 26 sha256, 27 size, 28 license
# line 30  [[inputs.sources]]  31 kind, 32 path

LICENSE_TABLE = '[license]\nweights = "MIT"\nupstream = "MIT"\n'
UNSUPPORTED = "unsupported recipe format 2; this weightpkg reads schema = 1"

PYPI_SOURCE = f"""\
kind = "pypi"
package = "demo-weights"
version = "1.0"
sha256 = "{WHEEL_PIN}"
"""

Expected = tuple[int | None, str, str]  # (line, key path, message)


def shown(path: Path | str, line: int | None, key: str, message: str) -> str:
    """How the CLI prints one problem."""
    where = f"{path}:{line}" if line else f"{path}"
    return f"{where}: {key}: {message}" if key else f"{where}: {message}"


def write(tmp_path: Path, text: str | bytes, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def assert_problems(cli, path: Path, expected: list[Expected], *, timeout: float = 60) -> None:
    """The API and the CLI both report exactly ``expected`` for ``path``, in this order."""
    caught = recipe_error(path)
    got = [(p.file, p.line, p.key, p.message) for p in caught.problems]
    assert got == [(str(path), line, key, message) for line, key, message in expected]
    with deadline():
        assert weightpkg.lint([path]) == list(caught.problems)
    done = cli("lint", str(path), timeout=timeout)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode == 2, output
    assert done.stderr.splitlines() == [shown(path, *e) for e in expected]
    assert done.stdout == ""


def lints_clean(cli, path: Path) -> None:
    with deadline():
        weightpkg.load_recipe(path)
        assert weightpkg.lint([path]) == []
    done = cli("lint", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{path}: ok\n", "")


def swap(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- the base recipe and shipped recipes ---------------------------------------------------------


def test_base_recipe_lints_clean(tmp_path: Path, cli) -> None:
    lints_clean(cli, write(tmp_path, BASE))
    lints_clean(cli, write(tmp_path, BASE + AVAILABLE_INPUT, "with-input.toml"))


SHIPPED = sorted((REPO / "recipes").glob("*.toml"))


@pytest.mark.parametrize("recipe", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_recipe_loads(recipe: Path) -> None:
    with deadline():
        loaded = weightpkg.load_recipe(recipe)
    assert loaded.weights


def test_every_shipped_recipe_lints_clean(cli) -> None:
    assert len(SHIPPED) >= 4
    done = cli("lint", "recipes")
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [f"recipes/{p.name}: ok" for p in SHIPPED]


# --- reading the file: encoding and TOML syntax --------------------------------------------------


def test_utf8_bom_is_accepted(tmp_path: Path, cli) -> None:
    lints_clean(cli, write(tmp_path, b"\xef\xbb\xbf" + BASE.encode()))


def test_utf8_bom_does_not_shift_lines(tmp_path: Path, cli) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + swap("schema = 1", "schema = 2").encode())
    assert_problems(cli, path, [(1, "schema", UNSUPPORTED)])


def test_crlf_line_endings_keep_lines(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap("abc", "xyz", swap(PIN, "abc")).replace("\n", "\r\n"))
    assert_problems(cli, path, [
        (14, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'xyz' (3 characters)"),
    ])


def test_invalid_utf8(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('"a demo package"', '"caf\xe9"').encode("latin-1"))
    assert_problems(cli, path, [(6, "", "not valid UTF-8 (byte 0xe9)")])


def test_invalid_utf8_on_the_first_line(tmp_path: Path, cli) -> None:
    path = write(tmp_path, b"\xff\xfeschema = 1\n")
    assert_problems(cli, path, [(1, "", "not valid UTF-8 (byte 0xff)")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'schema = 1\n[package]\nname = "demo\nversion = "1.0"\n',
            [(3, "", "TOML syntax error: Illegal character '\\n'")],
            id="unterminated-string",
        ),
        pytest.param(
            swap('version = "1.0"', "version = 1.0.0"),
            [(5, "", "TOML syntax error: Expected newline or end of document after a statement")],
            id="bare-version",
        ),
        pytest.param(
            swap('summary = "a demo package"', 'summary = "a demo package"\nname = "again"'),
            [(7, "", "TOML syntax error: Cannot overwrite a value")],
            id="duplicate-key",
        ),
        pytest.param(
            swap("[license]", "[package]"),
            [(8, "", "TOML syntax error: Cannot declare ('package',) twice")],
            id="duplicate-table",
        ),
        pytest.param(
            swap("[[weights.sources]]", "[[weights.sources]"),
            [(18, "", "TOML syntax error: Expected ']]' at the end of an array declaration")],
            id="array-header",
        ),
        pytest.param(
            BASE + 'notes = """never closed\n',
            [(21, "", "TOML syntax error: Unterminated string (at end of file)")],
            id="end-of-file",
        ),
    ],
)
def test_toml_syntax_error(tmp_path: Path, cli, text: str, expected: list[Expected]) -> None:
    assert_problems(cli, write(tmp_path, text), expected)


# --- the schema: unknown, missing and mistyped keys ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            swap('name = "demo"', 'nmae = "demo"'),
            [
                (3, "package.name", "required key is missing"),
                (4, "package.nmae", "unknown key; did you mean 'name'?"),
            ],
            id="misspelt",
        ),
        pytest.param(
            swap('summary = "a demo package"', 'summary = "a demo package"\ncolour = "red"'),
            [(7, "package.colour",
              "unknown key; known keys: authors, homepage, kind, name, summary, version")],
            id="no-close-match",
        ),
        pytest.param(
            swap("schema = 1", "schema = 1\nlicence = 'MIT'"),
            [(2, "licence", "unknown key; did you mean 'license'?")],
            id="top-level",
        ),
        pytest.param(
            swap('path = "files/w.bin"', 'pth = "files/w.bin"'),
            [
                (18, "weights[0].sources[0].path", "required key is missing for a path source"),
                (20, "weights[0].sources[0].pth", "unknown key for a path source; did you mean 'path'?"),
            ],
            id="in-a-source",
        ),
    ],
)
def test_unknown_key(tmp_path: Path, cli, text: str, expected: list[Expected]) -> None:
    assert_problems(cli, write(tmp_path, text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            swap('summary = "a demo package"\n', ""),
            [(3, "package.summary", "required key is missing")],
            id="in-a-table",
        ),
        pytest.param(
            swap('format = "other"\n', ""),
            [(12, "weights[0].format", "required key is missing")],
            id="in-an-array-table",
        ),
        pytest.param(
            swap(LICENSE_TABLE, ""),
            [(None, "license", "required key is missing")],
            id="a-whole-table",
        ),
    ],
)
def test_missing_required_key(tmp_path: Path, cli, text: str, expected: list[Expected]) -> None:
    assert_problems(cli, write(tmp_path, text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            swap("size = 3", 'size = "3"'),
            [(15, "weights[0].size", "expected an integer, got a string '3'")],
            id="string-for-integer",
        ),
        pytest.param(
            swap("size = 3", "size = 3.0"),
            [(15, "weights[0].size", "expected an integer, got a float 3.0")],
            id="float-for-integer",
        ),
        pytest.param(
            swap('summary = "a demo package"', 'summary = "a demo package"\nauthors = "me"'),
            [(7, "package.authors", "expected an array, got a string 'me'")],
            id="string-for-array",
        ),
        pytest.param(
            swap("schema = 1", "schema = 1\nlicense = 'MIT'", swap(LICENSE_TABLE, "")),
            [(2, "license", "expected a table, got a string 'MIT'")],
            id="string-for-table",
        ),
        pytest.param(
            swap('format = "other"', 'format = "tensorflow"'),
            [
                (16, "weights[0].format",
                 "must be one of 'safetensors', 'pytorch-pickle', 'torchscript', 'pickle', 'onnx', "
                 "'numpy', 'gguf', 'opencv-xml', 'csv', 'text', 'other'; got 'tensorflow'"),
            ],
            id="not-in-enum",
        ),
    ],
)
def test_wrong_type(tmp_path: Path, cli, text: str, expected: list[Expected]) -> None:
    assert_problems(cli, write(tmp_path, text), expected)


def test_unsupported_schema_version(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap("schema = 1", "schema = 2"))
    assert_problems(cli, path, [(1, "schema", UNSUPPORTED)])


# --- pins -----------------------------------------------------------------------------------------


def test_sha256_too_short(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap(PIN, "abc"))
    assert_problems(cli, path, [
        (14, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
    ])


def test_sha256_in_upper_case(tmp_path: Path, cli) -> None:
    upper = sha256(DATA).upper()
    path = write(tmp_path, swap(PIN, upper))
    assert_problems(cli, path, [
        (14, "weights[0].sha256",
         f"not a sha256: expected 64 lower-case hexadecimal digits, got '{upper[:56]}... (64 characters)"),
    ])


def test_sha256_of_a_wheel_not_hex(tmp_path: Path, cli) -> None:
    source = PYPI_SOURCE.replace(WHEEL_PIN, "z" * 64) + 'member = "demo/w.bin"\n'
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', source))
    assert_problems(cli, path, [
        (22, "weights[0].sources[0].sha256",
         f"not a sha256: expected 64 lower-case hexadecimal digits, got '{'z' * 56}... (64 characters)"),
    ])


# --- duplicates -----------------------------------------------------------------------------------


def test_duplicate_weight_paths(tmp_path: Path, cli) -> None:
    second = BASE[BASE.index("[[weights]]"):]
    path = write(tmp_path, BASE + "\n" + second)
    assert_problems(cli, path, [(23, "weights[1].path", "duplicate weight path 'w.bin' (also weights[0])")])


def test_duplicate_input_names(tmp_path: Path, cli) -> None:
    unavailable = '\n[[inputs]]\nname = "data"\nrole = "code"\navailable = false\nunavailable-reason = "x"\n'
    path = write(tmp_path, BASE + AVAILABLE_INPUT + unavailable)
    assert_problems(cli, path, [(35, "inputs[1].name", "duplicate input name 'data' (also inputs[0])")])


# --- sources --------------------------------------------------------------------------------------


def test_pypi_source_without_member(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', PYPI_SOURCE))
    assert_problems(cli, path, [
        (18, "weights[0].sources[0].member", "required key is missing for a pypi source"),
    ])


def test_deb_source_without_package_and_version(tmp_path: Path, cli) -> None:
    source = f'kind = "deb"\nsha256 = "{WHEEL_PIN}"\nmember = "usr/share/w.bin"\n'
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', source))
    assert_problems(cli, path, [
        (18, "weights[0].sources[0].package", "required key is missing for a deb source"),
        (18, "weights[0].sources[0].version", "required key is missing for a deb source"),
    ])


def test_url_source_with_a_bad_scheme(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', 'kind = "url"\nurl = "ftp://x/w.bin"\n'))
    assert_problems(cli, path, [
        (20, "weights[0].sources[0].url", "expected an http://, https:// or file:// URL, got 'ftp://x/w.bin'"),
    ])


def test_unknown_source_kind(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('kind = "path"', 'kind = "git"'))
    assert_problems(cli, path, [
        (19, "weights[0].sources[0].kind",
         "must be one of 'path', 'url', 'pypi', 'deb', 'hf', 'recipe'; got 'git'"),
    ])


def test_source_without_kind(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('kind = "path"\n', ""))
    assert_problems(cli, path, [(18, "weights[0].sources[0].kind", "required key is missing")])


@pytest.mark.parametrize(
    ("toml_value", "message"),
    [
        ("'../x'", "path '../x' contains '..' and would escape its folder"),
        ("'files/../../x'", "path 'files/../../x' contains '..' and would escape its folder"),
        ("'/etc/passwd'", "path '/etc/passwd' is absolute; it must be relative"),
        ("'C:/weights/w.bin'", "path 'C:/weights/w.bin' is absolute; it must be relative"),
        ("'a\\b'", "path 'a\\\\b' contains a backslash; use '/' as the separator"),
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "drive", "backslash"],
)
def test_path_source_that_escapes_the_recipe_folder(tmp_path: Path, cli, toml_value: str,
                                                    message: str) -> None:
    path = write(tmp_path, swap('path = "files/w.bin"', f"path = {toml_value}"))
    assert_problems(cli, path, [(20, "weights[0].sources[0].path", message)])


def test_weights_path_that_escapes(tmp_path: Path, cli) -> None:
    path = write(tmp_path, swap('path = "w.bin"', 'path = "../w.bin"'))
    assert_problems(cli, path, [
        (13, "weights[0].path", "path '../w.bin' contains '..' and would escape its folder"),
    ])


def test_archive_member_with_dotdot(tmp_path: Path, cli) -> None:
    source = PYPI_SOURCE + 'member = [\n  "demo/outer.zip",\n  "../../etc/w.bin",\n]\n'
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', source))
    assert_problems(cli, path, [
        (25, "weights[0].sources[0].member[1]",
         "path '../../etc/w.bin' contains '..' and would escape its folder"),
    ])


def test_archive_member_string_with_dotdot(tmp_path: Path, cli) -> None:
    source = PYPI_SOURCE + 'member = "demo/../../w.bin"\n'
    path = write(tmp_path, swap('kind = "path"\npath = "files/w.bin"\n', source))
    assert_problems(cli, path, [
        (23, "weights[0].sources[0].member",
         "path 'demo/../../w.bin' contains '..' and would escape its folder"),
    ])


# --- licences -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("MIT OR", "Invalid license expression: 'MIT OR'"),
        ("Apache 2.0", "Invalid license expression: 'Apache 2.0'"),
        ("Foo-License", "Unknown license: 'foo-license'"),
    ],
    ids=["dangling-or", "space", "unknown"],
)
def test_invalid_spdx_expression(tmp_path: Path, cli, expression: str, message: str) -> None:
    path = write(tmp_path, swap('weights = "MIT"', f'weights = "{expression}"'))
    assert_problems(cli, path, [
        (9, "license.weights", f"not an SPDX licence expression: {message} (use LicenseRef-… for others)"),
    ])


def test_invalid_spdx_expression_of_an_input(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + AVAILABLE_INPUT.replace("CC0-1.0", "CC0"))
    assert_problems(cli, path, [
        (28, "inputs[0].license",
         "not an SPDX licence expression: Unknown license: 'cc0' (use LicenseRef-… for others)"),
    ])


@pytest.mark.parametrize(
    "expression",
    ["LicenseRef-Custom-1", "MIT AND LicenseRef-Intel-OpenCV", "(Apache-2.0 OR MIT) AND CC-BY-4.0"],
)
def test_licenseref_and_compound_expressions_are_accepted(tmp_path: Path, cli, expression: str) -> None:
    lints_clean(cli, write(tmp_path, swap('weights = "MIT"', f'weights = "{expression}"')))


# --- inputs, build and reproducibility ------------------------------------------------------------


def test_available_input_without_sources(tmp_path: Path, cli) -> None:
    without = AVAILABLE_INPUT[: AVAILABLE_INPUT.index("\n[[inputs.sources]]")] + "\n"
    path = write(tmp_path, BASE + without)
    assert_problems(cli, path, [(22, "inputs[0].sources", "required key is missing")])


def test_available_input_with_an_empty_source_list(tmp_path: Path, cli) -> None:
    without = AVAILABLE_INPUT[: AVAILABLE_INPUT.index("\n[[inputs.sources]]")] + "sources = []\n"
    path = write(tmp_path, BASE + without)
    assert_problems(cli, path, [(29, "inputs[0].sources", "an available input needs a source")])


def test_unavailable_input_without_reason(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + '\n[[inputs]]\nname = "x"\nrole = "data"\navailable = false\n')
    assert_problems(cli, path, [(22, "inputs[0].unavailable-reason", "required key is missing")])


BUILD = '\n[build]\ncommand = ["python", "train.py"]\noutputs = ["w.bin"]\n'
# line 22 [build]  23 command  24 outputs


def test_tolerance_without_atol(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + BUILD + '\n[reproducibility]\nlevel = "tolerance"\n')
    assert_problems(cli, path, [(26, "reproducibility.atol", "required key is missing")])


def test_tolerance_with_atol_lints_clean(tmp_path: Path, cli) -> None:
    text = BASE + BUILD + '\n[reproducibility]\nlevel = "tolerance"\natol = 1e-6\n'
    lints_clean(cli, write(tmp_path, text))


def test_bit_identical_without_build(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + '\n[reproducibility]\nlevel = "bit-identical"\n')
    assert_problems(cli, path, [
        (23, "reproducibility.level", "'bit-identical' needs a [build] table that says how"),
    ])


def test_unavailable_without_reason(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + '\n[reproducibility]\nlevel = "unavailable"\n')
    assert_problems(cli, path, [(22, "reproducibility.reason", "required key is missing")])


def test_weights_path_not_among_build_outputs(tmp_path: Path, cli) -> None:
    path = write(tmp_path, BASE + BUILD.replace('["w.bin"]', '["model.bin"]'))
    assert_problems(cli, path, [
        (13, "weights[0].path", "'w.bin' is not among build.outputs, so a rebuild cannot reproduce it"),
    ])


# --- line numbers deep inside arrays of tables and inline tables ---------------------------------

SECOND_WEIGHT = f"""
[[weights]]
path = "v.bin"
sha256 = "{PIN}"
size = 4
format = "other"

[[weights.sources]]
kind = "path"
path = "files/v.bin"

[[weights.sources]]
kind = "url"
url = "https://example.org/v.bin"
mirrors = [
    "https://mirror.example.org/v.bin",
    "ftp://old.example.org/v.bin",
]
"""
# line 22 [[weights]]  23 path  24 sha256  25 size  26 format
# line 28 [[weights.sources]]  29 kind  30 path
# line 32 [[weights.sources]]  33 kind  34 url  35 mirrors  36 mirrors[0]  37 mirrors[1]


def test_lines_in_the_second_weight_and_its_second_source(tmp_path: Path, cli) -> None:
    second = swap('kind = "url"', 'kind = "url"\nmirror = "x"', SECOND_WEIGHT)
    text = BASE + swap("size = 4", "size = -4", second)
    path = write(tmp_path, text)
    assert_problems(cli, path, [
        (25, "weights[1].size", "must be at least 0, got -4"),
        (34, "weights[1].sources[1].mirror", "unknown key for a url source; did you mean 'mirrors'?"),
        (38, "weights[1].sources[1].mirrors[1]",
         "expected an http://, https:// or file:// URL, got 'ftp://old.example.org/v.bin'"),
    ])


def test_lines_of_inline_tables_in_a_multiline_array(tmp_path: Path, cli) -> None:
    inline = f"""
[[weights]]
path = "v.bin"
sha256 = "{PIN}"
size = 4
format = "other"
sources = [
    {{ kind = "path", path = "files/v.bin" }},

    # the second source, on its own line
    {{ kind = "pypi", package = "demo", version = "1", sha256 = "{WHEEL_PIN}", member = ["a.zip", "../b"] }},
    {{ kind = "path", pth = "v.bin" }},
]
"""
    path = write(tmp_path, BASE + inline)
    assert_problems(cli, path, [
        (31, "weights[1].sources[1].member[1]", "path '../b' contains '..' and would escape its folder"),
        (32, "weights[1].sources[2].path", "required key is missing for a path source"),
        (32, "weights[1].sources[2].pth", "unknown key for a path source; did you mean 'path'?"),
    ])


def test_lines_after_multiline_strings_full_of_toml_lookalikes(tmp_path: Path, cli) -> None:
    notes = 'notes = """\n[[weights]]\npath = "x" # not a key\n"""\n'
    literal = "notes = '''\n[[weights.sources]]\nkind = [\n'''\n"
    text = swap('upstream = "MIT"\n', f'upstream = "MIT"\n{notes}') + swap(
        'size = 4', 'size = "4"', SECOND_WEIGHT.replace('url = "https', f'{literal}url = "https')
    )
    path = write(tmp_path, text)
    assert_problems(cli, path, [
        (29, "weights[1].size", "expected an integer, got a string '4'"),
        (38, "weights[1].sources[1].notes",
         "unknown key for a url source; known keys: declared-license, kind, mirrors, url"),
        (45, "weights[1].sources[1].mirrors[1]",
         "expected an http://, https:// or file:// URL, got 'ftp://old.example.org/v.bin'"),
    ])


def test_line_of_a_datetime_with_a_space_does_not_lose_every_line(tmp_path: Path, cli) -> None:
    # TOML allows '1979-05-27 07:32:00Z'; after one, every problem must still have its line.
    text = swap('summary = "a demo package"', 'summary = "a demo package"\nreleased = 2024-05-01 10:00:00Z')
    path = write(tmp_path, swap(PIN, "abc", text))
    assert_problems(cli, path, [
        (7, "package.released", "unknown key; known keys: authors, homepage, kind, name, summary, version"),
        (15, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
    ])


def test_line_after_escaped_quotes_in_a_multiline_string(tmp_path: Path, cli) -> None:
    notes = 'notes = """Say \\"""hi\\""" to them"""\n'
    path = write(tmp_path, swap(PIN, "abc", swap('upstream = "MIT"\n', f'upstream = "MIT"\n{notes}')))
    assert_problems(cli, path, [
        (15, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
    ])


def test_escaped_triple_quote_in_a_multiline_string_does_not_hang(tmp_path: Path, cli) -> None:
    # The scanner ends the string at the escaped quotes, reads the real closing quotes as the start
    # of another string that never ends, and (in a file whose first key is one letter) loops forever.
    notes = 'notes = """Its closing quotes, escaped: \\"""\n"""\n'
    text = "x = 1\n" + swap(PIN, "abc", swap('upstream = "MIT"\n', f'upstream = "MIT"\n{notes}'))
    path = write(tmp_path, text)
    assert_problems(cli, path, [
        (1, "x",
         "unknown key; known keys: bias, build, inputs, license, package, reproducibility, schema, "
         "seeds, signatures, stress, weights"),
        (17, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
    ], timeout=20)


def test_deeply_nested_arrays_are_a_problem_not_a_traceback(tmp_path: Path, cli) -> None:
    # tomllib recurses once per level and raises RecursionError (not TOMLDecodeError) at ~500.
    path = write(tmp_path, BASE + "nested = " + "[" * 2000 + "]" * 2000 + "\n")
    caught = recipe_error(path)
    (problem,) = caught.problems
    assert (problem.file, problem.key) == (str(path), "")
    done = cli("lint", str(path))
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines() == [str(problem)]


def single_problem(cli, path: Path) -> tuple[int | None, str, str]:
    """The one problem lint finds in ``path`` as (line, key, message); the CLI prints it as such."""
    caught = recipe_error(path)
    (problem,) = caught.problems
    done = cli("lint", str(path))
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines() == [shown(path, problem.line, problem.key, problem.message)]
    return problem.line, problem.key, problem.message


def test_a_date_where_a_string_belongs_is_shown_as_toml(tmp_path: Path, cli) -> None:
    # Not "got date datetime.date(2024, 1, 1)": the recipe's author wrote TOML, not Python.
    line, key, message = single_problem(cli, write(tmp_path, swap('version = "1.0"', "version = 2024-01-01")))
    assert (line, key) == (5, "package.version")
    assert message.startswith("expected a string, got a ")
    assert "2024-01-01" in message
    assert "datetime" not in message


def test_a_boolean_is_shown_as_toml(tmp_path: Path, cli) -> None:
    line, key, message = single_problem(cli, write(tmp_path, swap("size = 3", "size = true")))
    assert (line, key) == (15, "weights[0].size")
    assert message.startswith("expected an integer, got a boolean ")
    assert message.endswith("true")


def test_a_too_long_name_says_the_limit(tmp_path: Path, cli) -> None:
    name = "a" * 120
    line, key, message = single_problem(cli, write(tmp_path, swap('name = "demo"', f'name = "{name}"')))
    assert (line, key) == (4, "package.name")
    assert "100" in message
    assert name not in message


# --- many problems at once --------------------------------------------------------------------------


def test_every_problem_in_one_file_reported_at_once_sorted_by_line(tmp_path: Path, cli) -> None:
    text = (
        BASE.replace("schema = 1", "schema = 2")
        .replace('version = "1.0"', 'verison = "1.0"')
        .replace('upstream = "MIT"', 'upstream = "MIT OR"')
        .replace(PIN, "abc")
        .replace('path = "files/w.bin"', 'path = "../w.bin"')
        + '\n[reproducibility]\nlevel = "bit-identical"\n'
    )
    path = write(tmp_path, text)
    assert_problems(cli, path, [
        (1, "schema", "unsupported recipe format 2; this weightpkg reads schema = 1"),
        (3, "package.version", "required key is missing"),
        (5, "package.verison", "unknown key; did you mean 'version'?"),
        (10, "license.upstream",
         "not an SPDX licence expression: Invalid license expression: 'MIT OR' "
         "(use LicenseRef-… for others)"),
        (14, "weights[0].sha256",
         "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
        (20, "weights[0].sources[0].path", "path '../w.bin' contains '..' and would escape its folder"),
        (23, "reproducibility.level", "'bit-identical' needs a [build] table that says how"),
    ])


def test_problems_without_a_line_come_first(tmp_path: Path, cli) -> None:
    text = swap(LICENSE_TABLE, "", swap("size = 3", "size = -1"))
    path = write(tmp_path, text)
    assert_problems(cli, path, [
        (None, "license", "required key is missing"),
        (12, "weights[0].size", "must be at least 0, got -1"),
    ])


# --- files, folders and other commands --------------------------------------------------------------


def test_missing_file(tmp_path: Path, cli) -> None:
    path = tmp_path / "nope.toml"
    assert_problems(cli, path, [(None, "", "no such file")])


def test_a_folder_lints_every_recipe_in_it(tmp_path: Path, cli) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    good = write(folder, BASE, "a-good.toml")
    bad = write(folder, swap(PIN, "abc"), "b-bad.toml")
    broken = write(folder, "schema = \n", "c-broken.toml")
    (folder / "notes.txt").write_text("not a recipe [")
    done = cli("lint", str(folder))
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        shown(bad, 14, "weights[0].sha256",
              "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)"),
        shown(broken, 1, "", "TOML syntax error: Invalid value"),
    ]
    assert done.stdout.splitlines() == [f"{good}: ok"]
    assert weightpkg.find_recipes([folder]) == [good, bad, broken]


def test_a_folder_without_recipes(tmp_path: Path, cli) -> None:
    done = cli("lint", str(tmp_path))
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"{tmp_path}: no recipes (*.toml) in this folder"]


def test_verify_on_a_malformed_recipe_fetches_nothing(tmp_path: Path, store_root: Path, cli) -> None:
    good_folder = tmp_path / "good"
    (good_folder / "files").mkdir(parents=True)
    (good_folder / "files" / "w.bin").write_bytes(DATA)
    good = write(good_folder, swap("size = 3", f"size = {len(DATA)}", swap(PIN, sha256(DATA))))
    bad = write(tmp_path, swap(PIN, "abc"), "bad.toml")
    expected = shown(bad, 14, "weights[0].sha256",
                     "not a sha256: expected 64 lower-case hexadecimal digits, got 'abc' (3 characters)")
    for command in ("verify", "fetch"):
        done = cli("--store", str(store_root), command, str(good), str(bad))
        assert "Traceback" not in done.stdout + done.stderr
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.splitlines() == [expected]
        assert not [p for p in store_root.rglob("*") if p.is_file()]
    done = cli("--store", str(store_root), "verify", str(good))
    assert done.returncode == 0, done.stderr


def test_verify_on_a_toml_syntax_error(tmp_path: Path, store_root: Path, cli) -> None:
    path = write(tmp_path, 'schema = 1\n[package]\nname = "demo\n')
    done = cli("--store", str(store_root), "verify", str(path))
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [shown(path, 3, "", "TOML syntax error: Illegal character '\\n'")]


def test_verify_on_a_missing_recipe(tmp_path: Path, store_root: Path, cli) -> None:
    path = tmp_path / "nope.toml"
    done = cli("--store", str(store_root), "verify", str(path))
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"{path}: no such file"]
