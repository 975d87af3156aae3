# Two commands matter: `make demo` and `make test`. Each sets up its own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PY39   := $(shell .ci/find-python 3.9)
PY313  := $(shell .ci/find-python 3.13)
PIP_FLAGS = --quiet --disable-pip-version-check

.PHONY: demo test unit lint typecheck bench legacy clean venv redis-server soak soak-quick

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip setuptools wheel
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev,cli,bench,simulator]'
	touch $@

demo: venv
	$(BIN)/python -m simulator.demo

test: venv lint typecheck redis-server
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory soak-quick
	$(MAKE) --no-print-directory legacy

# 10,000 requests through map against `python -m simulator` under a fault mix, checked from
# its journal (benchmarks/soak.py); soak-quick is the CI form (3,000 requests, ~20 s).
soak: venv
	$(BIN)/python -m benchmarks.soak --json benchmarks/results/soak.json

soak-quick: venv
	$(BIN)/python -m benchmarks.soak --quick

# The Redis tests start their own redis-server on a free port; this installs it when it can.
redis-server:
	@.ci/ensure-redis

# The unit tests again on the oldest and newest supported interpreters.
legacy:
	@for pair in "3.9:$(PY39)" "3.13:$(PY313)"; do \
	  v=$${pair%%:*}; py=$${pair#*:}; \
	  if [ -z "$$py" ]; then echo "WARNING: python$$v not found; its unit tests were skipped"; continue; fi; \
	  env=.venv-$$v; \
	  if [ ! -f $$env/.installed ] || [ setup.cfg -nt $$env/.installed ]; then \
	    $$py -m venv $$env && $$env/bin/python -m pip install $(PIP_FLAGS) -e '.[test]' && touch $$env/.installed || exit 1; \
	  fi; \
	  echo "== unit tests on python$$v"; \
	  $$env/bin/python -m pytest -q tests/unit || exit 1; \
	done

unit: venv
	$(BIN)/python -m pytest -q tests/unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m pytest benchmarks -q -p no:randomly --benchmark-only

clean:
	rm -rf $(VENV) .venv-3.9 .venv-3.13 *.egg-info
