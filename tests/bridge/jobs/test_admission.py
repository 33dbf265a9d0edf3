"""Admission: each check refuses with its code and message before anything is journalled or queued;
ranges are the schema's; a plugin that throws mid-render ends the job with audio_error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.errors import BridgeError
from bridge.jobs.queue import Priority
from bridge.protocol.schema import load_schema

SENDER = ("127.0.0.1", 41000)
SCHEMA = load_schema()


@pytest.fixture
def daemon(make_daemon_in_process, tmp_path):
    """A daemon whose worker is not started (tests that need it start it): admitted jobs stay queued."""
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "crashy.toml").write_text('[[master]]\nplugin = "Gain"\ngain_db = -7.5\n')
    (tmp_path / "inbox").mkdir()
    return make_daemon_in_process(worker_thread=False, max_variations=3, max_queue=2, max_input_bytes=400000,
                                  max_input_s=3)


def wav(path: Path, seconds: float, rate: int = 8000) -> str:
    soundfile.write(str(path), np.zeros((round(seconds * rate), 1), np.float32), rate)
    return str(path)


def refusal(daemon, job_id: str) -> tuple[str, str]:
    errors = [args for address, args in daemon.sent if address == "/continuo/error" and args[0] == job_id]
    assert len(errors) == 1, daemon.sent
    assert daemon.journal.get(job_id) is None, "a refused job left a journal row"
    assert job_id not in [job.job_id for job in daemon.queue.waiting()], "a refused job was queued"
    return errors[0][1], errors[0][2]


def inbox(daemon) -> Path:
    return daemon.output_root.parent / "inbox"


REFUSALS = [
    # (why, request args after the address, code, message fragment)
    ("schema range", ["/continuo/generate", "default", "x", 1.0, "temperature", 4.5], "bad_request",
     "setting temperature must be a float in 0.05..4, got 4.5"),
    ("unknown preset", ["/continuo/generate", "nope", "x", 1.0], "not_found", "unknown preset 'nope'"),
    ("input outside the roots", ["/continuo/continue", "default", "/etc/hostname", 1.0], "bad_request",
     "outside the allowed input folders"),
    ("missing input", ["/continuo/continue", "default", "{inbox}/gone.wav", 1.0], "not_found", "does not exist"),
    # the daemon's limits are the ranges its refusals state (Settings.request_limits), not the schema's wider ones
    ("too many variations", ["/continuo/variations", "default", "", 4, 1.0], "bad_request",
     "count must be an integer in 1..3, got 4"),
    ("too many bars", ["/continuo/generate", "default", "x", 65.0], "bad_request",
     "bars must be a float in 0.25..64, got 65.0"),
    ("past the model's window", ["/continuo/generate", "default", "x", 64.0, "bpm", 20.0], "bad_request",
     "64 bars is 768.0 s at this tempo; this engine renders at most"),
    ("input too large", ["/continuo/continue", "default", "{inbox}/big.wav", 1.0], "bad_request",
     "(max_input_bytes)"),
    ("input too long", ["/continuo/continue", "default", "{inbox}/long.wav", 1.0], "bad_request", "(max_input_s)"),
    ("input not audio", ["/continuo/continue", "default", "{inbox}/text.wav", 1.0], "bad_request",
     "is not audio this daemon can read"),
    ("capability", ["/continuo/generate", "default", "x", 1.0, "melody", "{inbox}/tune.wav"], "bad_request",
     "melody"),
    ("prompt setting on generate", ["/continuo/generate", "default", "x", 1.0, "prompt", "y"], "bad_request",
     "generate takes its prompt as an argument; drop the prompt setting"),
    ("style_weight alone", ["/continuo/generate", "default", "x", 1.0, "style_weight", 0.5], "bad_request",
     "style_weight needs a style"),
    ("melody on a model without it", ["/continuo/generate", "default", "x", 1.0, "melody", "{inbox}/tune.wav"],
     "bad_request", "needs the model capability 'melody'; this daemon serves"),
    ("lora of an unknown adapter", ["/continuo/generate", "default", "x", 1.0, "lora", "grain"], "bad_request",
     "unknown LoRA adapter 'grain'"),  # the tiny model's default engine takes a MusicGen LoRA (lora.py:fold)
    ("lora_weight alone", ["/continuo/generate", "default", "x", 1.0, "lora_weight", 0.5], "bad_request",
     "lora_weight needs an adapter"),
]


@pytest.mark.parametrize("why, request_args, code, fragment", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_check_refuses_before_anything_is_journalled_or_queued(daemon, why, request_args, code, fragment):
    folder = inbox(daemon)
    wav(folder / "tune.wav", 1.0)
    wav(folder / "long.wav", 4.0)  # over max_input_s 3, under max_input_bytes
    wav(folder / "big.wav", 2.0, rate=192000)  # 768 kB: over max_input_bytes
    (folder / "text.wav").write_text("not audio at all")
    address, *rest = request_args
    args = ["job-1", *(a.format(inbox=folder) if isinstance(a, str) else a for a in rest)]
    daemon.on_message(address, args, SENDER)
    got_code, message = refusal(daemon, "job-1")
    assert (got_code, fragment in message) == (code, True), message


def test_a_full_queue_is_busy_but_for_a_live_job_that_takes_over_its_slot(daemon):
    daemon.on_message("/continuo/generate", ["wait", "default", "x", 0.25], SENDER)
    daemon.on_message("/continuo/generate", ["pad-1", "default", "x", 0.25, "priority", "live", "slot", 1], SENDER)
    assert len(daemon.queue) == 2
    for job_id, extra in (("over", []), ("pad-2", ["priority", "live", "slot", 2])):
        daemon.on_message("/continuo/generate", [job_id, "default", "x", 0.25, *extra], SENDER)
        assert refusal(daemon, job_id) == ("busy", "the queue is full (2 waiting); send again after a /continuo/done")
    daemon.on_message("/continuo/generate", ["pad-1b", "default", "x", 0.25, "priority", "live", "slot", 1], SENDER)
    assert [job.job_id for job in daemon.queue.waiting()] == ["pad-1b", "wait"]
    assert daemon.journal.get("pad-1b") is not None


def test_rules_hold_for_callers_that_skip_the_schema(daemon):
    # MIDI calls submit directly: the rules between an op and its settings are admission's, not the schema's.
    with pytest.raises(BridgeError) as caught:
        daemon.submit("continue", "midi-1", {"preset": "default", "bars": 1.0}, {}, SENDER, priority=Priority.LIVE)
    assert caught.value.code == "bad_request" and caught.value.job_id == "midi-1"
    assert "continue needs an input file" in caught.value.message
    assert daemon.journal.get("midi-1") is None and len(daemon.queue) == 0


def test_an_admitted_job_is_journalled_with_what_admission_fixed(daemon):
    daemon.on_message("/continuo/generate", ["ok-1", "default", "x", 1.0, "cfg", 2, "loop", 1], SENDER)
    record = daemon.journal.get("ok-1")
    assert record.params["settings"] == {"guidance_scale": 2.0, "loop": 1} and "seed" in record.params
    assert [address for address, _ in daemon.sent] == ["/continuo/queued"]


# --- ranges: the schema's, one check per rule -------------------------------------------------------------

MOVED_OVERRIDE_CASES = [  # once Preset.with_overrides' own checks; now the schema's, for OSC and ZeroMQ alike
    ("temperature", 0, "temperature must be a float in 0.05..4"),
    ("temperature", "hot", "temperature must be a float in 0.05..4"),
    ("top_k", 2.5, "top_k must be an integer in 0..2048"),
    ("top_k", True, "top_k must be an integer in 0..2048, got true (a boolean)"),
    ("top_p", 1.5, "top_p must be a float in 0..1"),
    ("cfg", 100, "cfg must be a float in 0..20"),
    ("seed", -1, "seed must be an integer in 0..2147483647"),
    ("seed", 2**32 - 1, "seed must be an integer in 0..2147483647"),
    ("prompt_seconds", float("nan"), "prompt_seconds must be a float in 0.5..20"),
    ("prompt_seconds", 30.0, "prompt_seconds must be a float in 0.5..20"),
    ("target_lufs", -4.0, "target_lufs must be a float in -40..-5"),
    ("true_peak_db", 1, "true_peak_db must be a float in -12..0"),
    ("bit_depth", 16, "unknown setting \"bit_depth\""),
    ("beats", 0.0, "beats must be a float in 0.25..1024"),
    ("beats", 5000.0, "beats must be a float in 0.25..1024"),
    ("loop", 2, "loop must be an integer in 0..1"),
    ("hard_cut", 0.5, "hard_cut must be an integer in 0..1"),
    ("stream", 2, "stream must be an integer in 0..1"),
]


@pytest.mark.parametrize("name, value, fragment", MOVED_OVERRIDE_CASES)
def test_the_schema_refuses_settings_out_of_its_range(name, value, fragment):
    with pytest.raises(BridgeError) as caught:
        SCHEMA.parse("/continuo/generate", ["job-1", "default", "x", 1.0, name, value])
    assert caught.value.code == "bad_request" and fragment in caught.value.message, caught.value.message


def test_a_setting_given_twice_by_alias_is_refused():
    with pytest.raises(BridgeError, match="setting guidance_scale given twice"):
        SCHEMA.parse("/continuo/generate", ["job-1", "default", "x", 1.0, "cfg", 3, "guidance_scale", 3])


# --- audio errors -----------------------------------------------------------------------------------------


class ThrowingBoard:
    """Stands in for a pedalboard whose plugin throws in its process call."""

    def __len__(self) -> int:
        return 1

    def process(self, *args, **kwargs):
        raise RuntimeError("plugin crashed in processBlock")


def test_a_plugin_that_throws_mid_render_ends_the_job_with_audio_error_and_the_worker_goes_on(daemon, monkeypatch):
    import bridge.audio.effects

    build = bridge.audio.effects.build_pedalboard

    def build_or_throw(chain, *, sample_rate=None):
        if any(spec.params.get("gain_db") == -7.5 for spec in chain):
            return ThrowingBoard()
        return build(chain, sample_rate=sample_rate)

    monkeypatch.setattr(bridge.audio.effects, "build_pedalboard", build_or_throw)
    daemon.on_message("/continuo/generate", ["crash", "crashy", "x", 0.25], SENDER)
    daemon.on_message("/continuo/generate", ["after", "default", "x", 0.25], SENDER)
    daemon.pool.workers[0].start()
    outcomes = {job_id: daemon.sent.wait_terminal(job_id) for job_id in ("crash", "after")}
    address, args = outcomes["crash"]
    assert address == "/continuo/error" and args[1] == "audio_error"
    assert args[2] == "effect chain failed while processing: plugin crashed in processBlock"
    assert daemon.journal.get("crash").error_code == "audio_error"
    assert outcomes["after"][0] == "/continuo/done"
