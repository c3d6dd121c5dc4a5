# qmia: `make book` regenerates every table and figure and builds the site; `make test` tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision first, pinned to builds known to work (override for another CUDA build)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The paper profile by default: built from results/paper/ when it holds every row (any machine, no data or GPU
# needed); where parts are missing, computed on a GPU, or on a CPU the quick profile is built instead (it says which).
PROFILE ?= paper
export PROFILE

# The book: notebooks/ executed by papermill into book/generated/, built into book/_build/html.
JB := $(VENV)/bin/jupyter-book
SITE := book/_build/html
# Notebook parameters: the profile, the data root ($QMIA_DATA) and, for `make notebook`, BITS / SEEDS.
NB_ARGS = --profile $(PROFILE) $(if $(QMIA_DATA),--data-root "$(QMIA_DATA)")
export QMIA_PROGRESS ?= 0

.PHONY: setup test pytest clean book notebooks site check-site notebook book-smoke help
.DEFAULT_GOAL := setup

help:
	@echo "make book [PROFILE=smoke|quick|paper] [QMIA_DATA=dir]  execute every notebook, build $(SITE)"
	@echo "make notebook NB=<name> [BITS=2,3,6] [SEEDS=0,1]      rerun one notebook, rebuild the site"
	@echo "make site                                              build the site from book/generated/ and check it"
	@echo "make test                                              pytest, then a smoke build of the whole book"
	@echo "make clean                                             remove caches, executed notebooks and the site"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[book,test]"
	touch $@

pytest: setup
	$(PY) -m pytest -q

# pytest, then the whole book under the smoke profile (offline, minutes on a CPU), then the site check
test: pytest book-smoke

book-smoke:
	$(MAKE) book PROFILE=smoke

book: setup
	@echo "make book: PROFILE=$(PROFILE)$(if $(QMIA_DATA), QMIA_DATA=$(QMIA_DATA)) (default: paper, from results/paper/ where complete)"
	$(MAKE) notebooks
	$(MAKE) site

# execute every notebook with papermill into book/generated/ (models and attack results are cached)
notebooks: setup
	$(PY) scripts/run_notebooks.py $(NB_ARGS)

# build the site from the executed notebooks, warnings as errors, then check every table and figure is there
site: setup
	@ls book/generated/*.ipynb > /dev/null 2>&1 || { echo "no executed notebooks in book/generated/: run 'make book' first"; exit 2; }
	$(JB) build . --path-output book --all -W -n --keep-going
	$(MAKE) check-site

check-site:
	$(PY) scripts/check_site.py $(SITE)

# one notebook with new parameters, e.g. make notebook NB=table3_accuracy BITS=2,3,6
notebook: setup
	@test -n "$(NB)" || { echo "usage: make notebook NB=<name> [BITS=2,3,6] [SEEDS=0,1] [PROFILE=smoke|quick|paper]"; \
		echo "notebooks: $$(cd notebooks && ls *.ipynb | sed 's/.ipynb//' | tr '\n' ' ')"; exit 2; }
	@echo "make notebook: $(NB) with PROFILE=$(PROFILE)$(if $(BITS), BITS=$(BITS))$(if $(SEEDS), SEEDS=$(SEEDS))"
	$(PY) scripts/run_notebooks.py $(NB_ARGS) $(if $(BITS),--bits $(BITS)) $(if $(SEEDS),--seeds $(SEEDS)) $(NB)
	@if $(PY) scripts/run_notebooks.py --missing > /dev/null; then $(MAKE) site; \
	else echo "site not rebuilt: other notebooks have not been executed yet (run 'make book' once)"; fi

clean:
	rm -rf cache results book/_build book/generated .pytest_cache .hypothesis
