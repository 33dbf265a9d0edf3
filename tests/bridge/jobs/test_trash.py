"""Freeing space is explicit: prune selects by age, count or size, lists before it moves, moves into the trash
inside the output root, restores exactly, and only a separate empty deletes. Nothing else is ever touched."""

from __future__ import annotations

import os
import time

import pytest

from bridge.errors import BadRequest, NotFound
from bridge.jobs.journal import Journal
from bridge.jobs.retention import RetentionTimer
from bridge.jobs.trash import Rules, Trash
from bridge.settings import load_settings
from tests.bridge.jobs.test_retention import DEST, PARAMS, finished, snapshot

DAY = 86400.0
SENDER = ("127.0.0.1", 41000)


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "renders"
    journal = Journal(tmp_path / "journal.sqlite3")
    yield journal, root
    journal.close()


def test_prune_lists_first_then_moves_to_the_trash_restores_exactly_and_only_empty_deletes(store):
    journal, root = store
    for index, days in enumerate((90, 60, 40)):
        finished(journal, f"old-{index}", root, ago_s=days * DAY)
    finished(journal, "new-1", root, ago_s=DAY)
    everything = snapshot(root)
    trash = Trash(journal, root)

    dry = trash.prune(Rules(older_than_days=30), apply=False)
    assert dry.action == "would_move" and [e.job_id for e in dry.entries] == ["old-0", "old-1", "old-2"]
    assert dry.size == sum(len(v) for k, v in everything.items()  # each file once: the DAW name is a link
                           if k.startswith("old-") and k.endswith(("/mix.wav", "/manifest.json")))
    assert snapshot(root) == everything  # a dry run moves nothing

    moved = trash.prune(Rules(older_than_days=30), apply=True)
    assert moved.action == "moved" and len(moved.entries) == 3
    assert sorted(p.name for p in (root / ".trash").iterdir()) == ["old-0", "old-1", "old-2"]
    assert (root / "new-1").is_dir() and not (root / "old-0").exists()
    daw = root / ".trash" / "old-0" / "old-0_mix_1bars_120bpm.wav"
    assert os.path.samefile(daw, root / ".trash" / "old-0" / "mix.wav")  # moved as it was, links and all

    restored = trash.restore("old-0")
    assert restored.action == "restored" and [e.job_id for e in restored.entries] == ["old-0"]
    assert snapshot(root / "old-0") == {k.removeprefix("old-0/"): v for k, v in everything.items()
                                        if k.startswith("old-0/")}
    with pytest.raises(NotFound):
        trash.restore("never-was")

    listed = trash.empty(apply=False)
    assert listed.action == "would_empty" and [e.job_id for e in listed.entries] == ["old-1", "old-2"]
    assert (root / ".trash" / "old-1").is_dir()
    emptied = trash.empty(apply=True)
    assert emptied.action == "emptied" and not list((root / ".trash").iterdir())
    assert journal.get("old-1") is None and journal.get("old-0") is not None  # forgotten once deleted for good
    assert snapshot(root) == {k: v for k, v in everything.items() if not k.startswith(("old-1/", "old-2/"))}


def test_rules_select_by_count_and_by_size_and_any_rule_selects(store):
    journal, root = store
    for index in range(5):
        finished(journal, f"job-{index}", root, ago_s=(10 - index) * DAY)  # job-0 is the oldest
    trash = Trash(journal, root)
    size = trash.jobs()[0].size
    assert [e.job_id for e in trash.select(Rules(keep_newest=2)).entries] == ["job-0", "job-1", "job-2"]
    by_size = trash.select(Rules(max_total_gb=2.5 * size / 1e9)).entries  # the oldest until the rest fits
    assert [e.job_id for e in by_size] == ["job-0", "job-1", "job-2"]
    either = trash.select(Rules(older_than_days=9.5, keep_newest=4)).entries
    assert [e.job_id for e in either] == ["job-0"]
    assert [e.job_id for e in trash.select(Rules(older_than_days=9.5, keep_newest=3)).entries] == ["job-0", "job-1"]
    with pytest.raises(BadRequest, match="say which renders"):
        trash.select(Rules())  # every rule off: refused, not "everything"


def test_a_job_fetched_recently_is_never_selected(store):
    journal, root = store
    finished(journal, "fetched", root, ago_s=100 * DAY)
    finished(journal, "forgotten", root, ago_s=100 * DAY)
    journal.mark_used("fetched")
    report = Trash(journal, root).prune(Rules(older_than_days=30, keep_used_days=7), apply=True)
    assert [e.job_id for e in report.entries] == ["forgotten"] and report.kept_recent == 1
    assert (root / "fetched").is_dir()
    report = Trash(journal, root).prune(Rules(older_than_days=30, keep_used_days=0), apply=False)
    assert [e.job_id for e in report.entries] == ["fetched"]  # 0: no such guard


