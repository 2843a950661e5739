"""The system fixtures (a real gateway on Ray and the embedded database) for the load tester's tests."""

from tests.system.conftest import gateway_url, ws_url  # noqa: F401
