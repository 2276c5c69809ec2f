# The distributed deployment's app image: slim Python, non-root, granian via `authserver serve`
# (the same command the tests run).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin authserver

WORKDIR /app
COPY pyproject.toml setup.cfg README.md wsgi.py ./
COPY authserver ./authserver
COPY grants ./grants
COPY keys ./keys
RUN pip install . && mkdir -p /run/authserver-secrets && chown authserver /run/authserver-secrets

USER authserver
ENV AUTHSERVER_INSTANCE_PATH=/home/authserver/instance \
    PROMETHEUS_MULTIPROC_DIR=/home/authserver/prometheus
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3).status != 200)"

# `serve` applies pending migrations (`authserver db upgrade`) and creates keys, then starts the
# granian worker processes.
CMD ["authserver", "serve", "--host", "0.0.0.0", "--port", "8000"]
