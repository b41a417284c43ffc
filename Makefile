# Two commands get a fresh machine from clone to results:
#   make quick   set everything up, then run the quick comparison (the README's main command)
#   make test    set everything up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all,dev
PYTEST_ARGS ?=
# make test runs the suite serially by default; TEST_PROCESSES=2 spreads it over two processes (pytest-xdist),
# keeping the tests of a framework worker or a file in one process (tests/conftest.py). On two cores that did
# not save time (framework processes use both cores each) and two Ctrl-C tests once failed under it.
TEST_PROCESSES ?= 0
QUICK_ARGS ?=
# The torchvision layout check needs torchvision, which cannot share a process (or, here, a venv) with
# tensorflow; it gets a venv of its own.
TV_VENV ?= .venv-torchvision
TV_PINS ?= torch==2.14.1 torchvision==0.29.1 pydantic==2.14.4

.PHONY: setup setup-torchvision quick test test-all lint lock clean gpu-wheels

$(BIN)/medbench: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

setup: $(BIN)/medbench

$(TV_VENV)/bin/python:
	$(PYTHON) -m venv $(TV_VENV)
	$(TV_VENV)/bin/python -m pip install $(TV_PINS) numpy safetensors

setup-torchvision: $(TV_VENV)/bin/python

quick: setup
	$(BIN)/medbench run quick $(QUICK_ARGS)

# The default suite leaves out tests marked slow (larger models and images; about 20 more minutes on two
# cores): `make test-all` runs them too.
test: setup setup-torchvision
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

test-all: setup setup-torchvision
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

lock: setup
	{ head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new && mv constraints.new constraints.txt

# The wheels a lent GPU machine lacks (its image has torch, JAX, flax, optax and onnxruntime, but no registry),
# for Python 3.12 on x86-64, at the versions constraints.txt pins; benchmarks/gpu_check.sh installs them there.
GPU_WHEEL_NAMES := pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|keras|namex|optree
GPU_WHEEL_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
gpu-wheels: setup
	rm -rf .whl/gpu && mkdir -p .whl/gpu
	$(BIN)/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_WHEEL_PLATFORMS) -d .whl/gpu setuptools==84.2.1 wheel==0.48.0 \
		$$(grep -iE '^($(GPU_WHEEL_NAMES))==' constraints.txt)
	@du -sh .whl/gpu

clean:
	rm -rf $(VENV) $(TV_VENV) build dist src/*.egg-info .pytest_cache
