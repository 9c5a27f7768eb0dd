# mailbridge: `make run` starts everything locally; `make test` runs every check and test tier.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
SAM_VENV  := .venv-sam
PY        := $(VENV)/bin/python
SAM       := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
REGION    ?= us-east-1
ENV       ?= dev
TENANT    ?= demo
ROLE      ?= owner
PORT      ?= 3000

.PHONY: advance mailbox help run test test-steps test-build test-pytest check lint types cfn pytest build deploy token watch bench services clean mutate fuzz backfill-timeline backfill-snoozed backfill-owners

help:
	@echo "make run     start the whole system locally on http://127.0.0.1:$(PORT) (moto inside)"
	@echo "make test    lint, types, cfn-lint, sam validate, sam build, every test tier"
	@echo "make check   lint + types only"
	@echo "make -s token TENANT=acme ROLE=admin   a bearer token for the running local API"
	@echo "make watch                          print the live frames (WebSocket) the token's user receives"
	@echo "make advance SECONDS=86400   move the running local API's clock forward (due schedules fire)"
	@echo "make mailbox a local Dovecot with a demo mailbox to connect to the running API"
	@echo "make mailbox PROVIDER=gmail   a Gmail mailbox in the Google double, connected through OAuth"
	@echo "make mailbox PROVIDER=graph   a Microsoft 365 mailbox in the Microsoft double, connected through msal"
	@echo "make bench   benchmarks, printed as ratios against named peers (make bench simulation: only those named)"
	@echo "make fuzz    the long property and contract runs (hypothesis, schemathesis; ~10 min)"
	@echo "make mutate MODULES=\"crypto.py tenancy.py\"   mutation testing of those modules (slow)"
	@echo "make build / make deploy ENV=dev|prod"

$(VENV)/.stamp: requirements-dev.txt constraints.txt layers/mailbridge/requirements.txt scripts/bootstrap-venv
	scripts/bootstrap-venv $(VENV) requirements-dev.txt constraints.txt
	@touch $@

$(SAM_VENV)/.stamp: requirements-sam.txt scripts/bootstrap-venv
	scripts/bootstrap-venv $(SAM_VENV) requirements-sam.txt
	@touch $@

venv: $(VENV)/.stamp

run: $(VENV)/.stamp
	PORT=$(PORT) $(PY) -m local

# A local Dovecot with a demo mailbox to connect while `make run` runs; PROVIDER=gmail seeds a
# Gmail mailbox in the Google double `make run` started (PROVIDER=graph: a Microsoft 365 mailbox in
# the Microsoft double); PROVIDER=salesforce|hubspot seeds the CRM double `make run` started with
# demo records and prints how to connect it (local/crm_seed.py). A standalone CRM double:
# python -m local.salesforce|local.hubspot --port $(CRM_PORT) --seed-demo.
PROVIDER  ?= imap
CRM_PORT  ?= 3100
mailbox: $(VENV)/.stamp $(if $(filter imap,$(PROVIDER)),services,)
	@case "$(PROVIDER)" in \
	  salesforce|hubspot) $(PY) -m local.crm_seed --provider $(PROVIDER) ;; \
	  *) PORT=$(PORT) PYTHONPATH=layers/mailbridge $(PY) -m local.mailbox --provider $(PROVIDER) ;; \
	esac

# Move the clock of the runner `make run` started forward by SECONDS (0 < SECONDS <= 366 days):
# schedules (snooze wake-ups, the daily nudge scan) due in the skipped span fire on its next tick.
# The runner's own path, not a route of the template: no deployed stack has it.
SECONDS ?=
advance:
	@test -n "$(SECONDS)" || { echo "usage: make advance SECONDS=N" >&2; exit 2; }
	@curl -sS --fail-with-body -X POST -H 'content-type: application/json' \
	  -d '{"seconds": $(SECONDS)}' http://127.0.0.1:$(PORT)/_local/clock/advance && echo

token: $(VENV)/.stamp
	@$(PY) -m local.token --tenant $(TENANT) --role $(ROLE)

# Prints the frames the running `make run` sends the user of `make token` over its WebSocket API.
watch: $(VENV)/.stamp
	@PORT=$(PORT) $(PY) -m local.watch --tenant $(TENANT) --role $(ROLE)

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

types: $(VENV)/.stamp
	$(VENV)/bin/mypy layers/mailbridge/mailbridge functions local tests benchmarks

