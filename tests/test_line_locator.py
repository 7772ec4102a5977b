"""Unit tests of the line scanner ``weightpkg.load.locate_keys`` on tricky but valid TOML.

Every document here is first checked with tomllib (the scanner only ever sees valid TOML), and every
key path tomllib produces must get the line where the document defines it: lint reports
``FILE:LINE`` from this map, and a key path missing from it silently falls back to its parent's line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from weightpkg.load import locate_keys, read_recipe

from .guards import deadline, key_paths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

def locate(text: str) -> dict[str, int]:
    """locate_keys on valid TOML, checked to cover exactly the key paths tomllib parses."""
    data = tomllib.loads(text)  # the documents under test must be valid TOML
    with deadline():
        lines = locate_keys(text)
    assert sorted(lines) == sorted(set(key_paths(data)))
    return lines


# --- strings that look like structure ---------------------------------------------------------


def test_multiline_basic_string_with_brackets_equals_and_hash() -> None:
    text = (
        'a = """\n'  # 1
        "[not.a.table]\n"  # 2
        "[[not.an.array]]\n"  # 3
        "b = 1 # not a key\n"  # 4
        '"""\n'  # 5
        "c = 2\n"  # 6
    )
    assert locate(text) == {"a": 1, "c": 6}


def test_multiline_literal_string_with_brackets_equals_hash_and_backslashes() -> None:
    text = (
        "a = '''\n"  # 1
        "[x]\n"  # 2
        'y = "z" # \\ \n'  # 3
        "'''\n"  # 4
        "[t]\n"  # 5
        "k = 1\n"  # 6
    )
    assert locate(text) == {"a": 1, "t": 5, "t.k": 6}


def test_multiline_strings_ending_in_extra_quotes() -> None:
    text = (
        'a = """one "two" ""three"""""\n'  # 1: content ends with two quotes
        "b = '''x''y'''''\n"  # 2
        'c = """"\n'  # 3: a quote, then a newline in the string
        '""""\n'  # 4
        "d = 4\n"  # 5
    )
    assert locate(text) == {"a": 1, "b": 2, "c": 3, "d": 5}


def test_single_line_strings_with_escaped_quotes_and_trailing_backslash() -> None:
    text = (
        'a = "x\\"[y]\\" = z # q"\n'  # 1
        'b = "ends in a backslash\\\\"\n'  # 2
        "c = 'literal \\'\n"  # 3: a literal string ending in a backslash
        "d = 4\n"  # 4
    )
    assert locate(text) == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_multiline_basic_string_with_escaped_quotes() -> None:
    # TOML 1.0.0: inside """...""" a \" is a quote that does not end the string.
    text = (
        'a = """He said \\"""hi\\""" and left"""\n'  # 1
        "b = 2\n"  # 2
        'c = """x\\""" y = [1, 2]\n'  # 3
        'z""" # still c\n'  # 4
        "d = 4\n"  # 5
    )
    assert locate(text) == {"a": 1, "b": 2, "c": 3, "d": 5}


def test_multiline_basic_string_with_escaped_triple_quote_does_not_hang() -> None:
    # The scanner ends the string at the escaped quotes, then finds no closing quotes further on.
    text = 's = """a\\""" """\nt = 1\n'
    assert locate(text) == {"s": 1, "t": 2}


def test_multiline_basic_string_with_line_ending_backslash() -> None:
    text = (
        'a = """first \\\n'  # 1
        '    second \\""""\n'  # 2: \" then the closing """
        "[b]\n"  # 3
        "c = 1\n"  # 4
    )
    assert locate(text) == {"a": 1, "b": 3, "b.c": 4}


# --- comments and whitespace ------------------------------------------------------------------


