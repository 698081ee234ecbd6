# kubesalt: `make test` runs every test, `make demo` runs the main job end to end.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv lint test test-unit test-integration test-lab demo lab-prepare clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --target-version py38 minion_bootstrap
	find states master/reactor -name '*.sls' -print0 | xargs -0 -r $(VENV)/bin/salt-lint

# The lab needs root, systemd-nspawn and debootstrap; its tests skip with the reason otherwise.
lab-prepare: venv
	$(PY) -m tests.lab prepare

test: lint
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-integration: venv
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

test-lab: venv
	$(PY) -m pytest -q tests/labtests $(PYTEST_ARGS)

demo: lab-prepare
	$(PY) -m tests.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
