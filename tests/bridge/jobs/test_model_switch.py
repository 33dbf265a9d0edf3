"""Switching the served model at run time, in process, through the real loader and the daemon's OSC handlers:
tiny MusicGen -> tiny ACE-Step -> tiny MusicGen; a failed load leaves the old model serving; jobs sent during a
switch wait and run on the new model, checked against it; the memory order (beside, or release first) and its
failure path; a switch job cancelled before it starts."""

from __future__ import annotations

import gc
import json
import threading
import time
import weakref
from pathlib import Path

import pytest

from bridge.daemon import load_model
from bridge.jobs.model_switch import SwitchOrder, UnloadedEngine, switch_order
from inference.runtime.memory import freeze_heap, thaw_heap

SENDER = ("127.0.0.1", 41000)


def send(daemon, address: str, *args) -> None:
    daemon.on_message(address, list(args), SENDER)


def last(daemon, address: str) -> list:
    return [args for a, args in daemon.sent if a == address][-1]


def answered_after(daemon, job_id: str, address: str, timeout_s: float = 10.0) -> list:
    """The first `address` event after job_id's terminal one: a switch answers (status, then models) after its done,
    from the worker's thread, so a test thread that saw the done may be there first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sent = list(daemon.sent)
        end = next(i for i, (a, args) in enumerate(sent) if a in ("/continuo/done", "/continuo/error") and
                   args[:1] == [job_id])
        found = [args for a, args in sent[end + 1:] if a == address]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {address} after {job_id} ended")


def models(daemon) -> tuple[list, list[str]]:
    """The /continuo/models event and the adapters events after it."""
    before = len(daemon.sent)
    send(daemon, "/continuo/models")
    events = list(daemon.sent)[before:]
    assert events[0][0] == "/continuo/models"
    return events[0][1], [args[0] for address, args in events[1:] if address == "/continuo/adapters"]


def done(daemon, job_id: str) -> list:
    address, args = daemon.sent.wait_terminal(job_id)
    assert address == "/continuo/done", args
    return args


def manifest_model(daemon, job_id: str) -> str:
    output = [args for address, args in daemon.sent.of(job_id) if address == "/continuo/output"][0]
    return json.loads((Path(output[2]).parent / "manifest.json").read_text())["model"]["name"]


class GatedLoader:
    """The real loader; loading a spec containing `gated` waits until `gate` is set (entered says it waits)."""

    def __init__(self, gated: str) -> None:
        self.gated, self.gate, self.entered = gated, threading.Event(), threading.Event()
        self.engine_while_gated = None
        self.daemon = None

    def __call__(self, settings):
        if self.gated in settings.model:
            self.engine_while_gated = self.daemon.engine if self.daemon is not None else None
            self.entered.set()
            assert self.gate.wait(60)
        return load_model(settings)


@pytest.fixture
def lora_dir(tmp_path) -> Path:
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "tape.safetensors").write_bytes(b"listed by name only")
    return tmp_path / "loras"


@pytest.mark.slow
def test_musicgen_to_ace_step_and_back_over_osc(make_daemon_in_process, tiny_model_dir, tiny_acestep_dir, lora_dir):
    daemon = make_daemon_in_process(lora_dir=lora_dir)
    event, adapters = models(daemon)
    assert event[4:] == ["musicgen", event[5], 1] and "repaint" not in event[5].split(",") and adapters == ["tape"]
    send(daemon, "/continuo/generate", "mg-lyrics", "default", "x", 0.5, "lyrics", "la la")
    assert daemon.sent.wait_terminal("mg-lyrics", 5)[1][1] == "bad_request"  # MusicGen: no lyrics

    before = len(daemon.sent)
    send(daemon, "/continuo/model/load", str(tiny_acestep_dir), "to-ace")
    answered = list(daemon.sent)[before:before + 3]  # sent before the worker may start the switch
    assert answered[0] == ("/continuo/queued", ["to-ace", 0, -1.0])
    assert answered[1][0] == "/continuo/status" and answered[1][1][0] == "loading" and answered[2][0] == \
        "/continuo/limits"
    done(daemon, "to-ace")
    event, adapters = models(daemon)
    assert event[0] == daemon.engine.info.name and event[4] == "ace-step" and adapters == ["tape"]
    assert {"lyrics", "repaint", "lora"} <= set(event[5].split(",")) and event[6] == 1
    assert answered_after(daemon, "to-ace", "/continuo/status")[:2] == ["idle", daemon.engine.info.name]
    assert {args[2] for address, args in daemon.sent.of("to-ace") if address == "/continuo/progress"} == {"loading"}
    assert daemon.journal.get("to-ace").status.value == "done"
    send(daemon, "/continuo/generate", "ace-lyrics", "default", "x", 0.5, "lyrics", "la la")
    done(daemon, "ace-lyrics")
    assert "ace-step" in manifest_model(daemon, "ace-lyrics")
    clip = [args for address, args in daemon.sent.of("ace-lyrics") if address == "/continuo/output"][0][2]
    send(daemon, "/continuo/continue", "ace-cont", "default", clip, 1.0)
    refusal = daemon.sent.wait_terminal("ace-cont", 5)[1]
    assert refusal[1] == "bad_request" and "'continuation'" in refusal[2], refusal

    send(daemon, "/continuo/model/load", str(tiny_model_dir), "to-mg")
    done(daemon, "to-mg")
    assert models(daemon)[0][4] == "musicgen"
    send(daemon, "/continuo/generate", "mg-again", "default", "x", 0.5)
    done(daemon, "mg-again")
    assert "musicgen" in manifest_model(daemon, "mg-again")


def test_a_failed_load_leaves_the_old_model_serving(make_daemon_in_process, tmp_path):
    daemon = make_daemon_in_process()
    name = daemon.engine.info.name
    # A deep folder, as users' are: what still serves must survive the 1 KB error event whatever the reason says
    broken = tmp_path / ("a-folder-of-a-musicians-models-" * 3) / "broken-pipeline"
    broken.mkdir(parents=True)
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "AceStepPipeline"}))
    for spec, job_id in ((str(tmp_path / "missing"), "bad-1"), (str(broken), "bad-2")):
        send(daemon, "/continuo/model/load", spec, job_id)
        address, args = daemon.sent.wait_terminal(job_id)
        assert address == "/continuo/error" and args[1] == "model_error", args
        assert spec in args[2] and f"still serving {name}" in args[2]
        assert daemon.journal.get(job_id).error_code == "model_error"
    assert daemon.engine.info.name == name and not daemon.switch.active
    send(daemon, "/continuo/generate", "after-bad", "default", "x", 0.5)
    done(daemon, "after-bad")
    send(daemon, "/continuo/model/load", str(tmp_path / "missing"))  # without a job id: the error has none
    address, args = daemon.sent.wait_terminal("")
    assert address == "/continuo/error" and args[1] == "model_error"


@pytest.mark.slow
def test_jobs_sent_during_a_switch_wait_and_follow_the_new_model(make_daemon_in_process, tiny_acestep_dir):
    loader = GatedLoader(tiny_acestep_dir.name)
    daemon = make_daemon_in_process(engine_loader=loader)
    loader.daemon = daemon
    send(daemon, "/continuo/model/load", str(tiny_acestep_dir), "gated")
    assert loader.entered.wait(30)
    send(daemon, "/continuo/status")
    assert last(daemon, "/continuo/status")[0] == "loading"
    # admitted without model checks while the model is being switched: lyrics (MusicGen would refuse them)
    send(daemon, "/continuo/generate", "waits", "default", "x", 0.5, "lyrics", "la la", "seed", 3)
    assert daemon.sent.of("waits")[0][0] == "/continuo/queued"
    assert loader.engine_while_gated is daemon.engine and daemon.engine.info.family == "musicgen"  # loads beside
    loader.gate.set()
    done(daemon, "gated")
    done(daemon, "waits")
    assert "ace-step" in manifest_model(daemon, "waits")


def test_a_job_sent_during_a_switch_is_refused_at_its_start_by_the_new_model(make_daemon_in_process,
                                                                             tiny_stereo_model_dir):
    """MusicGen -> another MusicGen whose window is checked at the start: a capability the new model lacks."""
    loader = GatedLoader(tiny_stereo_model_dir.name)
    daemon = make_daemon_in_process(engine_loader=loader)
    send(daemon, "/continuo/model/load", str(tiny_stereo_model_dir), "to-stereo")
    assert loader.entered.wait(30)
    send(daemon, "/continuo/generate", "lyrics-later", "default", "x", 0.5, "lyrics", "la la")
    assert daemon.sent.of("lyrics-later")[0][0] == "/continuo/queued"  # admitted: the model is being switched
    loader.gate.set()
    done(daemon, "to-stereo")
    address, args = daemon.sent.wait_terminal("lyrics-later")
    assert address == "/continuo/error" and args[1] == "bad_request" and "'lyrics'" in args[2], args
    assert daemon.engine.info.channels == 2


def test_release_first_when_the_new_model_does_not_fit_and_the_old_comes_back_on_failure(
        make_daemon_in_process, tiny_stereo_model_dir, tmp_path):
    loader = GatedLoader(tiny_stereo_model_dir.name)
    daemon = make_daemon_in_process(engine_loader=loader)
    loader.daemon = daemon
    daemon.switch.free_bytes = lambda device: 0  # nothing free: release the old model first
    name, first = daemon.engine.info.name, daemon.engine
    broken = tmp_path / "broken-pipeline"  # resolves (a local directory), then fails to load: after the release
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "AceStepPipeline"}))
    (broken / "transformer").mkdir()  # some weights, so its estimate is more than the nothing free
    (broken / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"0" * 1024)
    send(daemon, "/continuo/model/load", str(broken), "rf-bad")
    address, args = daemon.sent.wait_terminal("rf-bad")
    assert args[1] == "model_error" and f"still serving {name}" in args[2], args
    assert daemon.engine.info.name == name and not isinstance(daemon.engine, UnloadedEngine)
    assert daemon.engine is not first and daemon.pool.workers[0].engine is daemon.engine  # released, then loaded again
    send(daemon, "/continuo/generate", "after-rf", "default", "x", 0.5)
    done(daemon, "after-rf")
    send(daemon, "/continuo/model/load", str(tiny_stereo_model_dir), "rf-ok")
    assert loader.entered.wait(30)
    assert isinstance(loader.engine_while_gated, UnloadedEngine)  # the old engine was released before the load
    loader.gate.set()
    done(daemon, "rf-ok")
    assert daemon.engine.info.channels == 2 and daemon.pool.workers[0].engine is daemon.engine


def test_a_switch_job_cancelled_before_it_starts_keeps_the_old_model(make_daemon_in_process, tiny_acestep_dir):
    daemon = make_daemon_in_process(worker_thread=False)  # nothing runs: the switch stays pending
    send(daemon, "/continuo/model/load", str(tiny_acestep_dir), "sw-cancel")
    send(daemon, "/continuo/model/load", str(tiny_acestep_dir), "sw-second")
    assert daemon.sent.wait_terminal("sw-second", 5)[1][1] == "busy"
    send(daemon, "/continuo/cancel", "sw-cancel")
    assert daemon.sent.wait_terminal("sw-cancel", 5)[1][1] == "cancelled"
    assert not daemon.switch.active and daemon.engine.info.family == "musicgen"
    assert daemon.queue.get(timeout_s=0) is None and not daemon.queue._held


def test_the_served_model_is_answered_without_a_reload(make_daemon_in_process, tiny_model_dir):
    daemon = make_daemon_in_process(worker_thread=False)
    engine = daemon.engine
    send(daemon, "/continuo/model/load", str(tiny_model_dir), "same")
    assert daemon.sent.wait_terminal("same", 5)[0] == "/continuo/done" and daemon.engine is engine
    assert last(daemon, "/continuo/status")[0] == "idle" and not daemon.switch.active


def test_a_switch_in_a_frozen_heap_frees_the_old_engine_and_freezes_the_new(make_daemon_in_process,
                                                                          tiny_stereo_model_dir):
    # `continuo serve` freezes its heap after the load (no full collection stalls it); the old engine's cycles
    # must still be collected at a switch, or every switch would keep a model's memory
    daemon = make_daemon_in_process()
    old = daemon.engine
    old.cycle = [old]  # only the cyclic collector frees this
    old_ref = weakref.ref(old)
    del old
    freeze_heap()
    try:
        send(daemon, "/continuo/model/load", str(tiny_stereo_model_dir), "sw-frozen")
        done(daemon, "sw-frozen")
        assert old_ref() is None
        assert gc.get_freeze_count() > 0 and daemon.engine.info.channels == 2
    finally:
        thaw_heap()  # this test process goes on collecting


@pytest.mark.parametrize("new, free, old, budget, order", [
    (1, 10, 0, 0, SwitchOrder.BESIDE),
    (8, 10, 0, 0, SwitchOrder.BESIDE),
    (9, 10, 0, 0, SwitchOrder.RELEASE_FIRST),  # 9 x 1.25 > 10
    (1, 0, 0, 0, SwitchOrder.RELEASE_FIRST),  # free memory unknown: the careful way
    (4, 100, 5, 10, SwitchOrder.BESIDE),
    (6, 100, 5, 10, SwitchOrder.RELEASE_FIRST),  # both would not fit in the budget
])
def test_switch_order(new, free, old, budget, order):
    assert switch_order(new, free, old_bytes=old, budget_bytes=budget) is order
