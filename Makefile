# keeneye: `make serve` and `make test` do all set-up themselves (idempotent, fast the second time).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KEENEYE := $(VENV)/bin/keeneye
DATA_DIR ?= var
STAMP := $(VENV)/.keeneye-installed
SAMPLE ?= ../shared/data/faces/face_recognition/two_people.jpg
HOST ?= 127.0.0.1
PORT ?= 8000

JS := tests/js

.PHONY: setup system-deps system-deps-test js-deps models models-all serve test test-postgres lint format bench clean

setup: $(STAMP) models

# System packages (Debian/Ubuntu), installed when missing if we are root or have sudo without a password;
# otherwise one message naming the command. Silent and fast when all are there. See tools/system-deps.sh.
system-deps:
	@PYTHON=$(PYTHON) VENV=$(VENV) bash tools/system-deps.sh setup

system-deps-test:
	@PYTHON=$(PYTHON) VENV=$(VENV) bash tools/system-deps.sh test

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml | system-deps
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "keeneye needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# The AWS SDK for JavaScript v3, a test client (tests/contract/test_js_sdk.py), and axe-core, the accessibility
# checker of the console's browser tests (tests/console/): npm ci from the committed
# lockfile, again only when it changes (npm ci writes node_modules/.package-lock.json).
$(JS)/node_modules/.package-lock.json: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

js-deps: $(JS)/node_modules/.package-lock.json

models: $(STAMP)
	$(KEENEYE) models install --data-dir $(DATA_DIR)

# The tests also check the optional models' conversions, so they install everything.
models-all: $(STAMP)
	$(KEENEYE) models install --all --data-dir $(DATA_DIR)

# The Rekognition-compatible server (boto3 with endpoint_url=http://$(HOST):$(PORT)); prints where its key pair is.
serve: setup
	$(KEENEYE) serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

# The two tests that start a two-node Ray cluster run in a pytest process of their own: after the batch
# engine's tests have started and shut down a local Ray in the same process, the cluster's actors are
# cancelled before they run (Ray's driver state outlives ray.shutdown()).
RAY_CLUSTER_TESTS := tests/service/test_ray_jobs.py tests/streams/test_ray_supervisor.py

test: system-deps-test $(STAMP) models-all js-deps
	KEENEYE_DATA_DIR=$(abspath $(DATA_DIR)) $(PY) -m pytest -q $(addprefix --ignore=,$(RAY_CLUSTER_TESTS))
	KEENEYE_DATA_DIR=$(abspath $(DATA_DIR)) $(PY) -m pytest -q $(RAY_CLUSTER_TESTS)
	$(MAKE) --no-print-directory test-postgres

# The contract suite again with every server on PostgreSQL (tests/pg.py starts one on 127.0.0.1, a new
# database per test; docs/deployment.md). The two-server tests ran on PostgreSQL in the run above already.
PG_CONTRACT ?= tests/contract --ignore=tests/contract/test_several_servers.py
test-postgres: system-deps-test $(STAMP) models-all js-deps
	KEENEYE_TEST_DATABASE=postgresql KEENEYE_DATA_DIR=$(abspath $(DATA_DIR)) $(PY) -m pytest -q $(PG_CONTRACT)

lint: $(STAMP)
	$(VENV)/bin/ruff check keeneye tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format keeneye tests bench
	$(VENV)/bin/ruff check --fix keeneye tests bench

# Measurements (not tests): each prints JSON; results are reported in the README.
bench: setup
	mkdir -p $(DATA_DIR)/bench
	$(PY) bench/lfw_identification.py > $(DATA_DIR)/bench/lfw_identification.json
	$(PY) bench/quality_filter.py > $(DATA_DIR)/bench/quality_filter.json
	$(PY) bench/lfw_verification.py > $(DATA_DIR)/bench/lfw_verification.json
	$(PY) bench/detection.py > $(DATA_DIR)/bench/detection.json
	$(PY) bench/speed.py > $(DATA_DIR)/bench/speed.json
	$(PY) bench/search_latency.py > $(DATA_DIR)/bench/search_latency.json
	$(PY) bench/lfw_search.py > $(DATA_DIR)/bench/lfw_search.json
	$(PY) bench/pets_tracking.py > $(DATA_DIR)/bench/pets_tracking.json
	$(PY) bench/redaction.py > $(DATA_DIR)/bench/redaction.json
	$(PY) bench/batch.py --engine both > $(DATA_DIR)/bench/batch.json
	$(PY) bench/load.py > $(DATA_DIR)/bench/load.json
	$(PY) bench/memory.py > $(DATA_DIR)/bench/memory.json
	$(PY) bench/crash_loop.py > $(DATA_DIR)/bench/crash_loop.json
	$(PY) bench/console.py > $(DATA_DIR)/bench/console.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
