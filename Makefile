# The two commands of the README's Quick start, and a few for developers.
# Needs only Python >= 3.11 and git; everything else is installed into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint bench clean strace chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vestige needs Python >= 3.11; set PYTHON=python3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@command -v strace >/dev/null 2>&1 || $(MAKE) --no-print-directory strace
	@command -v chromium >/dev/null 2>&1 || $(MAKE) --no-print-directory chromium
	@touch $(STAMP)

# strace traces the files of programs outside Python (docs/architecture.md); the tests of
# tracing need it. Installed from Debian's packages when we may (root, apt-get).
strace:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq >/dev/null && apt-get install -y -qq strace >/dev/null; \
	else echo "note: strace is not installed (apt-get install strace): tracing tests are skipped"; fi

# Chromium drives the UI's browser tests (tests/test_ui_browser.py) through Playwright,
# which is told to use this one (never `playwright install`). Debian's package, when we
# may install it (root, apt-get); else those tests are skipped, saying why.
chromium:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium is not installed (apt-get install chromium): UI browser tests are skipped"; fi

setup: $(STAMP)

demo: setup
	bash examples/demo.sh

# pytest exits 5 when it collected no tests: that must fail, not pass silently.
# --durations names the slowest tests in every log (the suite's time budget).
# Two workers (pytest-xdist), each taking whole modules (their module fixtures are built
# once): most tests wait on subprocesses, so two at once halve the suite's time on a
# 2-core machine. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 \
		$$([ "$(TEST_WORKERS)" = 0 ] || echo "-n $(TEST_WORKERS) --dist loadscope"); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-logo

bench: setup
	for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
