"""Remotes: a remote is the store's own layout on another filesystem (any fsspec URL: s3,
gs, az, sftp, file). `transfer.transfer` copies runs one way (push and pull are the same
function); `sync` adds what each verb needs around it (choosing runs, numbering pulled
runs, their index rows); `marks` merges tags, notes, names and pins both ways; `location`
opens a remote from the config (docs/cli.md, issue 17).

May import: repo, index, store and the foundation (config, records, clock, errors); not
recording, api or the verbs above it (history, upkeep...), which may import it. fsspec
and its backends only inside functions, when a remote is opened.
"""
