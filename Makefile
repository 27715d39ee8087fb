# orderpay — the two set-up commands are `make run` and `make test`; everything else hangs off them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
GEN_DIR := clients/gen
PROTOS := $(wildcard proto/orderpay/v1/*.proto)

.PHONY: all run test gen gen-check lint fmt typecheck pytest test-pg test-sqlite chromium bench clean

all: test

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Generated code is committed; `make gen` rewrites it, `make gen-check` fails on drift.
define generate
	rm -rf $(1) && mkdir -p $(1)
	PATH=$(CURDIR)/$(BIN):$$PATH $(PY) -m grpc_tools.protoc -Iproto \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=quiet:$(1) --mypy_grpc_out=quiet:$(1) $(PROTOS)
	rm -f $(1)/orderpay/v1/order_pb2_grpc.py $(1)/orderpay/v1/order_pb2_grpc.pyi
	# protoc emits absolute `orderpay.v1` imports; the one copy lives under clients.gen.
	sed -i -e 's/^from orderpay\.v1 import/from clients.gen.orderpay.v1 import/' $(1)/orderpay/v1/*.py $(1)/orderpay/v1/*.pyi
	touch $(1)/__init__.py $(1)/orderpay/__init__.py $(1)/orderpay/v1/__init__.py
endef

gen: venv
	$(call generate,$(GEN_DIR))

gen-check: venv
	$(call generate,.gen-check)
	diff -r -x __pycache__ .gen-check $(GEN_DIR) || { echo "generated code drifted from proto/: run 'make gen'"; exit 1; }
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

# The cashier-page test drives Debian's Chromium headless; install it where missing.
chromium:
	@command -v chromium >/dev/null || { apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }; }

pytest: venv chromium
	$(BIN)/pytest

test: gen-check lint typecheck pytest

run: venv
	$(BIN)/orderpay dev

bench: venv
	$(BIN)/orderpay bench

clean:
	rm -rf $(VENV) .orderpay .gen-check .mypy_cache .ruff_cache .pytest_cache
