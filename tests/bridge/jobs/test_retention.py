"""Retention removes only what is the daemon's own: journal rows of findable jobs, left-over partials, staging
left-overs and its own marked inbox copies. A finished render is never removed, whatever the settings."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bridge.audio.inbox import MARKER_DIR, mark_owned, prune_inbox, sha256_of, write_owned
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.queue import JobStatus
from bridge.jobs.retention import RetentionTimer, forget_old_rows, remove_partials
from bridge.settings import load_settings
from tests.daemons import daemon_settings, running_daemon

DEST = ("127.0.0.1", 9001)
SENDER = ("127.0.0.1", 41000)
PARAMS = {"preset": "default", "prompt": "x", "bars": 1.0, "input_path": None, "settings": {},
          "context": {"bpm": 120.0}}


def finished(journal: Journal, job_id: str, root: Path, *, ago_s: float = 0.0, manifest: bool = True,
             status: JobStatus = JobStatus.DONE) -> Path:
    """A finished job as the worker leaves it: mix.wav, its DAW-named link, manifest.json, the journal row."""
    journal.insert_job(job_id, "generate", PARAMS, DEST)
    folder = root / job_id
    folder.mkdir(parents=True)
    if status is JobStatus.DONE:
        (folder / "mix.wav").write_bytes(b"RIFF" + job_id.encode())
        os.link(folder / "mix.wav", folder / f"{job_id}_mix_1bars_120bpm.wav")
        output = OutputRecord("mix", (folder / "mix.wav").as_posix(), 48000, 2, 2.0, 1.0, -14.0, -1.0)
        journal.add_output(job_id, output)
        if manifest:
            (folder / "manifest.json").write_text(json.dumps({"job_id": job_id, "op": "generate", "seed": 1,
                                                              "outputs": [output.__dict__], "params": PARAMS}))
    journal.finish(job_id, status, seed=1, elapsed_s=1.0)
    if ago_s:
        journal._write("UPDATE jobs SET updated_at = ? WHERE job_id = ?", (time.time() - ago_s, job_id))
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_render_referenced_by_its_daw_name_survives_a_startup_and_aggressive_retention(tiny_model_dir, tmp_path):
    with running_daemon(daemon_settings(tiny_model_dir, tmp_path)) as daemon:
        daemon.on_message("/continuo/generate", ["daw-1", "default", "keep me", 0.5], SENDER)
        assert daemon.sent.wait_terminal("daw-1")[0] == "/continuo/done"
        root = daemon.output_root
    daw_file = next(root.glob("daw-1/daw-1_mix_*bars_*bpm*.wav"))  # what the Reaper script and Live users link
    before = snapshot(root / "daw-1")
    aggressive = daemon_settings(tiny_model_dir, tmp_path, retention_age_s=0.001, retention_max_jobs=1,
                                 inbox_copies_age_s=0.001)
    with running_daemon(aggressive) as daemon:  # startup runs a retention pass
        daemon.retention.prune()
        daemon.retention.prune()
        assert daw_file.is_file() and snapshot(root / "daw-1") == before
        assert daemon.journal.get("daw-1") is None  # the row was ours, and the job stays findable without it
        daemon.on_message("/continuo/get", ["daw-1"], SENDER)  # answered from the job's manifest
        outputs = [args for address, args in daemon.sent.of("daw-1") if address == "/continuo/output"]
        assert [args[2] for args in outputs] == [(root / "daw-1" / "mix.wav").as_posix()]
        assert daemon.sent.wait_terminal("daw-1")[0] == "/continuo/done"


@pytest.mark.parametrize("age_s, max_jobs", [(0, 0), (0, 2), (1e9, 0)])  # each rule off at 0
def test_retention_settings_of_zero_forget_nothing_and_delete_nothing(tmp_path, age_s, max_jobs):
    """The control for 0: before, retention_age_s 0 or retention_max_jobs 0 removed every finished job with its
    files within a minute. Now 0 turns its rule off, and the other rule alone keeps these two rows."""
    root = tmp_path / "renders"
    journal = Journal(tmp_path / "journal.sqlite3")
    for index in range(2):
        finished(journal, f"old-{index}", root, ago_s=400 * 86400)
    before = snapshot(root)
    settings = load_settings({"output_root": str(root), "retention_age_s": str(age_s),
                              "retention_max_jobs": str(max_jobs)}, environ={})
    RetentionTimer(journal, root, settings).prune()
    assert snapshot(root) == before and journal.count() == 2
    journal.close()


def test_only_rows_are_forgotten_and_only_where_the_job_stays_findable(tmp_path):
    root = tmp_path / "renders"
    journal = Journal(tmp_path / "journal.sqlite3")
    with_manifest = finished(journal, "kept-files", root, ago_s=3600)
    without_manifest = finished(journal, "no-manifest", root, ago_s=3600, manifest=False)
    finished(journal, "failed-1", root, ago_s=3600, status=JobStatus.FAILED)
    journal.insert_job("waiting", "generate", PARAMS, DEST)
    before = snapshot(root)
    forgotten = forget_old_rows(journal, root, max_age_s=600, max_jobs=0)
    assert sorted(forgotten) == ["failed-1", "kept-files"]
    assert journal.get("no-manifest") is not None  # its row is the only record of its outputs: kept
    assert journal.get("waiting").status is JobStatus.QUEUED
    assert snapshot(root) == before and with_manifest.is_dir() and without_manifest.is_dir()
    journal.close()


def test_left_over_partials_go_at_startup_and_finished_files_stay(tmp_path):
    job = tmp_path / "job-1"
    (job / "preview" / "variation-1").mkdir(parents=True)
    for partial in (job / ".mix.wav.1a2b3c4d.partial", job / "preview" / ".chunk-0001.wav.partial",
                    job / "preview" / "variation-1" / ".chunk-0002.wav.aa.partial"):
        partial.write_bytes(b"half")
    (job / "mix.wav").write_bytes(b"RIFF")
    assert remove_partials(tmp_path) == 3
    assert [p.name for p in job.rglob("*") if p.is_file()] == ["mix.wav"]


# -- the inbox: only Continuo's own, marked copies -------------------------------------------------------------
def aged(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_inbox_loses_only_old_marked_copies_never_a_file_of_the_same_kind_of_name(tmp_path):
    inbox = tmp_path / "inbox"
    old_copy, fresh_copy, busy_copy = inbox / "zmq-job-1-aaaa.wav", inbox / "web-1-b.wav", inbox / "clip-12ab.wav"
    for path in (old_copy, fresh_copy, busy_copy):
        write_owned(path, b"RIFF" + path.name.encode(), made_by="test")
    users = inbox / "zmq-my-own-take.wav"  # a person's file with the name the old daemon pruned by
    users.write_bytes(b"RIFF mine")
    changed = inbox / "changed-copy.wav"
    write_owned(changed, b"RIFF copy", made_by="cli")
    changed.write_bytes(b"RIFF edited by a person")
    for path in (old_copy, busy_copy, users, changed):
        aged(path, 2 * 86400)
    (inbox / MARKER_DIR / "gone.wav.json").write_text("{}")  # a marker whose copy is already gone
    removed = prune_inbox(inbox, max_age_s=86400, in_use=[busy_copy])
    assert removed == 1 and not old_copy.exists() and not (inbox / MARKER_DIR / "zmq-job-1-aaaa.wav.json").exists()
    assert fresh_copy.exists() and busy_copy.exists() and users.read_bytes() == b"RIFF mine"
    assert changed.read_bytes() == b"RIFF edited by a person"  # changed: it is someone's file now
    assert not (inbox / MARKER_DIR / "changed-copy.wav.json").exists()  # and no longer marked as a copy
    assert not (inbox / MARKER_DIR / "gone.wav.json").exists()
    assert prune_inbox(inbox, max_age_s=86400) == 1  # busy no more
    assert prune_inbox(inbox, max_age_s=0) == 0 and prune_inbox(tmp_path / "no-inbox-yet", max_age_s=1) == 0


def test_a_marked_copy_behind_a_symlink_is_never_followed(tmp_path):
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "precious.wav"
    inbox.mkdir()
    elsewhere.write_bytes(b"RIFF precious")
    (inbox / "link.wav").symlink_to(elsewhere)
    mark_owned(inbox / "link.wav", size=13, sha256=sha256_of(elsewhere), made_by="test")
    aged(elsewhere, 2 * 86400)
    assert prune_inbox(inbox, max_age_s=60) == 0
    assert elsewhere.read_bytes() == b"RIFF precious" and (inbox / "link.wav").is_symlink()


def test_staging_left_overs_go_after_an_hour_and_a_staging_under_way_stays(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stale, live = inbox / ".clip-1.wav.aaaa.partial", inbox / ".clip-2.wav.bbbb.partial"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    aged(stale, 7200)
    assert prune_inbox(inbox, max_age_s=0) == 1  # the copies rule off; staging left-overs still go
    assert not stale.exists() and live.exists()
