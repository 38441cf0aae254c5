# Two commands matter: `make run` (the whole local stack) and `make test` (the full suite).
PYTHON ?= python3
# the local stack's saved state, as devstack defaults it (`make clean-data` deletes it)
DATA_DIR ?= .data
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run clean-data test test-fast bench package deploy destroy clean

$(STAMP): requirements.txt requirements-dev.txt $(wildcard pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3 (it runs pip to fetch Lambda wheels)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	if [ -f pyproject.toml ]; then $(PY) -m pip install --quiet --no-deps -e .; fi
	touch $(STAMP)

install: $(STAMP)

## Start moto (S3, SQS, DynamoDB), the API and web UI on $$PORT (default 8000), and S3-event delivery.
run: install
	$(PY) -m devstack

## Delete the local stack's saved state ($$DATA_DIR, default .data); refused while a stack runs on it.
clean-data: install
	$(PY) -m devstack.persistence clean "$(DATA_DIR)"

## The full suite: unit, functional (mock_aws) and end-to-end (local stack) tests.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not e2e" -x -q

## Benchmarks (never part of `make test`): prints ratios measured side by side in one run.
bench: install
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench $(BENCH_ARGS)

## A deployable CloudFormation/SAM stack in build/package (see README "Deploy").
package: install
	$(PY) -m deploy.package $(PACKAGE_ARGS)

## `make deploy STAGE=prod`: package, then create or update the stack (docs/deploy.md); run it again
## any time (no change: nothing happens). Optional: ALARM_EMAIL=you@example.com LOG_LEVEL=DEBUG
## REGION=eu-west-1 STACK_NAME=... ARTIFACT_BUCKET=...
STAGE ?= prod
deploy: install
	$(PY) -m deploy.stack deploy --stage "$(STAGE)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)") \
		$(if $(REGION),--region "$(REGION)") $(if $(ALARM_EMAIL),--alarm-email "$(ALARM_EMAIL)") \
		$(if $(LOG_LEVEL),--log-level "$(LOG_LEVEL)") $(if $(ARTIFACT_BUCKET),--artifact-bucket "$(ARTIFACT_BUCKET)")

## `make destroy STAGE=prod`: delete the stack (asks; YES=1 does not); tables and bucket are kept.
destroy: install
	$(PY) -m deploy.stack destroy --stage "$(STAGE)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)") \
		$(if $(REGION),--region "$(REGION)") $(if $(YES),--yes)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info
