# imagelake: `make dev` runs the product locally, `make test` runs the whole suite.
# Both start with `make setup`, which is idempotent: a second run does nothing new.
# Versions come from uv.lock alone (README, "Versions"): `make lock` after editing pyproject.toml,
# `make upgrade` to move every package to its newest allowed version.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JARS   := .cache/jars
MVN    ?= mvn
MVN_FLAGS := -q -B -Dstyle.color=never -f infra/local/pom.xml
PYTEST_ARGS ?=

# uv: the one on PATH, else this pinned version, bootstrapped from PyPI into .cache/uv.
UV_VERSION := 0.13.9
UV_HOME    := .cache/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_HOME)/bin/uv)
# What make setup installs: the default groups (dev, bench, infra; pyproject.toml) and the deploy
# extra, so that the tests can check what the container image imports.
SYNC_FLAGS := --locked --extra deploy

export IMAGELAKE_PROJECT_ROOT := $(CURDIR)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help setup venv jars dbt-parse dev dev-prod test test-unit test-integration test-e2e lint typecheck format clean \
	lock upgrade check-python

help:
	@echo "make dev    - set up, start Kafka + DynamoDB Local + upload API + dagster dev (Ctrl-C stops all)"
	@echo "make dev-prod - the same with IMAGELAKE_ENV=prod: S3 (moto), PostgreSQL, dagster api grpc (README)"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make setup  - install .venv exactly from uv.lock, fetch the Maven jars, parse dbt"
	@echo "make lint   - ruff and sqlfluff (make format rewrites the Python)"
	@echo "make typecheck - mypy over imagelake, assets, orchestration, spark_jobs, infra"
	@echo "make lock   - refresh uv.lock after a change of pyproject.toml"
	@echo "make upgrade - move every package in uv.lock to its newest allowed version"
	@echo "make clean  - remove .data and .data-prod (lake, Kafka, catalog, warehouse), .cache (jars) and build output"
	@echo "make test-unit | test-integration | test-e2e - one layer of the suite"
	@echo "make docs                - the dbt docs site (dbt_project/target/index.html)"
	@echo "make warehouse-freshness - dbt source freshness of the lake tables"
	@echo "make bench-realtime | bench-derivatives | bench-marts | bench-stats | bench-load | bench-pg-connect | bench-catalog-calls | bench-hash-search - the benchmarks (README, Benchmarks)"
	@echo "make spark-package       - the Spark jobs and their environment for EMR Serverless or a cluster"
	@echo "make infra-synth | infra-test - synthesize / test the AWS CDK app (docs/deploy.md)"

setup: venv jars dbt-parse

# The interpreter must be inside the lock's range (requires-python); checked with plain Python so that
# any old interpreter can say so.
check-python:
	@$(PYTHON) -c "import re, sys; spec = re.search(r'^requires-python *= *\"([^\"]*)\"', open('pyproject.toml').read(), re.M).group(1); \
	lo = tuple(int(x) for x in re.search(r'>=([0-9.]+)', spec).group(1).split('.')); hi = re.search(r'<([0-9.]+)', spec); \
	hi = tuple(int(x) for x in hi.group(1).split('.')) if hi else (99,); v = tuple(sys.version_info[:2]); \
	ok = lo <= v < hi; ok or sys.exit('imagelake needs Python %s (uv.lock is resolved for that range); %s is Python %s. Run with PYTHON=/path/to/python3.11 make ...' % (spec, sys.executable, sys.version.split()[0]))" \
	  || { command -v $(PYTHON) >/dev/null || echo "$(PYTHON) not found: install Python 3.11+ or run with PYTHON=/path/to/python3.11"; exit 1; }

$(UV_HOME)/bin/uv:
	@echo "uv not found on PATH: installing uv $(UV_VERSION) from PyPI into $(UV_HOME)"
	@$(PYTHON) -m venv $(UV_HOME)
	@$(UV_HOME)/bin/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

# `uv lock --check` first, so that a pyproject.toml edited without `make lock` stops here and says so
# (uv sync --locked would refuse too, in its own words). Each uv step that fails is tried once more
# with --offline: with no network, uv's cache (~/.cache/uv) still holds everything a set-up needs.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml uv.lock | check-python $(UV)
	@$(UV) lock --check --python $(PYTHON) -q 2>/dev/null || $(UV) lock --check --offline --python $(PYTHON) -q 2>/dev/null || { \
	  echo "uv.lock does not match pyproject.toml: run 'make lock' (then commit uv.lock), or undo the edit to pyproject.toml"; exit 1; }
	@$(UV) sync $(SYNC_FLAGS) --python $(PYTHON) -q 2>/dev/null || { \
	  echo "uv sync could not reach the package index; installing from uv's cache only (--offline)"; \
	  $(UV) sync $(SYNC_FLAGS) --offline --python $(PYTHON) -q; } || { \
	  echo "uv sync failed (above): with no network it installs only what uv's cache (~/.cache/uv) holds"; exit 1; }
	@touch $@

lock: check-python | $(UV)
	$(UV) lock --python $(PYTHON)

upgrade: check-python | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	@echo "uv.lock moved to the newest allowed versions: run make test, then commit uv.lock"

