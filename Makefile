# dbops: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PIP_VERSION := 26.3

.PHONY: install demo demo-stop serve test lint typecheck unit integration bench lock clean

install: $(INSTALLED)

# Re-installs only when the dependency pins change; safe to run any number of times.
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

# The main job on embedded defaults: with no DBOPS_DATABASE_URL, an embedded PostgreSQL under .dbops/.
demo: install
	$(BIN)/dbops demo

demo-stop: install
	$(BIN)/dbops embedded-stop

# The Prefect UI and every deployment on this machine: unless PREFECT_API_URL names a Prefect server,
# start a local one (SQLite under ~/.prefect, telemetry off), then serve the deployments against it.
serve: install
	@if [ -z "$$PREFECT_API_URL" ]; then $(BIN)/python -m deployments.local_prefect; fi
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} $(BIN)/dbops serve

# Every test on the wheel's PostgreSQL, then the integration tests again on the newest system server of
# another major (tests/second_major.py; CI fails without one). The second pass leaves out what runs the
# same on every major: the browser tests, and tests that start no server of the suite's.
SECOND_PASS := not e2e and not any_major
# Two pytest-xdist workers, each with its own PostgreSQL, S3 and Prefect servers, and a test file at a
# time (module fixtures are built once). A test spends much of its time waiting on a server or a child
# process, so two workers on two cores finish a pass in about two thirds of the time one takes.
WORKERS := -n 2 --dist loadfile

test: install lint typecheck
	DBOPS_PG_BINDIR= $(BIN)/python -m pytest $(WORKERS)
	$(BIN)/python -m tests.second_major $(WORKERS) -m "$(SECOND_PASS)"

# ruff, then squawk on every migration revision's offline SQL (migrations/lint.py): a revision that,
# say, validates a constraint in the transaction that added it fails here, before any database sees it.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m migrations.lint

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

bench: install
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/migrate_overhead.py
	$(BIN)/python bench/synth_throughput.py

# Resolve the dependency set afresh and pin it in constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ head -n 2 constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^dbops'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	-test -x $(BIN)/dbops && $(BIN)/dbops embedded-stop
	rm -rf $(VENV) .dbops .mypy_cache .ruff_cache .pytest_cache *.egg-info
