# notebook-bot for Cloud Run: `notebook-bot serve` (gunicorn) on $PORT.
# Build stage: install the package into a virtualenv with the same command CI uses (pip install .).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN python -m venv /venv && /venv/bin/pip install .

# Run stage: no compilers, no pip cache, no source tree; an unprivileged user.
FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bot
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8080
USER 10001
EXPOSE 8080
ENTRYPOINT ["notebook-bot"]
CMD ["serve"]
