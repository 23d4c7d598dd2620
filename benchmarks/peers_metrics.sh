#!/usr/bin/env bash
# Install the metric-logging tools that benchmarks/metric_logging.py compares vestige.log
# with, into one venv under benchmarks/.peers/ (git-ignored), so that they never touch
# vestige's own environment:
#
#   benchmarks/.peers/metrics-venv    pip install mlflow; pip install wandb; pip install trackio
#
# Each package is installed on its own, so that one that fails to install (no wheel for
# this Python, a build error) leaves the others usable; the benchmark prints "not
# installed" for a missing one. Nothing is pinned: the benchmark prints the versions it
# measured. Re-running is cheap: a package that already imports is kept.
#
# Usage: bash benchmarks/peers_metrics.sh     (PYTHON=python3.12 to choose the interpreter)
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers/metrics-venv"
python="${PYTHON:-python3}"
mkdir -p "$here/.peers"
failed=0

# No tool may phone home while it is being imported for the version check.
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DISABLE_CODE=true
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true GRADIO_ANALYTICS_ENABLED=False
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1

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

install mlflow mlflow || failed=1
install wandb wandb || failed=1
install trackio trackio || failed=1

# Three tools in one venv: say so if their requirements ended up in conflict.
"$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null 2>&1 \
    || echo "peers: note: pip check reports conflicts in $venv (see: $venv/bin/python -m pip check)"

exit "$failed"
