"""The state of the scope analysis: what one scope binds, reads and mutates (`Scope`), and what
the history established before a step (`Env`). The visitors that fill a Scope are elsewhere.
"""

from __future__ import annotations

from vestige.extract.rules import OWN_STATE, RNG_MODULES, STATE_USES

#: Pseudo-names for state that is not a Python name: steps define and use them like names.
CWD, ENVIRON, SYS_PATH = "<working directory>", "<environment variables>", "<sys.path>"

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterable


def rng(module: str) -> str:
    """The pseudo-name of `module`'s global random state (numpy, random, torch, tensorflow)."""
    return f"<random state of {module}>"


def seed(module: str) -> str:
    """The pseudo-name of the latest seed of `module`'s global random state."""
    return f"<seed of {module}>"


def state(library: str) -> str:
    """The pseudo-name of a library's process-global state (rcParams, options, themes)."""
    return f"<global state of {library}>"


def state_library(name: str) -> str | None:
    """The library whose global state the pseudo-name `name` is, if it is one."""
    if name.startswith("<global state of ") and name.endswith(">"):
        return name[len("<global state of ") : -1]
    return None


def states_used(library: str) -> set[str]:
    """What using `library` reads: its global state and that of those it draws with."""
    if library in OWN_STATE:
        return set()
    return {state(library), *(state(other) for other in STATE_USES.get(library, ()))}


def module(name: str) -> str:
    """The pseudo-name of the importable module `name` as files the history wrote hold it."""
    return f"<module {name}>"


def modules_imported(name: str) -> set[str]:
    """What `import a.b.c` reads: the modules a, a.b and a.b.c (each may be a file)."""
    parts = name.split(".")
    return {module(".".join(parts[: i + 1])) for i in range(len(parts)) if parts[i]}


def modules_written(path: str) -> set[str]:
    """The modules a written `.py` file may be, for any folder on sys.path: `src/pkg/m.py`
    is m, pkg.m or src.pkg.m; `pkg/__init__.py` is pkg."""
    parts = path.replace("\\", "/").split("/")
    if not parts[-1].endswith(".py"):
        return set()
    parts[-1] = parts[-1][: -len(".py")]
    if parts[-1] == "__init__":
        parts.pop()
    parts = [p for p in parts if p and p != "."]
    return {module(".".join(parts[i:])) for i in range(len(parts)) if parts[i].isidentifier()}


def library_of(qual: str) -> str:
    """The library (top-level package) of a qualified name: `matplotlib.pyplot` -> matplotlib."""
    return qual.split(".", 1)[0]


class Env:
    """What the history established before a step: imports, functions' free names, aliases."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # name bound by an import -> qualified name
        self.lazy: dict[str, frozenset[str]] = {}  # name -> free names its calls read
        self.lazy_defs: dict[str, frozenset[str]] = {}  # name -> globals its calls change
        self.groups: dict[str, frozenset[str]] = {}  # name -> names that may share objects
        self.defined: set[str] = set()
        self.functions: set[str] = set()  # names bound by `def` (their calls return values)
        self.origins: dict[str, frozenset[str]] = {}  # name -> libraries its objects came from


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
        # name -> libraries whose objects it may hold (`fig, ax = plt.subplots()`: matplotlib),
        # as set here; the scope this one is nested in (`outer`) and `env` hold the rest
        self.origins: dict[str, frozenset[str]] = {}
        self.outer: Scope | None = None
        # library -> (sure, what): the global state this scope changes, and how
        self.state_changes: dict[str, tuple[bool, str]] = {}

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
        for library in self.libraries_of(name):
            self.effect_uses |= states_used(library)
        if not (self.module and name in self.sure):
            self.loads.add(name)

    def libraries_of(self, name: str) -> frozenset[str]:
        """The libraries whose objects `name` may hold: its module, or where its value came
        from (using them may depend on those libraries' global state)."""
        qual = self.aliases.get(name)
        if qual:
            return frozenset((library_of(qual),))
        scope: Scope | None = self
        while scope is not None:
            if name in scope.origins:
                return scope.origins[name]
            scope = scope.outer
        return self.env.origins.get(name, frozenset())

    def libraries_in(self, names: Iterable[str]) -> frozenset[str]:
        """The libraries whose objects an expression reading `names` may give: those of the
        names, of the functions it calls (their free names), and the states it used (a
        drawing call, `df.plot()`, collects matplotlib's)."""
        found: set[str] = set()
        for name in names:
            library = state_library(name)
            if library:
                found.add(library)
                continue
            found |= self.libraries_of(name)
            for free in self.lazy_of(name):
                library = state_library(free)
                if library:
                    found.add(library)
        return frozenset(found)

    def use_state(self, library: str) -> None:
        """This code reads `library`'s global state (and what it gives holds its objects)."""
        self.effect_uses.add(state(library))
        for collected in self.collecting:
            collected.add(state(library))

    def change_state(self, libraries: Iterable[str], sure: bool, what: str) -> None:
        """This scope changes the global state of `libraries` (and reads it: changes add up)."""
        for library in libraries:
            if library in OWN_STATE:
                continue
            self.effect_uses.add(state(library))
            self.effect_defs.add(state(library))
            known = self.state_changes.get(library)
            if known is None or (sure and not known[0]):
                self.state_changes[library] = (sure, what)

    def store(self, name: str, sure: bool) -> None:
        """`name` is bound (surely, or only on some paths)."""
        self.stores.add(name)
        self.aliases.pop(name, None)
        if sure:
            self.sure.add(name)
            self.origins[name] = frozenset()  # a new value: its origins are the assignment's

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
