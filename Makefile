# Two commands on a fresh machine: `make dev` (gateway on 127.0.0.1:$PORT) and `make test`.
# Both create .venv from the project's own requirement files first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The key `make dev` accepts unless IMAGEGW_API_KEYS says otherwise (development only).
DEV_API_KEY ?= sk-imagegw-dev
export PYTHONPATH := $(CURDIR)/functions/gateway

.PHONY: dev test lint typecheck pytest format build clean bench

$(VENV)/.installed: requirements-dev.txt layers/deps/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

dev: $(VENV)/.installed
	IMAGEGW_API_KEYS="$${IMAGEGW_API_KEYS:-$(DEV_API_KEY)}" \
	$(BIN)/uvicorn imagegw.app:create_app --factory --host 127.0.0.1 --port $(PORT)

test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: $(VENV)/.installed
	$(BIN)/pytest

# Not part of `make test`: benchmarks measure, they do not pass or fail. A few minutes on 2 cores;
# the report goes to stdout and into bench/RESULTS.md.
bench: $(VENV)/.installed
	$(BIN)/python -m bench.run --write

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
