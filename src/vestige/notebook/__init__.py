"""Notebooks: cell recording, headless execution, extract."""
