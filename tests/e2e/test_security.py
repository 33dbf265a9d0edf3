"""Security: input roots after resolving symlinks, non-loopback binds need an allow-list or keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.errors import BadRequest, ConfigError
from bridge.jobs.plan import resolve_input
from bridge.protocol.schema import load_schema
from bridge.settings import load_settings
from bridge.transports.udp import OscUdpServer

SCHEMA = load_schema()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def roots(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.wav").write_bytes(b"RIFF")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.wav").write_bytes(b"RIFF")
    return inbox, secret


def test_a_file_under_a_root_is_read(roots):
    inbox, _ = roots
    assert resolve_input(str(inbox / "ok.wav"), [inbox.resolve()]) == (inbox / "ok.wav").resolve()


@pytest.mark.parametrize("make", [
    lambda inbox, secret: str(inbox / ".." / "secret" / "key.wav"),  # ../
    lambda inbox, secret: str(secret / "key.wav"),  # absolute path elsewhere
    lambda inbox, secret: "/etc/passwd",
    lambda inbox, secret: _link(inbox / "link.wav", secret / "key.wav"),  # symlinked file out of the root
    lambda inbox, secret: _link(inbox / "door", secret) + "/key.wav",  # symlinked folder out of the root
], ids=["dotdot", "absolute-elsewhere", "etc-passwd", "symlink-file", "symlink-dir"])
def test_paths_out_of_the_roots_are_refused(roots, make):
    inbox, secret = roots
    with pytest.raises(BadRequest) as info:
        resolve_input(make(inbox, secret), [inbox.resolve()])
    assert "outside the allowed input folders" in info.value.message


def _link(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return str(link)


@pytest.mark.parametrize("value", ["../x", "a/b", "", "-x", "x" * 65, "job id", "ünï", "a\x00b"])
def test_job_ids_are_validated_against_the_strict_pattern(value):
    with pytest.raises(BadRequest):
        SCHEMA.parse("/continuo/get", [value])


@pytest.mark.parametrize("value", ["../default", "Default", "a/b", "x" * 49, ""])
def test_preset_names_are_validated(value):
    with pytest.raises(BadRequest):
        SCHEMA.parse("/continuo/generate", ["j1", value, "", 1.0])


def test_non_loopback_osc_needs_an_allow_list():
    with pytest.raises(ConfigError) as info:
        load_settings({"osc_host": "0.0.0.0"}, environ={})
    assert "osc_allowed_hosts" in info.value.message
    settings = load_settings({"osc_host": "0.0.0.0", "osc_allowed_hosts": "192.168.1.20", "zmq_port": "-1"},
                             environ={})
    assert settings.osc_allowed_hosts == "192.168.1.20"
    with pytest.raises(ConfigError):
        load_settings({"osc_host": "0.0.0.0", "osc_allowed_hosts": "studio.local"}, environ={})


def test_non_loopback_zmq_needs_curve_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings({"zmq_host": "0.0.0.0"}, environ={})
    assert "continuo keys" in info.value.message and "zmq_keys_dir" in info.value.message
    assert load_settings({"zmq_host": "0.0.0.0", "zmq_keys_dir": str(tmp_path)}, environ={}).zmq_keys_dir == tmp_path
    assert load_settings({"zmq_host": "0.0.0.0", "zmq_port": "-1"}, environ={}).zmq_port == -1  # off: fine


@pytest.mark.parametrize("flags, says", [
    (["--osc-host", "0.0.0.0"], "osc_allowed_hosts"),
    (["--zmq-host", "0.0.0.0"], "zmq_keys_dir"),
])
def test_serve_refuses_to_start_saying_what_to_configure(tmp_path, flags, says):
    result = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", *flags, "--output-root", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and says in result.stderr and "continuo ready" not in result.stdout


def test_udp_drops_senders_outside_the_allow_list():
    calls = []
    server = OscUdpServer("127.0.0.1", 0, lambda *a: calls.append(a), allowed_hosts={"10.0.0.9"})
    server.handle_datagram(SCHEMA.build_event("/continuo/pong", 1).replace(b"pong", b"ping"), ("127.0.0.1", 5))
    server.handle_datagram(b"/continuo/ping\x00\x00,i\x00\x00\x00\x00\x00\x01", ("10.0.0.9", 5))
    assert [c[2] for c in calls] == [("10.0.0.9", 5)]
