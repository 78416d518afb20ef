"""Static checks for docker-compose.yml (no docker engine required)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

COMPOSE_PATH = Path(__file__).resolve().parents[3] / "docker-compose.yml"

EXPECTED_SERVICES = {
    "db",
    "minio",
    "minio-init",
    "prefect-db",
    "prefect-server",
    "prefect-worker",
}
LONG_RUNNING = ("db", "minio", "prefect-db", "prefect-server")
ONE_SHOT = {"minio-init"}
# A compose interpolation such as ${VAR} or ${VAR:-default}, not a literal secret.
ENV_EXPRESSION = re.compile(r"\$\{[A-Z_][A-Z0-9_]*(:?-[^}]*)?\}")

Service = dict[str, Any]


def environment(service: Service) -> dict[str, str]:
    """Normalise `environment` (list of KEY=VALUE or mapping) to a str dict."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {p[0]: p[1] if len(p) > 1 else "" for p in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def depends_on(service: Service) -> dict[str, str | None]:
    """Normalise `depends_on` to {service: condition}; short form has none."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: None for name in raw}
    return {name: (spec or {}).get("condition") for name, spec in raw.items()}


def published_ports(service: Service) -> set[int]:
    """Host ports published by a service (short or long port syntax)."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if "published" in entry:
                ports.add(int(entry["published"]))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:  # "HOST:CONTAINER" or "IP:HOST:CONTAINER"
            ports.add(int(parts[-2]))
    return ports


def named_volumes(service: Service) -> set[str]:
    """Named (non-bind) volumes mounted by a service."""
    names: set[str] = set()
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                names.add(entry["source"])
            continue
        source, sep, _ = str(entry).partition(":")
        if sep and not source.startswith((".", "/", "~", "$")):
            names.add(source)
    return names


def shell_text(service: Service) -> str:
    """Entrypoint and command of a service joined into one string."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
        elif value:
            parts.append(str(value))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    result = compose.get("services")
    assert isinstance(result, dict), "services must be a mapping"
    assert result, "no services defined"
    return result


def test_expected_services_exist(services: dict[str, Service]) -> None:
    assert set(services) == EXPECTED_SERVICES


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks(services: dict[str, Service], name: str) -> None:
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = check.get("test")
    assert test, f"{name}: healthcheck has no test"
    if isinstance(test, list):
        assert test[0] in {"CMD", "CMD-SHELL"}, test
        assert len(test) > 1, test


def test_depends_on_uses_conditions_on_existing_services(
    services: dict[str, Service],
) -> None:
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert condition == expected, f"{name} -> {dep}: {condition!r}"


def test_worker_waits_for_its_dependencies(services: dict[str, Service]) -> None:
    deps = depends_on(services["prefect-worker"])
    assert {"db", "prefect-server", "minio-init"} <= set(deps)


@pytest.mark.parametrize(("name", "port"), [("db", 5432), ("minio", 9000), ("prefect-server", 4200)])
def test_published_ports(services: dict[str, Service], name: str, port: int) -> None:
    assert port in published_ports(services[name])


def test_worker_database_url_matches_db(services: dict[str, Service]) -> None:
    db_password = environment(services["db"])["POSTGRES_PASSWORD"]
    assert ENV_EXPRESSION.fullmatch(db_password), db_password
    parsed = urlsplit(environment(services["prefect-worker"])["DBOPS_DATABASE_URL"])
    assert parsed.hostname == "db"
    assert parsed.port == 5432
    assert parsed.password == db_password


def test_worker_prefect_api_url(services: dict[str, Service]) -> None:
    parsed = urlsplit(environment(services["prefect-worker"])["PREFECT_API_URL"])
    assert (parsed.hostname, parsed.port, parsed.path) == ("prefect-server", 4200, "/api")


def test_worker_s3_endpoint_points_at_minio(services: dict[str, Service]) -> None:
    parsed = urlsplit(environment(services["prefect-worker"])["DBOPS_S3_ENDPOINT_URL"])
    assert (parsed.hostname, parsed.port) == ("minio", 9000)


def test_backup_bucket_is_created_by_minio_init(services: dict[str, Service]) -> None:
    script = shell_text(services["minio-init"])
    alias = re.search(r"mc alias set (\S+) (\S+)", script)
    assert alias, "minio-init does not set an mc alias"
    assert (urlsplit(alias[2]).hostname, urlsplit(alias[2]).port) == ("minio", 9000)
    buckets = re.findall(r"mc mb (?:--\S+ )*(\S+?)/(\S+)", script)
    assert buckets, "minio-init does not create a bucket"
    assert all(prefix == alias[1] for prefix, _ in buckets)
    backup = urlsplit(environment(services["prefect-worker"])["DBOPS_BACKUP_URL"])
    assert backup.scheme == "s3"
    assert backup.netloc in {bucket for _, bucket in buckets}


def test_prefect_server_database_url_matches_prefect_db(
    services: dict[str, Service],
) -> None:
    password = environment(services["prefect-db"])["POSTGRES_PASSWORD"]
    assert ENV_EXPRESSION.fullmatch(password), password
    server_env = environment(services["prefect-server"])
    parsed = urlsplit(server_env["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert parsed.hostname == "prefect-db"
    assert parsed.password == password


def test_worker_aws_credentials_match_minio(services: dict[str, Service]) -> None:
    minio_env = environment(services["minio"])
    worker_env = environment(services["prefect-worker"])
    assert worker_env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert worker_env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Service]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set().union(*(named_volumes(s) for s in services.values()))
    assert used, "no named volumes used"
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_images_are_pinned(services: dict[str, Service], name: str) -> None:
    image = services[name].get("image")
    assert image, f"{name}: no image"
    if "@sha256:" in image:
        return
    _, sep, tag = image.rpartition("/")[2].partition(":")
    assert sep, f"{name}: image {image!r} has no tag"
    assert tag, f"{name}: image {image!r} has an empty tag"
    assert tag != "latest", f"{name}: image {image!r} uses :latest"


REPO_ROOT = COMPOSE_PATH.parent


def test_the_worker_registers_the_deployments_and_polls_their_pool(services: dict[str, Service]) -> None:
    worker = services["prefect-worker"]
    command = shell_text(worker)
    pools = {
        entry["work_pool"]["name"]
        for entry in yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())["deployments"]
    }

    assert worker["build"] == {"context": ".", "dockerfile": "deployments/Dockerfile"}
    assert "prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml" in command
    assert pools == {"dbops"}
    assert "prefect worker start --pool dbops --type process" in command
    assert environment(worker)["DBOPS_TIMEZONE"]  # the schedules' time zone, templated into the YAML


def test_the_worker_image_has_the_project_and_the_client_programs_of_every_supported_major() -> None:
    dockerfile = (REPO_ROOT / "deployments" / "Dockerfile").read_text()
    pull = yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())["pull"][0]
    workdir = pull["prefect.deployments.steps.set_working_directory"]["directory"]

    base = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    for major in range(15, 19):  # so each server's dumps restore into a server of its own major
        assert f"postgresql-client-{major}" in dockerfile
    assert "ENV DBOPS_PG_BINDIR=/usr/lib/postgresql/18/bin" in dockerfile
    assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile
    assert f"WORKDIR {workdir}" in dockerfile
    for package in ("models", "migrations", "tasks", "flows", "deployments"):
        assert f"COPY {package} {package}" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
