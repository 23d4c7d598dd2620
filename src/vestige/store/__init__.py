"""The content-addressed store: objects, trees, refs, the stat cache, fsck."""
