#!/usr/bin/env bash
# Install Hydra, which benchmarks/sweep_overhead.py compares `vestige run --each` with,
# into one venv under benchmarks/.peers/ (git-ignored), so that it never touches
# vestige's own environment:
#
#   benchmarks/.peers/hydra    pip install hydra-core; pip install hydra-joblib-launcher
#
# The launcher plugin is installed on its own, so that hydra-core alone still gives the
# basic launcher's rows when the plugin does not install; the benchmark prints "not
# installed" for what is missing. Nothing is pinned: the benchmark prints the versions it
# measured. Re-running is cheap: a package that already imports is kept.
#
# Usage: bash benchmarks/peers_sweep.sh     (PYTHON=python3.12 to choose the interpreter;
#        use the one vestige's venv was made from, so both start the same Python)
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers/hydra"
python="${PYTHON:-python3}"
mkdir -p "$here/.peers"
failed=0

if [ ! -x "$venv/bin/python" ]; then
    echo "peers: creating $venv"
    if ! "$python" -m venv "$venv"; then
        echo "peers: could not create a venv with $python" >&2
        exit 1
    fi
fi

version() {  # version PACKAGE: its installed version, or nothing
    "$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null
}

install() {  # install PACKAGE MODULE
    local package="$1" module="$2"
    if "$venv/bin/python" -c "import $module" >/dev/null 2>&1; then
        echo "peers: $package $(version "$package") already installed"
        return 0
    fi
    echo "peers: installing $package into $venv"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package"; then
        echo "peers: pip install $package failed: the benchmark will print 'not installed'" >&2
        return 1
    fi
    if ! "$venv/bin/python" -c "import $module" >/dev/null 2>&1; then
        echo "peers: $package installed but 'import $module' fails" >&2
        return 1
    fi
    echo "peers: $package $(version "$package")"
}

install hydra-core hydra || failed=1
install hydra-joblib-launcher hydra_plugins.hydra_joblib_launcher || failed=1

exit "$failed"
