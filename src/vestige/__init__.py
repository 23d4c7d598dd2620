"""vestige: keep every artefact research code makes, tied to what made it.

`import vestige` runs inside users' scripts, so this module imports nothing heavy;
tests/test_imports.py pins the modules it may load.
"""

from vestige._version import __version__

__all__ = ["__version__"]
