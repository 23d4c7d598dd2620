"""What a run captures: the tree scan, git, the code snapshot, environment, params, the
shim's events, redaction of secrets. Imports the store and the foundation."""
