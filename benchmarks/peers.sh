#!/usr/bin/env bash
# Install the peer tools the benchmarks compare vestige with, each in its own venv under
# benchmarks/.peers/ (git-ignored), so that they never touch vestige's own environment:
#
#   benchmarks/.peers/dvc/bin/dvc           pip install dvc dvc-s3 (its S3 remotes: remote.py)
#   benchmarks/.peers/datalad/bin/datalad   pip install datalad, plus Debian's git-annex
#
# Optional: the benchmarks print "not installed" for a peer that is missing. git-annex
# comes from apt-get and is installed only when this runs as root; otherwise datalad is
# skipped with a message. Re-running is cheap: an existing venv is kept.
#
# Usage: bash benchmarks/peers.sh            (PYTHON=python3.12 to choose the interpreter)
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="$here/.peers"
python="${PYTHON:-python3}"
mkdir -p "$peers"
failed=0

make_venv() {  # make_venv NAME PACKAGE...
    local name="$1"
    shift
    local venv="$peers/$name"
    if [ -x "$venv/bin/$name" ]; then
        echo "peers: $name already installed: $("$venv/bin/$name" --version 2>/dev/null | head -1)"
        return 0
    fi
    echo "peers: installing $* into $venv"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "peers: could not create a venv with $python" >&2
        return 1
    fi
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; then
        echo "peers: pip install $* failed" >&2
        rm -rf "$venv"
        return 1
    fi
    echo "peers: $name $("$venv/bin/$name" --version 2>/dev/null | head -1)"
}

make_venv dvc dvc dvc-s3 || failed=1
# A dvc venv made before remote.py needed S3 remotes lacks dvc-s3: add it.
if [ -x "$peers/dvc/bin/python" ] && ! "$peers/dvc/bin/python" -c "import dvc_s3" 2>/dev/null; then
    echo "peers: installing dvc-s3 into $peers/dvc"
    "$peers/dvc/bin/python" -m pip install --quiet --disable-pip-version-check dvc-s3 \
        || { echo "peers: pip install dvc-s3 failed" >&2; failed=1; }
fi

if ! command -v git-annex >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "peers: installing git-annex with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-annex \
            || echo "peers: apt-get install git-annex failed" >&2
    else
        echo "peers: git-annex is missing and this is not root with apt-get: skipping datalad"
        echo "peers: (install git-annex yourself, then re-run this script)"
    fi
fi
if command -v git-annex >/dev/null 2>&1; then
    echo "peers: $(git-annex version 2>/dev/null | head -1)"
    make_venv datalad datalad || failed=1
else
    echo "peers: datalad skipped (no git-annex)"
fi

exit "$failed"
