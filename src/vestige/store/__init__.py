"""The store on disk, every format of docs/format.md: objects, trees, refs of each kind,
live directories and their journals, the stat cache. Imports the foundation only."""
