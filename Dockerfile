# syntax=docker/dockerfile:1
# One image for the upload API and the two Dagster code locations (and the run pods Dagster launches).
#   docker build -t imagelake-app:<tag> .
#   API:            python -m imagelake.api                       (the default command)
#   code locations: dagster api grpc --module-name orchestration.definitions --working-directory /opt/imagelake
#                   dagster api grpc --module-name orchestration.warehouse_definitions --working-directory /opt/imagelake
#
# No JRE: in prod Spark runs on EMR Serverless (Dagster Pipes submits the job and reads its
# messages from S3), so no JVM is ever started here. pyspark is still installed because it is a
# dependency of the package, and importing it needs no Java.
# The source tree stays a tree at /opt/imagelake (not only site-packages): imagelake.settings
# derives PROJECT_ROOT from its own path, and dbt_project/ and workspace.yaml live beside it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: dependencies from uv.lock into a venv, and a parsed dbt manifest ----
FROM ${PYTHON_IMAGE} AS build
# The uv that the Makefile bootstraps (UV_VERSION there); it installs exactly uv.lock.
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_LINK_MODE=copy
RUN pip install "uv==${UV_VERSION}"
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# The locked dependencies with the deploy extra (the K8s run launcher, Postgres storage), no dev,
# bench or infra groups, bytecode compiled. Not the project itself: the code runs from the source
# tree below, so there is exactly one copy of it.
RUN uv sync --locked --no-default-groups --extra deploy --no-install-project --compile-bytecode \
 && python -c "import dagster_k8s, dagster_postgres"
# The code location loads dbt's manifest at import; parse once here for the prod (Redshift)
# target. Parsing connects to nothing and needs no credentials (profiles.yml has defaults).
RUN IMAGELAKE_DBT_TARGET=prod PYTHONPATH=/src python -m orchestration.dbt_prepare \
 && test -f dbt_project/target/manifest.json

# ---- runtime: slim, no compilers, not root ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/imagelake \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMAGELAKE_ENV=prod \
    IMAGELAKE_API_HOST=0.0.0.0 \
    IMAGELAKE_API_PORT=8000 \
    DAGSTER_HOME=/opt/dagster/dagster_home
RUN groupadd --system --gid 10001 imagelake \
 && useradd --system --uid 10001 --gid imagelake --home-dir /opt/imagelake --shell /usr/sbin/nologin imagelake \
 && mkdir -p /opt/dagster/dagster_home \
 && chown -R 10001:10001 /opt/dagster
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/imagelake
# The code location's files: the packages, workspace.yaml and the dbt project with its manifest
# (dbt writes run results under dbt_project/target at run time, so the tree belongs to the user).
COPY --from=build --chown=10001:10001 /src /opt/imagelake
USER 10001:10001
EXPOSE 8000 3030
CMD ["python", "-m", "imagelake.api"]
