"""A full or failing disk loses nothing: the job ends `disk_full` (or `io_error`), nothing truncated sits under a
final name, the journal stays consistent, the daemon keeps serving, and the next job after space is freed runs.

Where this process may mount (root), the output root is a real 64 MiB tmpfs that fills up mid-render or is
remounted read-only; elsewhere those tests skip and say why, and the same paths run with the OS error injected
at the write call (always).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import soundfile as sf

import bridge.audio.files as audio_files
from bridge.daemon import load_model
from bridge.jobs.queue import JobStatus
from bridge.jobs.storage import DISK_RESERVE_BYTES

SENDER = ("127.0.0.1", 41000)
DISK_MB = 64


def _mount(folder: Path, options: str) -> str | None:
    """None once mounted, else why it could not be."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root here (the injected-error tests cover this path)"
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else f"mount -t tmpfs failed: {done.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MiB filesystem (tmpfs) at tmp_path/disk, unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    why = _mount(folder, f"size={DISK_MB}m")
    if why is not None:
        pytest.skip(why)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


class DiskHog:
    """Wraps the real engine: a prompt with FILL makes another program (this one) fill the disk while the model
    renders, leaving `leave_bytes` free; READONLY remounts it read-only; EIO makes the next writes fail."""

    def __init__(self, engine, disk: Path | None) -> None:
        self._engine, self.disk = engine, disk
        self.filler = disk / "other-program.bin" if disk is not None else None
        self.leave_bytes = 200 * 1024  # less than a 1 s stereo 24-bit WAV (288 kB): its write fails part way
        self.generated = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, **kwargs):
        self.generated += 1
        taken = self._engine.generate(request, **kwargs)
        if "FILL" in request.prompt:
            self.fill()
        if "READONLY" in request.prompt:
            subprocess.run(["mount", "-o", "remount,ro", str(self.disk)], check=True)
        return taken

    def fill(self) -> None:
        free = shutil.disk_usage(self.disk).free
        with open(self.filler, "wb") as handle:
            handle.truncate(0)
            block = b"\0" * (1 << 20)
            left = free - self.leave_bytes
            while left > 0:
                left -= handle.write(block[: min(left, len(block))])

    def free_space(self) -> None:
        self.filler.unlink()


@pytest.fixture
def hogged(small_disk, make_daemon_in_process):
    """A daemon whose output root (journal included) is the small disk, and the DiskHog around its engine."""
    hogs: list[DiskHog] = []
    daemon = make_daemon_in_process(engine_loader=lambda settings: hogs.append(
        DiskHog(load_model(settings), small_disk)) or hogs[-1], output_root=str(small_disk / "renders"))
    return daemon, hogs[0]


def job_folder_files(daemon, job_id: str) -> list[str]:
    folder = daemon.output_root / job_id
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def generate(daemon, job_id: str, prompt: str, bars: float = 0.5) -> tuple[str, list]:
    daemon.on_message("/continuo/generate", [job_id, "default", prompt, bars], SENDER)
    return daemon.sent.wait_terminal(job_id)


def assert_nothing_truncated(daemon, job_id: str) -> None:
    files = job_folder_files(daemon, job_id)
    assert not [name for name in files if name.endswith((".wav", ".partial"))], files
    assert not list(daemon.output_root.glob("**/*.partial"))


def assert_next_job_runs(daemon, job_id: str = "after-1") -> None:
    address, args = generate(daemon, job_id, "plain")
    assert address == "/continuo/done", args
    mix = daemon.output_root / job_id / "mix.wav"
    assert sf.info(str(mix)).frames > 0 and daemon.journal.get(job_id).status is JobStatus.DONE


def test_disk_full_mid_render_fails_the_job_and_the_next_one_runs_once_space_is_freed(hogged):
    daemon, hog = hogged
    address, args = generate(daemon, "full-1", "FILL the disk")
    assert address == "/continuo/error" and args[1] == "disk_full", args
    assert "full" in args[2] and "mix.wav" in args[2] and "continuo prune" in args[2]
    assert_nothing_truncated(daemon, "full-1")
    record = daemon.journal.get("full-1")  # the journal lives on the full disk too, and stays consistent
    assert record.status is JobStatus.FAILED and record.error_code == "disk_full" and record.outputs == ()
    daemon.on_message("/continuo/ping", [7], SENDER)
    assert ("/continuo/pong", [7]) in list(daemon.sent)  # still serving
    hog.free_space()
    assert_next_job_runs(daemon)


def test_a_render_that_cannot_fit_is_refused_before_the_model_runs(hogged):
    daemon, hog = hogged
    hog.leave_bytes = DISK_RESERVE_BYTES // 2
    hog.fill()
    address, args = generate(daemon, "early-1", "plain")
    assert address == "/continuo/error" and args[1] == "disk_full", args
    assert "not enough free space" in args[2] and "nothing was rendered" in args[2]
    assert hog.generated == 0  # refused before minutes of rendering
    assert job_folder_files(daemon, "early-1") == []
    hog.free_space()
    assert_next_job_runs(daemon)


