"""The one exception tree of vestige; each class carries the exit code the CLI uses.

    VestigeError                  exit 1   base; never raised bare
    ├── UsageError                exit 2   the user asked for something that cannot be
    │   │                                  (bad input); nothing in the store was touched
    │   ├── WhereError                     a --where expression that does not parse
    │   ├── RunNotFound                    no run matches a reference
    │   ├── AmbiguousRun                   a prefix matches several runs
    │   ├── FileNotInRun                   a path that a run neither read, wrote nor kept
    │   ├── NotKept                        a file the run saw but did not keep a copy of
    │   │   └── Freed                      ... or kept, until gc freed it (re-make it)
    │   ├── NoStore                        no store where one is needed
    │   └── PathMissing                    a file argument that does not exist
    ├── StoreError                exit 2   the store cannot be used as asked
    │   ├── CorruptObject                  an object whose bytes do not match its name
    │   ├── UnknownFormat                  a store written by a newer vestige
    │   ├── StoreLocked                    a lock not obtained within its timeout
    │   └── StoreReadOnly                  a command that must write, on a read-only store
    ├── FsckFailed                exit 1   fsck found broken invariants (listed)
    └── ReindexIncomplete         exit 1   reindex left out runs it could not read (named)

Library code raises these and never prints or exits; `vestige.cli` turns any of them
into one line `error: <message>` and the class's exit code, in one place.
"""

from __future__ import annotations


class VestigeError(Exception):
    """Base of every error vestige raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(VestigeError):
    """Bad input from the user: a one-line message that says what to do, exit 2."""

    exit_code = 2


class WhereError(UsageError):
    """A --where expression that does not parse; carries the 0-based position."""

    def __init__(self, message: str, position: int, text: str) -> None:
        message = f"bad --where at position {position}: {message} (in: {text})"
        super().__init__(_printable(message))
        self.position = position
        self.text = text


def _printable(text: str) -> str:
    """`text` with each character a terminal would not show as itself (a newline, a
    control character, a lone surrogate) written as its Python escape: one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class RunNotFound(UsageError):
    """No run matches the reference the user gave."""


class AmbiguousRun(UsageError):
    """A run-id prefix that matches more than one run."""


class FileNotInRun(UsageError):
    """A path that the run neither read, wrote, nor had in its code snapshot."""


class NotKept(UsageError):
    """The run saw the file (its hash is known) but kept no copy of its bytes."""


class Freed(NotKept):
    """A file whose bytes gc freed: re-make them with `vestige rerun` (exit 2)."""


class NoStore(UsageError):
    """A command that needs an existing store found none."""


class PathMissing(UsageError):
    """A file named on the command line does not exist."""


class StoreError(VestigeError):
    """The store cannot be used as asked (corrupt, too new, locked)."""

    exit_code = 2


class CorruptObject(StoreError):
    """An object whose content does not hash to its name."""


class UnknownFormat(StoreError):
    """The store's format version is newer than this vestige understands."""


class StoreLocked(StoreError):
    """A lock on the store was not obtained within its timeout."""


class StoreReadOnly(StoreError):
    """The store cannot be written (a read-only mount, an archive) and the command must."""


class FsckFailed(VestigeError):
    """fsck found invariants broken; the message lists them."""

    exit_code = 1


class ReindexIncomplete(VestigeError):
    """reindex left out sealed runs whose ref or manifest it could not read (named)."""

    exit_code = 1
