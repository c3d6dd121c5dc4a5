# qmia: `make book` regenerates every table and figure and builds the site; `make test` tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision first, pinned to builds known to work (override for another CUDA build)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
HAS_CUDA := $(shell $(PY) -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
PROFILE ?= $(if $(filter 1,$(HAS_CUDA)),paper,quick)
export PROFILE

.PHONY: setup test pytest clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[book,test]"
	touch $@

pytest: setup
	$(PY) -m pytest -q

test: pytest

clean:
	rm -rf cache results book/_build book/generated .pytest_cache .hypothesis
