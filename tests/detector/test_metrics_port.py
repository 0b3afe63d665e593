"""The workers' Prometheus port: a taken one is said as `serve` says its own."""

from __future__ import annotations

import socket

import pytest

from querywatch.detector.errors import QuerywatchError
from querywatch.detector.metrics import serve_metrics


def test_a_taken_metrics_port_is_said_with_the_setting_that_moves_it() -> None:
    """`consume` on a taken metrics port ended in a bare OSError naming neither port nor setting."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(
                QuerywatchError, match=f"metrics port 127.0.0.1:{port} cannot be listened on"
            ) as said,
            serve_metrics("127.0.0.1", port),
        ):
            pass
    assert said.value.hint is not None and "--metrics-port" in said.value.hint
