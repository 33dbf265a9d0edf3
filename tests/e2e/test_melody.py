"""The melody setting end to end: a melody checkpoint follows a tune from the inbox; a plain one refuses at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.clients.osc import OscClient
from bridge.clients.process import DaemonProcess
from tests.daemons import JOB_TIMEOUT_S, daemon_flags

pytestmark = pytest.mark.slow


def write_tune(tmp_path: Path) -> Path:
    """A 48 kHz stereo arpeggio in the inbox (an input root by default)."""
    rate, seconds = 48_000, 2.0
    t = np.arange(int(rate * seconds)) / rate
    pitch = np.repeat([220.0, 277.2, 329.6, 440.0], len(t) // 4 + 1)[: len(t)]
    tone = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / rate)
    path = tmp_path / "inbox" / "hook.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([tone, tone], axis=1), rate)
    return path


def generate_with_melody(model_dir: Path, tmp_path: Path, job_id: str) -> list:
    """Send one 1-bar generate with the tune as melody; the job's events up to done or error."""
    tune = write_tune(tmp_path)
    with DaemonProcess(daemon_flags(model_dir, tmp_path)) as daemon, OscClient(daemon.host, daemon.port) as client:
        client.hello()
        client.send("/continuo/generate", job_id, "default", "warm piano", 1.0, "melody", str(tune))
        return client.wait_job(job_id, JOB_TIMEOUT_S)


def test_a_melody_model_renders_with_the_tune(tiny_melody_model_dir, tmp_path):
    events = generate_with_melody(tiny_melody_model_dir, tmp_path, "mel-1")
    assert events[-1][0] == "/continuo/done", events[-1]
    outputs = [args for address, args in events if address == "/continuo/output"]
    assert outputs and Path(outputs[0][2]).is_file()


def test_a_plain_model_refuses_a_melody_before_queueing(tiny_model_dir, tmp_path):
    events = generate_with_melody(tiny_model_dir, tmp_path, "mel-2")
    address, args = events[-1]
    assert address == "/continuo/error" and args[1] == "bad_request" and "MusicGen-melody" in args[2]
    assert "/continuo/queued" not in [name for name, _ in events]
