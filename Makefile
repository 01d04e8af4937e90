# failboard — every target creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint format bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	# arq pins redis-py < 6, which Celery's Redis transport (>= 6.1) and taskiq-redis (>= 8)
	# cannot share; it runs on redis-py 8 (tests/integration/test_arq_workers.py), so it is
	# installed without its pins rather than in [all].
	$(BIN)/python -m pip install -q --no-deps 'arq>=0.26'
	# rq 2.x beside rq 3, off sys.path: the RQ tests run real 2.x workers from it.
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/rq2-site 'rq==2.12.0'
	touch $(STAMP)

demo: $(STAMP)  ## the embedded demo: SQLite, no servers needed
	$(BIN)/failboard demo

test: $(STAMP)  ## the whole suite against the real services (see README)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)  ## benchmarks: prints a table (see docs/benchmarks.md)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .failboard-demo .pytest_cache .mypy_cache .ruff_cache
