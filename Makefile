# Everything runs inside .venv; `make install` creates it.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install test test-slow test-all test-gpu lint eval efficiency train demo bench gpu-check \
	notebooks

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# the fast suite (what contributors run); `make test-all` adds the slow reference checks.
# PYTEST_WORKERS: pytest-xdist processes (auto: one per core, each with its share of the
# threads; 0: one process); PYTEST_ARGS: more for pytest, e.g. --durations=15. Budgets and how
# to stay inside them: docs/CONTRIBUTING.md
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
PYTEST := $(PY) -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: install
	$(PYTEST) -m "not slow"

# the CUDA variants are left to test-gpu, which runs them one at a time on the GPU(s)
test-slow: install
	$(PYTEST) -m "slow and not gpu"

test-all: install
	$(PYTEST) -m "not gpu"

# the GPU variants of the device tests (bf16, channels_last, compile, DDP); needs CUDA
test-gpu: install
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check src tests scripts benchmarks examples *.py
	$(PY) -m ruff format --check src tests scripts benchmarks examples *.py

eval: install
	$(PY) eval.py $(ARGS)

efficiency: install
	$(PY) efficiency.py $(ARGS)

train: install
	$(PY) train.py $(ARGS)

# the main job on the embedded sample photos (no download)
demo: install
	$(PY) train.py

# the training-step benchmark (docs/BENCHMARKS.md): framework vs a plain loop, the teacher's share
bench: install
	$(PY) benchmarks/train_step.py --json outputs/bench/train_step.json $(ARGS)

# one command for a CUDA GPU (docs/BENCHMARKS.md "GPU check"): the training step, bf16,
# channels_last, compile and DDP, each timed and checked against float32; writes
# outputs/gpu_check/gpu_check.json. ARGS: --device cpu (the same checks on tiny networks), --quick
gpu-check: install
	$(PY) benchmarks/gpu_check.py $(ARGS)

# run the notebooks top to bottom on copies (outputs/notebooks/executed/); the files in git keep
# no outputs. ARGS: notebook paths, --out DIR, --timeout SECONDS (per cell)
notebooks: install
	$(PY) scripts/run_notebooks.py $(ARGS)