def test_running_queued_active_and_foreign_folders_are_never_touched(store, tmp_path):
    journal, root = store
    finished(journal, "old-1", root, ago_s=100 * DAY)
    journal.insert_job("queued-1", "generate", PARAMS, DEST)
    (root / "queued-1").mkdir()
    (root / "my-stems").mkdir()  # a person's folder: no journal row, no manifest
    (root / "my-stems" / "kick.wav").write_bytes(b"RIFF")
    precious = tmp_path / "elsewhere"
    precious.mkdir()
    (root / "linked").symlink_to(precious, target_is_directory=True)
    before = snapshot(root)
    trash = Trash(journal, root)
    assert [e.job_id for e in trash.select(Rules(keep_newest=1, older_than_days=0.001)).entries] == ["old-1"]
    assert trash.select(Rules(older_than_days=1), active={"old-1"}).entries == []
    trash.prune(Rules(older_than_days=1), apply=True)
    assert (root / "my-stems" / "kick.wav").is_file() and (root / "queued-1").is_dir()
    assert (root / "linked").is_symlink() and precious.is_dir()
    assert set(snapshot(root)) == {k for k in before if not k.startswith("old-1/")} | {
        f".trash/{k}" for k in before if k.startswith("old-1/")}


def test_space_counts_each_file_once_and_the_trash_apart(store):
    journal, root = store
    finished(journal, "a", root)
    finished(journal, "b", root, ago_s=50 * DAY)
    trash = Trash(journal, root)
    one = len((root / "a" / "mix.wav").read_bytes()) + len((root / "a" / "manifest.json").read_bytes())
    space = trash.space()
    assert space.jobs == 2 and space.renders_bytes == one + len((root / "b" / "mix.wav").read_bytes()) + len(
        (root / "b" / "manifest.json").read_bytes())  # the DAW-named link is not counted twice
    trash.prune(Rules(older_than_days=10), apply=True)
    space = trash.space()
    assert space.jobs == 1 and space.renders_bytes == one and space.trash_bytes > 0 and space.free_bytes > 0


def test_the_opt_in_automatic_mode_goes_through_the_trash_and_never_empties_it(store, tmp_path):
    journal, root = store
    finished(journal, "old-1", root, ago_s=40 * DAY)
    finished(journal, "new-1", root, ago_s=DAY)
    off = load_settings({"output_root": str(root)}, environ={})
    RetentionTimer(journal, root, off).prune()
    assert (root / "old-1").is_dir()  # off by default
    on = load_settings({"output_root": str(root), "auto_trash_days": "30"}, environ={})
    timer = RetentionTimer(journal, root, on)
    for _ in range(2):
        timer.prune()
    assert (root / ".trash" / "old-1" / "mix.wav").is_file() and (root / "new-1").is_dir()
    assert timer.space.trash_bytes > 0


# -- through the daemon: /continuo/prune, the trash requests, /continuo/storage after status ------------------
def test_the_osc_requests_answer_with_jobs_a_result_and_the_space(make_daemon_in_process):
    daemon = make_daemon_in_process()
    for job_id in ("osc-1", "osc-2"):
        daemon.on_message("/continuo/generate", [job_id, "default", "x", 0.25], SENDER)
        assert daemon.sent.wait_terminal(job_id)[0] == "/continuo/done"
        time.sleep(0.01)
    daemon.on_message("/continuo/prune", [0, 0.0, 1], SENDER)  # dry run, all but the newest one
    names = [address for address, _ in daemon.sent][-3:]
    assert names == ["/continuo/trash/job", "/continuo/trash/result", "/continuo/storage"]
    job, result, storage = (args for _, args in list(daemon.sent)[-3:])
    assert job[0] == "osc-1" and job[1] > 0 and result[:2] == ["would_move", 1] and "apply 1" in result[5]
    assert storage[3] == 2 and storage[5] == daemon.output_root.as_posix()
    daemon.on_message("/continuo/prune", [1, 0.0, 1], SENDER)
    assert (daemon.output_root / ".trash" / "osc-1").is_dir()
    daemon.on_message("/continuo/get", ["osc-1"], SENDER)
    assert daemon.sent[-1][1][1] == "not_found" and "trash" in daemon.sent[-1][1][2]
    daemon.on_message("/continuo/trash/restore", ["*"], SENDER)
    assert (daemon.output_root / "osc-1" / "mix.wav").is_file()
    daemon.on_message("/continuo/prune", [1], SENDER)  # no rule: refused, nothing moved
    assert daemon.sent[-1][0] == "/continuo/error" and daemon.sent[-1][1][1] == "bad_request"
    daemon.on_message("/continuo/status", [], SENDER)
    assert [address for address, _ in daemon.sent][-4:] == ["/continuo/status", "/continuo/limits",
                                                            "/continuo/storage", "/continuo/session"]
    assert daemon.sent[-2][1][4] == 0.0  # auto_trash_days: off
