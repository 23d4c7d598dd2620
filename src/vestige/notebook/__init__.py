"""Notebooks: the IPython extension that records cells, the headless executor, and
extract (slicing a cell history). Import the in-code API and below; not history/upkeep."""
