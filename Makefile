# flywheel: `make demo` and `make test` work on a fresh machine with Python 3.11+, git and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DAYS   ?= 30
EVENTS ?= 2000
SEED   ?= 7
# Runs of `make demo` are recorded where `make ui` looks for them.
DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export DAGSTER_HOME

.PHONY: install demo test ui clean lock

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/flywheel generate --days $(DAYS) --events-per-day $(EVENTS) --seed $(SEED)
	$(BIN)/flywheel run --quiet

test: install
	$(BIN)/python -m pytest -q

ui: install
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

# Re-pin every dependency to what resolves today (then commit constraints.txt).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[test]'
	.lock-venv/bin/pip freeze --exclude flywheel > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf data/store data/flywheel.duckdb data/landing data/dagster_home
