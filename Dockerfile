# The ledger's own processes (`ledger consume`, `ledger relay`, `ledger project`), one image.
# Used by docker-compose.yml. NOT BUILT on our machines: they have no Docker engine, and CI
# runs scripts/test against scripts/services instead (see docs/operations.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVLEDGER_SCHEMAS_DIR=/app/schemas

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY projections ./projections
COPY consumers ./consumers
COPY schemas ./schemas
RUN pip install . \
 && useradd --system --uid 10001 --no-create-home ledger

USER ledger
ENTRYPOINT ["ledger"]
CMD ["--help"]
