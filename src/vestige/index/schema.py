"""The index schema, as named migrations applied in order; `meta.schema_version` says how far.

The index is a cache (docs/format.md): a store whose index is deleted loses nothing,
`vestige reindex` rebuilds it from manifests and refs. A newer schema than this code
knows is rebuilt from scratch rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from vestige.store.statcache import DDL as STATCACHE_DDL

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs_params_files",
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            seq INTEGER UNIQUE NOT NULL,
            status TEXT NOT NULL,
            exit_code INTEGER,
            command TEXT NOT NULL,
            argv TEXT NOT NULL,
            cwd TEXT,
            root TEXT,
            started REAL NOT NULL,
            ended REAL,
            duration REAL,
            manifest TEXT,
            git_commit TEXT,
            host TEXT,
            pid INTEGER,
            parent TEXT,
            rerun_of TEXT
        );
        CREATE INDEX runs_started ON runs(started);
        CREATE INDEX runs_status ON runs(status);
        CREATE TABLE params (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value_json TEXT NOT NULL,
            value_text TEXT,
            value_num REAL,
            PRIMARY KEY (run_id, key)
        );
        CREATE INDEX params_key_num ON params(key, value_num);
        CREATE INDEX params_key_text ON params(key, value_text);
        CREATE TABLE metrics (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            last REAL, min REAL, max REAL, count INTEGER,
            PRIMARY KEY (run_id, key)
        );
        CREATE INDEX metrics_key_last ON metrics(key, last);
        CREATE TABLE tags (
            run_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        );
        CREATE INDEX tags_tag ON tags(tag);
        CREATE TABLE files (
            run_id TEXT NOT NULL,
            role TEXT NOT NULL,
            path TEXT NOT NULL,
            hash TEXT,
            size INTEGER,
            kept INTEGER NOT NULL DEFAULT 1,
            confirmed INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX files_hash ON files(hash, role);
        CREATE INDEX files_run ON files(run_id, role);
        CREATE INDEX files_path ON files(path);
        """,
    ),
    (
        # Perceptual hashes of kept images by object hash, for `which --similar`
        # (vestige/history/similar.py): filled on lookup, never at run time. IF NOT EXISTS: a
        # cache that drop_all may one day spare, like the stat cache.
        "0002_phash",
        """
        CREATE TABLE IF NOT EXISTS phash (
            hash TEXT PRIMARY KEY,
            phash TEXT,
            algo TEXT,
            error TEXT
        );
        """,
    ),
    (
        # The debt ledger (history/debt.py, upkeep/publish.py): `published` mirrors the
        # refs/published/<hash> records (rebuilt by reindex); `debt_shingles` caches the
        # token shingles of a code version by its object hash (never stale, like phash);
        # files_code serves the ledger's GROUP BY over code rows.
        "0003_published",
        """
        CREATE TABLE IF NOT EXISTS published (
            hash TEXT NOT NULL,
            dest TEXT NOT NULL,
            t REAL NOT NULL,
            how TEXT NOT NULL,
            run_id TEXT,
            source TEXT,
            size INTEGER
        );
        CREATE INDEX IF NOT EXISTS published_hash ON published(hash);
        CREATE INDEX IF NOT EXISTS published_dest ON published(dest);
        CREATE TABLE IF NOT EXISTS debt_shingles (
            hash TEXT PRIMARY KEY,
            algo TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            shingles BLOB,
            error TEXT
        );
        CREATE INDEX IF NOT EXISTS files_code ON files(role, path, run_id, hash);
        """,
    ),
    (
        # gc (upkeep/gc.py, store/pins.py): `pins` and `freed` mirror refs/pins/<run-id>
        # and refs/freed/<hash> (rebuilt by reindex); `blobs` lists the objects a run names
        # besides its files (manifest, code tree with the snapshot's size, logs, metrics,
        # environment), so gc and du need not read manifests; `objsize` caches the size of
        # each object (never stale: an object's bytes never change) for du.
        "0004_gc",
        """
        CREATE TABLE IF NOT EXISTS pins (run_id TEXT PRIMARY KEY, t REAL);
        CREATE TABLE IF NOT EXISTS freed (
            hash TEXT PRIMARY KEY,
            size INTEGER,
            run_id TEXT,
            path TEXT,
            role TEXT,
            t REAL
        );
        CREATE TABLE IF NOT EXISTS blobs (
            run_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            hash TEXT NOT NULL,
            size INTEGER
        );
        CREATE INDEX IF NOT EXISTS blobs_run ON blobs(run_id);
        CREATE TABLE IF NOT EXISTS objsize (hash TEXT PRIMARY KEY, size INTEGER NOT NULL);
        """,
    ),
    (
        # the runs of one tree going at some moment of a time window, asked at every seal
        # (recording/overlap.py): by root, then by end time, not a scan of all runs; and
        # whether a run is a sweep's parent (it has children)
        "0005_runs_root_ended",
        """
        CREATE INDEX IF NOT EXISTS runs_root_ended ON runs(root, ended);
        CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent);
        """,
    ),
    (
        # What --where finds runs by besides params, metrics and tags (index/where.py):
        # `names` mirrors the name of refs/annotations (`vestige name`, `run --name`: one
        # per run, not unique), `notes` every note of a run (manifest, then annotations);
        # `runs.adopted` the tool a run was adopted from (issue 18; NULL for vestige's own
        # runs); `rerun_of = X` and `adopted = true` looked up, not scanned.
        "0006_names_notes_adopted",
        """
        CREATE TABLE IF NOT EXISTS names (run_id TEXT PRIMARY KEY, name TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS names_name ON names(name);
        CREATE TABLE IF NOT EXISTS notes (run_id TEXT NOT NULL, t REAL, text TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS notes_run ON notes(run_id);
        ALTER TABLE runs ADD COLUMN adopted TEXT;
        CREATE INDEX IF NOT EXISTS runs_rerun_of ON runs(rerun_of);
        CREATE INDEX IF NOT EXISTS runs_adopted ON runs(adopted);
        """,
    ),
    (
        # The UI's runs page sorted by how long runs took or when they ended
        # (index/runs.py: page): walked in the index's order and stopped at the page's end,
        # not every run read and sorted (at 100,000 runs the slowest sort of the page).
        # The index ends with the rowid, page()'s tie-breaker, so ties need no sort.
        "0007_runs_duration_ended",
        """
        CREATE INDEX IF NOT EXISTS runs_duration ON runs(duration);
        CREATE INDEX IF NOT EXISTS runs_ended ON runs(ended);
        """,
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the index (0 for an empty database)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return 0
        raise
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> bool:
    """Bring the schema up to date; return False if the index is newer than this code.

    The version is read again and every migration applied inside one BEGIN IMMEDIATE
    transaction, so processes opening a new index at the same moment do not both create
    its tables (the connection is in autocommit mode: `with conn` alone would not lock).
    """
    version = current_version(conn)
    if version == SCHEMA_VERSION:
        return True  # the common case: a read, no write lock
    if version > SCHEMA_VERSION:
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(STATCACHE_DDL)
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            return False
        for number, (_name, ddl) in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            for statement in ddl.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(number),),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def empty_all(conn: sqlite3.Connection) -> None:
    """Empty every derived table, inside the caller's transaction (reindex: emptied and
    refilled in one transaction). The stat cache, the phash cache and meta stay."""
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT IN ('statcache', 'phash', 'meta') AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        conn.execute(f'DELETE FROM "{name}"')


def drop_all(conn: sqlite3.Connection) -> None:
    """Drop every derived table (not the stat cache nor the phash cache: both stay valid)."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT IN ('statcache', 'phash')"
        ).fetchall():
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')
