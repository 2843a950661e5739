# WrenCOS Live. `make run` starts the system; `make test` runs the tests.
# Both create (or reuse) .venv and install what they need into it.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench install clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@echo "Installing WrenCOS Live and its test tools into $(VENV) ..."
	$(PY) -m pip install --quiet --progress-bar off -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/wrencos run

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not system"

clean:
	rm -rf $(VENV) .pytest_cache
