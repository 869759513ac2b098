# Two entry points: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .stamps

.PHONY: demo test checks lint typecheck pytest fuzz mutate services venv test-deps clean docs bench

demo: $(STAMPS)/venv
	$(BIN)/scrubber demo

venv: $(STAMPS)/venv
test-deps: $(STAMPS)/test-deps

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(STAMPS)/test-deps: $(STAMPS)/venv pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# Real peers for the tests: PostgreSQL, INN2, Chromium, nginx, dnsmasq, microsocks (Debian packages).
services:
	scripts/provision-postgres.sh
	@if [ -x scripts/provision-inn.sh ]; then scripts/provision-inn.sh; fi
	@if [ -x scripts/provision-chromium.sh ]; then scripts/provision-chromium.sh; fi
	scripts/provision-nginx.sh
	scripts/provision-dns.sh
	scripts/provision-socks.sh

lint: $(STAMPS)/test-deps
	$(BIN)/ruff check scrubber tests bench scripts fuzz
	$(BIN)/ruff format --check scrubber tests bench scripts fuzz

typecheck: $(STAMPS)/test-deps
	$(BIN)/mypy --strict scrubber

# pytest-xdist: PYTEST_WORKERS processes (0: in-process, serial); --dist
# loadgroup keeps each xdist_group (tests/conftest.py: the INN tests, modules
# with a module-scoped server) on one worker.
PYTEST_WORKERS ?= 2
pytest: $(STAMPS)/test-deps
	@# Bytecode once, for the hundreds of `python -m scrubber` children (with
	@# PYTHONDONTWRITEBYTECODE set, each would compile the package anew).
	$(BIN)/python -m compileall -q scrubber
	@set -a; [ -f .services.env ] && . ./.services.env; set +a; \
	$(BIN)/python -m pytest -W error -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Coverage-guided fuzzing (atheris) of the parsers of untrusted bytes, bounded
# in time; exits non-zero on a crash (fuzz/run.py says where the input went).
FUZZ_SECONDS ?= 60
fuzz: $(STAMPS)/test-deps
	$(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

# Steps in order even under `make -j`: services, then lint, typecheck and fuzz
# side by side (fuzz is bounded in wall time; ruff and mypy use the other
# core), then pytest.
checks: lint typecheck fuzz

test: $(STAMPS)/test-deps
	$(MAKE) services
	$(MAKE) -j3 --output-sync=target checks
	$(MAKE) pytest

# Mutation testing of the pure modules (mutmut; about 6 minutes, not part of
# `make test`): prints the share of non-equivalent mutants killed per module,
# exits non-zero below 95 %. Settings in pyproject.toml [tool.mutmut].
mutate: $(STAMPS)/test-deps
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 > .mutmut.log 2>&1 || (tail -30 .mutmut.log; false)
	$(BIN)/python scripts/mutation_score.py

# Every benchmark in bench/, after provisioning what they need (the services
# above and wrk); one summary line each at the end. BENCH_ARGS=--quick: short runs.
bench: $(STAMPS)/test-deps services
	scripts/provision-wrk.sh
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

docs: $(STAMPS)/test-deps
	$(BIN)/cog -r docs/cli.md

clean:
	rm -rf $(VENV) $(STAMPS) .mypy_cache .ruff_cache .pytest_cache .hypothesis
