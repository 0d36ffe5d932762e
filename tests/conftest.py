"""Shared fixtures; the API is documented in tests/helpers/__init__.py."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import env  # noqa: E402
from helpers.topology import Netns, Topology, make_workdir, reap_stale, unique_id  # noqa: E402


@pytest.fixture(scope="session")
def integration_env() -> None:
    """Fail (never skip) every test that needs the machine set up, saying what is missing."""
    found = env.problems()
    if found:
        pytest.fail(env.problems_message(found), pytrace=False)
    reap_stale()        # namespaces left by sessions that were killed


@pytest.fixture
def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it creates network namespaces); "
                    "run the suite as root, as CI does", pytrace=False)


@pytest.fixture(params=[pytest.param("root", id="root"),
                        pytest.param("rootless", id="rootless", marks=pytest.mark.rootless)])
def user(request) -> str:
    """Who runs pypasta: "root", or "rootless" (the unprivileged pypasta-test user)."""
    return request.param


@pytest.fixture
def make_topology(integration_env, require_root):
    """Factory: make_topology(gw6_link_local=False, mtu=1500) -> a set-up Topology."""
    made: list[Topology] = []

    def make(**kw) -> Topology:
        topo = Topology(**kw)
        made.append(topo)
        return topo.setup()

    yield make
    errors = []
    for topo in reversed(made):
        try:
            topo.cleanup()
        except Exception as exc:  # noqa: BLE001 - clean up the others too
            errors.append(str(exc))
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)


@pytest.fixture
def topology(make_topology) -> Topology:
    """host ns ↔ veth ↔ peer ns, torn down after the test."""
    return make_topology()


@pytest.fixture
def netns(integration_env, require_root):
    """One bare namespace `ppt-<hex>-ns`: lo up, DAD off, ping sockets allowed."""
    test_id = unique_id()
    workdir = make_workdir(test_id)
    ns = Netns(f"{test_id}-ns", workdir)
    try:
        ns.create()
        yield ns
    finally:
        problems = ns.stop_processes() + ns.delete()
        shutil.rmtree(workdir, ignore_errors=True)
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


# --- seccomp refusals during the run (tests/tools/seccomp_refusals.py) -----------------------
_UPTIME_AT_START = [0.0]


def pytest_sessionstart(session) -> None:
    with open("/proc/uptime") as f:
        _UPTIME_AT_START[0] = float(f.read().split()[0])


def pytest_terminal_summary(terminalreporter) -> None:
    """Report what pypasta's seccomp filter refused while the suite ran (the probe test's
    deliberate refusals excluded): how the allow-list is measured, never a pass/fail."""
    if os.geteuid() != 0:
        return
    from tools.seccomp_refusals import refusals
    try:
        found = refusals(_UPTIME_AT_START[0] - 1, set(env.PROBE_PIDS))
    except Exception as e:  # noqa: BLE001 - a report only
        terminalreporter.write_line(f"seccomp refusals: could not read the kernel log: {e}")
        return
    terminalreporter.write_sep("-", "syscalls refused by pypasta's seccomp filter")
    for name, nr, count, pids in found:
        terminalreporter.write_line(f"{name} ({nr}): {count} refusals, pids {pids[:8]}")
    if not found:
        terminalreporter.write_line("none")
