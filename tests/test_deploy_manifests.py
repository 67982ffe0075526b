"""The Compose file and Kubernetes manifests agree with the CLI, the settings, the image and each
other: only settings and flags that exist (a typo in a PERMITWATCH_* variable would be silently
ignored by pydantic-settings, a wrong flag would stop the container at start), the image the docs
build, volumes the image's user can write, Prometheus targets that exist, the catalog published
before any worker starts, and the Secret's recipe. (No Docker engine or Kubernetes cluster runs
here: these are the checks this machine allows.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from permitwatch.api.cli import build_parser
from permitwatch.models.catalog import load_catalog
from permitwatch.streams.settings import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KNOWN = {f"PERMITWATCH_{name.upper()}" for name in Settings.model_fields}


def manifests() -> list[dict]:
    documents = [yaml.safe_load((DEPLOY / "compose.yaml").read_text())]
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def walk(node, key=None):
    """Every (key, value) pair of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, key)


def test_every_permitwatch_variable_is_a_setting():
    named = set()
    for document in manifests():
        for key, value in walk(document):
            if isinstance(key, str) and key.startswith("PERMITWATCH_"):
                named.add(key)
            if key == "name" and isinstance(value, str) and value.startswith("PERMITWATCH_"):
                named.add(value)
    assert named and named <= KNOWN, f"not settings: {sorted(named - KNOWN)}"


@pytest.mark.parametrize("arguments", [
    value for document in manifests() for key, value in walk(document)
    if key in ("command", "args") and isinstance(value, list) and value and value[0] in ("worker", "api", "reference")
])
def test_every_command_line_parses(arguments):
    build_parser().parse_args(arguments)


def test_the_shipped_catalog_loads():
    assert load_catalog(DEPLOY / "reference" / "catalog.json").items


COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
PERMITWATCH_SERVICES = {name: service for name, service in COMPOSE["services"].items()
                        if str(service.get("image", "")).startswith("permitwatch:")}


def k8s_pods() -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in manifests()[1:]
            if d.get("kind") in ("StatefulSet", "Deployment", "Job")}


def test_every_permitwatch_image_is_the_version_the_docs_build():
    import tomllib

    version = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["version"]
    images = {service["image"] for service in PERMITWATCH_SERVICES.values()}
    images |= {container["image"] for pod in k8s_pods().values()
               for container in pod.get("initContainers", []) + pod["containers"]}
    assert images == {f"permitwatch:{version}"}
    assert f"-t permitwatch:{version}" in (DEPLOY.parent / "docs" / "kafka.md").read_text()


def test_compose_volumes_are_directories_the_image_user_owns():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    owned = set(re.search(r"mkdir ([/\w ]+) && chown permitwatch:permitwatch ([/\w ]+)", dockerfile).group(2).split())
    mounted = {volume.split(":")[1] for service in PERMITWATCH_SERVICES.values()
               for volume in service.get("volumes", []) if not volume.startswith(".")}
    assert mounted and mounted <= owned


def test_prometheus_scrapes_services_compose_defines_on_their_metrics_ports():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    serving = {}
    for name, service in PERMITWATCH_SERVICES.items():
        command = service["command"]
        if command[0] == "worker":
            serving[name] = service["environment"].get("PERMITWATCH_METRICS_PORT",
                                                       Settings.model_fields["metrics_port"].default)
        elif command[0] == "api":
            serving[name] = Settings.model_fields["port"].default
    assert targets == {f"{name}:{port}" for name, port in serving.items()}


def test_the_catalog_is_published_before_any_worker_or_api_starts():
    reference = COMPOSE["services"]["reference"]
    assert reference["command"][:2] == ["reference", "--catalog"]
    mount, inside = reference["volumes"][0].split(":")[:2]
    assert (DEPLOY / mount / Path(reference["command"][2]).relative_to(inside)).is_file()
    for name, service in PERMITWATCH_SERVICES.items():
        if name != "reference":
            assert service["depends_on"]["reference"] == {"condition": "service_completed_successfully"}, name
    workers = k8s_pods()["permitwatch-worker"]
    [init] = workers["initContainers"]
    assert init["args"][:2] == ["reference", "--catalog"]
    [volume] = [v for v in workers["volumes"] if v["name"] == init["volumeMounts"][0]["name"]]
    recipe = (DEPLOY.parent / "docs" / "kafka.md").read_text()
    assert f"kubectl create configmap {volume['configMap']['name']} --from-file=catalog.json=" in recipe


def test_the_tokens_secret_recipe_makes_a_file_the_api_reads(tmp_path, capsys):
    from permitwatch.api.auth import Authenticator
    from permitwatch.api.cli import main

    [secret] = [v["secret"]["secretName"] for pod in k8s_pods().values() for v in pod.get("volumes", []) if "secret" in v]
    recipe = (DEPLOY.parent / "docs" / "kafka.md").read_text()
    assert f"kubectl create secret generic {secret} --from-file=tokens.json" in recipe
    tokens = {}
    for name, role in (("ops-centre", "operator"), ("window-gateway", "ingest")):
        assert main(["token", "--name", name, "--role", role, "--tokens-file", str(tmp_path / "tokens.json")]) == 0
        tokens[name] = capsys.readouterr().out.split("token: ", 1)[1].split()[0]
    auth = Authenticator.from_file(tmp_path / "tokens.json")
    assert {name: auth.identify(token).name for name, token in tokens.items()} == {n: n for n in tokens}
