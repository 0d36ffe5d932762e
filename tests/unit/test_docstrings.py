"""STYLE.md B5 drift check: every member of each public enum is named in its module's docstring,
for every module of the package (so a new enum cannot drift from its design notes)."""

from __future__ import annotations

import enum
import importlib
import pkgutil

import pytest

import pasta

MODULES = sorted(m.name for m in pkgutil.walk_packages(pasta.__path__, "pasta."))


def undocumented_enum_members(module) -> list[str]:
    doc = module.__doc__ or ""
    return [f"{name}.{m.name}" for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, enum.Enum) and not name.startswith("_")
            and obj.__module__ == module.__name__
            for m in obj if f"{name}.{m.name}" not in doc]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_names_every_enum_member(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    missing = undocumented_enum_members(module)
    assert not missing, f"{name} docstring does not mention {missing}"
