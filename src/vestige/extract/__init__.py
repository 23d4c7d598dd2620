"""`vestige extract`: the minimal script that re-makes one output of a notebook session,
sliced from its recorded cell history. Imports the run path, Repo and below."""
