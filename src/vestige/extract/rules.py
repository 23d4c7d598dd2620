"""The tables behind the slicer's approximations (analysis.py; read by calls.py,
statements.py and scope.py): which calls seed or draw from a global random state, which
methods mutate their object or only read it, which calls are pure, and which module
functions set global state. Extending them changes what `vestige extract` keeps; each
entry errs towards keeping more.
"""

from __future__ import annotations

#: Modules with a global random state that seeds and draws change.
RNG_MODULES = ("numpy", "random", "torch", "tensorflow")
#: Calls that reset the global random state of the modules listed.
SEED_CALLS = {
    "numpy.random.seed": ("numpy",),
    "numpy.random.set_state": ("numpy",),
    "random.seed": ("random",),
    "random.setstate": ("random",),
    "torch.manual_seed": ("torch",),
    "torch.random.manual_seed": ("torch",),
    "torch.cuda.manual_seed": ("torch",),
    "torch.cuda.manual_seed_all": ("torch",),
    "torch.set_rng_state": ("torch",),
    "tensorflow.random.set_seed": ("tensorflow",),
    "tensorflow.set_random_seed": ("tensorflow",),
    "keras.utils.set_random_seed": ("random", "numpy", "tensorflow"),
    "tensorflow.keras.utils.set_random_seed": ("random", "numpy", "tensorflow"),
    "lightning.seed_everything": ("random", "numpy", "torch"),
    "lightning.pytorch.seed_everything": ("random", "numpy", "torch"),
    "pytorch_lightning.seed_everything": ("random", "numpy", "torch"),
    "transformers.set_seed": ("random", "numpy", "torch", "tensorflow"),
}
#: Names in numpy.random / random that make independent generators (no global draw).
# fmt: off
NOT_GLOBAL_DRAWS = frozenset((
    "default_rng", "Generator", "RandomState", "SeedSequence", "BitGenerator", "PCG64",
    "PCG64DXSM", "MT19937", "Philox", "SFC64", "get_state", "Random", "SystemRandom", "getstate",
))
# fmt: on
# fmt: off
TORCH_DRAWS = frozenset((
    "rand", "randn", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson",
    "rand_like", "randn_like", "randint_like",
))
# fmt: on
#: Methods that change their object even when their result is used.
# fmt: off
MUTATING_METHODS = frozenset((
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
    "sort", "reverse", "add", "discard", "difference_update", "intersection_update",
    "symmetric_difference_update", "fill", "resize", "put", "itemset", "setflags", "shuffle",
    "permuted", "send", "fit", "fit_transform", "fit_predict", "partial_fit", "train", "step",
    "zero_grad", "load_state_dict", "normal", "uniform", "integers", "random", "choice",
    "permutation", "standard_normal", "binomial", "poisson", "exponential", "gamma", "beta",
    "lognormal", "multivariate_normal", "randint", "randn", "rand", "random_sample", "sample",
    "spawn", "write", "writelines", "flush", "seek", "truncate", "close", "__setitem__",
    "__delitem__",
))
# fmt: on
#: Methods that change a dict, list or set in place (`plt.rcParams.update(...)`).
# fmt: off
CONTAINER_METHODS = frozenset((
    "update", "clear", "setdefault", "pop", "popitem", "append", "extend", "insert", "remove",
    "add", "discard", "__setitem__", "__delitem__",
))
# fmt: on
#: Methods that leave their object (and their arguments) as they were, result used or not.
# fmt: off
READONLY_METHODS = frozenset((
    "head", "tail", "describe", "info", "show", "display", "summary", "mean", "median", "sum",
    "min", "max", "std", "var", "count", "nunique", "unique", "value_counts", "isna", "isnull",
    "notna", "notnull", "corr", "cov", "memory_usage", "keys", "values", "items", "get", "copy",
    "to_csv", "to_parquet", "to_json", "to_pickle", "to_excel", "to_hdf", "to_feather",
    "to_latex", "to_markdown", "to_string", "to_dict", "to_numpy", "to_list", "tolist", "savefig",
    "print",
))
# fmt: on
#: Drawing methods: they change the axes or figure they are called on, not their arguments.
# fmt: off
PLOT_METHODS = frozenset((
    "plot", "scatter", "hist", "bar", "barh", "imshow", "pcolormesh", "contour", "contourf",
    "fill_between", "errorbar", "boxplot", "violinplot", "pie", "step", "stairs", "stem",
    "hexbin", "text", "annotate", "axhline", "axvline", "legend", "set_title", "set_xlabel",
    "set_ylabel", "set_xlim", "set_ylim", "set_xticks", "set_yticks", "grid", "set_xticklabels",
    "set_yticklabels", "loglog", "semilogx", "semilogy", "quiver", "streamplot", "matshow",
    "hlines", "vlines", "colorbar", "suptitle", "tight_layout",
))
# fmt: on
#: Builtins that never change their arguments (unless the history redefines them).
# fmt: off
PURE_BUILTINS = frozenset((
    "print", "len", "repr", "str", "int", "float", "bool", "complex", "type", "id", "isinstance",
    "issubclass", "hash", "sorted", "list", "tuple", "set", "frozenset", "dict", "sum", "min",
    "max", "any", "all", "abs", "round", "format", "range", "enumerate", "zip", "reversed", "dir",
    "help", "callable", "hasattr", "getattr", "ascii", "bin", "hex", "oct", "ord", "chr",
    "divmod", "pow", "open", "input", "display",
))
# fmt: on
#: Library functions that read their arguments only (saving, logging, plotting).
# fmt: off
PURE_CALLS = frozenset((
    "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "json.dump",
    "json.dumps", "pickle.dump", "pickle.dumps", "torch.save", "joblib.dump", "os.makedirs",
    "os.mkdir", "os.remove", "os.unlink", "os.rename", "os.replace", "shutil.copy",
    "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "shutil.move",
    "time.sleep", "pprint.pprint", "warnings.warn", "logging.debug", "logging.info",
    "logging.warning", "logging.error", "IPython.display.display",
))
# fmt: on
PURE_PREFIXES = ("matplotlib.pyplot.", "seaborn.")
#: Module functions that change the module's own state (`np.set_printoptions`, ...).
# fmt: off
STATE_FUNCTIONS = frozenset((
    "use", "rc", "rcdefaults", "filterwarnings", "simplefilter", "resetwarnings", "basicConfig",
    "disable", "ion", "ioff", "xkcd", "switch_backend", "seterr", "setLevel", "register", "init",
    "initialize", "configure", "set",
))
# fmt: on
STATE_PREFIXES = ("set_", "enable_", "disable_", "register_", "reset_", "use_")
#: Module-level calls known to change process-global library state, with the libraries
#: whose state they change (seaborn's themes are matplotlib's rcParams). Calls through a
#: module whose names fit STATE_FUNCTIONS / STATE_PREFIXES / STATE_SEEDS count too, as
#: "may change" (the slice keeps them and says so); these are the sure ones. Seeds of the
#: global random states are SEED_CALLS'.
# fmt: off
GLOBAL_STATE_CALLS: dict[str, tuple[str, ...]] = {
    **{f"seaborn.{f}": ("seaborn", "matplotlib") for f in (
        "set", "set_theme", "set_style", "set_context", "set_palette", "set_color_codes",
        "reset_defaults", "reset_orig")},
    **{f"{m}.{f}": ("matplotlib",) for m in ("matplotlib", "matplotlib.pyplot") for f in (
        "use", "rc", "rcdefaults", "rc_file", "rc_file_defaults", "style.use", "interactive",
        "switch_backend", "ion", "ioff", "xkcd", "set_loglevel")},
    "matplotlib.pyplot.set_cmap": ("matplotlib",),
    **{f"pandas.{f}": ("pandas",) for f in ("set_option", "reset_option")},
    **{f"numpy.{f}": ("numpy",) for f in (
        "set_printoptions", "seterr", "seterrcall", "setbufsize")},
    **{f"warnings.{f}": ("warnings",) for f in (
        "filterwarnings", "simplefilter", "resetwarnings")},
    **{f"logging.{f}": ("logging",) for f in ("basicConfig", "disable", "captureWarnings")},
    **{f"torch.{f}": ("torch",) for f in (
        "set_default_dtype", "set_default_device", "set_default_tensor_type",
        "set_num_threads", "set_num_interop_threads", "use_deterministic_algorithms",
        "set_grad_enabled", "set_printoptions", "set_float32_matmul_precision")},
    **{f"tensorflow.{f}": ("tensorflow",) for f in (
        "config.run_functions_eagerly", "keras.backend.set_floatx",
        "keras.mixed_precision.set_global_policy", "config.set_visible_devices")},
    "sklearn.set_config": ("sklearn",),
    "sympy.init_printing": ("sympy",),
    "tqdm.pandas": ("tqdm", "pandas"),
    "tqdm.auto.tqdm.pandas": ("tqdm", "pandas"),
    "jax.config.update": ("jax",),
}
# fmt: on
#: Names of module functions that seed a library's global random state.
STATE_SEEDS = frozenset(("seed", "manual_seed", "set_seed", "seed_everything"))
#: Using one library uses the global state of these too (seaborn draws with matplotlib).
# fmt: off
STATE_USES: dict[str, tuple[str, ...]] = {
    "seaborn": ("matplotlib",), "plotnine": ("matplotlib",), "geopandas": ("matplotlib",),
}
# fmt: on
#: Libraries whose global state any code may depend on: every step uses it (warnings
#: filters turn warnings into errors; logging's configuration is every logger's).
AMBIENT_STATE = ("warnings", "logging")
#: Modules whose state has pseudo-names of their own (scope.py), not a library state.
OWN_STATE = frozenset(("os", "sys", "builtins", "__future__"))
