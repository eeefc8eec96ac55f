# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv on first use and are no-ops for the install on later runs (stamp files).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# torch first, from the exact version the machines ship as a local CPU wheel: asking for a newer one
# would pull several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install -q $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: setup.py $(VENV)/.torch
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.torch
	$(PIP) install -q -e ".[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash recipes/demo/run.sh

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs exp .pytest_cache .ruff_cache