cfn: $(VENV)/.stamp $(SAM_VENV)/.stamp
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region $(REGION) --template-file template.yaml

check: lint types cfn

build: $(SAM_VENV)/.stamp $(VENV)/.stamp
	$(SAM) build --template-file template.yaml

# Real services the integration tier talks to (installed when missing).
services:
	scripts/ensure-dovecot

# pytest exits 5 when it collected nothing: that fails `make test` like any other error.
# Test files run in parallel (pytest-xdist), each file on one worker so module-scoped fixtures (the
# local runner of an e2e module) start once; most of a test's time is spent waiting on moto,
# Dovecot or the runner, so more workers than cores pays. PYTEST_WORKERS=0 runs serially.
# PYTEST_ARGS passes more options, e.g. PYTEST_ARGS="--durations=30" to see the slowest tests.
PYTEST_WORKERS ?= 4
PYTEST_ARGS    ?=
PYTEST_RUN      = $(PY) -m pytest $(PYTEST_ARGS) $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
pytest: $(VENV)/.stamp services
	$(PYTEST_RUN)

# `make test` runs its steps as parallel make jobs: the two virtualenvs and Dovecot are set up side
# by side, then ruff, mypy and cfn-lint run side by side; once they pass, pytest and `sam build`
# start together. `sam build` spends most of its ~5 minutes on a fresh clone downloading the layer's
# arm64 wheels (network, ~1 CPU minute) and no test reads what it builds, so it runs beside the tiers
# (test-build) instead of before them; a failed check still stops make test before either.
TEST_JOBS ?= 4
test:
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) test-steps

test-steps: test-build test-pytest

# `make build` after the checks, its lines held in a temporary file and printed in one piece when it
# ends, so they do not cut through pytest's progress lines.
test-build: check $(SAM_VENV)/.stamp $(VENV)/.stamp
	@echo "sam build: started beside pytest (its output follows when it ends)"
	@log=$$(mktemp); status=0; $(SAM) build --template-file template.yaml >"$$log" 2>&1 || status=$$?; \
	  cat "$$log"; rm -f "$$log"; exit $$status

test-pytest: check $(VENV)/.stamp services
	$(PYTEST_RUN)

# `make bench simulation sync`: only those benchmarks (benchmarks/run.py names); `make bench`: all.
BENCH_NAMES := $(if $(filter bench,$(firstword $(MAKECMDGOALS))),$(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS)))
bench: $(VENV)/.stamp
	$(PY) benchmarks/run.py $(BENCH_NAMES)
ifneq ($(BENCH_NAMES),)
$(BENCH_NAMES):
	@:
endif

# The long runs of the property tests (hypothesis) and of the contract test (schemathesis against
# /openapi.json): the same tests `make test` runs with the `ci` profile's few examples, here with
# the `fuzz` profile's many (tests/fuzzing.py). FUZZ_WORKERS=0 runs them in one process.
FUZZ_TESTS   ?= tests/unit/test_fuzz_inputs.py tests/integration/test_api_contract.py
FUZZ_WORKERS ?= 2
fuzz: $(VENV)/.stamp
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS) \
	  $(if $(filter 0,$(FUZZ_WORKERS)),,-n $(FUZZ_WORKERS) --dist loadfile) $(FUZZ_TESTS)

# Mutation testing (mutmut) of MODULES (paths under layers/mailbridge/mailbridge/) with only the
# tests scripts/mutate.toml lists for them; slow, so not part of `make test`. JOBS=n to limit CPUs.
mutate: $(VENV)/.stamp services
	$(PY) scripts/mutate.py $(if $(JOBS),--jobs $(JOBS)) $(MODULES)

deploy: build
	$(SAM) deploy --config-env $(ENV)

# Once after deploying the timeline index over older data (README "Deploying"); resumable.
backfill-timeline:
	$(PY) scripts/backfill_timeline.py --links $(LINKS) --calendar $(CALENDAR) --crm $(CRM)

# Once after deploying the snoozed index (emails gsi7) over older data (README "Deploying"); resumable.
backfill-snoozed:
	$(PY) scripts/backfill_snoozed.py --emails $(EMAILS)

# Once after deploying mailbox ownership over older accounts (README "Deploying"); resumable.
backfill-owners:
	$(PY) scripts/backfill_owners.py --accounts $(ACCOUNTS)

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache .local .mutate mutants
