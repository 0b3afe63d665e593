"""The compose file and the Kubernetes manifests ask only for what the built image has.

Reads both, then asks the image itself: every querywatch command they run parses with the
image's CLI, every QUERYWATCH_* variable is one of the image's settings, every port is one
the image exposes and listens on, the user id is the image's, every volume they mount over
exists in the image and belongs to that user, and the numba cache lies on a writable mount.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_deploy_files import (
    DEPLOY,
    _compose,
    _containers,
    _env_names,
    _manifests,
    _querywatch_commands,
)
from tests.image.container import ContainerEngine

pytestmark = pytest.mark.image

# Run in the image with a JSON spec: commands, variable names, paths and tools to check.
PROBE = r"""
import json, os, shutil, sys
from pydantic import BaseModel
from querywatch.detector.cli.commands import build_parser
from querywatch.detector.config import Settings
spec = json.loads(sys.argv[1])
parser = build_parser()
def parses(command):
    try:
        parser.parse_args(command)
    except SystemExit:
        return False
    return True
def setting(name):
    model = Settings
    parts = name.removeprefix("QUERYWATCH_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
                return False
            model = field.annotation
    return True
settings = Settings()
print(json.dumps({
    "bad_commands": [c for c in spec["commands"] if not parses(c)],
    "unknown_env": [n for n in spec["env"] if not setting(n)],
    "paths": {p: [os.path.isdir(p), os.stat(p).st_uid if os.path.exists(p) else None] for p in spec["paths"]},
    "tools": {t: shutil.which(t) for t in spec["tools"]},
    "api_port": settings.api.port,
}))
"""


def _querywatch_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _compose()["services"].items()
        if str(service.get("image", "")).startswith("querywatch")
    }


def _pods() -> list[dict[str, Any]]:
    return [doc["spec"]["template"]["spec"] for doc in _manifests() if _containers(doc)]


def _ports() -> set[int]:
    """Every container port the compose file and the manifests name for querywatch."""
    ports: set[int] = set()
    for command in _querywatch_commands():
        if "--metrics-port" in command:
            ports.add(int(command[command.index("--metrics-port") + 1]))
    for service in _querywatch_services().values():
        ports |= {int(str(mapping).rsplit(":", 1)[1]) for mapping in service.get("ports", [])}
    for pod in _pods():
        for container in pod["containers"]:
            ports |= {p["containerPort"] for p in container.get("ports", [])}
    return ports


def _mounts() -> set[str]:
    targets = {
        str(volume).split(":")[1]
        for service in _querywatch_services().values()
        for volume in service.get("volumes", [])
    }
    for pod in _pods():
        for container in pod["containers"]:
            targets |= {m["mountPath"] for m in container.get("volumeMounts", [])}
    return targets


def test_compose_and_manifests_match_the_image(engine: ContainerEngine) -> None:
    config = json.loads(engine("image", "inspect", engine.image))[0]["Config"]
    image_env = dict(item.split("=", 1) for item in config["Env"])
    shell_tools = ["sh", "head", "test"]  # the metrics-key job's `sh -c` line
    spec = {
        "commands": _querywatch_commands(),
        "env": sorted(_env_names() | {n for n in image_env if n.startswith("QUERYWATCH_")}),
        "paths": sorted(_mounts()),
        "tools": shell_tools,
    }
    done = engine.run("-c", PROBE, json.dumps(spec), entrypoint="python")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["bad_commands"] == [] and probe["unknown_env"] == [], probe
    assert all(probe["tools"].values()), probe["tools"]

    user, group = (int(part) for part in config["User"].split(":"))
    for pod in _pods():
        context = pod["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (user, group, group)

    exposed = {int(port.split("/")[0]) for port in config["ExposedPorts"]}
    assert _ports() <= exposed and probe["api_port"] in exposed, (_ports(), exposed)

    for path, (is_dir, owner) in probe["paths"].items():
        assert is_dir, f"{path}: the deploy files mount over it, but the image has no such directory"
        assert path == "/tmp" or owner == user, f"{path} belongs to uid {owner}, not {user}"
    numba = image_env["NUMBA_CACHE_DIR"]
    for pod in _pods():
        empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            writable = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty]
            assert any(numba.startswith(f"{path.rstrip('/')}/") for path in writable), container["name"]


def test_compose_file_passes_compose_config(tmp_path: Path) -> None:
    if shutil.which("podman"):
        podman_compose = Path(sys.executable).with_name("podman-compose")
        command = [str(podman_compose), "-f", str(DEPLOY / "compose.yaml"), "config"]
    else:
        command = ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "querywatch" in done.stdout
