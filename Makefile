# imagelake: `make dev` runs the product locally, `make test` runs the whole suite.
# Both start with `make setup`, which is idempotent: a second run does nothing new.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JARS   := .cache/jars
MVN    ?= mvn
MVN_FLAGS := -q -B -Dstyle.color=never -f infra/local/pom.xml
PYTEST_ARGS ?=

export IMAGELAKE_PROJECT_ROOT := $(CURDIR)

.PHONY: help setup venv jars dbt-parse dev test test-unit test-integration test-e2e lint format clean

help:
	@echo "make dev    - set up, start Kafka + DynamoDB Local + upload API + dagster dev (Ctrl-C stops all)"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make setup  - create .venv, install from pyproject.toml, fetch the Maven jars, parse dbt"
	@echo "make lint   - ruff and sqlfluff (make format rewrites the Python)"
	@echo "make clean  - remove .data (lake, Kafka, catalog, warehouse), .cache (jars) and build output"
	@echo "make test-unit | test-integration | test-e2e - one layer of the suite"
	@echo "make docs                - the dbt docs site (dbt_project/target/index.html)"
	@echo "make warehouse-freshness - dbt source freshness of the lake tables"
	@echo "make bench-realtime | bench-derivatives | bench-marts - the benchmarks (README, Benchmarks)"
	@echo "make spark-package       - the Spark jobs and their environment for EMR Serverless"
	@echo "make infra-synth | infra-test - synthesize / test the AWS CDK app (docs/deploy.md)"

setup: venv jars dbt-parse

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "imagelake needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench,infra]'
	@touch $@

jars: $(JARS)/kafka/.done $(JARS)/dynamodb/.done
$(JARS)/%/.done: infra/local/pom.xml
	@command -v $(MVN) >/dev/null || { echo "Maven is required (https://maven.apache.org): install it, e.g. apt-get install maven"; exit 1; }
	@command -v java >/dev/null || { echo "Java 17+ is required: install a JDK, e.g. apt-get install openjdk-17-jdk-headless"; exit 1; }
	@rm -rf $(JARS)/$*
	$(MVN) $(MVN_FLAGS) -P $* dependency:copy-dependencies -DoutputDirectory="$(CURDIR)/$(JARS)/$*"
	@touch $@

dbt-parse: venv
	$(BIN)/python -m orchestration.dbt_prepare

dev: setup
	$(BIN)/python -m infra.local.dev

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .data .cache dbt_project/target dbt_project/logs .pytest_cache .ruff_cache infra/aws/cdk.out

# AWS infrastructure (docs/deploy.md): synthesize the CDK app; its tests run with `make test` too.
INFRA_CONTEXT ?= infra/aws/example-context.json
.PHONY: infra-synth infra-test
infra-synth: venv
	rm -rf infra/aws/cdk.out
	$(BIN)/python infra/aws/app.py --context-file $(INFRA_CONTEXT)

infra-test: venv
	$(BIN)/python -m pytest tests/infra $(PYTEST_ARGS)

# -- batch jobs (issue 4): benchmark and the EMR Serverless package ------------------------------------
SPARK_PACKAGE_DIR := .cache/spark-package
.PHONY: bench-derivatives spark-package
bench-derivatives: venv
	$(BIN)/python bench/derivatives.py

# The Spark jobs' environment for EMR Serverless (docs/deploy.md, section 6): a relocatable venv with
# imagelake, spark_jobs and their runtime dependencies (no PySpark: EMR brings Spark), packed by venv-pack.
# EMR's workers are x86_64 Linux with Python 3.11: build on such a machine (this one is).
spark-package: venv
	$(BIN)/python -m infra.spark_package --out $(SPARK_PACKAGE_DIR)

# Warehouse (dbt): docs for analysts, source freshness, the marts benchmark (docs/analysts.md).
.PHONY: docs warehouse-freshness bench-marts
docs: dbt-parse
	$(BIN)/python -m orchestration.dbt_prepare docs generate
	@echo "dbt docs: dbt_project/target/index.html (serve: cd dbt_project && ../$(BIN)/dbt docs serve --port 8080)"

warehouse-freshness: dbt-parse
	$(BIN)/python -m orchestration.dbt_prepare source freshness

bench-marts: venv
	$(BIN)/python -m bench.marts

# -- real-time processing (issue 3): metadata, hashes, duplicates, catalog ------------------------
.PHONY: bench-realtime
bench-realtime: setup
	$(BIN)/python -m bench.realtime $(BENCH_ARGS)
