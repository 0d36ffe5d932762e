"""pypasta as a CNI plugin (`pypasta-cni`): the error type shared by every part of the front end.

Purpose: one exception, `CniError(code, msg, details="")`, raised by every CNI module for every
failure that the runtime must see, so the entry point has exactly one place that prints the CNI
error JSON on stdout and exits 1.

Theory of operation (package layout; STYLE.md B1 puts `cni/` among the front ends):
- `cni.version` (pure): the spec versions we speak, the `Command` set, which command exists in which
  version, and the VERSION reply.
- `cni.netconf` (pure): `parse_env(environ)` -> `CniEnv`, `parse_netconf(stdin, command)` ->
  `NetConf` (our plugin keys, `runtimeConfig.portMappings`, `prevResult`,
  `cni.dev/valid-attachments`), and `pasta_args(conf, netns, ifname)`: the pypasta command line.
- `cni.result` (pure): results, errors and VERSION replies as JSON in the requested spec version.
- `cni.__main__`/`cni.commands` (the I/O shell, not written yet): read env and stdin, run pypasta
  with `pasta_args(...)`, keep state under the runtime directory, print `cni.result` output.
Nothing in this package reads the environment, files or stdin itself: inputs arrive as values.

Error codes (`ErrorCode`; the reserved ones are CNI SPEC.md section "Error", names after
libcni's `types.Err*`):
- `ErrorCode.INCOMPATIBLE_CNI_VERSION` (1): cniVersion not supported, or the command not in it.
- `ErrorCode.UNSUPPORTED_FIELD` (2): a well-formed value we cannot honour (sctp ports, `ipam`);
  the message names the key and the value.
- `ErrorCode.UNKNOWN_CONTAINER` (3): the attachment does not exist (runtime need not call DEL).
- `ErrorCode.INVALID_ENVIRONMENT_VARIABLES` (4): missing or invalid `CNI_*` variables, named.
- `ErrorCode.IO_FAILURE` (5): reading stdin, writing state.
- `ErrorCode.DECODING_FAILURE` (6): stdin is not a JSON object.
- `ErrorCode.INVALID_NETWORK_CONFIG` (7): a key has the wrong type or value; the message names it.
- `ErrorCode.INVALID_NETNS` (8): libcni/skel's "CNI_NETNS is the plugin's own netns".
- `ErrorCode.TRY_AGAIN_LATER` (11): transient; the runtime may retry.
- `ErrorCode.PLUGIN_NOT_AVAILABLE` (50), `ErrorCode.LIMITED_CONNECTIVITY` (51): STATUS answers.
- `ErrorCode.SETUP_FAILED` (100, ours): pypasta could not set up the namespace's network.
- `ErrorCode.CLEANUP_FAILED` (101, ours): DEL or GC could not stop a pypasta instance.
- `ErrorCode.INTERNAL` (999): a bug (skel's `ErrInternal`); the message names the exception.

Invariants:
- `CniError.msg` and `.details` are single lines without control characters (escaped on
  construction), so the JSON stays readable and libcni's "msg; details" line stays one line.
- `CniError` is a `pasta.util.errors.PastaError` (STYLE.md B6: user input errors are PastaErrors).

Differences from skel (`pkg/skel`): skel leaves `cniVersion` out of error objects; we include it,
as SPEC.md shows it (consumers accept both).
"""

from __future__ import annotations

import enum

from pasta.util.errors import PastaError
from pasta.plan.portspec import show


class ErrorCode(enum.IntEnum):
    """CNI error codes: 0-99 reserved by the spec, 100+ plugin-specific (ours), 999 internal."""

    INCOMPATIBLE_CNI_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT_VARIABLES = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    INVALID_NETNS = 8
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    SETUP_FAILED = 100
    CLEANUP_FAILED = 101
    INTERNAL = 999


def one_line(text: object) -> str:
    """`text` as one printable line: control characters (newlines included) become escapes."""
    return show(str(text))


class CniError(PastaError):
    """A failure reported to the runtime as CNI error JSON (stdout) and exit status 1."""

    def __init__(self, code: int, msg: str, details: str = ""):
        self.code = int(code)
        self.msg = one_line(msg)
        self.details = one_line(details)
        super().__init__(f"{self.msg}; {self.details}" if self.details else self.msg)

    def __repr__(self) -> str:
        return f"CniError({self.code}, {self.msg!r}, {self.details!r})"
