"""The client tests drive a real `continuo serve` (tiny model): the end-to-end fixtures, shared."""

from tests.e2e.conftest import daemon_extra_flags, daemon_process, daemon_root  # noqa: F401
