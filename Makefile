# Two commands from a fresh clone: `make demo` and `make test`. Both need only python3 (>= 3.10).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_SERVER := $(VENV)/llama-server/.stamp
# A second environment with transformers 4.57: fix's --style v4|both output must load there too.
VENV_TF4 := .venv-tf4
STAMP_TF4 := $(VENV_TF4)/.installed

.PHONY: demo test lint typecheck pytest bench clean fuzz llama-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# torch first and pinned: the CPU build of 2.13.0 lies on local disk; an unpinned one pulls CUDA.
$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	-$(BIN)/ropedoctor check fixtures/qwen2.5-7b-instruct fixtures/broken/yarn-legacy-type-conflict
	-$(BIN)/ropedoctor check fixtures/nomic-embed-text-v1.5 --ctx 8192
	-$(BIN)/ropedoctor check fixtures/gguf/qwen2.5-7b-yarn-capped.gguf

$(STAMP_TF4):
	$(PYTHON) -m venv $(VENV_TF4)
	$(VENV_TF4)/bin/python -m pip install -q transformers==4.57.6
	touch $@

lint: $(STAMP_TEST)
	$(BIN)/ruff check ropedoctor tests bench tools fuzz

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

pytest: $(STAMP_TEST) $(STAMP_TF4) $(STAMP_SERVER)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# A real llama-server, from the llama.cpp source inside the installed llama-cpp-python's sdist, for
# tests/test_llama_server.py. Part of `make test`: about 11 CPU-minutes (6-7 on an idle 2-core machine). The script
# keeps one build per llama-cpp-python version, so re-running this target (or reinstalling the same version) builds
# nothing.

$(STAMP_SERVER): $(STAMP_TEST)
	tools/build_llama_server.sh $(VENV)
	touch $@

llama-server: $(STAMP_SERVER)

bench: $(STAMP_TEST)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/gguf_header.py
	$(BIN)/python bench/gguf_fix.py
	$(BIN)/python bench/scan_load.py

# Long runs, not part of `make test` (docs/reliability.md): FUZZ_COUNT generated and mutated inputs per parser
# (config.json loader, GGUF header reader, hub responses, hub paths), then fix killed at every system call.
FUZZ_COUNT ?= 100000
fuzz: $(STAMP_TEST)
	nice -n 10 $(BIN)/python -m fuzz.run --count $(FUZZ_COUNT) --out $${TMPDIR:-/tmp}/ropedoctor-fuzz-summary.json
	ROPEDOCTOR_FULL_SWEEP=1 $(BIN)/python -m pytest tests/test_crash_safety.py

clean:
	rm -rf $(VENV) $(VENV_TF4) .mypy_cache .pytest_cache .ruff_cache
