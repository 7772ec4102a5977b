"""The import direction is the design: the core stays pure, and the code stays ruff-clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

CORE = REPO / "weightpkg" / "core"
#: The core may import the standard library and these pure packages (SPDX checks, licence trees).
CORE_ALLOWED = {"numpy", "jsonschema", "packaging", "license_expression"}
#: Standard-library modules the core must not use: they reach the network, the terminal or processes.
CORE_FORBIDDEN = {"socket", "urllib.request", "http", "requests", "subprocess", "shutil", "click", "tempfile"}


def imported_modules(path: Path) -> set[str]:
    """Modules imported, by full dotted name, with relative imports resolved."""
    package = ["weightpkg", *path.parent.relative_to(REPO / "weightpkg").parts]
    tree = ast.parse(path.read_text("utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(target)
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_the_standard_library_and_pure_packages(path: Path) -> None:
    modules = imported_modules(path)
    outside = {m for m in modules if m.startswith("weightpkg") and not m.startswith("weightpkg.core")}
    assert not outside, f"{path.name} imports {sorted(outside)} from outside the core"
    modules = {m for m in modules if not m.startswith("weightpkg")}
    tops = {m.split(".")[0] for m in modules}
    third_party = {m for m in tops if m not in sys.stdlib_module_names and m != "__future__"}
    assert third_party <= CORE_ALLOWED, f"{path.name} imports {sorted(third_party - CORE_ALLOWED)}"
    forbidden = {m for m in modules | tops if m in CORE_FORBIDDEN}
    assert not forbidden, f"{path.name} imports {sorted(forbidden)}"


def test_core_never_prints() -> None:
    for path in CORE.glob("*.py"):
        calls = [
            node for node in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
        ]
        assert not calls, f"{path.name} calls print()"


def test_the_version_flag_imports_nothing_heavy() -> None:
    code = (
        "import sys, weightpkg.cli\n"
        "heavy = {'requests', 'numpy', 'jsonschema', 'safetensors', 'urllib3', 'cryptography',\n"
        "         'license_expression'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_verify_of_a_valid_unsigned_recipe_imports_nothing_heavy(tmp_path: Path) -> None:
    # verify runs in every distro build: its fixed cost is start-up (docs/performance.md). A valid
    # recipe needs no jsonschema, bare SPDX ids no license_expression, no keys no cryptography.
    code = (
        "import sys\n"
        "from weightpkg.cli import main\n"
        f"sys.argv = ['weightpkg', '--store', {str(tmp_path / 'store')!r}, 'verify',\n"
        f"            {str(REPO / 'recipes' / 'digits-mlp.toml')!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = {'requests', 'numpy', 'jsonschema', 'safetensors', 'urllib3', 'cryptography',\n"
        "         'license_expression'} & set(sys.modules)\n"
        "print(sorted(heavy), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip() == "[]"


def test_ruff_is_clean() -> None:
    pytest.importorskip("ruff", reason="ruff comes with the test extras: pip install -e '.[test]'")
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "weightpkg", "tests", "benchmarks", "recipes"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
