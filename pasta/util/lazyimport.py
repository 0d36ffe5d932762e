"""Import one submodule of a dependency without running its package's `__init__`.

Purpose: start-up time. `import pyroute2` executes pyroute2/__init__.py, which imports every
pyroute2 API (conntrack, ipdb, ndb, wireguard...) only to re-export them: about 40 ms here, as
much as the code pypasta uses. pyprctl's `__init__` likewise pulls its capability machinery.

Theory of operation: `submodule("pyroute2", "iproute.linux")` registers the package as a module
object made from its spec but *not executed* (`__path__` is set, so its submodules resolve
normally), then imports the submodule; the submodules import their siblings by full name, so
they work unchanged. If the package is already imported (fully, by someone else, or bare by an
earlier call), it is used as it is.

Invariants: only pure re-export `__init__` files may be skipped (true of pyroute2 0.7-0.9 and
pyprctl 0.1); the result is the real submodule, so behaviour is the library's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def submodule(package: str, name: str):
    """The module `package.name`, importing as little of `package` as possible."""
    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError(f"no package {package}")
        sys.modules[package] = importlib.util.module_from_spec(spec)   # not executed
    return importlib.import_module(f"{package}.{name}")
