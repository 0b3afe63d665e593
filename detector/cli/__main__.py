"""``python -m querywatch.detector.cli``: the same as the ``querywatch`` command."""

from __future__ import annotations

import sys

from querywatch.detector.cli import main

sys.exit(main())
