"""The sans-IO promise (STYLE.md B1): core modules never import I/O machinery.

Walks the `import` statements (ast, so nothing is executed) of every core module and of every
`pasta` module they import in turn, package `__init__`s included, and fails naming the chain
that reaches a forbidden module. Core modules that do not exist yet are skipped silently, except
the three that must always be covered.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG_ROOT = Path(__file__).resolve().parents[2]
PASTA = PKG_ROOT / "pasta"

FORBIDDEN = {"socket", "select", "selectors", "pyroute2", "subprocess", "fcntl", "ctypes",
             "asyncio"}
# The UDP and ICMP echo translators (pasta/udp.py, pasta/icmp.py) are thin I/O shells around
# sockets; every decision they take lives in the pure modules `fwd` (address translation),
# `fwd_rule` (the forwarding rule table) and `flow` (the flow table), which are core.
CORE_NAMES = ("arp", "dhcp", "ndp", "dhcpv6", "flow", "fwd", "fwd_rule", "tcp", "portspec",
              "config", "errors", "netplan", "linkctx")
MUST_EXIST = ("portspec", "config", "errors", "netplan", "fwd", "flow", "linkctx")


def core_modules() -> dict[str, Path]:
    """Dotted name → file, for the core modules present in the tree."""
    mods = {f"pasta.{name}": PASTA / f"{name}.py" for name in CORE_NAMES
            if (PASTA / f"{name}.py").is_file()}
    wire = PASTA / "wire"
    if wire.is_dir():
        for path in sorted(wire.rglob("*.py")):
            parts = path.relative_to(PKG_ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def module_file(dotted: str) -> Path | None:
    """The file of a `pasta...` module, or None if it does not exist."""
    base = PKG_ROOT.joinpath(*dotted.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imports_of(dotted: str, path: Path) -> set[str]:
    """Absolute dotted names imported anywhere in the file (functions included).

    `from X import Y` yields X and X.Y (Y may be a submodule); `importlib.import_module("X")` and
    `__import__("X")` with a literal count as well.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = dotted if is_pkg else dotted.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return found


def parents(dotted: str) -> list[str]:
    """pasta.wire.l2 → [pasta, pasta.wire]: packages whose __init__ runs on import."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def forbidden_chains(start: str) -> list[str]:
    """Every `a -> b -> socket` chain from `start` to a forbidden import."""
    chains = []
    seen = set()
    todo = [(start, [start])]
    while todo:
        mod, chain = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = module_file(mod)
        if path is None:
            continue
        for imp in sorted(imports_of(mod, path) | set(parents(mod))):
            if imp.split(".")[0] in FORBIDDEN:
                chains.append(" -> ".join(chain + [imp]))
            elif imp.split(".")[0] == "pasta" and module_file(imp) is not None:
                todo.append((imp, chain + [imp]))
    return chains


def test_layering_core_imports_no_io():
    bad = {mod: forbidden_chains(mod) for mod in core_modules()}
    bad = {mod: chains for mod, chains in bad.items() if chains}
    assert not bad, "core modules reach I/O imports (STYLE.md B1):\n" + "\n".join(
        chain for chains in bad.values() for chain in chains)


def test_layering_checks_the_required_modules():
    checked = core_modules()
    missing = [f"pasta/{name}.py" for name in MUST_EXIST if f"pasta.{name}" not in checked]
    assert not missing, f"core modules missing, so unchecked: {missing}"


def test_layering_detects_forbidden_imports(tmp_path):
    """The walker itself: every spelling of an import is seen."""
    src = tmp_path / "m.py"
    src.write_text(
        "import os, socket as s\n"
        "from select import epoll\n"
        "def f():\n"
        "    import pyroute2.iproute\n"
        "    from . import sibling\n"
        "    importlib.import_module('ctypes')\n"
        "from ..errors import PastaError\n")
    found = imports_of("pasta.wire.m", src)
    assert {"os", "socket", "select", "pyroute2.iproute", "ctypes", "pasta.wire",
            "pasta.wire.sibling", "pasta.errors", "pasta.errors.PastaError"} <= found
    assert {i.split(".")[0] for i in found} & FORBIDDEN == {"socket", "select", "pyroute2",
                                                           "ctypes"}
