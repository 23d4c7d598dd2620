"""The run path: launch a command under capture (or record this process), seal its live
directory into a run, recover runs whose vestige died. Imports Repo and everything below."""
