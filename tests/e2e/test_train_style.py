"""`continuo train-style` as a user runs it beside a running `continuo serve` (tiny model): the training goes
through the daemon's queue with a progress bar of its /continuo/training events, a folder the daemon may not read
is copied into its inbox, Ctrl-C cancels the job; options only local training takes are refused with the advice
to add --local. (No daemon: tests/bridge/jobs/test_style_training.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.clients.commands import EXIT_CTRL_C, EXIT_USAGE
from bridge.clients.process import DaemonProcess
from inference.adapters import find_adapters
from tests.daemons import daemon_flags

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recordings(chord_recordings) -> Path:
    """Four 16 s files of chords (64 s in all) and a text file, outside the daemon's input roots."""
    return chord_recordings


@pytest.fixture(scope="module")
def trainer_daemon(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-daemon")
    (root / "inbox").mkdir()
    with DaemonProcess(daemon_flags(tiny_model_dir, root, "--lora-dir", str(root / "loras"))) as process:
        yield process, root


def train(port: int, *argv: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.cli", "train-style", *argv, "--osc-port", str(port)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)


def test_training_goes_through_the_daemon_with_its_progress(trainer_daemon, recordings):
    daemon, root = trainer_daemon
    result = train(daemon.port, str(recordings), "--name", "band", "--epochs", "1", "--learning-rate", "0.01")
    assert result.returncode == 0, result.stderr + daemon.log
    assert f"copied {recordings}" in result.stderr and "into the daemon's inbox" in result.stderr
    assert "training 'band' in the daemon" in result.stderr
    assert "queued at position" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch 1/1 step")]
    assert lines and " ETA " in lines[-1] and "loss" in lines[-1]
    steps = lines[-1].split("step ")[1].split()[0]
    assert steps.split("/")[0] == steps.split("/")[1]  # the last step shown is the last step
    assert "adapter band written to the daemon's lora_dir" in result.stdout
    assert set(find_adapters(root / "loras")) == {"band"}  # the daemon's lora_dir, not this process's
    copies = [p for p in (root / "inbox").iterdir() if p.name.startswith(recordings.name)]
    assert len(copies) == 1 and sorted(p.name for p in copies[0].glob("*.wav")) == [
        f"take {i}.wav" for i in range(4)]


def test_refusals_say_what_to_do(trainer_daemon, recordings, capsys):
    daemon, root = trainer_daemon
    argv = ["train-style", str(recordings), "--port", str(daemon.port)]  # as `continuo generate --port`
    assert main([*argv, "--name", "ranked", "--rank", "4"]) == EXIT_USAGE  # an option only local training takes
    assert "--rank" in (err := capsys.readouterr().err) and "add --local" in err, err
    (root / "loras").mkdir(exist_ok=True)
    (root / "loras" / "taken.safetensors").write_bytes(b"someone's")
    assert main([*argv, "--name", "taken"]) == 10  # the daemon's own refusal (bad_request), before any work
    assert "bad_request" in (err := capsys.readouterr().err) and "already exists" in err, err
    assert (root / "loras" / "taken.safetensors").read_bytes() == b"someone's"


def test_ctrl_c_cancels_the_daemons_job(trainer_daemon, recordings):
    daemon, root = trainer_daemon
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "train-style", str(recordings), "--name", "long",
                             "--epochs", "100", "--learning-rate", "0.001", "--osc-port", str(daemon.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("epoch 1/100 step"):
            break
    else:
        raise AssertionError(f"no progress line: {seen}; {daemon.log}")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == EXIT_CTRL_C
    rest = proc.stderr.read()
    assert "cancelled: style training cancelled after" in rest and "run it again" in rest, seen + [rest]
    assert "long" not in find_adapters(root / "loras")
