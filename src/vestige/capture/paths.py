"""Which files outside the project are the machine's, not the run's: fonts, caches, tool
configs. They are recorded neither as inputs nor as outputs, nor as a cell's files."""

from __future__ import annotations

import os

#: Outside the project, reads and writes under these are the machine's or tools' business
#: (fonts, caches, configs), not the run's data: recorded neither as inputs nor outputs.
SYSTEM_PREFIXES = (
    "/usr/", "/etc/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/var/cache/", "/var/lib/",
    "/run/", "/snap/", "/nix/store/",
)  # fmt: skip
HOME_TOOL_DIRS = (
    ".cache", ".config", ".local", ".ipython", ".jupyter", ".matplotlib", ".keras", ".conda",
    ".pyenv", ".nv", ".triton", ".npm", ".vscode-server",
)  # fmt: skip


def is_environment_path(path: str) -> bool:
    """True for files outside the project that belong to the system or a tool's cache or
    configuration (a dotfile in the home folder: ~/.gitconfig, ~/.Rprofile)."""
    if path.startswith(SYSTEM_PREFIXES):
        return True
    home = os.path.expanduser("~")
    if home and home != "/" and path.startswith(home + "/"):
        first = path[len(home) + 1 :].split("/", 1)[0]
        return first in HOME_TOOL_DIRS or (first.startswith(".") and first == path[len(home) + 1 :])
    return False
