"""/continuo/variations end to end: the daemon (our engine, tiny model) writes variation-1..N, each journalled
and announced, with its own seed in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import JOB_TIMEOUT_S, daemon_flags

pytestmark = pytest.mark.slow


def test_variations_write_one_output_each(tiny_model_dir, tmp_path):
    with DaemonProcess(daemon_flags(tiny_model_dir, tmp_path)) as daemon, OscClient(daemon.host, daemon.port) as client:
        client.hello()
        client.send("/continuo/variations", "var-1", "default", "", 3, 1.0)
        events = client.wait_job("var-1", JOB_TIMEOUT_S)
    names = [address for address, _ in events]
    assert names[-1] == "/continuo/done", events[-1]
    outputs = [args for address, args in events if address == "/continuo/output"]
    assert [args[1] for args in outputs] == ["variation-1", "variation-2", "variation-3"]
    assert all(Path(args[2]).is_file() for args in outputs)
    manifest = json.loads((Path(outputs[0][2]).parent / "manifest.json").read_text())
    seeds = manifest["variation_seeds"]
    assert list(seeds) == ["variation-1", "variation-2", "variation-3"]
    assert seeds["variation-2"] == seeds["variation-1"] + 1 == manifest["seed"] + 1
