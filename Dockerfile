# syntax=docker/dockerfile:1
# Multi-stage: build wheels with the compiler, run on a slim image as a non-root user.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY tenants ./tenants
COPY subscriptions ./subscriptions
COPY billing ./billing
COPY usage ./usage
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings PORT=8000
RUN groupadd --system app && useradd --system --gid app --home-dir /app app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY --chown=app:app manage.py ./
COPY --chown=app:app templates ./templates
COPY --chown=app:app config ./config
COPY --chown=app:app core ./core
COPY --chown=app:app tenants ./tenants
COPY --chown=app:app subscriptions ./subscriptions
COPY --chown=app:app billing ./billing
COPY --chown=app:app usage ./usage
# collectstatic needs settings to import, not real secrets or servers.
RUN SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput -v 0 && chown -R app:app /app/staticfiles
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["sh", "-c", "gunicorn config.wsgi:application --bind 0.0.0.0:${PORT} --workers ${WEB_CONCURRENCY:-3} --access-logfile -"]
