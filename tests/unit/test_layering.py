"""The layers (README "Layout"; STYLE.md B1), checked by package.

pasta/ is six packages, lowest first: util (errors, log, stats, socket creation, namespace
calls), plan (options and the addressing plan, as data), core (codecs, responders, the flow
and forwarding tables, TCP decisions: sans-IO), shell (the epoll loop and every socket, frame
and listener), setup (namespaces, the tap device, netlink, the supervisor) and front (command
lines). A module imports only from its own package or lower ones, and nothing in plan or core
reaches I/O machinery, directly or through what it imports (walked with ast, so nothing is
executed; package `__init__`s included). No module lives outside the six packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG_ROOT = Path(__file__).resolve().parents[2]
PASTA = PKG_ROOT / "pasta"

FORBIDDEN = {"socket", "select", "selectors", "pyroute2", "subprocess", "fcntl", "ctypes",
             "asyncio"}
LAYERS = {"util": 0, "plan": 1, "core": 2, "shell": 3, "setup": 4, "front": 5}
SANS_IO = ("plan", "core")
TOP_LEVEL = {"__init__", "__main__"}           # the package itself and `python3 -m pasta`


def dotted_of(path: Path) -> str:
    parts = path.relative_to(PKG_ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules(pkg: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of pasta.<pkg> (subpackages included)."""
    return {dotted_of(p): p for p in sorted((PASTA / pkg).rglob("*.py"))}


def core_modules() -> dict[str, Path]:
    """Every module of the sans-IO packages."""
    mods = {}
    for pkg in SANS_IO:
        mods.update(package_modules(pkg))
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
    """pasta.core.wire.l2 → [pasta, pasta.core.wire]: packages whose __init__ runs on import."""
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
    assert not bad, "plan and core modules reach I/O imports (STYLE.md B1):\n" + "\n".join(
        chain for chains in bad.values() for chain in chains)


def layer_of(dotted: str):
    parts = dotted.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_layering_every_module_is_in_a_layer():
    stray = [p.name for p in PASTA.glob("*.py") if p.stem not in TOP_LEVEL]
    stray += [p.name for p in PASTA.iterdir() if p.is_dir() and p.name not in LAYERS
              and p.name != "__pycache__"]
    assert not stray, f"modules outside the layer packages: {stray}"
    for pkg in SANS_IO + ("shell", "setup", "front", "util"):
        assert (PASTA / pkg / "__init__.py").is_file(), pkg


def test_layering_imports_go_down_only():
    bad = []
    for pkg, level in LAYERS.items():
        for mod, path in package_modules(pkg).items():
            for imp in sorted(imports_of(mod, path)):
                target = layer_of(imp) if imp.startswith("pasta.") else None
                if target is not None and target > level and module_file(imp) is not None:
                    bad.append(f"{mod} ({pkg}) imports {imp}")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


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
    found = imports_of("pasta.core.wire.m", src)
    assert {"os", "socket", "select", "pyroute2.iproute", "ctypes", "pasta.core.wire",
            "pasta.core.wire.sibling", "pasta.core.errors", "pasta.core.errors.PastaError"} <= found
    assert {i.split(".")[0] for i in found} & FORBIDDEN == {"socket", "select", "pyroute2",
                                                           "ctypes"}
