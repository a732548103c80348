# Every target sets up .venv itself when pyproject.toml changed or .venv is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint package deploy preview bench clean setup

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## make run: start the whole stack locally on an embedded AWS emulator and play the demo.
run: $(STAMP)
	$(BIN)/omni local --demo

## make test: the whole test suite (unit, handler, Pulumi mock, end-to-end), one worker per core
## and a test file per worker; `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n auto --dist loadfile
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: ruff (style, complexity), mypy (types), import-linter (the layers of docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared functions topology infra omni
	PYTHONPATH=. $(BIN)/lint-imports

## make bench: cost per 1M messages, cold start, handler overhead, scaling -> build/bench/results.md
## (untracked); make bench RECORD=1 writes the tracked bench/results.md the README quotes.
BENCH_OUT := $(if $(RECORD),bench/results.md,build/bench/results.md)
bench: $(STAMP)
	@mkdir -p $(dir $(BENCH_OUT))
	$(BIN)/python -m bench.run --out $(BENCH_OUT)

## make package: every function zip and the dependency layer into build/, with bytecode for the
## runtime's Python (see README, Deploy); ARGS=--require-bytecode fails instead of warning.
package: $(STAMP)
	$(BIN)/python -m infra.package $(ARGS)

## make deploy: pulumi up for the currently selected stack (see README).
deploy: $(STAMP)
	pulumi up

preview: $(STAMP)
	pulumi preview

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .mypy_cache
