# notebook-bot for Cloud Run: `notebook-bot serve` (gunicorn, bot/run/server.py) on $PORT.
#
# Build stage: the package and its dependencies go into a virtualenv, installed from this
# pyproject.toml exactly as CI installs it (.ci/run: pip install -e '.[test]'), without the test extra.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
WORKDIR /src
RUN python -m venv /venv
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
# pip compiles the bytecode as it installs; pip and setuptools are not needed at run time.
RUN /venv/bin/pip install . && /venv/bin/pip uninstall --yes pip setuptools

# Run stage: the same Python and the virtualenv; no compilers, build caches or sources, and
# an unprivileged user (with a home, for the embedded store's default path on local runs).
FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin bot
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8080
USER 10001:10001
WORKDIR /home/bot
EXPOSE 8080
ENTRYPOINT ["notebook-bot"]
CMD ["serve"]
