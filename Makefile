.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The classifier's compiled modules are built from these: an edited one is compiled again.
COMPILED_SOURCES := $(wildcard omniroute/classifier/*.py)

$(STAMP): pyproject.toml hatch_build.py $(COMPILED_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Build .venv with the package and its dev extras

migrate: $(STAMP) ## Apply database migrations (OMNIROUTE_DATABASE_URL)
	$(BIN)/omniroute migrate

run: $(STAMP) ## Serve everything in one process (in-process bus, SQLite under var/)
	$(BIN)/omniroute run --host $(HOST) --port $(PORT)

up: $(STAMP) ## Start a local cluster: Tansu, gateway, two classifiers, router
	$(BIN)/python -m omniroute.services.cluster up

down: $(STAMP) ## Stop the local cluster
	$(BIN)/python -m omniroute.services.cluster down

test: $(STAMP) ## Run the whole test suite (SQLite, PostgreSQL, Tansu)
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: $(STAMP) ## Run the tests that need no broker
	$(BIN)/pytest -q -p no:cacheprovider -m "not kafka and not slow"

lint: $(STAMP) ## ruff, mypy and the import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Benchmarks: ingest against a bare baseline, end-to-end latency, router, classifier
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/route.py
	$(BIN)/python bench/classify.py

.PHONY: help install migrate run up down test test-fast lint format bench
