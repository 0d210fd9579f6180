# The two set-up commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_POLICIES := fcfs+best-fit,fcfs+best-fit+backfill,sjf+best-fit+backfill,las+consolidate,drf+best-fit+backfill,ftf+best-fit+backfill

.PHONY: run test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/altostrat compare --workload synthetic:jobs=10000,load=1.0,seed=1,tenants=4 \
		--cluster philly-like --policies $(DEFAULT_POLICIES) --out out/compare

test: $(VENV)/.installed-test
	scripts/install-test-deps.sh
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) out