def test_comments_with_quotes_and_brackets_everywhere() -> None:
    text = (
        '# [not] "a table\n'  # 1
        "[t] # [[x]] '\n"  # 2
        'a = 1 # b = "2\n'  # 3
        "arr = [ # [\n"  # 4
        "  1, # ]\n"  # 5
        "  # 'x' = 3\n"  # 6
        "  2,\n"  # 7
        "] # end\n"  # 8
        "  b=2#c\n"  # 9
    )
    assert locate(text) == {
        "t": 2, "t.a": 3, "t.arr": 4, "t.arr[0]": 5, "t.arr[1]": 7, "t.b": 9,
    }


def test_whitespace_inside_headers_and_around_dots() -> None:
    text = (
        "[ a . b ]\n"  # 1
        "c . d = 1\n"  # 2
        "[[ e ]]\n"  # 3
        "\tf\t=\t2\n"  # 4
    )
    assert locate(text) == {"a": 1, "a.b": 1, "a.b.c": 2, "a.b.c.d": 2, "e": 3, "e[0]": 3, "e[0].f": 4}


# --- keys -------------------------------------------------------------------------------------


def test_quoted_keys_with_dots_are_one_key() -> None:
    text = (
        '"a.b" = 1\n'  # 1
        "'c.d'.e = 2\n"  # 2
        '[table."x.y"]\n'  # 3
        "\"with 'quote'\" = 3\n"  # 4
        '"" = 4\n'  # 5
    )
    assert locate(text) == {
        '"a.b"': 1, '"c.d"': 2, '"c.d".e': 2,
        "table": 3, 'table."x.y"': 3, "table.\"x.y\".\"with 'quote'\"": 4, 'table."x.y".""': 5,
    }


def test_quoted_keys_with_escapes_are_decoded() -> None:
    # "A\u0042" is the key AB; lint names it so and must find its line.
    text = (
        "[build.env]\n"  # 1
        '"A\\u0042" = 1\n'  # 2
        '"tab\\there" = 2\n'  # 3
        '"q\\"uote" = 3\n'  # 4
    )
    assert locate(text) == {
        "build": 1, "build.env": 1, "build.env.AB": 2, 'build.env."tab\\there"': 3, 'build.env."q\\"uote"': 4,
    }


def test_dotted_keys_record_every_prefix_at_their_line() -> None:
    text = (
        "[package]\n"  # 1
        'name = "x"\n'  # 2
        "meta.origin.url = 'u'\n"  # 3
        "meta.origin.note = 'n'\n"  # 4
        "meta.other = 1\n"  # 5
    )
    assert locate(text) == {
        "package": 1, "package.name": 2, "package.meta": 3, "package.meta.origin": 3,
        "package.meta.origin.url": 3, "package.meta.origin.note": 4, "package.meta.other": 5,
    }


def test_integer_like_and_dashed_bare_keys() -> None:
    text = "1.2 = 3\n[groups-at-risk]\n-_- = 1\n"
    assert locate(text) == {"1": 1, "1.2": 1, "groups-at-risk": 2, "groups-at-risk.-_-": 3}


# --- arrays of tables -------------------------------------------------------------------------


def test_nested_arrays_of_tables_count_per_parent_element() -> None:
    text = (
        "[[weights]]\n"  # 1
        'path = "a"\n'  # 2
        "[[weights.sources]]\n"  # 3
        'kind = "path"\n'  # 4
        "[[weights.sources]]\n"  # 5
        'kind = "url"\n'  # 6
        "[[weights]]\n"  # 7
        'path = "b"\n'  # 8
        "[[weights.sources]]\n"  # 9
        'kind = "deb"\n'  # 10
        "[weights.sources.extra]\n"  # 11: a table inside weights[1].sources[0]
        "x = 1\n"  # 12
        "[[weights.sources]]\n"  # 13
        "member = ['m1', 'm2']\n"  # 14
    )
    assert locate(text) == {
        "weights": 1,
        "weights[0]": 1, "weights[0].path": 2,
        "weights[0].sources": 3,
        "weights[0].sources[0]": 3, "weights[0].sources[0].kind": 4,
        "weights[0].sources[1]": 5, "weights[0].sources[1].kind": 6,
        "weights[1]": 7, "weights[1].path": 8,
        "weights[1].sources": 9,
        "weights[1].sources[0]": 9, "weights[1].sources[0].kind": 10,
        "weights[1].sources[0].extra": 11, "weights[1].sources[0].extra.x": 12,
        "weights[1].sources[1]": 13, "weights[1].sources[1].member": 14,
        "weights[1].sources[1].member[0]": 14, "weights[1].sources[1].member[1]": 14,
    }


