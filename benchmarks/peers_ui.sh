#!/usr/bin/env bash
# Install the tracking server that benchmarks/ui.py compares `vestige ui` with, into its own
# venv under benchmarks/.peers/ (git-ignored), so that it never touches vestige's own
# environment:
#
#   benchmarks/.peers/ui-venv/bin/mlflow    pip install mlflow  (its server and web UI)
#
# Optional: benchmarks/ui.py prints "not installed" and leaves the MLflow column out when
# this venv is missing. Nothing is pinned: the benchmark prints the version it measured.
# Re-running is cheap: an install that already imports is kept.
#
# Usage: bash benchmarks/peers_ui.sh         (PYTHON=python3.12 to choose the interpreter)
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.peers/ui-venv"
python="${PYTHON:-python3}"
mkdir -p "$here/.peers"

# No tool may phone home while it is being imported for the version check.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true

if "$venv/bin/python" -c "import mlflow" >/dev/null 2>&1; then
    echo "peers: mlflow $("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)') already installed"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "peers: creating $venv"
    if ! "$python" -m venv "$venv"; then
        echo "peers: could not create a venv with $python" >&2
        exit 1
    fi
fi
echo "peers: installing mlflow into $venv"
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check mlflow; then
    echo "peers: pip install mlflow failed: benchmarks/ui.py will print 'not installed'" >&2
    exit 1
fi
if ! "$venv/bin/python" -c "import mlflow" >/dev/null 2>&1; then
    echo "peers: mlflow installed but 'import mlflow' fails" >&2
    exit 1
fi
echo "peers: mlflow $("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)')"
