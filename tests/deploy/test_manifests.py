"""deploy/k8s: every manifest validates against a pinned Kubernetes schema, and the pieces agree.

`kubernetes_validate.validate(..., strict=True)` rejects unknown fields as well as wrong types,
so a misspelt probe or securityContext key fails here instead of being silently dropped by the
API server.
"""

from __future__ import annotations

import base64
import configparser
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from hub.core.settings import Env, load_settings
from tests.deploy.checks import DEPLOY

# Pinned, not "latest": kubernetes-validate >= 1.31 ships these schemas, and a newer package
# must not silently move the target.
K8S_VERSION = "1.31.0"
K8S = DEPLOY / "k8s"
KUSTOMIZATIONS = ("kustomization.yaml", "migrate/kustomization.yaml")
NOT_APPLIED = {"secret.template.yaml"}  # placeholders: never part of `kubectl apply -k`

Doc = dict[str, Any]


def _docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifest_paths() -> list[str]:
    return sorted(
        p.relative_to(K8S).as_posix()
        for p in K8S.rglob("*.yaml")
        if p.relative_to(K8S).as_posix() not in KUSTOMIZATIONS
    )


def _all() -> list[tuple[str, Doc]]:
    return [(path, doc) for path in _manifest_paths() for doc in _docs(K8S / path)]


def _one(kind: str, name: str) -> Doc:
    found = [d for _, d in _all() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in _all()],
    ids=[f"{path}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in _all()],
)
def test_manifest_validates_against_kubernetes_schema(doc: Doc) -> None:
    _validate(doc)


def test_every_required_object_is_shipped() -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for _, d in _all())
    assert kinds == [
        "ConfigMap/hub-config",
        "ConfigMap/hub-pgbouncer",
        "Deployment/hub",
        "Deployment/hub-pgbouncer",
        "HorizontalPodAutoscaler/hub",
        "Job/hub-migrate",
        "PodDisruptionBudget/hub",
        "Secret/hub-pgbouncer-auth",
        "Secret/hub-secrets",
        "Service/hub",
        "Service/hub-pgbouncer",
    ]


@pytest.mark.parametrize(
    ("path", "old", "new", "error"),
    [
        ("deployment.yaml", "livenessProbe:", "livenesProbe:", kubernetes_validate.ValidationError),
        (
            "deployment.yaml",
            "containerPort: 8000",
            "containerPort: eight-thousand",
            kubernetes_validate.ValidationError,
        ),
        (
            "hpa.yaml",
            "averageUtilization: 70",
            "averageUtilisation: 70",
            kubernetes_validate.ValidationError,
        ),
        (
            "migrate/job.yaml",
            "restartPolicy: Never",
            "restartPolicy: [Never]",
            kubernetes_validate.ValidationError,
        ),
        (
            "pdb.yaml",
            "apiVersion: policy/v1",
            "apiVersion: policy/v9",
            kubernetes_validate.SchemaNotFoundError,
        ),
        ("pgbouncer.yaml", "  replicas: 2", "  replicas: two", kubernetes_validate.ValidationError),
    ],
)
def test_a_broken_copy_of_a_manifest_fails_validation(
    tmp_path: Path, path: str, old: str, new: str, error: type[Exception]
) -> None:
    text = (K8S / path).read_text()
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new, 1))
    with pytest.raises(error):
        for doc in _docs(broken):
            _validate(doc)


# -- kustomize ----------------------------------------------------------------------------------


def test_kustomizations_cover_every_manifest_except_the_secret_template() -> None:
    listed: set[str] = set()
    for kustomization in KUSTOMIZATIONS:
        base = Path(kustomization).parent
        for resource in yaml.safe_load((K8S / kustomization).read_text())["resources"]:
            assert (K8S / base / resource).is_file(), resource
            listed.add((base / resource).as_posix())
    assert listed | NOT_APPLIED == set(_manifest_paths())
    assert not listed & NOT_APPLIED


def test_app_and_migration_pin_the_same_image() -> None:
    images = [yaml.safe_load((K8S / k).read_text())["images"] for k in KUSTOMIZATIONS]
    assert images[0] == images[1]
    names = {image["name"] for image in images[0]}
    for pod in (_one("Deployment", "hub"), _one("Job", "hub-migrate")):
        for container in pod["spec"]["template"]["spec"]["containers"]:
            assert container["image"].split(":")[0] in names


# -- the hub's pods -----------------------------------------------------------------------------


def _pod_specs() -> list[tuple[str, Doc]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for _, d in _all()
        if d["kind"] in ("Deployment", "Job")
    ]


def test_every_pod_runs_non_root_on_a_read_only_root_filesystem() -> None:
    for name, pod in _pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_hub_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    container = _one("Deployment", "hub")["spec"]["template"]["spec"]["containers"][0]
    port_names = {port["name"] for port in container["ports"]}
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {probe["port"] for probe in probes.values()} <= port_names
    assert container["args"][:2] == ["hub", "serve"]


def test_hub_spreads_over_zones_and_nodes() -> None:
    spec = _one("Deployment", "hub")["spec"]
    keys = {c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert "replicas" not in spec  # the HPA owns the count


def test_selectors_match_the_pods_they_mean() -> None:
    hub_labels = _one("Deployment", "hub")["spec"]["template"]["metadata"]["labels"]
    bouncer_labels = _one("Deployment", "hub-pgbouncer")["spec"]["template"]["metadata"]["labels"]
    for selector, labels in (
        (_one("Deployment", "hub")["spec"]["selector"]["matchLabels"], hub_labels),
        (_one("Service", "hub")["spec"]["selector"], hub_labels),
        (_one("PodDisruptionBudget", "hub")["spec"]["selector"]["matchLabels"], hub_labels),
        (_one("Service", "hub-pgbouncer")["spec"]["selector"], bouncer_labels),
    ):
        assert selector.items() <= labels.items()
    target = _one("HorizontalPodAutoscaler", "hub")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "hub")


