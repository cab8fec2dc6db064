# flywheel: `make demo` and `make test` work on a fresh machine with Python 3.11+, git and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DAYS   ?= 30
EVENTS ?= 2000
SEED   ?= 7
# Runs of `make demo` are recorded where `make ui` looks for them (tests use their own instances).
DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
demo ui: export DAGSTER_HOME := $(DAGSTER_HOME)

.PHONY: install demo test lint ui clean lock bench bench-quick bench-decisions bench-deploy servers deploy-local

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The servers the source tests drive, each in its own venv .venv-<server> (their pins conflict with
# the main venv's): made once by scripts/server-venvs.sh, which says why when it cannot.
SERVERS ?= phoenix mlflow
servers:
	bash scripts/server-venvs.sh $(SERVERS)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	printf 'telemetry:\n  enabled: false\nnux:\n  enabled: false\n' > $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flywheel generate --days $(DAYS) --events-per-day $(EVENTS) --seed $(SEED)
	$(BIN)/flywheel run --quiet

# The browser tests need Chromium: installed here when possible (scripts/ensure-browser.sh), else
# skipped with one line saying why. FLYWHEEL_REQUIRE_BROWSER=1 (set by .ci/run) makes a missing browser fail.
# The same for the server venvs (make servers): FLYWHEEL_REQUIRE_SERVERS=1 (.ci/run) makes a missing one fail.
# And for the deployment tests' servers (PostgreSQL, Redis, SeaweedFS: scripts/deploy-servers.sh).
test: install
	@skip="$${FLYWHEEL_SKIP_BROWSER:-}"; [ "$${FLYWHEEL_REQUIRE_BROWSER:-}" = 1 ] && skip=""; \
	if [ "$$skip" != 1 ] && ! bash scripts/ensure-browser.sh; then \
	    if [ "$${FLYWHEEL_REQUIRE_BROWSER:-}" = 1 ]; then echo "make test: FLYWHEEL_REQUIRE_BROWSER=1 and no browser" >&2; exit 1; fi; \
	    echo "make test: no Chromium on this machine and it cannot be installed here: the browser tests (tests/test_browser.py) are skipped"; \
	    skip=1; \
	fi; \
	if ! bash scripts/server-venvs.sh $(SERVERS); then \
	    if [ "$${FLYWHEEL_REQUIRE_SERVERS:-}" = 1 ]; then echo "make test: FLYWHEEL_REQUIRE_SERVERS=1 and a server venv is missing" >&2; exit 1; fi; \
	    echo "make test: a server venv (.venv-<server>) cannot be installed here: the tests that drive that server are skipped"; \
	fi; \
	if ! bash scripts/deploy-servers.sh; then \
	    if [ "$${FLYWHEEL_REQUIRE_SERVERS:-}" = 1 ]; then echo "make test: FLYWHEEL_REQUIRE_SERVERS=1 and a deployment server is missing" >&2; exit 1; fi; \
	    echo "make test: PostgreSQL, Redis or SeaweedFS cannot be installed here: the deployment tests (tests/test_deploy*.py) are skipped"; \
	fi; \
	$(BIN)/python -m ruff check . && $(BIN)/python -m mypy && \
	FLYWHEEL_SKIP_BROWSER="$$skip" $(BIN)/python -m pytest -q

# The linter and the type checker (configured in pyproject.toml: ruff over the tree, mypy over
# flywheel/ and assets/); `make test` runs both before the tests.
lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# The several-workers deployment on this machine (docs/deploy.md): starts PostgreSQL (Dagster's
# instance), Redis (the Celery broker) and two Celery workers, runs the nightly job over the demo's
# days through them, then stops them all (deploy/local.sh; its data in data/deploy-local).
deploy-local: install
	DAYS=$(DAYS) EVENTS=$(EVENTS) SEED=$(SEED) BIN=$(CURDIR)/$(BIN) bash deploy/local.sh

# Benchmarks on this machine into BENCHMARKS.md (bench/run.py says what is measured; scratch data in
# bench/.work/): flywheel's nights beside the engine floor over the same landing files and a pandas
# notebook, with ratios and goals. BENCH_10M=1 adds one 10M-event day; BENCH_ARGS passes more options (e.g. --profile).
bench: install
	$(BIN)/python -m bench.run $(if $(filter 1 yes true,$(BENCH_10M)),--with-10m) $(BENCH_ARGS)

# The same at a tiny size, in well under two minutes; its report stays in bench/.work/quick/.
bench-quick: install
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

# The deployment on object storage and several workers (bench/deploy_bench.py; scratch data in
# bench/.work/deploy): the 1M-event day on the object store vs the local folder, and 7 days x 100k
# backfilled by one celery worker vs two; prints tables for BENCHMARKS.md. BENCH_ARGS passes options.
bench-deploy: install
	$(BIN)/python -m bench.deploy_bench $(BENCH_ARGS)

# Decision quality on simulated streams with known truth (false alarms, detection delay, gate
# violations, below-target promotions), before and after issue 14, into BENCHMARKS.md (minutes).
bench-decisions: install
	$(BIN)/python -m bench.decisions $(BENCH_ARGS)

# Re-pin every dependency to what resolves today (then commit constraints.txt).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[test]'
	.lock-venv/bin/pip freeze --exclude flywheel > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf data/store data/flywheel.duckdb data/landing data/dagster_home data/deploy-local
