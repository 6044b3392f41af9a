"""The one base class of errors a user can cause, and the settings checks that raise them.

`HwrError` means "the input or a setting was wrong": the CLI prints its message as one line and
exits 2. Everything else is a bug in hwr and keeps its traceback. Subclasses also derive from
the built-in type they used to be (ValueError, RuntimeError), so existing `except` clauses hold.
"""

from __future__ import annotations

import dataclasses


class HwrError(Exception):
    """Base of every error caused by input or settings; its message is one sentence saying what to do."""


class InputError(HwrError, ValueError):
    """An input (a file, a text) that cannot be used as given."""


class ConfigError(HwrError, ValueError):
    """A setting that is unknown or out of range (a CLI option, a config file, decoder.json)."""


def check_keys(cls, d: dict, source: str) -> None:
    """Refuse keys that `cls` (a dataclass) does not have, naming the ones it does."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(known))}")
