"""The in-code API that runs inside users' programs (`vestige.log`, `keep`, `param`...):
the session's run, the metrics journal, kept objects. Imports the run path and below."""
