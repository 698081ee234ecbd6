# kubesalt: `make test` runs every test, `make demo` runs the main job end to end. Each installs
# what it needs first (the lab's Debian packages when run as root, the venv, the lab's cached
# base image); tools' own output goes to $(LOG), only what a person needs to read is printed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOG ?= $(CURDIR)/.make.log
PYTEST_ARGS ?=
# On failure, show the end of the log instead of nothing.
QUIET = >>$(LOG) 2>&1 || { tail -n 30 $(LOG); exit 1; }

.PHONY: venv lint test test-unit test-integration test-lab demo lab-packages lab-prepare \
	browser-packages database-packages clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@echo "Building $(VENV) with kubesalt and salt==3008.3 (details in $(LOG))"
	@$(PYTHON) -m venv $(VENV) $(QUIET)
	@$(PY) -m pip install --upgrade pip setuptools wheel $(QUIET)
	@$(PY) -m pip install -e '.[test]' $(QUIET)
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff check --quiet --target-version py38 minion_bootstrap
	find states master/reactor -name '*.sls' -print0 | xargs -0 -r $(VENV)/bin/salt-lint

lab-packages:
	@tests/labkit/install-packages.sh $(LOG)

# The web console's tests drive Debian's chromium through Playwright (its own browser download
# does not work on these machines); the font gives screenshots readable text.
BROWSER_PACKAGES = chromium fonts-dejavu-core
browser-packages:
	@tests/labkit/install-packages.sh $(LOG) $(BROWSER_PACKAGES)

# The store's tests run against a real PostgreSQL server too: Debian's, which the tests start
# themselves from a temporary directory (its packaged service is not used).
DATABASE_PACKAGES = postgresql
database-packages:
	@tests/labkit/install-packages.sh $(LOG) $(DATABASE_PACKAGES)

# The lab needs root, systemd-nspawn and debootstrap; its tests skip with the reason otherwise.
lab-prepare: venv lab-packages
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "Preparing the lab's cached base image (once, about a minute; details in $(LOG))"; \
	  $(PY) -m tests.labkit prepare $(QUIET); \
	fi

test: lint lab-prepare browser-packages database-packages
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-unit: venv database-packages
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-integration: venv database-packages
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

test-lab: lab-prepare
	$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

demo: lab-prepare
	$(PY) -m tests.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache $(LOG)
