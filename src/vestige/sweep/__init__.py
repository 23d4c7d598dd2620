"""Sweeps: `vestige run --each/--grid`: the spec, the parent run, children on a local,
Dask or Slurm executor, --skip-done. Import everything but the CLI."""
