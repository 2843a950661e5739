# WrenCOS Live. `make run` starts the system; `make test` runs the tests; `make lint` runs the static
# checks (style, types, layers) and `make format` rewrites the code in the house style.
# Both create (or reuse) .venv and install what they need into it.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-serial test-fast lint format bench soak mutation install clean

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

# `make test` runs the static checks, then the tests in two groups side by side, one pytest-xdist worker each,
# each with its own Ray cluster, database and gateway (tests/support/groups.py): the files that start clusters
# or systems of their own and mostly wait on them, beside all the rest; about 8 minutes here instead of 15.
# `make test-serial` runs them one after the other in one process (what `pytest` alone does).
# PYTEST_ARGS replaces the options, e.g. `make test PYTEST_ARGS="-x tests/system"` (serial, that file only).
PYTEST_ARGS ?= -n 2 --dist loadgroup --durations=25

test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-serial: $(STAMP) lint
	$(PY) -m pytest --durations=25

# Static checks, cheapest first; each says what it checks. Configured in pyproject.toml.
lint: $(STAMP)
	@echo "== ruff check: lint rules (pycodestyle, pyflakes, isort, bugbear, pyupgrade, simplify, blind except, ruff)"
	$(VENV)/bin/ruff check .
	@echo "== ruff format --check: every file is in the house format (line length 120)"
	$(VENV)/bin/ruff format --check .
	@echo "== mypy: types (strict on the core and the runtime); see [tool.mypy]"
	$(VENV)/bin/mypy
	@echo "== every '# type: ignore[code]' says why on the same line"
	@! grep -rnE --include='*.py' --exclude-dir=$(VENV) --exclude-dir=mutants 'type: ignore(\[[^]]*\])?[[:space:]]*$$' . || \
		{ echo "error: give each '# type: ignore[code]' above its reason: '# type: ignore[code]  # why'"; exit 1; }
	@echo "== lint-imports: layers import only downward; see [tool.importlinter]"
	$(VENV)/bin/lint-imports --no-logo

# Rewrite the code in the house style: safe lint fixes (import order, modern syntax), then the formatter.
# What no tool can fix is listed, and left for `make lint` to fail on.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix --exit-zero .
	$(VENV)/bin/ruff format .

# Every scenario, 3 runs each, the old stack (bench/baseline, Node) side by side with ours; exits 1 if a run
# failed. `make bench BENCH_ARGS=--quick`: only the side-by-side small loads; `BENCH_ARGS=--readme` also
# rewrites README.md's tables between the bench markers (`python -m bench.readme`: from the last run's file).
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# The whole system for 20 minutes under load and a fault schedule; prints the verdict, writes reports/soak.json
# and reports/soak.png; exits 0 only if it passed. E.g. `make soak SOAK_ARGS="--minutes 5"`.
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

# Mutation testing of the pure core's rules (and money, order rules) against the fast pure tests; prints
# the score per module and the survivors. Configured in pyproject.toml ([tool.mutmut]). Always from scratch
# (3 to 11 min on 2 cores, by load): mutmut keeps a mutant's verdict when only the tests change, so a reused result
# could hide a weakened test. mutants/ stays afterwards for `.venv/bin/mutmut show NAME`.
mutation: $(STAMP)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(PY) tests/core/mutation_score.py

test-fast: $(STAMP)
	$(PY) -m pytest -m "not system"

clean:
	rm -rf $(VENV) .pytest_cache
