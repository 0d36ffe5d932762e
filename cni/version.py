"""CNI spec versions and commands: negotiation, availability, and the VERSION reply.

Purpose: decide whether a request's `cniVersion` is one we speak and whether the requested command
exists in that version; answer VERSION.

Theory of operation: `cni.netconf.parse_netconf` calls `check_version(config_version, command)`
after decoding stdin; the entry point answers `Command.VERSION` with `version_reply(stdin)` without
parsing the configuration at all (skel ignores stdin for VERSION, except that we echo its version).

States and events (`Command`, the values of `CNI_COMMAND`; exactly one per invocation):
- `Command.ADD`, `Command.DEL`, `Command.VERSION`: every supported version.
- `Command.CHECK`: config version >= 0.4.0.
- `Command.STATUS`, `Command.GC`: config version >= 1.1.0.

Invariants:
- `SUPPORTED_VERSIONS` is sorted ascending and ends with `CURRENT_VERSION` (1.1.0).
- A config version is accepted only if it is *exactly* one of `SUPPORTED_VERSIONS` (skel's string
  match: "1.0" or "1.0.0-rc1" are refused); a missing `cniVersion` counts as "0.1.0" (libcni).
- Refusals are `CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION)` (code 1) with skel's wording.

Limits and not handled: the 0.1.0/0.2.0 result format (`ip4`/`ip6` objects) is not supported, so
those versions get code 1, which the reference calls common practice.

Differences from skel: skel's VERSION reply always says `"cniVersion": "1.1.0"`; we echo the
request's version when it is a well-formed `X.Y.Z` string, as SPEC.md says (libcni accepts both),
and fall back to `CURRENT_VERSION` otherwise. A VERSION request never fails.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Dict, Tuple

from cni import CniError, ErrorCode

SUPPORTED_VERSIONS: Tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
MISSING_VERSION = "0.1.0"    # what libcni assumes when a config has no cniVersion

_SEMVER = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


class Command(str, enum.Enum):
    """A `CNI_COMMAND` value."""

    ADD = "ADD"
    DEL = "DEL"
    CHECK = "CHECK"
    STATUS = "STATUS"
    GC = "GC"
    VERSION = "VERSION"


# The first config version in which each command may be used.
COMMAND_SINCE: Dict[Command, Tuple[int, int, int]] = {
    Command.ADD: (0, 1, 0),
    Command.DEL: (0, 1, 0),
    Command.VERSION: (0, 1, 0),
    Command.CHECK: (0, 4, 0),
    Command.STATUS: (1, 1, 0),
    Command.GC: (1, 1, 0),
}


def parse_version(text: str) -> Tuple[int, int, int] | None:
    """`"1.0.0"` -> (1, 0, 0); None unless `text` is exactly MAJOR.MINOR.PATCH in decimal."""
    m = _SEMVER.fullmatch(text) if isinstance(text, str) else None
    return tuple(int(g) for g in m.groups()) if m else None   # type: ignore[return-value]


def is_supported(version: str) -> bool:
    """True if results and requests of this exact version string are ours to handle."""
    return version in SUPPORTED_VERSIONS


def command_allowed(command: Command, version: str) -> bool:
    """True if `command` exists in spec `version` (a supported version string)."""
    parsed = parse_version(version)
    return parsed is not None and parsed >= COMMAND_SINCE[Command(command)]


def check_version(version: str, command: Command) -> None:
    """Refuse (code 1) a config version we do not speak, or one that lacks `command`."""
    if not is_supported(version):
        supported = ",".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
        raise CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION, "incompatible CNI versions",
                       f'config is "{version}", plugin supports [{supported}]')
    command = Command(command)
    if not command_allowed(command, version):
        since = ".".join(map(str, COMMAND_SINCE[command]))
        raise CniError(ErrorCode.INCOMPATIBLE_CNI_VERSION,
                       f"config version does not allow {command.value}",
                       f'config is "{version}", {command.value} needs {since} or later')


def version_reply(stdin: bytes = b"") -> dict:
    """The VERSION answer: `{"cniVersion", "supportedVersions"}`; never raises."""
    version = CURRENT_VERSION
    try:
        obj = json.loads(stdin)
    except (ValueError, TypeError, RecursionError):
        obj = None
    if isinstance(obj, dict) and parse_version(obj.get("cniVersion")) is not None:
        version = obj["cniVersion"]
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}