def test_three_levels_of_arrays_of_tables() -> None:
    text = (
        "[[a]]\n"  # 1
        "[[a.b]]\n"  # 2
        "[[a.b.c]]\n"  # 3
        "[[a.b.c]]\n"  # 4
        "[[a.b]]\n"  # 5
        "[[a.b.c]]\n"  # 6
        "[[a]]\n"  # 7
        "[[a.b]]\n"  # 8
        "[[a.b.c]]\n"  # 9
        "x = 1\n"  # 10
    )
    lines = locate(text)
    assert lines["a[0].b[0].c[1]"] == 4
    assert lines["a[0].b[1].c[0]"] == 6
    assert lines["a[1].b[0].c[0]"] == 9
    assert lines["a[1].b[0].c[0].x"] == 10


def test_more_than_ten_elements() -> None:
    text = "".join(f"[[w]]\nn = {i}\n[[w.s]]\n[[w.s]]\n" for i in range(12))
    lines = locate(text)
    assert lines["w[10]"] == 41
    assert lines["w[10].n"] == 42
    assert lines["w[11].s[1]"] == 48
    assert lines["w[1].s[1]"] == 8


def test_sub_table_of_an_array_element_then_its_super_table() -> None:
    text = (
        "[[fruit]]\n"  # 1
        "[fruit.physical]\n"  # 2
        "color = 'red'\n"  # 3
        "[[fruit.variety]]\n"  # 4
        "[[fruit]]\n"  # 5
        "[[fruit.variety]]\n"  # 6
        "name = 'plantain'\n"  # 7
    )
    assert locate(text) == {
        "fruit": 1, "fruit[0]": 1, "fruit[0].physical": 2, "fruit[0].physical.color": 3,
        "fruit[0].variety": 4, "fruit[0].variety[0]": 4,
        "fruit[1]": 5, "fruit[1].variety": 6, "fruit[1].variety[0]": 6, "fruit[1].variety[0].name": 7,
    }


# --- inline tables and arrays -----------------------------------------------------------------


def test_inline_tables_inside_a_multiline_array() -> None:
    text = (
        "[[weights]]\n"  # 1
        "sources = [\n"  # 2
        '  { kind = "path", path = "a" },  # first\n'  # 3
        "\n"  # 4
        "  # a comment with { and ]\n"  # 5
        '  {kind="url",url="http://x/]}",mirrors=["http://y/{"]},\n'  # 6
        "]\n"  # 7
        "after = { nested = { deep = [1, { k = 'v' }] } }\n"  # 8
    )
    assert locate(text) == {
        "weights": 1, "weights[0]": 1,
        "weights[0].sources": 2,
        "weights[0].sources[0]": 3, "weights[0].sources[0].kind": 3, "weights[0].sources[0].path": 3,
        "weights[0].sources[1]": 6, "weights[0].sources[1].kind": 6, "weights[0].sources[1].url": 6,
        "weights[0].sources[1].mirrors": 6, "weights[0].sources[1].mirrors[0]": 6,
        "weights[0].after": 8, "weights[0].after.nested": 8, "weights[0].after.nested.deep": 8,
        "weights[0].after.nested.deep[0]": 8, "weights[0].after.nested.deep[1]": 8,
        "weights[0].after.nested.deep[1].k": 8,
    }


