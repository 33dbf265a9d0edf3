"""End-to-end fixtures: one `continuo serve` subprocess per test module (tiny model, loopback, OS-chosen ports).

A module that needs more flags overrides ``daemon_extra_flags``. Tests that start their own daemon
(restarts, kill -9, other limits) use ``DaemonProcess(daemon_flags(...))`` from tests.daemons.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import daemon_flags


@pytest.fixture(scope="module")
def daemon_root(tmp_path_factory) -> Path:
    """The module daemon's folder: renders/ (its output root), user-presets/ and inbox/ (an input root)."""
    root = tmp_path_factory.mktemp("daemon")
    (root / "user-presets").mkdir()
    (root / "inbox").mkdir()
    return root


@pytest.fixture(scope="module")
def daemon_extra_flags() -> tuple[str, ...]:
    """Flags the module daemon gets on top of tests.daemons.daemon_flags; override in a module to add some."""
    return ()


@pytest.fixture(scope="module")
def daemon_process(tiny_model_dir, daemon_root, daemon_extra_flags) -> Iterator[DaemonProcess]:
    """The module's daemon: `continuo serve` on the tiny model, shared by the module's tests, stopped at its end."""
    with DaemonProcess(daemon_flags(tiny_model_dir, daemon_root, *daemon_extra_flags)) as process:
        yield process


@pytest.fixture
def osc_client(daemon_process) -> Iterator[OscClient]:
    """An OSC-over-UDP client of the module daemon that has said hello (so events come back to it)."""
    with OscClient(daemon_process.host, daemon_process.port) as osc:
        osc.hello()
        yield osc
