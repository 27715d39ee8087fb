# orderpay — the two set-up commands are `make run` and `make test`; everything else hangs off them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
GEN_DIR := proto
PROTOS := $(wildcard proto/orderpay/v1/*.proto)

.PHONY: all run test venv venv-runtime gen gen-check lint fmt typecheck pytest test-pg test-sqlite chromium pg-ha bench clean

all: test

# One virtualenv, two sets: `make run` needs only the runtime dependencies (.runtime); `make test` and
# the tools add the dev/test set on top (.installed: pytest, playwright, mypy, ruff, buf, codegen, ...).
$(VENV)/.runtime: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

venv-runtime: $(VENV)/.runtime

venv: $(VENV)/.installed

# Generated code is committed next to the protos, so the import path is the proto package: `orderpay.v1`
# (pyproject maps the `orderpay` package to proto/orderpay). `make gen` rewrites it, `make gen-check` fails on drift.
define generate
	mkdir -p $(1)/orderpay/v1 && rm -f $(1)/orderpay/v1/*_pb2*.py* $(1)/orderpay/v1/__init__.py $(1)/orderpay/__init__.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=quiet:$(1) --mypy_grpc_out=quiet:$(1) $(PROTOS)
	rm -f $(1)/orderpay/v1/order_pb2_grpc.py $(1)/orderpay/v1/order_pb2_grpc.pyi
	touch $(1)/orderpay/__init__.py $(1)/orderpay/v1/__init__.py
endef

gen: venv
	$(call generate,$(GEN_DIR))

gen-check: venv
	rm -rf .gen-check
	$(call generate,.gen-check)
	diff -r -x __pycache__ -x '*.proto' .gen-check/orderpay $(GEN_DIR)/orderpay \
	  || { echo "generated code drifted from proto/: run 'make gen'"; exit 1; }
	rm -rf .gen-check

lint: venv
	$(BIN)/buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy

# The cashier-page and console tests (bilingual pages) drive Debian's Chromium headless; install it where missing, and a
# CJK font (the console's Chinese labels are checked for missing-glyph boxes).
chromium:
	@command -v chromium >/dev/null || { apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; }
	@fc-list :lang=zh | grep -q . || { apt-get install -y -q fonts-noto-cjk >/dev/null || { apt-get update -q && apt-get install -y -q fonts-noto-cjk; }; }

# The failover drill and the pooler tests run a pg_auto_failover formation (monitor, primary, synchronous
# standby) and a pgbouncer of their own on loopback ports: install both where missing (docs/high-availability.md).
pg-ha:
	@command -v pg_autoctl >/dev/null && command -v pgbouncer >/dev/null || { apt-get install -y -q postgresql-15-auto-failover pgbouncer >/dev/null || { apt-get update -q && apt-get install -y -q postgresql-15-auto-failover pgbouncer; }; }

# Several workers (pytest-xdist): a file's tests stay on one worker (--dist loadfile: its module fixtures,
# a stack or a browser, start once); every test binds port 0 and gets its own database, so workers never
# meet. PYTEST_WORKERS=0 runs in this process; PYTEST_ARGS adds options (e.g. -k, -x). pytest exits 5 when
# nothing was collected: a failure here like any other non-zero exit.
#
# Bytecode: the suite starts ~150 Python processes (servers, sandboxes, CLI calls) besides its workers.
# With PYTHONDONTWRITEBYTECODE set in the shell (some images set it), each one compiles server/,
# clients/ and sandbox/ from source and each worker re-rewrites every test module: ~20 % of the CPU of
# the CLI-heavy tests. The tests write __pycache__ (git-ignored) whatever the shell says.
PYTEST_WORKERS ?= 3
PYTEST_ARGS ?=
pytest: venv chromium pg-ha
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test: gen-check lint typecheck pytest

run: venv-runtime
	$(BIN)/orderpay dev

bench: venv pg-ha
	$(BIN)/orderpay bench --warning --beside ORDERPAY_EVENT_LOOP=uvloop

clean:
	rm -rf $(VENV) .orderpay .gen-check .mypy_cache .ruff_cache .pytest_cache
