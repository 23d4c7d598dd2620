"""The SQLite index: a cache of the store that `vestige reindex` rebuilds."""
