# Two commands set everything up on a fresh clone:  make run   and   make test
# Both install from uv.lock, which pins every package (runtime and dev): two machines get the same
# versions. uv itself comes from the package registry, pinned, into a small venv of its own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.10
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
# uv creates .venv with $(PYTHON) (never a Python it downloads) and installs the project editable.
# --compile-bytecode: the packages' bytecode is written once, at install, so a run does not
# compile some 600 modules from source each time it starts where Python may not cache bytecode
# (PYTHONDONTWRITEBYTECODE, a read-only venv): measured 1.5 s of every process start here.
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --locked \
	--python $(PYTHON) --quiet --compile-bytecode
# `make run` installs what running needs; `make test` and the developer targets add the dev
# tools (pytest, hypothesis, ruff, pandas, Ray and moto for the executor tests): about 1 GB more.
RUN_STAMP := $(VENV)/.installed-run
STAMP     := $(VENV)/.installed-dev
SAMPLE := data_samples/raw
OUT    ?= output
SCALE  ?= S

.PHONY: install run test coverage test-thorough mutation lint golden schema lock bench clean help

help:
	@echo "make run     install, then score the sample marketplace (data_samples/) into $(OUT)/"
	@echo "make test    install, then lint and run the test suite (import contracts included)"
	@echo "make coverage  the suite under coverage: every module's branch coverage, 85% floor"
	@echo "make test-thorough  the Hypothesis properties with many more random examples (under an hour)"
	@echo "make mutation  planted bugs (tests/mutation/mutants.toml) vs the fast tests: the kill rate; not in CI"
	@echo "make golden  deliberately regenerate data_samples/expected/ from the current code"
	@echo "make schema  regenerate docs/rules.schema.json from the rules' definition (scoring/rules.py)"
	@echo "make lock    update uv.lock after changing the dependencies in pyproject.toml"
	@echo "make bench   issue 19's targets: runs vs the read-once floor and the SQL peer (SCALE=S|mid|M|L, BENCH_ARGS=...)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Runtime packages only. --inexact: a dev install already there is kept (make test), never
# removed; on a fresh clone the venv holds exactly the runtime packages.
$(RUN_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV_SYNC) --inexact
	touch $(RUN_STAMP)

# Runtime and dev packages, exactly as locked (anything else in the venv is removed).
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV_SYNC) --extra dev
	touch $(STAMP) $(RUN_STAMP)

install: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/expscore run --raw $(SAMPLE) --out $(OUT)

# Lint, then the suite on every core (pytest-xdist; a test's module fixtures run once per worker).
test: $(STAMP)
	$(BIN)/ruff check pipelines scoring tests
	$(BIN)/python -m pytest -q -n auto --dist worksteal

# The suite under pytest-cov, then every module of scoring/ and pipelines/ held to 85% branch
# coverage (tests/coverage_floor.py names any under it). Slower than `make test`; not in CI.
coverage: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal --cov=scoring --cov=pipelines \
		--cov-branch --cov-report=json:.coverage.json --cov-report=
	$(BIN)/python -m tests.coverage_floor .coverage.json

# Hypothesis profiles: tests/hypothesis_budget.py. `make test` runs "ci" (derandomized).
PROPERTY_TESTS := tests/test_properties.py tests/pipelines/state/test_incremental.py \
	tests/pipelines/nightly/test_fuzz.py tests/scoring/test_tracking_merge.py \
	tests/scoring/test_shop_score.py tests/scoring/test_labels.py tests/scoring/test_interp.py
test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q -m hypothesis $(PROPERTY_TESTS)

# Not a test and not in CI: each planted bug of tests/mutation/mutants.toml, in a temporary copy,
# against the fast tests; prints the kill rate (docs/testing.md). MUTATION_ARGS: --only ID ...,
# --jobs N, --tests PATH ..., --json PATH.
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation.run $(MUTATION_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check pipelines scoring tests
	$(BIN)/ruff format --check pipelines scoring tests
	$(BIN)/lint-imports --no-cache

# Golden files change only on purpose: review `git diff data_samples/expected` before committing.
golden: $(STAMP)
	$(BIN)/python -m tests.golden regenerate

# The JSON Schema of rules files, generated from scoring/rules.py; a test fails when it is stale.
schema: $(RUN_STAMP)
	$(BIN)/expscore rules schema --out docs/rules.schema.json

# After changing the dependencies in pyproject.toml; `make run` and `make test` refuse a stale lock.
lock: | $(UV)
	$(UV) lock

# Not a test: CI never runs it. Data and outputs go to .bench/ (reused); M takes hours.
bench: $(STAMP)
	$(BIN)/expscore bench --scale $(SCALE) $(BENCH_ARGS)

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache .coverage .coverage.json
