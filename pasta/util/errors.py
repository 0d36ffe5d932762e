"""Error types, named after who is at fault.

- `ConfigError`: the user (options, port specs, config files). Shown as one line, exit 1.
- `UsageError`: a getopt-level problem (unknown option, missing argument); the CLI prints the glibc
  wording followed by the usage text, as pasta does, and exits 1.
- `NotSupportedYet`: an option that parses and validates but whose behaviour is not built yet.
- `SetupError`: the environment (namespaces, netlink, tap, permissions). One line, exit 1.
- `Malformed`: a frame from the namespace that cannot be parsed; dropped and counted, never fatal.
"""


class PastaError(Exception):
    """An error whose message is meant for the user: one line, no traceback."""

    exit_code = 1


class ConfigError(PastaError):
    """Bad user input: options, port specifications, configuration files."""


class UsageError(ConfigError):
    """getopt-level error (unknown option, missing or unexpected argument)."""


class NotSupportedYet(ConfigError):
    """An option that is understood but whose behaviour is not implemented yet."""

    def __init__(self, option: str, detail: str = ""):
        self.option = option
        msg = f"not supported yet: {option}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class SetupError(PastaError):
    """The environment does not allow what was asked (namespaces, tap, netlink, permissions)."""


class Malformed(Exception):
    """A frame (or part of one) that cannot be parsed. Carries a short reason for the drop counters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
