"""The store's upkeep: gc and du, pins, publish, fsck. Import Repo and below; not the
history verbs or notebooks."""
