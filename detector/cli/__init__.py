"""The ``querywatch`` command: one module per command group, the all-in-one runner.

``main`` imports only the module of the command being run, so ``--help`` stays fast.
"""

from __future__ import annotations

from querywatch.detector.cli.main import main

__all__ = ["main"]
