"""The real API fixture of the client tests."""

from tests.client.conftest import api  # noqa: F401
