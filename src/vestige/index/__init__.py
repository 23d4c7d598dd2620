"""The SQLite index: a cache of the store that `vestige reindex` rebuilds from it alone.
Imports the store and the foundation."""
