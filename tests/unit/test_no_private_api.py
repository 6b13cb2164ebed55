"""No private attribute or module of a library the product imports is used by the product.

The names come from the installed libraries themselves: every `_name` they define (modules,
module globals, functions, methods, `self._x` attributes). A product file that reaches one
of them (an import from a `_module`, or `._name` it does not define itself) is listed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fleetcheck"
#: Every third-party package `fleetcheck/` imports (and urllib3, under requests). typer since
#: 0.26 keeps its own copy of click in `typer._click`, which its authors say is not for
#: applications; its usage errors derive from the public `typer.TyperException`.
LIBRARIES = (
    "psrpcore", "spnego", "pypsrp", "winrm", "requests", "urllib3", "typer", "pydantic", "pydantic_core",
    "rich", "cryptography", "yaml", "jinja2", "redis", "celery", "kombu", "trustme", "platformdirs",
    "tabulate", "regex", "gssapi", "krb5", "k5test", "asyncssh", "uvloop", "httptools",
)

_DEFINES = re.compile(
    r"(?:(?:self|cls)\.(_[A-Za-z]\w*)\s*(?::[^=\n]+)?=)|(?:^\s*(?:async\s+)?def\s+(_[A-Za-z]\w*)\s*\()|(?:^[ \t]*(_[A-Za-z]\w*)\s*[:=])",
    re.M,
)
_LIBS = "|".join(LIBRARIES)
_PRIVATE_IMPORT = re.compile(
    rf"^\s*(?:from\s+((?:{_LIBS})[\w.]*)\s+import\s+([^\n(]+|\([^)]*\))|import\s+((?:{_LIBS})[\w.]*))",
    re.M,
)


def _find(lib: str) -> importlib.machinery.ModuleSpec | None:
    """Where the package is installed, read from `sys.path` alone: `importlib.util.find_spec`
    asks `sys.modules` first, and kombu, once celery has imported it, has no `__spec__`."""
    return importlib.machinery.PathFinder.find_spec(lib)


def _library_private_names() -> set[str]:
    names: set[str] = set()
    for lib in LIBRARIES:
        spec = _find(lib)
        if spec is None or not spec.submodule_search_locations:
            continue
        for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
            names.update(p for p in path.parts if p.startswith("_") and not p.startswith("__"))
            names.update(
                path.stem for _ in [0] if path.stem.startswith("_") and not path.stem.startswith("__")
            )
            for match in _DEFINES.finditer(path.read_text(encoding="utf-8", errors="replace")):
                names.update(n for n in match.groups() if n and not n.startswith("__"))
    return names


def private_uses(root: Path = ROOT) -> set[tuple[str, str]]:
    private = _library_private_names()
    found: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(root.parent))
        own = {n for m in _DEFINES.finditer(text) for n in m.groups() if n}
        for match in _PRIVATE_IMPORT.finditer(text):
            module = match.group(1) or match.group(3) or ""
            for part in module.split("."):
                if part.startswith("_"):
                    found.add((rel, part))
            for name in re.findall(r"\b(_[A-Za-z]\w*)", match.group(2) or ""):
                found.add((rel, name))
        for name in re.findall(r"\.(_[A-Za-z]\w*)\b", text):
            if name in private and name not in own and not name.startswith("__"):
                found.add((rel, name))
    return found


def test_the_product_uses_no_private_library_attribute() -> None:
    found = private_uses()
    assert found == set(), f"private library attributes used: {sorted(found)}"


def test_the_scan_finds_a_private_use(tmp_path: Path) -> None:
    pkg = tmp_path / "fleetcheck"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "from psrpcore._crypto import PSRemotingCrypto\nfrom spnego._ntlm_raw.crypto import ntowfv1\n"
        "def f(pool):\n    return pool._send_buffer\n"
        "def g(transport, pool):\n    transport._send_message_request(None, None)\n    return pool._new_conn()\n"
        "def h():\n    from typer import _click\n    return _click\n",
        encoding="utf-8",
    )
    (pkg / "good.py").write_text(
        "class A:\n    def __init__(self):\n        self._send_buffer = []\n"
        "@dataclasses.dataclass\nclass B:\n    _cache: dict = dataclasses.field(default_factory=dict)\n"
        "    def get(self):\n        return self._cache\n",
        encoding="utf-8",
    )
    found = private_uses(pkg)
    assert ("fleetcheck/bad.py", "_crypto") in found
    assert ("fleetcheck/bad.py", "_ntlm_raw") in found
    assert ("fleetcheck/bad.py", "_send_buffer") in found
    assert ("fleetcheck/bad.py", "_send_message_request") in found  # pywinrm
    assert ("fleetcheck/bad.py", "_new_conn") in found  # urllib3
    assert ("fleetcheck/bad.py", "_click") in found  # typer's copy of click
    assert not any(f[0] == "fleetcheck/good.py" for f in found)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_library_names_are_read(lib: str) -> None:
    importlib.import_module(lib)  # as other tests of the same process may have done first
    assert _find(lib) is not None


def test_every_library_the_product_imports_is_scanned() -> None:
    """A dependency added later is scanned too, or this test names it."""
    imported: set[str] = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.partition(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("fleetcheck", "__future__")}
    assert third_party - set(LIBRARIES) == set()
