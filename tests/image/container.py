"""A container engine driven like ``docker`` (docker, podman, or CI's ``.ci/containers``).

The image tests run the image built by ``make image`` with the host's network, so the
containers reach this machine's PostgreSQL and a broker started on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ContainerEngine:
    """``command`` is the engine's argument prefix, e.g. ``["podman"]``."""

    command: list[str]
    image: str
    started: list[str] = field(default_factory=list)

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args[:3])}… exited {done.returncode}: {done.stderr[-3000:]}")
        return done.stdout

    def _options(self, env: Mapping[str, str], mounts: Sequence[str], read_only: bool) -> list[str]:
        options = ["--network", "host"]
        if read_only:  # as the Kubernetes manifests run it: a read-only root, /tmp writable
            options += ["--read-only", "--tmpfs", "/tmp"]
        for name, value in env.items():
            options += ["-e", f"{name}={value}"]
        for mount in mounts:
            options += ["-v", mount]
        return options

    def run(
        self,
        *args: str,
        env: Mapping[str, str] = {},
        mounts: Sequence[str] = (),
        entrypoint: str | None = None,
        read_only: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a fresh container to its end; returns its output and exit code."""
        options = self._options(env, mounts, read_only)
        if entrypoint is not None:
            options += ["--entrypoint", entrypoint]
        return subprocess.run(
            [*self.command, "run", "--rm", *options, self.image, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(
        self, *args: str, env: Mapping[str, str] = {}, mounts: Sequence[str] = (), read_only: bool = True
    ) -> str:
        """Start a detached container; returns its name (removed by ``remove_all``)."""
        name = f"qw-test-{uuid.uuid4().hex[:10]}"
        self("run", "-d", "--name", name, *self._options(env, mounts, read_only), self.image, *args)
        self.started.append(name)
        return name

    def running(self, name: str) -> bool:
        return self.inspect(name)["State"]["Running"] is True

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self("inspect", name))[0])

    def stop(self, name: str, grace_s: int = 30) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code (137: it was killed)."""
        self("stop", "-t", str(grace_s), name, timeout=grace_s + 60)
        return int(self.inspect(name)["State"]["ExitCode"])

    def logs(self, name: str) -> str:
        done = subprocess.run(
            [*self.command, "logs", name], capture_output=True, text=True, timeout=60, check=False
        )
        return (done.stdout + done.stderr)[-4000:]

    def remove_all(self) -> None:
        for name in self.started:
            self("rm", "-f", name, check=False)
        self.started.clear()
