# The dbops worker image: the project with its pinned dependencies, and PostgreSQL 18's client
# programs (pg_dump must be at least the server's major version). docker-compose.yml builds it for
# the prefect-worker service; on other machines, run it with `prefect worker start --pool dbops`.
FROM python:3.11.14-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-18 age \
 && apt-get purge -y curl gnupg \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*

# prefect.yaml's pull step runs the flows from here.
WORKDIR /opt/dbops
COPY pyproject.toml constraints.txt README.md alembic.ini prefect.yaml ./
COPY models models
COPY migrations migrations
COPY tasks tasks
COPY flows flows
COPY deployments deployments
RUN pip install --no-cache-dir pip==26.3 \
 && pip install --no-cache-dir -c constraints.txt . \
 && useradd --create-home --uid 10001 dbops \
 && chown -R dbops /opt/dbops

ENV DBOPS_PG_BINDIR=/usr/lib/postgresql/18/bin \
    DBOPS_HOME=/home/dbops/.dbops \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PYTHONUNBUFFERED=1
USER dbops
CMD ["prefect", "worker", "start", "--pool", "dbops", "--type", "process"]
