# conveyor: `make run` to try it, `make test` to prove it. Everything else is a building block of those two.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONVEYOR := $(VENV)/bin/conveyor
PYTEST_ARGS ?=

.PHONY: install stack run test test-only lint format bench soak down clean FORCE

# The editable install is strict: a tree of links to exactly the files a wheel would hold, so the checkout
# imports what users install. A file added or removed needs a new tree: the install depends on the list
# of the package's files, rewritten only when that list changes.
PACKAGE_DIRS := cli api ingest pipeline db deploy
LAYOUT := $(VENV)/.layout

$(LAYOUT): FORCE
	@mkdir -p $(VENV); find $(PACKAGE_DIRS) -type f -not -path '*/__pycache__/*' | sort > $@.new; \
	if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(VENV)/.installed: pyproject.toml constraints.txt $(LAYOUT)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "conveyor needs Python >= 3.11")'
	test -x $(VENV)/bin/pip || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]' --config-settings editable_mode=strict
	touch $@

install: $(VENV)/.installed

## The native stack (PostgreSQL, Redis, Kafka, MinIO), migrated and bootstrapped.
stack: install
	$(CONVEYOR) stack up
	$(CONVEYOR) migrate
	$(CONVEYOR) bootstrap

## Try conveyor: set everything up and run it in the foreground (Ctrl-C stops it).
run: stack
	$(CONVEYOR) run

## The whole suite against real services. Stops what it started, even when tests fail.
test: install lint
	@record=$$(mktemp); status=0; \
	$(CONVEYOR) stack tools >/dev/null \
	  && $(CONVEYOR) stack up --record "$$record" \
	  && $(CONVEYOR) migrate && $(CONVEYOR) bootstrap \
	  && $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(CONVEYOR) stack down --from-record "$$record"; rm -f "$$record"; exit $$status

## The suite alone, against a stack that is already up.
test-only: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

PEERS := procrastinate celery arq
PEER_VENVS := $(foreach peer,$(PEERS),.venv-bench/$(peer)/.installed)

.venv-bench/%/.installed: bench/peers/requirements-%.txt
	$(PYTHON) -m venv .venv-bench/$*
	.venv-bench/$*/bin/pip install -q -r $<
	touch $@

## Every benchmark, written to bench/RESULTS.md. PostgreSQL runs with default durability here.
bench: install $(PEER_VENVS)
	@record=$$(mktemp); status=0; \
	$(CONVEYOR) stack down postgres >/dev/null 2>&1; \
	CONVEYOR_STACK__POSTGRES_FAST_UNSAFE=false $(CONVEYOR) stack up --record "$$record" \
	  && $(CONVEYOR) migrate && $(CONVEYOR) bootstrap \
	  && $(PY) -m bench && $(PY) -m bench.console && $(PY) -m bench.health && $(PY) -m bench.profile || status=$$?; \
	$(CONVEYOR) stack down --from-record "$$record"; rm -f "$$record"; exit $$status

## A long run of mixed uploads with faults (SOAK_MINUTES, default 30): resources over time in bench/RESULTS.md.
soak: install
	@record=$$(mktemp); status=0; \
	$(CONVEYOR) stack up --record "$$record" \
	  && $(CONVEYOR) migrate && $(CONVEYOR) bootstrap \
	  && $(PY) -m bench.soak || status=$$?; \
	$(CONVEYOR) stack down --from-record "$$record"; rm -f "$$record"; exit $$status

down: install
	$(CONVEYOR) stack down

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
