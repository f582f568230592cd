# Fresh machine: `make figures` (every documentation figure), `make test` (the whole
# suite, notebooks included), `make run` (one simulation of the article's headline case).
# Each creates .venv and installs the project with what it needs, from pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: figures run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask,nats]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

figures: $(STAMP)
	$(BIN)/sim figures

run: $(STAMP)
	$(BIN)/sim simulate --set producer.mode=nonblocking --set producer.messages=100000

test: $(STAMP)
	$(BIN)/python -m pytest -q tests notebooks --nbmake --nbmake-kernel=python3

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
