# Two commands for a newcomer: `make migrate` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL_PG := .local/pg
STAMP := $(VENV)/.installed

.PHONY: migrate test lint tools bench image local-db-stop clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

migrate: $(STAMP) ## migrate $$DATABASE_URL (or a local embedded PostgreSQL) to head, then print status
	@if [ -z "$$DATABASE_URL" ]; then \
	  export DATABASE_URL=$$($(BIN)/python -m migrator.localdb start $(LOCAL_PG)) || exit $$?; \
	fi; \
	$(BIN)/migrator upgrade && $(BIN)/migrator status

local-db-stop: ## stop the local embedded PostgreSQL started by `make migrate`
	@[ ! -x $(BIN)/python ] || $(BIN)/python -m migrator.localdb stop $(LOCAL_PG)

tools: ## system tools the tests use (promtool, buildah, debootstrap), from Debian
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v buildah >/dev/null || missing="$$missing buildah"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP) ## ruff, mypy and the migration linter
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/migrator lint

test: $(STAMP) tools ## install what the tests need and run the whole suite
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP) ## benchmarks: ours vs plain Alembic, as ratios
	$(BIN)/python -m bench

clean: local-db-stop ## remove the virtualenv and local data
	rm -rf $(VENV) .local
