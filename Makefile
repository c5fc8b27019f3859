# Two commands on a fresh machine: `make dev` (gateway on 127.0.0.1:$PORT) and `make test`.
# Both create .venv from the project's own requirement files first; `make test` also creates
# .venv-sam (the AWS SAM CLI, kept apart because its pins conflict with the gateway's).
# `make package-check` builds the Lambda artifacts with `sam build` and runs the built handler.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
PORT ?= 8000
# The key `make dev` accepts unless IMAGEGW_API_KEYS says otherwise (development only).
DEV_API_KEY ?= sk-imagegw-dev
export PYTHONPATH := $(CURDIR)/functions/gateway
PIP_FLAGS := --quiet --disable-pip-version-check

# The SAM CLI needs a Region to validate and build, never credentials: no telemetry, and no
# probing of the EC2 metadata service for credentials that are not there.
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true \
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}

# `sam build` (no container) runs pip with the interpreter of the function's runtime, python3.12.
# The first one that really is 3.12: on PATH, else a pyenv install (pyenv's shim is not enough).
PYTHON312 = $(shell for candidate in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 \
	/usr/local/bin/python3.12 /usr/bin/python3.12; do \
	"$$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
	&& { command -v "$$candidate"; break; }; done)
# The Lambda runtime's own boto3 (the layer pins the same version, which shadows it).
RUNTIME_BOTO3 := $(shell sed -n 's/^boto3==//p' layers/deps/requirements.txt)

.PHONY: dev test lint typecheck pytest format validate python312 build package-check clean bench load \
	bench-lambda \
	catalog

$(VENV)/.installed: requirements-dev.txt layers/deps/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	# The `imagegw` command (pyproject [project.scripts]), editable: it runs this checkout. Its
	# egg-info goes: `sam build` copies functions/gateway as it is into the Lambda package.
	$(BIN)/python -m pip install $(PIP_FLAGS) --no-deps --editable .
	rm -rf functions/gateway/imagegw.egg-info
	touch $@

# The playground's browser test drives Debian's chromium through playwright (which cannot
# download its own browsers here). Installed by apt when missing: the test fails without it.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	$$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -qq
	$$([ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(SAM_VENV)/bin/python -m pip install $(PIP_FLAGS) -r requirements-sam.txt
	touch $@

# uvicorn as a container should run it too (docs/serving.md): no access log (it writes query
# strings, which carry link signatures), every log line the gateway's JSON, headers capped at
# 10 KiB and read within 10 s like API Gateway does (entrypoints/serving.py), idle keep-alive
# connections closed after 5 s. tests/e2e/test_dev_server.py runs exactly these flags.
UVICORN_FLAGS := --no-access-log \
	--log-config $(CURDIR)/functions/gateway/imagegw/entrypoints/uvicorn-logging.json \
	--http imagegw.entrypoints.serving:GuardedHttpToolsProtocol \
	--timeout-keep-alive 5 \
	--timeout-graceful-shutdown 10

# What the template sets for the functions too: glibc keeps large buffers between requests.
GLIBC_TUNABLES_SETTING := glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728

dev: $(VENV)/.installed
	IMAGEGW_API_KEYS="$${IMAGEGW_API_KEYS:-$(DEV_API_KEY)}" \
	GLIBC_TUNABLES="$${GLIBC_TUNABLES:-$(GLIBC_TUNABLES_SETTING)}" \
	IMAGEGW_PLAYGROUND="$${IMAGEGW_PLAYGROUND:-true}" \
	$(BIN)/uvicorn imagegw.entrypoints.app:create_app --factory --host 127.0.0.1 --port $(PORT) \
	$(UVICORN_FLAGS)

test: lint typecheck pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.installed
	$(BIN)/mypy

# tests/deploy runs cfn-lint, `sam validate --lint` and the SAM translation from .venv-sam.
pytest: $(VENV)/.installed $(SAM_VENV)/.installed $(CHROMIUM)
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest

# Not part of `make test`: benchmarks measure, they do not pass or fail. A few minutes on 2 cores;
# the report goes to stdout and into bench/RESULTS.md, its charts to bench/plots/*.png (drawn
# from bench/figures.json: `python -m bench.plots` draws them again without measuring).
bench: $(VENV)/.installed
	$(BIN)/python -m bench.run --write

# Not part of `make test`: the built Lambda artifact as deployed (run `make package-check` first):
# cold starts with and without its .pyc, and CPU per invocation of the Lambda path.
bench-lambda: $(VENV)/.installed python312
	PYTHON312="$(PYTHON312)" $(BIN)/python -m bench.lambda_artifact

# Not part of `make test`: 2,000 requests at 50 concurrent against uvicorn, 5 % upstream faults.
load: $(VENV)/.installed
	$(BIN)/python bench/load.py --write

# After editing functions/gateway/imagegw/catalog/models.toml: rewrite its parsed copy, which spares
# cold starts the TOML parser (the gateway ignores a copy that no longer matches the file).
catalog: $(VENV)/.installed
	$(BIN)/python -m imagegw.catalog

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

validate: $(VENV)/.installed $(SAM_VENV)/.installed
	$(BIN)/cfn-lint template.yaml
	$(SAM_ENV) $(SAM) validate --lint

python312:
	@test -n "$(PYTHON312)" || { echo "sam build needs a python3.12 interpreter (the Lambda" \
	  "runtime's version) on PATH or under ~/.pyenv/versions/3.12.*: install one, e.g." \
	  "'pyenv install 3.12'" >&2; exit 1; }

# The deployable artifacts: arm64, as in template.yaml, in .aws-sam/build. sam build runs
# functions/gateway/Makefile and layers/deps/Makefile (BuildMethod: makefile), which ship
# unchecked-hash .pyc files (see there why); python3.12 must come first on PATH for them.
build: $(SAM_VENV)/.installed python312
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM_ENV) $(SAM) build --no-use-container

# This machine is x86_64 and cannot load the arm64 layer's native modules, so the same template
# is also built for x86_64 (same builder, same pinned requirements, LAYER_ARCH telling the
# layer's Makefile) into .aws-sam/build-x86_64.
# tests/deploy/test_built_package.py checks the arm64 build's contents, then runs the arm64 build's
# function code on the x86_64 layer under python3.12 with sample events.
package-check: build $(VENV)/.installed
	sed -e 's/\barm64\b/x86_64/g' template.yaml > .aws-sam/template-x86_64.yaml
	PATH="$(dir $(PYTHON312)):$$PATH" LAYER_ARCH=x86_64 $(SAM_ENV) $(SAM) build --no-use-container \
	  --template-file .aws-sam/template-x86_64.yaml --base-dir . --build-dir .aws-sam/build-x86_64
	$(PYTHON312) -m pip install $(PIP_FLAGS) --upgrade --target .aws-sam/lambda-runtime \
	  boto3==$(RUNTIME_BOTO3)
	PACKAGE_CHECK_PYTHON="$(PYTHON312)" $(BIN)/pytest -m package tests/deploy

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
