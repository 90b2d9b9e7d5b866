# Parley: the only entry points a user needs.
#   make run    set up everything, start the server on 127.0.0.1:50051 (HOST/PORT to change)
#   make test   set up everything, lint the contract, run the test suite
#   make proto  regenerate the gRPC stubs and lint the contract with buf
#   make bench  benchmarks; results in bench/results/*.json
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
HOST   ?= 127.0.0.1
PORT   ?= 50051
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf

PROTOS  := $(wildcard proto/parley/v1/*.proto)
SOURCES := pyproject.toml setup.py $(wildcard mixer/*.pyx mixer/*.pxd)
INSTALLED := $(VENV)/.installed
STUBS := service/parley/v1/__init__.py
NODE_EXAMPLE := examples/node/node_modules/.package-lock.json

.PHONY: all setup run test proto lint bench clean

all: setup

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# llama.cpp (the local language model) compiles on install. It is built for
# the x86-64 level most machines share (AVX2, FMA, F16C), not for this CPU:
# some virtual machines report AMX or AVX-512 that programs may not use, and a
# native build dies there with SIGILL. pip's cache may hold a native build of
# the same version, so this one bypasses it.
LLAMA_CPP := $(shell grep -o '"llama-cpp-python[^"]*"' pyproject.toml)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF

# Editable install: builds the Cython mixer in place and installs every
# runtime and test dependency, models and voices included.
$(INSTALLED): $(PY) $(SOURCES)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --no-cache-dir $(LLAMA_CPP)
	$(BIN)/pip install -q -e '.[dev]'
	$(PY) -m parley.providers.models install
	touch $@

$(STUBS): $(INSTALLED) $(PROTOS) proto/generate.py
	$(PY) proto/generate.py

# The Node example's pinned packages (make test runs it).
$(NODE_EXAMPLE): examples/node/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix examples/node

setup: $(INSTALLED) $(STUBS) $(NODE_EXAMPLE)

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

# buf breaking compares the contract with the latest v* release tag before
# HEAD; until a release is tagged there is nothing to compare with.
lint: $(BUF) $(INSTALLED)
	$(BIN)/ruff check service tests bench examples mixer
	$(BIN)/mypy
	cd proto && ../$(BUF) lint
	@tag=$$(git describe --tags --abbrev=0 --match 'v*' HEAD~1 2>/dev/null); \
	if [ -n "$$tag" ]; then echo "buf breaking against $$tag"; \
		cd proto && ../$(BUF) breaking --against "../.git#tag=$$tag,subdir=proto"; \
	else echo "buf breaking: skipped (no v* release tag yet)"; fi

proto: $(STUBS) lint

run: setup
	$(BIN)/parley serve --host $(HOST) --port $(PORT)

test: setup lint
	$(PY) -m pytest -q

bench: setup
	@mkdir -p bench/results
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf $(VENV) .tools build service/parley/v1 mixer/*.c service/parley/audio/*.so examples/node/node_modules
