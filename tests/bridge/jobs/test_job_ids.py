"""A job id names one job for good: a resend is idempotent, anything else with that id is refused `id_conflict`
(never answered with the old job's files), also after the journal forgot the job or it went to the trash."""

from __future__ import annotations

import shutil
import time

import pytest

from bridge.daemon import load_model

SENDER = ("127.0.0.1", 41000)


class CountingEngine:
    def __init__(self, engine) -> None:
        self._engine, self.generated = engine, 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, request, **kwargs):
        self.generated += 1
        return self._engine.generate(request, **kwargs)


@pytest.fixture
def daemon(make_daemon_in_process):
    return make_daemon_in_process(engine_loader=lambda settings: CountingEngine(load_model(settings)))


def send_generate(daemon, job_id: str, prompt: str, bars: float = 0.5, *settings) -> tuple[str, list]:
    before = len(daemon.sent.of(job_id))
    daemon.on_message("/continuo/generate", [job_id, "default", prompt, bars, *settings], SENDER)
    for _ in range(6000):
        events = daemon.sent.of(job_id)[before:]
        terminal = [e for e in events if e[0] in ("/continuo/done", "/continuo/error")]
        if terminal:
            return terminal[0]
        time.sleep(0.02)
    raise AssertionError(f"{job_id}: no answer; {daemon.sent.of(job_id)}")


def folder_bytes(daemon, job_id: str) -> dict[str, bytes]:
    folder = daemon.output_root / job_id
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_an_id_reused_with_another_prompt_is_refused_and_with_the_same_prompt_is_a_resend(daemon):
    assert send_generate(daemon, "take-1", "warm piano")[0] == "/continuo/done"
    files = folder_bytes(daemon, "take-1")
    assert send_generate(daemon, "take-1", "warm piano")[0] == "/continuo/done"  # a resend: the same answer
    assert daemon.engine.generated == 1  # never rendered twice
    address, args = send_generate(daemon, "take-1", "dark techno")  # another prompt: never the old take
    assert address == "/continuo/error" and args[:2] == ["take-1", "id_conflict"], args
    assert "take-1" in args[2] and "generate" in args[2] and '"warm piano' in args[2] and "new job id" in args[2]
    outputs = [e for e in daemon.sent.of("take-1") if e[0] == "/continuo/output"]
    assert len(outputs) == 2  # the render's and the resend's; none for the conflicting request
    assert daemon.engine.generated == 1 and folder_bytes(daemon, "take-1") == files  # nothing overwritten


@pytest.mark.parametrize("change", [["bars", 1.0], ["settings", "temperature", 0.5], ["op", "variations"],
                                    ["context", 90.0]])
def test_any_other_request_parameter_is_a_conflict_too(daemon, change):
    assert send_generate(daemon, "p-1", "warm piano")[0] == "/continuo/done"
    if change[0] == "bars":
        address, args = send_generate(daemon, "p-1", "warm piano", change[1])
    elif change[0] == "settings":
        address, args = send_generate(daemon, "p-1", "warm piano", 0.5, change[1], change[2])
    elif change[0] == "op":
        daemon.on_message("/continuo/variations", ["p-1", "default", "", 2, 0.5, "prompt", "warm piano"], SENDER)
        address, args = daemon.sent.of("p-1")[-1]
    else:  # the session's tempo changed: the old file is at another tempo
        daemon.on_message("/continuo/context", [change[1], 4, 4, "", 48000], SENDER)
        address, args = send_generate(daemon, "p-1", "warm piano")
    assert address == "/continuo/error" and args[1] == "id_conflict", args


def test_a_fixed_seed_resend_is_idempotent_and_another_seed_is_a_conflict(daemon):
    assert send_generate(daemon, "s-1", "x", 0.5, "seed", 7)[0] == "/continuo/done"
    assert send_generate(daemon, "s-1", "x", 0.5, "seed", 7)[0] == "/continuo/done"
    assert send_generate(daemon, "s-1", "x", 0.5, "seed", 8)[1][1] == "id_conflict"


def test_after_the_journal_forgot_the_job_its_manifest_still_answers_and_still_guards_the_id(daemon):
    assert send_generate(daemon, "old-1", "warm piano")[0] == "/continuo/done"
    daemon.journal.forget(["old-1"])
    assert daemon.journal.get("old-1") is None
    assert send_generate(daemon, "old-1", "warm piano")[0] == "/continuo/done"  # a resend, from manifest.json
    assert send_generate(daemon, "old-1", "new idea")[1][1] == "id_conflict"
    daemon.on_message("/continuo/get", ["old-1"], SENDER)
    assert daemon.sent.of("old-1")[-1][0] == "/continuo/done"
    assert daemon.engine.generated == 1


def test_a_folder_of_that_name_takes_the_id_even_without_a_journal_row_or_manifest(daemon):
    folder = daemon.output_root / "mine"
    folder.mkdir()
    (folder / "mix.wav").write_bytes(b"a person's file")
    address, args = send_generate(daemon, "mine", "x")
    assert address == "/continuo/error" and args[1] == "id_conflict" and "no manifest" in args[2]
    assert (folder / "mix.wav").read_bytes() == b"a person's file" and daemon.engine.generated == 0
    daemon.on_message("/continuo/get", ["mine"], SENDER)  # said as it is, not "done, 0 outputs"
    address, args = daemon.sent.of("mine")[-1]
    assert address == "/continuo/error" and args[1] == "not_found" and "no manifest.json" in args[2]


def test_a_job_in_the_trash_keeps_its_id_and_get_says_where_its_files_went(daemon):
    assert send_generate(daemon, "gone-1", "x")[0] == "/continuo/done"
    trash = daemon.output_root / ".trash"
    trash.mkdir()
    shutil.move(daemon.output_root / "gone-1", trash / "gone-1")
    daemon.on_message("/continuo/get", ["gone-1"], SENDER)
    address, args = daemon.sent.of("gone-1")[-1]
    assert address == "/continuo/error" and args[1] == "not_found" and "trash" in args[2] and "restore" in args[2]
    assert send_generate(daemon, "gone-1", "another")[1][1] == "id_conflict"
    assert daemon.engine.generated == 1


def test_a_model_switch_job_id_reused_for_a_render_is_a_conflict(daemon):
    daemon.on_message("/continuo/model/load", [str(daemon.pool.spec), "switch-1"], SENDER)  # already served
    assert daemon.sent.wait_terminal("switch-1")[0] == "/continuo/done"
    assert send_generate(daemon, "switch-1", "x")[1][1] == "id_conflict"
    daemon.on_message("/continuo/model/load", ["another/model", "switch-1"], SENDER)
    assert daemon.sent.of("switch-1")[-1][1][1] == "id_conflict"
