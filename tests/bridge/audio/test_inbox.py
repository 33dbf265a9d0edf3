"""Inputs are staged safely: a temporary name per staging, the copy verified before its rename, and two stagings
of one file at once (threads, processes) both end with a correct copy; a person's file is never overwritten."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import bridge.audio.inbox as inbox_module
from bridge.audio.inbox import MARKER_DIR, is_owned_copy, read_marker
from bridge.clients.inbox import stage_input
from bridge.errors import IoError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def source(tmp_path) -> Path:
    """A 6 MB input outside the inbox: big enough that two copies overlap in time."""
    path = tmp_path / "outside" / "take.wav"
    path.parent.mkdir()
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def slow_copyfile(src, dst, **_kwargs):
    """shutil.copyfile as a slow disk does it (a USB stick, a network share): 256 kB at a time."""
    import time

    with open(src, "rb") as reader, open(dst, "wb") as writer:
        while chunk := reader.read(256 * 1024):
            writer.write(chunk)
            writer.flush()
            time.sleep(0.002)
    return dst


def test_two_concurrent_stagings_of_one_file_both_end_with_a_correct_copy_threads(source, tmp_path, monkeypatch):
    """The control: before, both stagings wrote `.<name>.partial`; the first rename moved the other's half-written
    file under the final name, and the second rename failed (no such file)."""
    monkeypatch.setattr(shutil, "copyfile", slow_copyfile)
    inbox = tmp_path / "inbox"
    want = digest(source)
    for round_ in range(4):
        shutil.rmtree(inbox, ignore_errors=True)
        start, results, errors = threading.Barrier(2), [], []

        def stage() -> None:
            start.wait()
            try:
                staged = stage_input(source, inbox.as_posix())
                results.append((staged.path, digest(staged.path)))  # what the daemon would read now
            except Exception as exc:  # noqa: BLE001 (the test reports every failure)
                errors.append(exc)

        threads = [threading.Thread(target=stage) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}: {errors}"
        assert [d for _, d in results] == [want, want] and results[0][0] == results[1][0]
        assert not list(inbox.glob(".*.partial")) and is_owned_copy(results[0][0], want)


def test_concurrent_stagings_from_separate_processes_all_give_correct_copies(source, tmp_path):
    inbox = tmp_path / "inbox"
    script = ("import sys, hashlib; from bridge.clients.inbox import stage_input\n"
              "for _ in range(4):\n"
              "    p = stage_input(sys.argv[1], sys.argv[2]).path\n"
              "    print(p, hashlib.sha256(open(p, 'rb').read()).hexdigest(), flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(source), str(inbox)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(3)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outputs]
    lines = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(lines) == 12 and {digest for _, digest in lines} == {digest(source)}
    assert len({path for path, _ in lines}) == 1 and not list(inbox.glob(".*.partial"))


def test_a_copy_that_does_not_match_its_source_is_never_renamed_into_place(source, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"

    def short_copy(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:1000])  # a short write (or the source changed meanwhile)

    monkeypatch.setattr(inbox_module.shutil, "copyfile", short_copy)
    with pytest.raises(IoError, match="did not match"):
        stage_input(source, inbox.as_posix())
    assert [p.name for p in inbox.iterdir() if p.is_file()] == []


def test_a_persons_file_under_the_copys_name_is_never_overwritten(source, tmp_path):
    inbox = tmp_path / "inbox"
    first = stage_input(source, inbox.as_posix()).path
    marker = read_marker(first)
    assert marker is not None and marker.made_by == "cli" and marker.size == source.stat().st_size
    first.write_bytes(b"a person saved over it")  # no longer Continuo's copy
    second = stage_input(source, inbox.as_posix()).path
    assert second != first and first.read_bytes() == b"a person saved over it" and digest(second) == digest(source)
    assert (inbox / MARKER_DIR / f"{second.name}.json").is_file()


def test_reusing_a_copy_makes_it_young_again(source, tmp_path):
    inbox = tmp_path / "inbox"
    path = stage_input(source, inbox.as_posix()).path
    os.utime(path, (1, 1))
    assert stage_input(source, inbox.as_posix()).path == path and path.stat().st_mtime > 1e9