def test_a_read_only_output_root_fails_the_job_with_the_reason_and_serving_goes_on(small_disk, tmp_path,
                                                                                     make_daemon_in_process):
    def loader(settings):
        return DiskHog(load_model(settings), small_disk)

    daemon = make_daemon_in_process(engine_loader=loader, output_root=str(small_disk / "renders"),
                                    journal_path=str(tmp_path / "journal.sqlite3"))
    try:
        address, args = generate(daemon, "ro-1", "READONLY now")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert address == "/continuo/error" and args[1] == "io_error" and "read-only" in args[2], args
    assert_nothing_truncated(daemon, "ro-1")
    assert daemon.journal.get("ro-1").error_code == "io_error"
    assert_next_job_runs(daemon)


# -- the same paths with the OS error injected at the write call (no mount needed: runs everywhere) ------------
class FailingWrites:
    """os.write as bridge/audio/files.py sees it: once armed, a write into the renders fails with `error` after
    some bytes went out (a disk that fills or breaks part way through a file)."""

    def __init__(self, error: int) -> None:
        self.error, self.armed = error, threading.Event()
        self.real = os.write

    def __call__(self, fd: int, data) -> int:
        if self.armed.is_set() and len(data) > 1024:
            self.real(fd, bytes(data[:1024]))
            raise OSError(self.error, os.strerror(self.error))
        return self.real(fd, data)


@pytest.mark.parametrize("error, code, words", [(errno.ENOSPC, "disk_full", "is full"),
                                                (errno.EIO, "io_error", "input/output error")])
def test_an_injected_write_error_mid_render_fails_the_job_and_leaves_no_partial(make_daemon_in_process, monkeypatch,
                                                                               error, code, words):
    writes = FailingWrites(error)
    monkeypatch.setattr(audio_files.os, "write", writes)

    class Arming:
        def __init__(self, engine) -> None:
            self._engine = engine

        def __getattr__(self, name):
            return getattr(self._engine, name)

        def generate(self, request, **kwargs):
            taken = self._engine.generate(request, **kwargs)
            if "BREAK" in request.prompt:
                writes.armed.set()
            return taken

    daemon = make_daemon_in_process(engine_loader=lambda settings: Arming(load_model(settings)))
    address, args = generate(daemon, f"inj-{uuid.uuid4().hex[:6]}", "BREAK the disk")
    assert address == "/continuo/error" and args[1] == code and words in args[2], args
    assert_nothing_truncated(daemon, args[0])
    assert daemon.journal.get(args[0]).status is JobStatus.FAILED
    writes.armed.clear()
    assert_next_job_runs(daemon)


def test_a_journal_that_cannot_record_the_end_does_not_stop_the_worker(make_daemon_in_process, monkeypatch):
    """The job's end is sent even when its journal update fails (a full disk under the journal), the row
    stays `running` (consistent: the next start marks it interrupted) and the next job runs."""
    from bridge.errors import IoError

    daemon = make_daemon_in_process()
    real_finish = daemon.journal.finish

    def finish(job_id, status, **details):
        if job_id == "nojournal-1":
            raise IoError("job journal: database or disk is full")
        return real_finish(job_id, status, **details)

    monkeypatch.setattr(daemon.journal, "finish", finish)
    address, _ = generate(daemon, "nojournal-1", "plain")
    assert address == "/continuo/done"
    assert daemon.journal.get("nojournal-1").status is JobStatus.RUNNING
    assert_next_job_runs(daemon)


def test_the_estimate_grows_with_what_the_job_writes_and_a_sizeless_filesystem_is_not_judged(tmp_path, monkeypatch):
    import collections

    import bridge.jobs.storage as storage
    from bridge.audio.presets import builtin_presets_dir, load_presets
    from bridge.errors import DiskFull
    from bridge.jobs.plan import build_plan

    presets = load_presets([builtin_presets_dir()])

    def plan(**params):
        base = {"preset": "default", "prompt": "x", "bars": 8.0, "input_path": None, "settings": {}, "seed": 1,
                "context": {"bpm": 120.0, "beats_per_bar": 4, "beat_unit": 4, "key": "", "sample_rate": 48000}}
        return build_plan(params.pop("op", "generate"), {**base, **params}, presets, [tmp_path])

    mix = storage.estimate_bytes(plan())
    assert mix >= 16 * 48000 * 2 * 3  # 8 bars at 120 BPM, stereo, 24-bit: at least the mix itself
    assert storage.estimate_bytes(plan(settings={"stems": "drums,bass"})) > mix
    assert storage.estimate_bytes(plan(op="variations", count=4)) > mix
    Usage = collections.namedtuple("Usage", "total used free")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda _path: Usage(10**9, 10**9, mix))
    with pytest.raises(DiskFull, match="not enough free space"):
        storage.check_room(tmp_path, plan(), "j")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda _path: Usage(0, 0, 0))  # a mount that reports nothing
    storage.check_room(tmp_path, plan(), "j")
