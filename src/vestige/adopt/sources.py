"""Which tool wrote a source the user names, and its reader: `vestige adopt mlruns/
sqlite:///mlflow.db wandb/ outputs/` needs no flag to say which is which."""

from __future__ import annotations

import importlib
from pathlib import Path

from vestige.adopt.foreign import Found
from vestige.errors import UsageError

#: tool -> its reader module (each has `looks_like(Path) -> bool` and `read(str) -> Found`)
READERS = {
    "mlflow": "vestige.adopt.from_mlflow",
    "wandb": "vestige.adopt.from_wandb",
    "hydra": "vestige.adopt.from_hydra",
}


def detect(source: str) -> str:
    """The tool that wrote `source`; a one-line UsageError when none did."""
    if source.startswith(("sqlite:", "postgresql:", "mysql:", "mssql:")):
        return "mlflow"
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file or folder; name an MLflow store (mlruns/ "
                         "or sqlite:///mlflow.db), a wandb/ folder or Hydra outputs/")  # fmt: skip
    for tool, module in READERS.items():
        if importlib.import_module(module).looks_like(path):
            return tool
    raise UsageError(f"{source}: not an MLflow store (mlruns/ or mlflow.db), a W&B folder "
                     "(wandb/) or Hydra job folders (outputs/, multirun/): nothing to "
                     "adopt")  # fmt: skip


def read(source: str, tool: str | None = None) -> Found:
    """Every run of `source` as its tool's reader finds them."""
    tool = tool or detect(source)
    found: Found = importlib.import_module(READERS[tool]).read(source)
    return found
