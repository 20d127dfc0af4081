# The Mesh gateway's image. The web tier (uvicorn), the Celery worker and beat, and the one-shot
# migration all run it, with different commands (docker-compose.yml; README "Containers").
#   docker build -t mesh-gateway .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=meshplatform.settings.production \
    MESH_FILES_ROOT=/data/files \
    PORT=8000

WORKDIR /app
# jemalloc for the web tier (scripts/with-jemalloc, README "Memory"): after a load its workers
# return to within 15 % of their idle size, where pymalloc's pinned arenas keep them ~45 % above.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first: a code change does not reinstall them (wheels exist for every pin, psycopg's
# binary one included, so no compiler or libpq is needed).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# The admin's static files are baked in (collectstatic reads no database), so every replica serves
# the same hashed names. The SECRET_KEY here only lets the settings load; the real one comes at run time.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 --no-create-home --home-dir /app mesh \
    && mkdir -p /data/files \
    && chown mesh /data/files
USER mesh
EXPOSE 8000
# uvicorn is PID 1 (exec; scripts/with-jemalloc execs it too): `docker stop` sends it SIGTERM, each
# worker drains (README "Deploy"), and stop_grace_period must cover MESH_DRAIN_NOTICE_S +
# MESH_DRAIN_TIMEOUT_S + a few seconds.
CMD ["sh", "-c", "exec scripts/with-jemalloc uvicorn meshplatform.asgi:application --host 0.0.0.0 --port ${PORT} --workers ${WEB_CONCURRENCY:-2} --loop uvloop --http httptools --no-access-log --lifespan on --timeout-worker-healthcheck 30"]
