"""--skip-done: which combinations of a sweep an earlier `ok` run already did.

The run-cache idea: the same command in the same folder, whose imported project code and
recorded inputs still have the hashes they had (lineage.changes_since), and whose named
files (the project files its arguments name, which a shell or a compiled program reads
unseen) still have the bytes that run saw.
"""

from __future__ import annotations

import os

from vestige.recording.sweeps import same_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from vestige.records import Run
    from vestige.repo import Repo


def done_runs(repo: Repo, children: list[dict[str, Any]], cwd: str) -> dict[int, Run]:
    """--skip-done: combinations with an `ok` run of the same command, whose code and
    inputs have not changed since (the run-cache idea: same code, params, input hashes)."""
    import json

    from vestige.history.lineage import changes_since, current_hashes

    now = current_hashes(repo)
    rel = os.path.relpath(cwd, repo.store.root)
    ok_runs = [(run_id, json.loads(argv)) for run_id, argv in repo.index.runs.ok_commands(rel)]
    named = _NamedFiles(repo, cwd, now)
    found: dict[int, Run] = {}
    for c in children:
        for run_id, argv in ok_runs:
            if same_command(argv, c["argv"]):
                run = repo.run(run_id)
                if not changes_since(repo, run, now) and named.unchanged(run, c["argv"]):
                    found[c["index"]] = run
                    break
    return found


class _NamedFiles:
    """--skip-done for what the imports and the recorded inputs do not cover: the project
    files a command names in its arguments (`bash step.sh`, `wc -c data/a.csv`,
    `--out=x`). A shell or a compiled program reads them unseen, so the earlier run's
    record of their bytes (as read, as written, or in its code snapshot) must match the
    bytes now; no record at all is no proof, so the combination runs again. Each file is
    hashed once per sweep and each snapshot tree read once."""

    def __init__(self, repo: Repo, cwd: str, now: dict[str, str]) -> None:
        self.repo = repo
        self.cwd = cwd
        self.now = now  # the tree's hashes now (lineage.current_hashes)
        self.root = os.path.realpath(repo.store.root)
        self.store = os.path.realpath(repo.store.path)
        self._files: dict[str, str | None] = {}  # argument text -> path from the root
        self._hashes: dict[str, str | None] = {}  # files outside `now` (scan-ignored)
        self._trees: dict[str, dict[str, str]] = {}

    def unchanged(self, run: Run, argv: list[str]) -> bool:
        files = {f for arg in argv for f in self._named(arg)}
        if not files:
            return True
        for rel in sorted(files):
            was = self._recorded(run, rel)
            if was is None or was != self._current(rel):
                return False
        return True

    def _named(self, arg: str) -> list[str]:
        """The project files an argument names: itself, or what follows `=` (`--opt=path`)."""
        texts = [arg]
        if "=" in arg:
            texts.append(arg.partition("=")[2])
        found = []
        for text in texts:
            if text not in self._files:
                self._files[text] = self._project_file(text)
            rel = self._files[text]
            if rel is not None:
                found.append(rel)
        return found

    def _project_file(self, text: str) -> str | None:
        full = os.path.join(self.cwd, text)  # (an absolute path stays as it is)
        if not text or not os.path.isfile(full):  # (False for any text that is no path)
            return None
        real = os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))
        if os.path.commonpath([real, self.store]) == self.store:
            return None  # the store's own files are no input
        rel = os.path.relpath(real, self.root)
        if rel == ".." or rel.startswith(".." + os.sep):
            return None  # outside the project
        return rel.replace(os.sep, "/")

    def _current(self, rel: str) -> str | None:
        if rel in self.now:
            return self.now[rel]
        if rel not in self._hashes:
            from vestige.store.hashing import hash_if_file

            self._hashes[rel] = hash_if_file(os.path.join(self.root, rel))
        return self._hashes[rel]

    def _recorded(self, run: Run, rel: str) -> str | None:
        """The bytes the run saw at `rel`: read, else written (the file is as the run left
        it), else in its code snapshot; None when it has no record of them."""
        for records in (run.inputs, run.outputs):
            for f in records:
                if f.path == rel and f.hash:
                    return f.hash
        tree = (run.code or {}).get("tree")
        if not tree:
            return None
        if tree not in self._trees:
            from vestige.errors import VestigeError
            from vestige.store.tree import read_tree

            try:
                entries = read_tree(self.repo.store.objects, tree)
            except (VestigeError, OSError):  # a missing or corrupt tree proves nothing
                entries = []
            self._trees[tree] = {e.path: e.hash for e in entries}
        return self._trees[tree].get(rel)