# PostgreSQL's binaries (the production-mode stack's Dagster storage) are built per platform.
PG_OS       := $(shell uname -s | tr A-Z a-z)
PG_PLATFORM := $(PG_OS)-$(if $(filter x86_64 amd64,$(shell uname -m)),amd64,arm64v8)

jars: $(JARS)/kafka/.done $(JARS)/dynamodb/.done $(JARS)/postgres/.done
$(JARS)/%/.done: infra/local/pom.xml
	@command -v $(MVN) >/dev/null || { echo "Maven is required (https://maven.apache.org): install it, e.g. apt-get install maven"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17+ is required: install a JDK, e.g. apt-get install openjdk-17-jdk-headless"; exit 1; }
	@rm -rf $(JARS)/$*
	$(MVN) $(MVN_FLAGS) -P $* dependency:copy-dependencies -DoutputDirectory="$(CURDIR)/$(JARS)/$*" -Dpostgres.platform=$(PG_PLATFORM)
	@touch $@

dbt-parse: venv
	$(BIN)/python -m orchestration.dbt_prepare

dev: setup
	$(BIN)/python -m infra.local.dev

# Production mode on this machine (README, "Production mode on this machine"): a fresh stack each time.
dev-prod: setup
	$(BIN)/python -m infra.local.prod_dev

# The end-to-end tests run beside the rest, in a pytest process of their own (tests/run_suite.py).
test: setup
	$(BIN)/python tests/run_suite.py $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/tests

typecheck: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .data .data-prod .cache dbt_project/target dbt_project/logs .pytest_cache .ruff_cache infra/aws/cdk.out

# AWS infrastructure (docs/deploy.md): synthesize the CDK app; its tests run with `make test` too.
INFRA_CONTEXT ?= infra/aws/example-context.json
.PHONY: infra-synth infra-test
infra-synth: venv
	rm -rf infra/aws/cdk.out
	$(BIN)/python infra/aws/app.py --context-file $(INFRA_CONTEXT)

infra-test: venv
	$(BIN)/python -m pytest tests/infra $(PYTEST_ARGS)

# -- batch jobs (issue 4): benchmark and the Spark package (EMR Serverless or a cluster) -------------------
SPARK_PACKAGE_DIR := .cache/spark-package
.PHONY: bench-derivatives spark-package
# Its cluster part ships the Spark package (built first if the lock or the sources changed): uv needed.
bench-derivatives: venv
	UV=$(UV) $(BIN)/python bench/derivatives_bench.py

# The Spark jobs' environment for EMR Serverless or a cluster's executors (docs/deploy.md, section 6): a
# relocatable venv with imagelake, spark_jobs and their runtime dependencies (no PySpark: the cluster
# brings Spark), packed by venv-pack. EMR's workers are x86_64 Linux with Python 3.11: build on such a
# machine (this one is).
spark-package: venv
	UV=$(UV) $(BIN)/python -m infra.spark_package --out $(SPARK_PACKAGE_DIR)

# Warehouse (dbt): docs for analysts, source freshness, the marts benchmark (docs/analysts.md).
.PHONY: docs warehouse-freshness bench-marts
docs: dbt-parse
	$(BIN)/python -m orchestration.dbt_prepare docs generate
	@echo "dbt docs: dbt_project/target/index.html (serve: cd dbt_project && ../$(BIN)/dbt docs serve --port 8080)"

warehouse-freshness: dbt-parse
	$(BIN)/python -m orchestration.lake_freshness

bench-marts: venv
	$(BIN)/python -m bench.marts_bench

# -- statistics service (issue 19): p95 of the statistics endpoints while the warehouse refreshes ----
.PHONY: bench-stats
bench-stats: setup
	$(BIN)/python -m bench.stats_bench $(BENCH_ARGS)

# -- real-time processing (issue 3): metadata, hashes, duplicates, catalog ------------------------
.PHONY: bench-realtime
bench-realtime: setup
	$(BIN)/python -m bench.realtime_bench $(BENCH_ARGS)

# -- production mode and load (issue 18): the production-mode stack under stepped load ----------------
# BENCH_RATES (uploads/s per step, default 5,10,15,20,25,30,40,50,60,80) and BENCH_STEP_S (s per step, default 90)
# set the steps; BENCH_ARGS passes more (python -m bench.load_bench --help), e.g.
# BENCH_ARGS="--env IMAGELAKE_SENSOR_MAX_RUNS_IN_FLIGHT=0" for the runs as production launches them.
.PHONY: bench-load
bench-load: setup
	$(BIN)/python -m bench.load_bench $(BENCH_ARGS)

# -- one PostgreSQL connection as Dagster opens them (issue 18): TLS and SCRAM, ours against the default --
.PHONY: bench-pg-connect
bench-pg-connect: setup
	$(BIN)/python -m bench.pg_connect_bench $(BENCH_ARGS)

# -- the catalog's writes as our processes make them (issue 18): botocore's CPU, against transactions of 100 --
.PHONY: bench-catalog-calls
bench-catalog-calls: setup
	$(BIN)/python -m bench.catalog_calls_bench $(BENCH_ARGS)

# -- the duplicate index at scale (issue 18, docs/scale.md): multi-index hashing against the linear scan ----
.PHONY: bench-hash-search
bench-hash-search: venv
	$(BIN)/python -m bench.hash_search_bench $(BENCH_ARGS)
