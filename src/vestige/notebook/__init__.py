"""Notebooks recorded: the IPython extension that records each cell (`%load_ext vestige`)
and the headless executor of `vestige run x.ipynb`. Imports the in-code API and below."""
