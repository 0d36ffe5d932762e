"""GNU `getopt_long` as glibc implements it, for pasta's and slirp4netns's command lines.

Purpose: both front ends (`pasta.front.conf`, `podman_compat.slirp4netns_cli`) must accept exactly
what the C programs accept and fail where they fail, with glibc's wording; one engine serves
both.

Theory of operation: `Getopt(argv, optstring, longopts)` yields `(key, optarg or None,
spelling)` lazily, in argv order, so a caller reports problems at the point the C program
would. Short options may be clustered (`-ce 3`), take their argument attached or as the next
word; long options may be abbreviated to any unambiguous prefix (entries with the same
`(has_arg, key)` are aliases, not ambiguous), take `--opt=value` or `--opt value`. Two modes:
- an optstring starting with '+' (pasta): stop at the first non-option; afterwards `optind`
  indexes it (or what follows `--`);
- otherwise (slirp4netns, glibc's default permutation): non-options are collected in
  `positionals` and scanning goes on, unless `posixly_correct` (POSIXLY_CORRECT set), which
  stops at the first one; what follows `--` is appended to `positionals`.
Errors raise `GetoptError` with glibc's message without the program name; `quote` renders the
user's text in it (pasta escapes control characters, slirp4netns prints them raw).

Invariants: pure; the option tables are data (`LongOpt`), in the C program's order, which
matters for the list printed for an ambiguous abbreviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple


class GetoptError(Exception):
    """glibc's diagnostic, without the "PROG: " prefix and the newline."""


@dataclass(frozen=True)
class LongOpt:
    """One entry of a `struct option longopts[]`; entries with equal (has_arg, key) are aliases."""

    name: str
    has_arg: bool
    key: str            # the short option letter, or the canonical long name when there is none


def short_table(optstring: str) -> Dict[str, bool]:
    """Short option letter -> takes an argument."""
    chars = optstring.lstrip("+")
    return {c: chars[i + 1:i + 2] == ":" for i, c in enumerate(chars) if c != ":"}


class Getopt:
    def __init__(self, argv: Sequence[str], optstring: str, longopts: Sequence[LongOpt],
                 posixly_correct: bool = False, quote: Callable[[str], str] = str):
        self.argv = list(argv)
        self.short = short_table(optstring)
        self.longopts = tuple(longopts)
        self.stop_at_nonoption = optstring.startswith("+") or posixly_correct
        self.quote = quote
        self.optind = 0
        self.positionals: list = []

    def __iter__(self) -> Iterator[Tuple[str, Optional[str], str]]:
        argv, q = self.argv, self.quote
        while self.optind < len(argv):
            arg = argv[self.optind]
            if arg == "--":
                self.optind += 1
                self.positionals.extend(argv[self.optind:])
                return
            if not arg.startswith("-") or arg == "-":
                if self.stop_at_nonoption:
                    self.positionals.extend(argv[self.optind:])
                    return
                self.positionals.append(arg)
                self.optind += 1
                continue
            self.optind += 1
            if arg.startswith("--"):
                yield self._long(arg[2:])
                continue
            i = 1
            while i < len(arg):
                c = arg[i]
                i += 1
                if c not in self.short:
                    raise GetoptError(f"invalid option -- '{q(c)}'")
                if not self.short[c]:
                    yield c, None, "-" + c
                    continue
                if i < len(arg):
                    value = arg[i:]
                elif self.optind < len(argv):
                    value = argv[self.optind]
                    self.optind += 1
                else:
                    raise GetoptError(f"option requires an argument -- '{q(c)}'")
                yield c, value, "-" + c
                break

    def _long(self, body: str) -> Tuple[str, Optional[str], str]:
        q = self.quote
        name, eq, value = body.partition("=")
        found = next((o for o in self.longopts if o.name == name), None)
        if found is None:
            matches = [o for o in self.longopts if o.name.startswith(name)]
            if not matches:
                raise GetoptError(f"unrecognized option '--{q(body)}'")
            found = matches[0]
            ambiguous = [found] + [o for o in matches[1:]
                                   if (o.has_arg, o.key) != (found.has_arg, found.key)]
            if len(ambiguous) > 1:
                listed = "".join(f" '--{o.name}'" for o in ambiguous)
                raise GetoptError(f"option '--{q(body)}' is ambiguous; possibilities:{listed}")
        spelled = "--" + found.name
        if eq:
            if not found.has_arg:
                raise GetoptError(f"option '{spelled}' doesn't allow an argument")
            return found.key, value, spelled
        if found.has_arg:
            if self.optind >= len(self.argv):
                raise GetoptError(f"option '{spelled}' requires an argument")
            value = self.argv[self.optind]
            self.optind += 1
            return found.key, value, spelled
        return found.key, None, spelled
