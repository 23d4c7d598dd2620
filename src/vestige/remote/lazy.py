"""Payloads on demand: the objects `pull --metadata-only` left on a remote are fetched the
first time something reads them (`cat`, `restore`, `diff`, `export`, `rerun`, the UI).

The shells call `install(repo)` as they open a store; it sets the object store's `fetch`
hook only when some object is held elsewhere, so a store without such records pays one
directory listing and nothing else. A fetched object is verified before it lands (as
any pulled object) and its record removed.
"""

from __future__ import annotations

from vestige.errors import StoreError, UsageError
from vestige.remote.location import open_side
from vestige.remote.sides import LocalSide
from vestige.store.elsewhere import any_elsewhere, drop_elsewhere, elsewhere_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vestige.repo import Repo

#: Objects larger than this stay on the remote with `pull --metadata-only` (manifests,
#: code trees, metrics, logs and small files come).
LEAVE_ABOVE = 1 << 20


def install(repo: Repo) -> None:
    """Let every reader of `repo`'s objects fetch those a remote holds for it."""
    if repo.readonly or not any_elsewhere(repo.store.path):
        return
    repo.store.objects.fetch = lambda digest: fetch(repo, digest)


def fetch(repo: Repo, digest: str) -> bool:
    """Bring one object from the remote its record names; False if no remote holds it.
    A remote gone from the config, unreachable or holding bad bytes: one line, exit 2."""
    record = elsewhere_record(repo.store.path, digest)
    if record is None:
        return False
    name = record["remote"]
    try:
        _name, remote = open_side(repo.config, name, repo.store.path)
    except UsageError:
        raise StoreError(
            f"object {digest[:12]} was left on remote {name} by `pull --metadata-only`, and "
            f"this store has no remote {name} any more: add it again (vestige remote add)"
        ) from None
    here = LocalSide(repo.store.path, f"the store {repo.store.path}")
    try:
        here.receive(remote, [digest], 1)
    except OSError as e:  # (a file:// remote whose folder is gone or unreadable)
        raise StoreError(
            f"object {digest[:12]} is on {remote.label}, which could not be read "
            f"({e.strerror or e}); try again when it can be reached"
        ) from None
    except StoreError as e:
        raise StoreError(f"object {digest[:12]} could not be fetched: {e}") from None
    drop_elsewhere(repo.store.path, [digest])
    return True
