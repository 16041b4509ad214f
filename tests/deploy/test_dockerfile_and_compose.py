"""deploy/Dockerfile, dockerignore.txt, compose.yaml and otel-collector.yaml, checked statically.

No Docker engine runs here, so the image is never built; these checks hold the files to the
promises the README makes (multi-stage, non-root, /healthz, `hub serve`, dev-only secrets).
"""

from __future__ import annotations

import copy
import json
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.core.pii import KeyRing
from tests.deploy.checks import (
    DEPLOY,
    ROOT,
    collector_problems,
    compose_problems,
    dockerfile_instructions,
    dockerfile_problems,
    dockerignore_problems,
)


def _packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*") for pattern in includes})


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


# -- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_serves_the_hub() -> None:
    assert dockerfile_problems(_dockerfile(), packages=_packages()) == []


def test_dockerfile_copies_the_readme_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    readme = pyproject["project"].get("readme")
    copies = " ".join(a for k, a in dockerfile_instructions(_dockerfile()) if k == "COPY")
    assert readme is None or readme in copies.split()


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("FROM ${PYTHON_IMAGE} AS builder", "FROM ${PYTHON_IMAGE}", "named builder"),
        ("USER 10001:10001", "USER root", "runs as root"),
        ("/healthz", "/readyz", "HEALTHCHECK"),
        ('CMD ["hub", "serve",', 'CMD ["uvicorn", "hub.app:app",', "neither"),
        ("COPY schema ./schema", "COPY schema/schema.graphql ./schema/", "package 'schema'"),
        (
            "FROM ${PYTHON_IMAGE} AS runtime",
            "FROM ${PYTHON_IMAGE} AS runtime\nRUN apt-get install -y build-essential",
            "build tools",
        ),
    ],
)
def test_dockerfile_check_catches_a_broken_copy(old: str, new: str, problem: str) -> None:
    text = _dockerfile()
    assert old in text
    problems = dockerfile_problems(text.replace(old, new, 1), packages=_packages())
    assert any(problem in p for p in problems), problems


def test_dockerfile_check_rejects_a_single_stage_build() -> None:
    single = 'FROM python:3.11-slim\nCOPY . /app\nRUN pip install /app\nCMD ["hub", "serve"]\n'
    assert dockerfile_problems(single, packages=_packages()) == [
        "not multi-stage: the runtime must not carry the build"
    ]


def test_recommended_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    sources = sorted(
        word.rstrip("/")
        for keyword, args in dockerfile_instructions(_dockerfile())
        if keyword == "COPY" and "--from" not in args
        for word in args.split()[:-1]
    )
    assert "hub" in sources  # the parse found the builder's COPY lines
    assert dockerignore_problems((DEPLOY / "dockerignore.txt").read_text(), copied=sources) == []
    assert "dockerignore.txt" in (DEPLOY / "README.md").read_text()


def test_dockerignore_check_catches_a_missing_package() -> None:
    text = (DEPLOY / "dockerignore.txt").read_text().replace("!schema\n", "")
    assert dockerignore_problems(text, copied=["hub", "schema"]) == [
        "'schema' is copied but not re-included"
    ]


# -- compose ------------------------------------------------------------------------------------


def test_compose_stack_has_its_services_dependencies_and_only_dev_secrets() -> None:
    assert compose_problems(_compose()) == []


def test_compose_builds_from_the_repository_with_the_deploy_dockerfile() -> None:
    build = _compose()["services"]["hub"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_compose_dev_keys_are_loadable_key_material() -> None:
    env = _compose()["services"]["hub"]["environment"]
    ring = KeyRing.from_mapping(
        {
            "hash_keys": json.loads(env["HUB_HASH_KEYS"]),
            "hash_key_id": env["HUB_HASH_KEY_ID"],
            "enc_keys": json.loads(env["HUB_ENCRYPTION_KEYS"]),
            "enc_key_id": env["HUB_ENCRYPTION_KEY_ID"],
        }
    )
    assert ring.hash("phone", "+8613800000000").startswith("dev1:")


def test_compose_hub_sends_telemetry_to_the_collector_it_runs() -> None:
    doc = _compose()
    endpoint = urlsplit(doc["services"]["hub"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname in doc["services"]
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http == f"0.0.0.0:{endpoint.port}"
    jaeger = urlsplit("//" + collector["exporters"]["otlp/jaeger"]["endpoint"])
    assert jaeger.hostname in doc["services"]
    mounted = [v.split(":")[0] for v in doc["services"]["otel-collector"]["volumes"]]
    assert all((DEPLOY / path).is_file() for path in mounted)


def _broken(mutate: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_compose())
    mutate(doc["services"])
    return doc


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda s: s.pop("migrate"), "'migrate' is missing"),
        (
            lambda s: s["hub"]["depends_on"]["migrate"].update(condition="service_started"),
            "service_completed_successfully",
        ),
        (lambda s: s["hub"]["depends_on"].pop("db"), "db: condition service_healthy"),
        (lambda s: s["db"].pop("healthcheck"), "db has no healthcheck"),
        (lambda s: s["db"].update(image="postgres:15"), "expected postgres:16"),
        (
            lambda s: s["hub"]["environment"].update(HUB_JWT_SECRET="s3cr3t-Zq8v"),
            "HUB_JWT_SECRET looks like a real secret",
        ),
        (
            lambda s: s["hub"]["environment"].update(
                HUB_DATABASE_URL="postgresql://hub:Zq8vK2@db:5432/hub"
            ),
            "HUB_DATABASE_URL looks like a real secret",
        ),
        (
            lambda s: s["hub"]["environment"].update(
                HUB_HASH_KEYS='{"p1": "cmVhbC1sb29raW5nLWtleS0wMTIzNDU2Nzg5YWJjZGVm"}'
            ),
            "HUB_HASH_KEYS looks like a real secret",
        ),
        (lambda s: s["db"]["ports"].append("5432:5432"), "beyond localhost"),
    ],
)
def test_compose_check_catches_a_broken_copy(mutate: Any, problem: str) -> None:
    problems = compose_problems(_broken(mutate))
    assert any(problem in p for p in problems), problems


# -- collector ----------------------------------------------------------------------------------


def test_collector_pipelines_use_only_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert collector_problems(config) == []


def test_collector_check_catches_an_undefined_exporter() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    del config["exporters"]["otlp/jaeger"]
    assert "traces: exporter 'otlp/jaeger' is not defined" in collector_problems(config)


def test_deploy_readme_names_every_file_it_ships() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(p for p in DEPLOY.iterdir() if p.is_file() and p.name != "README.md"):
        assert path.name in readme, path.name
    assert "k8s/" in readme
