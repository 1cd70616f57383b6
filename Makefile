# The two commands: `make run` (the whole thing on embedded defaults) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench bench-quick chaos chaos-quick clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || "$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

run: $(STAMP)
	scripts/run.sh

test: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS) --deselect tests/swarm/test_swarm_lab_scenarios.py
	# The three-node swarm scenarios in a session of their own (see the module's docstring).
	$(VENV)/bin/pytest $(PYTEST_ARGS) tests/swarm/test_swarm_lab_scenarios.py

lint: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

# The chaos suite (chaos/): Oneoff on its own PostgreSQL, Redis and dockerd, killed and cut off
# on purpose; a table of what it lost. Needs root (it starts a Docker Engine). CHAOS_ARGS e.g.
# "--trial redis-restart --runs 3".
chaos: $(STAMP)
	$(PY) -m chaos $(CHAOS_ARGS)

chaos-quick: $(STAMP)
	$(PY) -m chaos --quick $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) var
