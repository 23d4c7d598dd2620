"""The state of the scope analysis: what one scope binds, reads and mutates (`Scope`), and what
the history established before a step (`Env`). The visitors that fill a Scope are elsewhere.
"""

from __future__ import annotations

from vestige.extract.rules import RNG_MODULES

#: Pseudo-names for state that is not a Python name: steps define and use them like names.
CWD, ENVIRON, SYS_PATH = "<working directory>", "<environment variables>", "<sys.path>"


def rng(module: str) -> str:
    """The pseudo-name of `module`'s global random state (numpy, random, torch, tensorflow)."""
    return f"<random state of {module}>"


def seed(module: str) -> str:
    """The pseudo-name of the latest seed of `module`'s global random state."""
    return f"<seed of {module}>"


class Env:
    """What the history established before a step: imports, functions' free names, aliases."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # name bound by an import -> qualified name
        self.lazy: dict[str, frozenset[str]] = {}  # name -> free names its calls read
        self.lazy_defs: dict[str, frozenset[str]] = {}  # name -> globals its calls change
        self.groups: dict[str, frozenset[str]] = {}  # name -> names that may share objects
        self.defined: set[str] = set()
        self.functions: set[str] = set()  # names bound by `def` (their calls return values)


class Scope:
    """One scope's names: the cell (in order, with what is surely bound) or a function."""

    def __init__(self, env: Env, aliases: dict[str, str], module: bool) -> None:
        self.env, self.aliases, self.module = env, aliases, module
        self.is_class = False
        self.stores: set[str] = set()
        self.loads: set[str] = set()  # read before being surely bound here
        self.all_loads: set[str] = set()
        self.sure: set[str] = set()
        self.mutated: set[str] = set()
        self.hidden: list[set[str]] = []  # comprehension and lambda locals
        self.global_decl: set[str] = set()
        self.nonlocal_decl: set[str] = set()
        self.lazy: dict[str, set[str]] = {}
        self.lazy_defs: dict[str, set[str]] = {}
        self.effect_uses: set[str] = set()
        self.effect_defs: set[str] = set()
        self.inner_writes: set[str] = set()  # globals changed by nested scopes' calls
        self.functions: set[str] = set()
        self.method_free: set[str] = set()  # (class bodies) free names of the methods
        self.wildcard = False
        self.uses_all = False
        self.reasons: list[str] = []
        self.aliasing: list[set[str]] = []
        self.collecting: list[set[str]] = []  # (assignments) names read by the value

    def load(self, name: str) -> None:
        """`name` is read (unless it is a comprehension's or lambda's own)."""
        if any(name in hidden for hidden in self.hidden):
            return
        for collected in self.collecting:
            collected.add(name)
        self.all_loads.add(name)
        qual = self.aliases.get(name)
        if qual and qual.split(".")[0] in RNG_MODULES:
            self.effect_uses.add(seed(qual.split(".")[0]))
        if not (self.module and name in self.sure):
            self.loads.add(name)

    def store(self, name: str, sure: bool) -> None:
        """`name` is bound (surely, or only on some paths)."""
        self.stores.add(name)
        self.aliases.pop(name, None)
        if sure:
            self.sure.add(name)

    def mutate(self, name: str) -> None:
        """The object `name` holds may change (so it is also read)."""
        if any(name in hidden for hidden in self.hidden):
            return
        self.load(name)
        self.mutated.add(name)

    def unsafe(self, reason: str, defines: bool, reads: bool) -> None:
        """The analysis is blind here: the scope may define and/or read any name."""
        self.wildcard |= defines
        self.uses_all |= reads
        if reason not in self.reasons:
            self.reasons.append(reason)

    def user_defined(self, name: str) -> bool:
        """Whether `name` was bound by the user (so it is not the builtin of that name)."""
        return name in self.env.defined or name in self.stores

    def is_function(self, name: str) -> bool:
        """Whether `name` is bound by a `def` (here or earlier in the history)."""
        if name in self.functions:
            return True
        return name in self.env.functions and name not in self.stores

    def lazy_of(self, name: str) -> set[str] | frozenset[str]:
        """The free names that calling `name` reads."""
        return self.lazy.get(name) or self.env.lazy.get(name, frozenset())

    def lazy_defs_of(self, name: str) -> set[str] | frozenset[str]:
        """The globals that calling `name` rebinds or mutates."""
        return self.lazy_defs.get(name) or self.env.lazy_defs.get(name, frozenset())
