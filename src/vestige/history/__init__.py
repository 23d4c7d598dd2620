"""Verbs over recorded runs: lineage and stale, diff and compare, which --similar, rerun,
restore, export, affected, debt. Import Repo and the run path; not upkeep or notebooks."""
