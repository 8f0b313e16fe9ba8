# The two commands of the README: `make demo` and `make test`. Both set themselves up.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup system-deps lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

PORT ?= 8000
demo: setup  ## run `kansoku demo` on PORT (default 8000): the example shop, instrumented, with traffic and the dashboard
	$(VENV)/bin/kansoku demo --port $(PORT)

system-deps:  ## PostgreSQL, Prometheus, Alertmanager, Chromium... and Arize Phoenix for the real-component tests
	scripts/install-system-deps
	scripts/install-phoenix

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy

test: setup system-deps lint  ## lint, type-check and run every test
	$(VENV)/bin/pytest

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/run_all.py
