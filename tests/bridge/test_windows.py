"""What Windows does differently, simulated here (os.name, a signal module without SIGTERM or with SIGBREAK, a file
held open by another program), each with the control that the POSIX path is unchanged. What cannot be simulated is
listed in docs/install.md ("Windows: not verified")."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

import bridge.audio.files as files
import bridge.clients.process as process
from bridge.daemon import stop_on_signals
from bridge.errors import IoError

ROOT = Path(__file__).resolve().parents[2]


class OsAs(types.ModuleType):
    """The os module as a module under test sees it, with another os.name (pytest itself keeps the real one: it
    makes Paths while reporting, and a WindowsPath cannot be made here)."""

    def __init__(self, name: str) -> None:
        super().__init__("os")
        self.name = name

    def __getattr__(self, attribute: str):
        return getattr(os, attribute)


def pretend(monkeypatch, name: str, *modules) -> None:
    for module in modules:
        monkeypatch.setattr(module, "os", OsAs(name))


@pytest.fixture
def windows(monkeypatch):
    pretend(monkeypatch, "nt", files)
    monkeypatch.setattr(files.time, "sleep", lambda seconds: None)


def held_open(monkeypatch, refusals: int) -> list[Path]:
    """os.replace refuses (access denied, as Windows does for a target another program holds open) `refusals`
    times, then renames; returns the list of attempts."""
    attempts, real_replace = [], os.replace

    def replace(source, target):
        attempts.append(Path(target))
        if len(attempts) <= refusals:
            raise PermissionError(errno.EACCES, "Access is denied", str(target))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return attempts


def test_a_target_held_open_for_a_moment_is_replaced_after_retries(windows, monkeypatch, tmp_path):
    target = tmp_path / "take.wav"
    target.write_bytes(b"old")
    attempts = held_open(monkeypatch, refusals=3)
    files.write_bytes_atomic(target, b"new\nbytes")
    assert target.read_bytes() == b"new\nbytes" and len(attempts) == 4
    assert not list(tmp_path.glob(".*.partial"))


def test_a_target_held_open_for_good_is_said_as_such_and_leaves_nothing(windows, monkeypatch, tmp_path):
    target = tmp_path / "take.wav"
    target.write_bytes(b"old")
    attempts = held_open(monkeypatch, refusals=100)
    with pytest.raises(IoError, match="open in another program"):
        files.write_bytes_atomic(target, b"new")
    assert len(attempts) == len(files.REPLACE_RETRY_WAITS_S) + 1
    assert target.read_bytes() == b"old" and not list(tmp_path.glob(".*.partial"))
    source = tmp_path / "source.wav"
    source.write_bytes(b"x")
    with pytest.raises(IoError, match="open in another program"):  # the DAW-named link or copy, the same way
        files.link_or_copy_atomic(source, target)
    assert not list(tmp_path.glob(".*.partial"))


def test_posix_raises_the_first_refusal(monkeypatch, tmp_path):
    """The control: off Windows a refused rename is a permission problem, said at once (no waiting)."""
    target = tmp_path / "take.wav"
    attempts = held_open(monkeypatch, refusals=100)
    with pytest.raises(IoError, match="no permission"):
        files.write_bytes_atomic(target, b"new")
    assert len(attempts) == 1


def test_no_directory_fsync_on_windows(windows, monkeypatch, tmp_path):
    """Windows cannot open a directory: os.open on one fails there. The write must not try."""
    real_open = os.open
    opened = []

    def os_open(path, flags, *args):
        opened.append((Path(path), flags))
        if Path(path).is_dir():
            raise PermissionError(errno.EACCES, "Access is denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", os_open)
    files.write_wav_atomic(tmp_path / "job" / "a.wav", np.zeros((2, 480), np.float32), 48000)
    assert (tmp_path / "job" / "a.wav").stat().st_size > 44
    assert all(not path.is_dir() for path, _ in opened)
    pretend(monkeypatch, "posix", files)  # the control: POSIX fsyncs the folder, which this os.open refuses
    with pytest.raises(IoError):
        files.write_wav_atomic(tmp_path / "job" / "b.wav", np.zeros((2, 480), np.float32), 48000)


def test_files_are_written_binary(monkeypatch, tmp_path):
    """O_BINARY where the platform has it (Windows translates newlines in text mode): the flag reaches os.open."""
    monkeypatch.setattr(os, "O_BINARY", 0x8000, raising=False)
    real_open, flags_seen = os.open, []

    def os_open(path, flags, *args):
        flags_seen.append(flags)
        return real_open(path, flags & ~0x8000, *args)

    monkeypatch.setattr(os, "open", os_open)
    files.write_bytes_atomic(tmp_path / "a.bin", b"\n\r\n")
    assert flags_seen[0] & 0x8000 and (tmp_path / "a.bin").read_bytes() == b"\n\r\n"


class Stoppable:
    def __init__(self) -> None:
        self.stops = 0

    def request_stop(self) -> None:
        self.stops += 1


def test_ctrl_c_stops_the_daemon_where_there_is_no_sigterm(monkeypatch):
    monkeypatch.delattr(signal, "SIGTERM")
    monkeypatch.delattr(signal, "SIGBREAK", raising=False)
    daemon = Stoppable()
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(daemon):
        signal.raise_signal(signal.SIGINT)
    assert daemon.stops == 1 and signal.getsignal(signal.SIGINT) is before


def test_ctrl_break_stops_the_daemon_on_windows(monkeypatch):
    """Windows' SIGBREAK (stood in for by SIGUSR1, which this platform can raise) is one of the stop signals; the
    control: outside the context the previous handler is back."""
    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)
    daemon = Stoppable()
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        with stop_on_signals(daemon):
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGTERM)
        assert daemon.stops == 2
        signal.raise_signal(signal.SIGUSR1)
        assert daemon.stops == 2
    finally:
        signal.signal(signal.SIGUSR1, previous)


class FakePopen:
    def __init__(self, args, **kwargs) -> None:
        self.kwargs, self.sent, self.stdout = kwargs, [], iter(["continuo ready: osc=udp://127.0.0.1:9000\n"])

    def send_signal(self, sig) -> None:
        self.sent.append(sig)

    def poll(self):
        return None if not self.sent else 0

    def wait(self, timeout=None) -> int:
        return 0


@pytest.mark.parametrize("platform", ["nt", "posix"])
def test_the_daemon_child_is_stopped_with_the_platforms_own_signal(platform, monkeypatch):
    """Windows: a process group of its own and Ctrl+Break (SIGTERM there is TerminateProcess: no shutdown phases);
    POSIX: SIGTERM, no creation flags."""
    monkeypatch.setattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200, raising=False)
    monkeypatch.setattr(signal, "CTRL_BREAK_EVENT", 1, raising=False)
    monkeypatch.setattr(process.subprocess, "Popen", FakePopen)
    pretend(monkeypatch, platform, process)
    daemon = process.DaemonProcess([]).start()
    daemon.stop()
    if platform == "nt":
        assert daemon.proc.kwargs["creationflags"] == 0x200 and daemon.proc.sent == [signal.CTRL_BREAK_EVENT]
    else:
        assert "creationflags" not in daemon.proc.kwargs and daemon.proc.sent == [signal.SIGTERM]


IPC = re.compile(r"""["'](ipc|inproc)://""")


def ipc_endpoints(text: str) -> list[str]:
    return IPC.findall(text)


def test_zeromq_needs_no_ipc_transport():
    """Windows' libzmq builds may lack ipc://: every endpoint we bind or connect is tcp://. The control: the scan
    finds an ipc endpoint in a line that has one."""
    assert ipc_endpoints('sock.bind("ipc:///tmp/continuo")') == ["ipc"]
    found = {str(path.relative_to(ROOT)): ipc_endpoints(path.read_text())
             for path in (ROOT / "bridge").rglob("*.py")}
    assert not {path: hits for path, hits in found.items() if hits}
    import zmq

    from bridge.transports.zmq import _bind

    context = zmq.Context.instance()
    with context.socket(zmq.ROUTER) as sock:
        assert _bind(sock, "127.0.0.1", 0).startswith("tcp://127.0.0.1:")
