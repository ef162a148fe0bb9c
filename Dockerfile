# alloy-runner in a container: the runner process, serving /metrics on 9252.
# Build: docker build -t alloy-runner .   The demo stack: docker compose up (docs/stack.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Builds run as this user with the shell executor, so it owns the spool and builds dirs.
RUN useradd --create-home --uid 10001 --shell /bin/bash alloy

COPY pyproject.toml README.md /src/
COPY src /src/src
RUN pip install /src && rm -rf /src

USER alloy
WORKDIR /home/alloy
# Created here, owned by alloy, so that a named volume mounted on the spool inherits both.
RUN mkdir -p .alloy-runner/spool .alloy-runner/builds .alloy-runner/cache

EXPOSE 9252

# python:3.11-slim has no curl: ask /-/ready with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9252/-/ready', timeout=2)"]

CMD ["alloy-runner", "run", "--metrics-server", ":9252"]