def test_hub_reads_the_configmap_and_the_secret_files() -> None:
    pod = _one("Deployment", "hub")["spec"]["template"]["spec"]
    config = _one("ConfigMap", "hub-config")["data"]
    secret = _one("Secret", "hub-secrets")["stringData"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "hub-config"}}]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]
    assert volume["secretName"] == "hub-secrets"
    assert mounts["secrets"] == config["HUB_SECRETS_DIR"]
    assert {item["key"] for item in volume["items"]} <= secret.keys()
    assert "HUB_MIGRATE_DATABASE_URL" not in {item["key"] for item in volume["items"]}


def test_secret_template_holds_placeholders_only() -> None:
    for name in ("hub-secrets", "hub-pgbouncer-auth"):
        for key, value in _one("Secret", name)["stringData"].items():
            assert key.endswith("_KEY_ID") or "REPLACE_ME" in value, f"{name}.{key}"
    assert "TEMPLATE ONLY" in (K8S / "secret.template.yaml").read_text()


# -- settings the manifests produce ---------------------------------------------------------------

_FILL = {
    "REPLACE_ME_PASSWORD": "pw",
    "REPLACE_ME_PRIMARY_HOST": "primary.example.com",
    "REPLACE_ME_BASE64_32_BYTES": base64.urlsafe_b64encode(b"t" * 32).decode(),
}


def _settings_for(
    pod: Doc, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Load the hub's settings as the pod would see them: env vars plus the mounted Secret."""
    secret = _one("Secret", "hub-secrets")["stringData"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for item in volume["items"]:
        value = secret[item["key"]]
        for placeholder, real in _FILL.items():
            value = value.replace(placeholder, real)
        (secrets_dir / item["path"]).write_text(value)
    for var in list(os.environ):
        if var.startswith("HUB_") or var == "DATABASE_URL":
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HUB_SECRETS_DIR", str(secrets_dir))
    return load_settings()


def test_deployment_layout_loads_as_production_settings_through_pgbouncer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = _one("Deployment", "hub")["spec"]["template"]["spec"]
    settings = _settings_for(pod, _one("ConfigMap", "hub-config")["data"], tmp_path, monkeypatch)
    assert settings.env is Env.PROD
    assert (
        urlsplit(settings.database_url).hostname
        == _one("Service", "hub-pgbouncer")["metadata"]["name"]
    )
    assert settings.keyring().hash_key_id == "h1"


def test_migrate_job_loads_production_settings_pointing_at_the_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = _one("Job", "hub-migrate")["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    settings = _settings_for(pod, env, tmp_path, monkeypatch)
    assert settings.env is Env.PROD
    assert urlsplit(settings.database_url).hostname == "primary.example.com"
    assert pod["containers"][0]["args"] == ["hub", "migrate"]


# -- PgBouncer and the connection budget ----------------------------------------------------------


def _pgbouncer_ini() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";", "#"))
    parser.read_string(_one("ConfigMap", "hub-pgbouncer")["data"]["pgbouncer.ini"])
    return parser


def test_pgbouncer_pools_transactions_and_tracks_prepared_statements() -> None:
    ini = _pgbouncer_ini()["pgbouncer"]
    assert ini["pool_mode"] == "transaction"
    assert int(ini["max_prepared_statements"]) > 0  # asyncpg keeps its statement cache
    assert "statement_timeout" in ini["ignore_startup_parameters"].split(",")
    image = _one("Deployment", "hub-pgbouncer")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    major, minor = (int(part) for part in image.split(":")[1].split(".")[:2])
    assert (major, minor) >= (1, 21)  # max_prepared_statements needs PgBouncer 1.21


def test_connection_budget_fits_pgbouncer_and_postgres() -> None:
    ini = _pgbouncer_ini()["pgbouncer"]
    config = _one("ConfigMap", "hub-config")["data"]
    replicas = _one("HorizontalPodAutoscaler", "hub")["spec"]["maxReplicas"]
    bouncers = _one("Deployment", "hub-pgbouncer")["spec"]["replicas"]
    pool, overflow = int(config["HUB_DB_POOL_SIZE"]), int(config["HUB_DB_MAX_OVERFLOW"])
    server_pool, reserve = int(ini["default_pool_size"]), int(ini["reserve_pool_size"])
    assert replicas * (pool + overflow) <= int(ini["max_client_conn"])
    assert replicas * pool <= bouncers * server_pool
    assert server_pool + reserve <= int(ini["max_db_connections"])
    # PostgreSQL's default max_connections (100) less superuser_reserved_connections (3) and
    # room for the migrate Job, admin sessions and replication.
    assert bouncers * int(ini["max_db_connections"]) <= 100 - 3 - 10


def test_hub_url_reaches_pgbouncer_on_its_service_port() -> None:
    url = urlsplit(_one("Secret", "hub-secrets")["stringData"]["HUB_DATABASE_URL"])
    service = _one("Service", "hub-pgbouncer")
    assert url.hostname == service["metadata"]["name"]
    assert url.port in {port["port"] for port in service["spec"]["ports"]}
    assert url.path.lstrip("/") in _pgbouncer_ini()["databases"]
