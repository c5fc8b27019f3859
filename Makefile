# Two commands on a fresh machine: `make dev` (gateway on 127.0.0.1:$PORT) and `make test`.
# Both create .venv from the project's own requirement files first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The key `make dev` accepts unless IMAGEGW_API_KEYS says otherwise (development only).
DEV_API_KEY ?= sk-imagegw-dev
export PYTHONPATH := $(CURDIR)/functions/gateway

.PHONY: dev test lint typecheck pytest format build clean load

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

# Not part of `make test`: 2,000 requests at 50 concurrent against uvicorn, 5 % upstream faults.
load: $(VENV)/.installed
	$(BIN)/python bench/load.py --write

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
