#!/usr/bin/env bash
# The demo behind `make demo`: a throw-away analysis project, run under vestige the way a
# researcher would, then asked what made what. Runs in a temp folder; leaves nothing behind
# unless KEEP=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${VESTIGE_BIN:-$here/../.venv/bin}
export PATH="$bin:$PATH"
work=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cp -r "$here/anscombe" "$work/project"
cd "$work/project"
git init -q && git add -A && git -c user.name=demo -c user.email=demo@example.org commit -qm "first look"
printf 'out/\npaper/\n' > .gitignore

step vestige run python analyze.py --dataset I
# the same analysis for the other three data sets, two at a time: one sweep, three runs
step vestige run --each dataset=II,III,IV -j 2 -- python analyze.py --dataset '{dataset}'
step vestige compare --sweep 2
step vestige run bash -c 'cat out/summary_*.csv | sort -u > out/all_summaries.csv && wc -l out/all_summaries.csv'
# a sloppy, uncommitted edit: the snapshot keeps it
sed -i 's/color="tab:red"/color="tab:green"/' analyze.py
step vestige run analyze.py --dataset III
step vestige ls
step vestige show @last
mkdir -p paper && cp out/fit_III.png paper/figure3.png
git checkout -q analyze.py       # the edit that made the figure is gone from disk...
step vestige which paper/figure3.png  # ...but the figure still says where it came from
printf '\n\033[1m$ %s\033[0m\n' 'vestige cat @last analyze.py | grep -n tab:green'
vestige cat @last analyze.py | grep -n "tab:green"   # the kept snapshot has the edit
step vestige ls --where 'params.dataset = "III"'
step vestige tag 1 first-look
step vestige note 1 "dataset I: the linear fit is fine here"
step vestige ls --where 'tag = first-look'
step vestige debt            # which code proved long-lived (here: young, all fine sloppy)
step vestige du --by kind
step vestige fsck
echo
echo "demo project: $work/project (set KEEP=1 to keep it)"
