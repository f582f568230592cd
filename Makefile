# Fresh machine: `make figures` (every documentation figure), `make test` (the whole
# suite, notebooks included), `make run` (one simulation of the article's headline case),
# `make notebook` (Jupyter on notebooks/).
# Each creates .venv and installs the project with what it needs, from pyproject.toml,
# pinned by constraints.txt (the versions the committed figures were drawn with).
# `make test-lowest` runs the suite in .venv-lowest on the lowest versions pyproject.toml
# allows (constraints-lowest.txt).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed-$(shell cat pyproject.toml constraints-lowest.txt | cksum | cut -d' ' -f1)
NOTEBOOK_STAMP := $(VENV)/.notebook-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: figures run test test-lowest notebook bench sdist clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dask,nats]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(LOWEST_STAMP): pyproject.toml constraints-lowest.txt
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet -c constraints-lowest.txt -e '.[test,nats]'
	rm -f $(LOWEST)/.installed-*
	touch $(LOWEST_STAMP)

$(NOTEBOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dask,nats,notebook]'
	rm -f $(VENV)/.notebook-*
	touch $(NOTEBOOK_STAMP)

figures: $(STAMP)
	$(BIN)/sim figures

run: $(STAMP)
	$(BIN)/sim simulate --set producer.mode=nonblocking --set producer.messages=100000

# tests/test_notebooks.py executes every notebook (and checks it shows its figures)
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# the lowest versions matter to the numerics, tables, figures and notebooks; the real
# broker, the process faults and the 1,000-system properties (pure Python, ~2 min) run once, in `make test`
test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -m pytest -q tests --ignore=tests/test_measure.py --ignore=tests/test_faults.py \
		--ignore=tests/test_properties.py

notebook: $(NOTEBOOK_STAMP)
	cd notebooks && ../$(BIN)/jupyter lab

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

sdist: $(STAMP)
	$(BIN)/python -c "from setuptools import build_meta; print('dist/' + build_meta.build_sdist('dist'))"

clean:
	rm -rf $(VENV) $(LOWEST) build dist *.egg-info .pytest_cache .hypothesis
