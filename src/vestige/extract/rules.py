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
