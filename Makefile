# Two commands get a fresh machine from clone to results:
#   make quick   set everything up, then run the quick comparison (the README's main command)
#   make test    set everything up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all,dev
PYTEST_ARGS ?=
QUICK_ARGS ?=
# The torchvision layout check needs torchvision, which cannot share a process (or, here, a venv) with
# tensorflow; it gets a venv of its own.
TV_VENV ?= .venv-torchvision
TV_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup setup-torchvision quick test test-all lint lock clean

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
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup setup-torchvision
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

lock: setup
	{ head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new && mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) $(TV_VENV) build dist src/*.egg-info .pytest_cache
