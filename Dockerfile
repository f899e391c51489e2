# One image for every service of docker-compose.yml: Airflow, the Dask scheduler and workers,
# and the MLflow server, with the forecasting package and every plug-in under plugins/.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    MLFLOW_DISABLE_TELEMETRY=true
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /opt/forecasting
# Dependencies first (a layer that changes only with the lock file), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY forecasting ./forecasting
COPY plugins ./plugins
COPY dags ./dags
COPY config ./config
COPY deploy ./deploy
RUN uv sync --frozen --no-dev \
 && uv export --frozen --no-dev --no-hashes --no-emit-project --no-header -o /tmp/constraints.txt \
 && for dir in plugins/*/; do \
      if [ "$dir" != "plugins/_template/" ] && [ -f "$dir/pyproject.toml" ]; then \
        uv pip install --python .venv/bin/python --constraint /tmp/constraints.txt "$dir"; \
      fi; \
    done \
 && uv pip install --python .venv/bin/python --constraint /tmp/constraints.txt "mlflow[auth]"

ENV PATH=/opt/forecasting/.venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/forecasting/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    DASK_TEMPORARY_DIRECTORY=/tmp/dask
RUN useradd --uid 50000 --create-home forecasting \
 && mkdir -p /opt/airflow /data \
 && mkdir -p /data/mlflow /data/output \
 && chown -R forecasting /opt/airflow /data
USER forecasting
