# Two commands set everything up on a fresh clone:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data_samples/raw
OUT    ?= output

.PHONY: install run test lint golden clean help

help:
	@echo "make run     install, then score the sample marketplace (data_samples/) into $(OUT)/"
	@echo "make test    install, then lint and run the test suite"
	@echo "make golden  deliberately regenerate data_samples/expected/ from the current code"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/expscore run --raw $(SAMPLE) --out $(OUT)

test: $(STAMP)
	$(BIN)/ruff check pipelines scoring tests
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipelines scoring tests
	$(BIN)/ruff format --check pipelines scoring tests

# Golden files change only on purpose: review `git diff data_samples/expected` before committing.
golden: $(STAMP)
	$(BIN)/python -m tests.golden regenerate

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
