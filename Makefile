# qmia: `make book` regenerates every table and figure and builds the site; `make test` tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision first, pinned to builds known to work (override for another CUDA build)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# The paper profile by default: built from the rows stored in results/paper/ (any machine, no data set, no GPU,
# nothing trained); a row not stored yet is shown pending, with the part that computes it. TRAIN=1 computes what is
# missing instead (hours on a CPU; see `python -m qmia sweep --profile paper --parts`).
PROFILE ?= paper
export PROFILE
TRAIN ?= 0
export QMIA_TRAIN := $(TRAIN)

# The book: notebooks/ executed by papermill into book/generated/, built into book/_build/html.
JB := $(VENV)/bin/jupyter-book
SITE := book/_build/html
# Notebook parameters: the profile, the data root ($QMIA_DATA) and, for `make notebook`, BITS / SEEDS.
NB_ARGS = --profile $(PROFILE) $(if $(QMIA_DATA),--data-root "$(QMIA_DATA)")
export QMIA_PROGRESS ?= 0

.PHONY: setup lint test pytest clean book notebooks site check-site notebook book-smoke book-rerun book-paper help
.DEFAULT_GOAL := setup

help:
	@echo "make book [PROFILE=smoke|quick|paper] [QMIA_DATA=dir]  execute every notebook, build $(SITE)"
	@echo "          (paper: from results/paper/, nothing trained; TRAIN=1 computes what is missing)"
	@echo "make notebook NB=<name> [BITS=2,3,6] [SEEDS=0,1]      rerun one notebook, rebuild the site"
	@echo "make site                                              build the site from book/generated/ and check it"
	@echo "make test                                              ruff, pytest, the smoke book, a rerun, the paper book from results/paper/"
	@echo "make clean                                             remove caches, executed notebooks and the site"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[book,test]"
	touch $@

# ruff: lint and format, configured in pyproject.toml (line length 120); `ruff format .` fixes the format
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

pytest: setup
	$(PY) -m pytest -q

# lint; pytest; the whole book under the smoke profile (offline, minutes on a CPU) and a rerun of one notebook with other
# bitwidths, computed; then the paper book from the stored rows and the same rerun there (its new cells pending)
test: lint pytest book-smoke book-rerun book-paper

book-smoke:
	$(MAKE) book PROFILE=smoke

book-rerun:
	$(MAKE) notebook NB=table3_accuracy BITS=2,3 PROFILE=smoke

book-paper:
	$(MAKE) book PROFILE=paper TRAIN=0
	$(MAKE) notebook NB=table3_accuracy BITS=2,3 PROFILE=paper TRAIN=0

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
