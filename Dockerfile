# alloy-runner in a container: the runner process, serving /metrics on 9252.
# Build: docker build -t alloy-runner .   The demo stack: docker compose up (docs/stack.md).
# Every version here is pinned; docs/stack.md says what and how to update them.
FROM python:3.11.16-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Jobs fetch their sources with git (and git-lfs); ca-certificates verify the coordinator,
# the repositories and the distributed cache's store over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git git-lfs ca-certificates \
    && git lfs install --system --skip-repo \
    && rm -rf /var/lib/apt/lists/*

# Builds run as this user with the shell executor, so it owns the spool and builds dirs.
RUN useradd --create-home --uid 10001 --shell /bin/bash alloy

# The dependencies come from lock files with hashes (pip-compile --generate-hashes): pip
# refuses any file whose hash differs, and installs nothing the lock does not name.
COPY requirements.lock requirements-build.lock /tmp/
RUN pip install --require-hashes --no-deps -r /tmp/requirements.lock -r /tmp/requirements-build.lock \
    && rm /tmp/requirements.lock /tmp/requirements-build.lock
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN pip install --no-deps --no-build-isolation /src && rm -rf /src

USER alloy
WORKDIR /home/alloy
# Created here, owned by alloy, so that a named volume mounted on the spool inherits both.
RUN mkdir -p .alloy-runner/spool .alloy-runner/builds .alloy-runner/cache

EXPOSE 9252

# python's slim image has no curl: ask /-/ready with the standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9252/-/ready', timeout=2)"]

# `docker run IMAGE register ...`, `... list`: the arguments are alloy-runner's, as in
# GitLab Runner's image.
ENTRYPOINT ["alloy-runner"]
CMD ["run", "--metrics-server", ":9252"]
