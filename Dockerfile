# One image for every Airflow service of docker-compose.yml: the project's code and the exact
# environment of uv.lock (the same lock `make run` uses) (Celery and Redis included).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/betterwork/dags \
    PYTHONPATH=/opt/betterwork

RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client tini curl \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv==0.13.9 \
 && useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
 && mkdir -p /opt/airflow /opt/betterwork \
 && chown -R airflow:0 /opt/airflow /opt/betterwork

WORKDIR /opt/betterwork

# Dependencies first (cached layer), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN mkdir include && touch include/__init__.py \
 && uv sync --frozen --no-dev --no-install-project
COPY --chown=airflow:0 . .
RUN uv sync --frozen --no-dev

USER airflow
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