def test_nested_arrays_spanning_lines() -> None:
    text = (
        "a = [\n"  # 1
        "  [1, 2],\n"  # 2
        "  [\n"  # 3
        "    3,\n"  # 4
        "    '''x\n"  # 5
        "]''',\n"  # 6
        "  ],\n"  # 7
        "]\n"  # 8
        "b = []\n"  # 9
    )
    assert locate(text) == {
        "a": 1, "a[0]": 2, "a[0][0]": 2, "a[0][1]": 2, "a[1]": 3, "a[1][0]": 4, "a[1][1]": 5, "b": 9,
    }


# --- scalars ----------------------------------------------------------------------------------


def test_scalars_of_every_kind() -> None:
    text = (
        "i = +1_000\n"  # 1
        "f = -3.5e+2\n"  # 2
        "n = nan\n"  # 3
        "t = true\n"  # 4
        "h = 0xdead_beef\n"  # 5
        "odt = 1979-05-27T07:32:00.999Z\n"  # 6
        "ld = 1979-05-27\n"  # 7
        "lt = 07:32:00\n"  # 8
        "z = 0\n"  # 9
    )
    assert locate(text) == {
        "i": 1, "f": 2, "n": 3, "t": 4, "h": 5, "odt": 6, "ld": 7, "lt": 8, "z": 9,
    }


def test_datetimes_with_a_space_separator() -> None:
    # TOML 1.0.0 allows a space instead of the T between date and time.
    text = (
        "odt = 1979-05-27 07:32:00Z\n"  # 1
        "ldt = 1979-05-27 07:32:00.5 # local\n"  # 2
        "arr = [1979-05-27 07:32:00+01:00, 2000-01-01 00:00:00]\n"  # 3
        "tbl = { when = 1979-05-27 00:32:00-07:00 }\n"  # 4
        "after = 5\n"  # 5
    )
    assert locate(text) == {
        "odt": 1, "ldt": 2, "arr": 3, "arr[0]": 3, "arr[1]": 3, "tbl": 4, "tbl.when": 4, "after": 5,
    }


# --- line endings and the byte order mark -----------------------------------------------------


def test_crlf_line_endings() -> None:
    text = (
        "# comment\r\n"  # 1
        "[package]\r\n"  # 2
        'name = "x"\r\n'  # 3
        'notes = """a\r\n'  # 4
        "[b]\r\n"  # 5
        '"""\r\n'  # 6
        "arr = [\r\n"  # 7
        "  1,\r\n"  # 8
        "  2 ]\r\n"  # 9
        "[[weights]]\r\n"  # 10
        "size = 3\r\n"  # 11
    )
    assert locate(text) == {
        "package": 2, "package.name": 3, "package.notes": 4, "package.arr": 7,
        "package.arr[0]": 8, "package.arr[1]": 9, "weights": 10, "weights[0]": 10, "weights[0].size": 11,
    }


def test_no_trailing_newline_and_empty_document() -> None:
    assert locate("a = 1\nb = 'x'") == {"a": 1, "b": 2}
    assert locate("") == {}
    assert locate("# only a comment") == {}


def test_read_recipe_strips_the_bom_and_keeps_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(b"\xef\xbb\xbfschema = 1\r\n\r\n[package]\r\nname = 'x'\r\n")
    loaded = read_recipe(path)
    assert loaded.data == {"schema": 1, "package": {"name": "x"}}
    assert loaded.lines == {"schema": 1, "package": 3, "package.name": 4}


def test_line_of_falls_back_to_the_nearest_enclosing_key(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[[weights]]\npath = 'a'\n\n[[weights]]\n[[weights.sources]]\nkind = 'pypi'\n")
    loaded = read_recipe(path)
    assert loaded.line_of("weights[1].sources[0].kind") == 6
    assert loaded.line_of("weights[1].sources[0].member[2]") == 5
    assert loaded.line_of("weights[1].sha256") == 4
    assert loaded.line_of("weights[0].path") == 2
    assert loaded.line_of("license.weights") is None
    assert loaded.line_of("schema") is None
