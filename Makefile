# Member Hub — two commands: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check fmt bench bench-quick schema clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Set up, start an embedded PostgreSQL, load demo data and serve on http://127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/hub demo

## Set up and run the whole test suite against real PostgreSQL (embedded, or HUB_TEST_DATABASE_URL)
test: $(STAMP)
	scripts/ensure-chromium
	$(BIN)/pytest -q

## Format check, lint, strict types, import contracts, exported schema up to date
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schema: $(STAMP)
	$(BIN)/hub schema export

## Every benchmark at full size (long), or a quick smoke size
bench: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

bench-quick: $(STAMP)
	for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
