"""Hydra's job folders: the composed config Hydra saves in each job's `.hydra/` folder
(`config.yaml`, with `hydra.yaml` and `overrides.yaml`), read as params.

`vestige run` of a Hydra app takes them from the job folder the run wrote (`run_params`);
`vestige adopt` reads whole `outputs/` and `multirun/` trees (adopt/from_hydra.py). Both
read the YAML with OmegaConf when it is installed (it comes with hydra-core:
`vestige[hydra]`), which resolves the config's interpolations as the job saw them, else
with PyYAML; both are imported only once a Hydra config is found (start-up cost).
"""

from __future__ import annotations

from pathlib import Path

from vestige.capture.params import flatten

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

HYDRA_DIR = ".hydra"
CONFIG = f"{HYDRA_DIR}/config.yaml"
#: Said when a run wrote a Hydra config that neither OmegaConf nor PyYAML can read here.
NO_READER = "install vestige[hydra] to record Hydra's config as params"


class Yaml:
    """Reads Hydra's YAML files with OmegaConf (`omegaconf=True`) or PyYAML; every problem
    of a file is an OSError (cannot be read) or a ValueError (not YAML, or not a mapping)."""

    def __init__(self, omegaconf: bool) -> None:
        """`omegaconf`: whether OmegaConf imports (see `yaml_reader`)."""
        self.omegaconf = omegaconf

    def tree(self, path: Path) -> Any:
        """The file's YAML as plain lists and dicts, interpolations left as written."""
        if not self.omegaconf:
            import yaml

            try:
                return yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as e:
                raise ValueError(f"invalid YAML: {_one_line(e)}") from None
        from omegaconf import OmegaConf

        return OmegaConf.to_container(self._load(path), resolve=False)

    def params(self, path: Path) -> dict[str, Any]:
        """A config.yaml as params: its mapping flattened with dots (`model.lr`), values as
        YAML typed them; with OmegaConf, each interpolation (`${data.root}/train`) is
        resolved when it can be here, and kept as written when it cannot (`${hydra:...}`,
        a resolver of the app's own)."""
        if not self.omegaconf:
            tree = self.tree(path)
        else:
            from omegaconf import DictConfig

            config = self._load(path)
            tree = _resolved(config) if isinstance(config, DictConfig) else None
        if not isinstance(tree, dict):
            raise ValueError("not a mapping of config keys")
        return flatten(tree)

    def _load(self, path: Path) -> Any:
        """OmegaConf's node for the file (DictConfig or ListConfig); its errors as ValueError."""
        import yaml
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        try:
            return OmegaConf.load(path)
        except yaml.YAMLError as e:
            raise ValueError(f"invalid YAML: {_one_line(e)}") from None
        except OmegaConfBaseException as e:
            raise ValueError(f"not a config OmegaConf reads: {_one_line(e)}") from None


def yaml_reader() -> Yaml | None:
    """The YAML reader this interpreter has: OmegaConf's, else PyYAML's, else None."""
    try:
        import omegaconf  # noqa: F401 (only asked whether it imports)
    except ImportError:
        try:
            import yaml  # noqa: F401
        except ImportError:
            return None
        return Yaml(omegaconf=False)
    return Yaml(omegaconf=True)


def _resolved(node: Any) -> dict[str, Any]:
    """A DictConfig as a plain dict, each value resolved where OmegaConf can resolve it and
    as written where it cannot: one `${hydra:runtime.output_dir}` (whose resolver only
    lives inside a Hydra app) must not leave every other interpolation unresolved."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    raw = OmegaConf.to_container(node, resolve=False)
    out: dict[str, Any] = {}
    for key, text in raw.items():  # (a DictConfig's container is a dict)
        try:
            value = node[key]
            if isinstance(value, DictConfig):
                value = _resolved(value)
            elif isinstance(value, ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
        except (OmegaConfBaseException, ValueError):  # (`???`, an unknown resolver)
            value = text
        out[str(key)] = value
    return out


def run_params(root: Path, outputs: Iterable[str], warnings: list[str]) -> dict[str, Any]:
    """The params of the Hydra job a run wrote: the flattened config.yaml of the one job
    folder among its outputs (paths relative to `root`, or absolute). None or several (a
    `--multirun` under one run is one run, whose params are its command line's): {}.
    A config that cannot be read, or no YAML reader installed, is a warning."""
    configs = [p for p in outputs if p == CONFIG or p.endswith(f"/{CONFIG}")]
    if len(configs) != 1:
        return {}
    reader = yaml_reader()
    if reader is None:
        warnings.append(NO_READER)
        return {}
    try:
        return reader.params(root / configs[0])  # (an absolute path stays itself)
    except (OSError, ValueError) as e:
        warnings.append(f"Hydra's config {configs[0]} was not recorded as params ({e})")
        return {}


def _one_line(error: Exception) -> str:
    """An error's message on one line (YAML errors span several: what, then where)."""
    return " ".join(str(error).split())
