"""The deployment files parse, and everything they ask of querywatch exists.

No container runtime or cluster is needed: commands are parsed by the real CLI parser,
environment variables are matched against Settings, and ``kubectl kustomize`` (offline)
renders the manifests when kubectl is installed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from querywatch.detector.cli.commands import build_parser
from querywatch.detector.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
K8S = DEPLOY / "k8s"


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    return _documents(DEPLOY / "compose.yaml")[0]


def _manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _documents(path)
    ]


def _querywatch_commands() -> list[list[str]]:
    """Every querywatch argument list the Dockerfile, compose and the manifests run."""
    commands = []
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None and re.search(r'^ENTRYPOINT \["querywatch"\]$', dockerfile, re.MULTILINE)
    commands.append(json.loads(cmd.group(1)))
    for service in _compose()["services"].values():
        command = service.get("command")
        if service.get("entrypoint") == ["sh", "-c"]:
            for part in re.findall(r"querywatch ([^|&;>]+)", " ".join(command)):
                commands.append(shlex.split(part))
        elif command and "image" in service and service["image"].startswith("querywatch"):
            commands.append(command)
    for doc in _manifests():
        for container in _containers(doc):
            commands.append(container["args"])
    return commands


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    return list(pod.get("containers", []))


def _env_names() -> set[str]:
    names = set()
    for service in _compose()["services"].values():
        names |= {n for n in service.get("environment", {}) if n.startswith("QUERYWATCH_")}
    for doc in _manifests():
        if doc["kind"] in ("ConfigMap", "Secret"):
            data = {**doc.get("data", {}), **doc.get("stringData", {})}
            names |= {n for n in data if n.startswith("QUERYWATCH_")}
    names |= set(re.findall(r"\b(QUERYWATCH_[A-Z_]+)=", (DEPLOY / "Dockerfile").read_text()))
    return names


def _setting_exists(env_name: str) -> bool:
    model: type[BaseModel] = Settings
    parts = env_name.removeprefix("QUERYWATCH_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_is_well_formed(path: Path) -> None:
    assert _documents(path)


def test_grafana_dashboard_is_json_on_querywatch_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "querywatch.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs and all("querywatch_" in e for e in exprs)
    assert not any("client_id" in e for e in exprs)


def test_every_command_exists_in_the_cli() -> None:
    parser = build_parser()
    commands = _querywatch_commands()
    assert {c[0] for c in commands} >= {"serve", "consume", "dispatch", "db", "apikey"}
    for command in commands:
        parser.parse_args(command)  # exits (SystemExit) on an unknown subcommand or option


def test_every_environment_variable_is_a_setting() -> None:
    names = _env_names()
    assert "QUERYWATCH_DATABASE__URL" in names and "QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS" in names
    unknown = sorted(n for n in names if not _setting_exists(n))
    assert not unknown, f"not settings: {unknown}"


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for item in source.split():
            assert (ROOT / item).exists() or item == "README.md", f"COPY {item}: not in the repository"


def test_compose_has_the_whole_stack_with_scalable_consumers() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "kafka",
        "postgres",
        "migrate",
        "consumer",
        "aggregator",
        "dispatcher",
        "api",
        "prometheus",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    partitions = int(services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"])
    assert 1 <= services["consumer"]["deploy"]["replicas"] <= partitions
    assert services["aggregator"]["deploy"]["replicas"] == 2  # one active, one standby
    for name in ("consumer", "aggregator", "dispatcher", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), mount
    # Prometheus loads the alerting rules: a rule file it names is one compose mounts there.
    mounted = {m.split(":")[1] for m in services["prometheus"]["volumes"]}
    rules = _documents(DEPLOY / "prometheus" / "prometheus.yml")[0]["rule_files"]
    assert rules and set(rules) <= mounted


def test_kubernetes_manifests_fit_together() -> None:
    docs = _manifests()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Job", "querywatch-migrate"),
        ("Service", "querywatch-api"),
        ("ServiceMonitor", "querywatch-api"),
        ("PodMonitor", "querywatch-workers"),
    } <= kinds
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert {
        "querywatch-consumer",
        "querywatch-aggregator",
        "querywatch-api",
        "querywatch-dispatcher",
    } <= set(deployments)
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    partitions = int(config["data"]["QUERYWATCH_KAFKA__PARTITIONS"])
    assert deployments["querywatch-consumer"]["spec"]["replicas"] <= partitions
    for worker in ("querywatch-consumer", "querywatch-aggregator", "querywatch-dispatcher"):  # PodMonitor
        container = _containers(deployments[worker])[0]
        port = container["args"][container["args"].index("--metrics-port") + 1]
        assert {"name": "metrics", "containerPort": int(port)} in container["ports"]
    api = _containers(deployments["querywatch-api"])[0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for doc in docs:
        for container in _containers(doc):
            assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    listed = set(_documents(K8S / "kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="optional: kubectl is not installed (kubernetes-validate checks the schemas)",
)
def test_kustomize_renders_offline() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert all(d["metadata"].get("namespace") == "querywatch" for d in docs if d["kind"] != "Namespace")


def test_manifests_pass_the_kubernetes_schema_strictly() -> None:
    """Unknown or misspelt fields are errors; only the Prometheus Operator's kinds have no schema here."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for version in ("1.29.0", kubernetes_validate.latest_version()):
        for doc in _manifests():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                assert doc["apiVersion"].startswith("monitoring.coreos.com/"), doc["kind"]


def test_pods_are_read_only_probed_sized_and_budgeted() -> None:
    docs = _manifests()
    for doc in docs:
        pod = doc["spec"]["template"]["spec"] if _containers(doc) else None
        if pod is None:
            continue
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"] and "tmp" in empty
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            if doc["kind"] == "Deployment":
                assert container["livenessProbe"]["httpGet"]["port"] in {
                    p["name"] for p in container["ports"]
                }
    labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    covered = {
        name
        for budget in budgets
        for name, pod_labels in labels.items()
        if budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    }
    assert covered == {"querywatch-api", "querywatch-consumer"}
