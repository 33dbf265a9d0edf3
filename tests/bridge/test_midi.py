"""MIDI: injected mido messages drive submit(), settings, presets and the tempo; maps are validated."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from bridge.audio.clocks import TICKS_PER_BEAT
from bridge.audio.presets import PRESET_SETTINGS, PresetError, builtin_presets_dir
from bridge.errors import ConfigError
from bridge.jobs.queue import Priority
from bridge.midi import (
    MidiController,
    load_midi_maps,
    midi_map_dirs,
    mix_path,
    open_midi_input,
    pick_midi_map,
)
from bridge.protocol.schema import load_schema

PRESETS = ["default", "lofi_tape", "club_master", "ambient_wash"]
SCHEMA = load_schema()


@pytest.fixture(scope="module")
def default_map():
    return load_midi_maps(midi_map_dirs([builtin_presets_dir()]), PRESETS)["default"]


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[dict] = []
        self.tempos: list[float] = []
        self.cancelled: list[str] = []
        self.results: dict[str, str] = {}

    def submit(self, op, job_id, args, settings, sender, *, priority, slot):
        self.jobs.append({"op": op, "job_id": job_id, "args": args, "settings": settings, "sender": sender,
                          "priority": priority, "slot": slot})


def controller(midi_map, recorder: Recorder) -> MidiController:
    return MidiController(midi_map, submit=recorder.submit, sender=("127.0.0.1", 9001),
                          set_tempo=recorder.tempos.append, cancel=recorder.cancelled.append,
                          result_path=recorder.results.get)


def test_note_on_submits_a_live_job_with_the_mapped_preset_and_slot(default_map):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    midi.feed(mido.Message("note_on", note=38, velocity=100))
    midi.feed(mido.Message("note_on", note=60, velocity=100))  # unmapped: nothing
    midi.feed(mido.Message("note_off", note=38))
    assert len(recorder.jobs) == 1
    job = recorder.jobs[0]
    assert job["op"] == "generate" and job["priority"] is Priority.LIVE and job["slot"] == 3
    assert job["args"] == {"preset": "ambient_wash", "prompt": "evolving pad", "bars": 8.0}
    assert job["job_id"].startswith("midi-3-") and job["sender"] == ("127.0.0.1", 9001)


@pytest.mark.parametrize("velocity, temperature", [(1, 0.7), (64, 1.0), (127, 1.3)])
def test_velocity_sets_the_mapped_setting(default_map, velocity, temperature):
    recorder = Recorder()
    controller(default_map, recorder).feed(mido.Message("note_on", note=36, velocity=velocity))
    assert recorder.jobs[0]["settings"]["temperature"] == pytest.approx(temperature, abs=0.01)


def test_cc_sets_settings_for_later_notes_and_program_change_picks_the_preset(default_map):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    midi.feed(mido.Message("control_change", control=2, value=127))
    midi.feed(mido.Message("control_change", control=99, value=5))  # unmapped
    midi.feed(mido.Message("program_change", program=2))
    midi.feed(mido.Message("note_on", note=37, velocity=90))
    job = recorder.jobs[0]
    assert job["settings"] == {"guidance_scale": 6.0}
    assert job["args"]["preset"] == "club_master"


def test_variation_resends_the_slots_generate_and_cancel_cancels_it(default_map):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    midi.feed(mido.Message("note_on", note=41, velocity=90))  # nothing generated in slot 1 yet
    assert recorder.jobs == []
    midi.feed(mido.Message("note_on", note=36, velocity=64))
    midi.feed(mido.Message("note_on", note=41, velocity=90))
    first, variation = recorder.jobs
    assert variation["args"] == first["args"] and variation["job_id"] != first["job_id"]
    midi.feed(mido.Message("note_on", note=42, velocity=90))
    assert recorder.cancelled == [variation["job_id"]]


def test_continue_uses_the_newest_finished_result(default_map):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    midi.feed(mido.Message("note_on", note=40, velocity=90))  # nothing to continue yet
    midi.feed(mido.Message("note_on", note=36, velocity=90))
    midi.feed(mido.Message("note_on", note=37, velocity=90))
    recorder.results[recorder.jobs[0]["job_id"]] = "/renders/a/mix.wav"  # the second is still running
    midi.feed(mido.Message("note_on", note=40, velocity=90))
    assert [job["op"] for job in recorder.jobs] == ["generate", "generate", "continue"]
    assert recorder.jobs[-1]["args"]["input_path"] == "/renders/a/mix.wav" and recorder.jobs[-1]["slot"] == 5


def test_a_rejected_submit_does_not_stop_the_input(default_map):
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        raise ConfigError("queue full")

    midi = MidiController(default_map, submit=failing, sender=("127.0.0.1", 9001))
    midi.feed(mido.Message("note_on", note=36, velocity=90))
    midi.feed(mido.Message("note_on", note=37, velocity=90))
    assert len(calls) == 2


def clock_times(bpm: float, beats: float, *, jitter_s: float, seed: int = 0) -> np.ndarray:
    interval = 60.0 / bpm / TICKS_PER_BEAT
    ticks = np.arange(round(beats * TICKS_PER_BEAT)) * interval
    return 10.0 + ticks + np.random.default_rng(seed).uniform(-jitter_s, jitter_s, ticks.size)


@pytest.mark.parametrize("bpm", [90.0, 120.0, 174.0])
@pytest.mark.parametrize("jitter_ms", [0.0, 1.0])
def test_clock_tempo_is_recovered_within_half_a_bpm(default_map, bpm, jitter_ms):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    for now in clock_times(bpm, 8, jitter_s=jitter_ms / 1000):
        midi.feed(mido.Message("clock"), now)
    assert recorder.tempos and abs(recorder.tempos[-1] - bpm) < 0.5
    assert len(recorder.tempos) < 40  # published on change, not on every tick


def test_clock_follows_a_tempo_change_and_restarts_after_a_gap(default_map):
    recorder = Recorder()
    midi = controller(default_map, recorder)
    for now in clock_times(90.0, 4, jitter_s=0.0):
        midi.feed(mido.Message("clock"), now)
    for now in clock_times(140.0, 4, jitter_s=0.0) + 20.0:  # a 7 s gap, then a new tempo
        midi.feed(mido.Message("clock"), now)
    assert abs(recorder.tempos[-1] - 140.0) < 0.5


def test_transport_and_song_position(default_map):
    midi = controller(default_map, Recorder())
    for _ in range(24):
        midi.feed(mido.Message("clock"), 1.0)
    assert midi.clock.position_beats == 0  # stopped: ticks do not move the song position
    midi.feed(mido.Message("start"))
    for i in range(48):
        midi.feed(mido.Message("clock"), 2.0 + i * 0.02)
    assert midi.clock.position_beats == 2
    midi.feed(mido.Message("stop"))
    midi.feed(mido.Message("clock"), 3.0)
    assert midi.clock.position_beats == 2
    midi.feed(mido.Message("songpos", pos=16))  # 16 sixteenths = 4 beats
    midi.feed(mido.Message("continue"))
    midi.feed(mido.Message("clock"), 3.02)
    assert midi.clock.position_beats == pytest.approx(4 + 1 / 24)


def test_follow_clock_off_leaves_the_tempo_alone(tmp_path):
    (tmp_path / "still.toml").write_text("follow_clock = false\n")
    recorder = Recorder()
    midi = controller(load_midi_maps([tmp_path])["still"], recorder)
    for now in clock_times(120.0, 4, jitter_s=0.0):
        midi.feed(mido.Message("clock"), now)
    assert recorder.tempos == []


def test_channel_filter(tmp_path):
    (tmp_path / "ch.toml").write_text('channel = 9\n[[notes]]\nnote = 36\naction = "generate"\nslot = 2\n')
    recorder = Recorder()
    midi = controller(load_midi_maps([tmp_path])["ch"], recorder)
    midi.feed(mido.Message("note_on", note=36, velocity=90, channel=0))
    midi.feed(mido.Message("note_on", note=36, velocity=90, channel=9))
    assert [job["slot"] for job in recorder.jobs] == [2]


@pytest.mark.parametrize(
    "text, key, reason",
    [
        ('[[notes]]\nnote = 200\naction = "generate"\n', "notes[0].note", "integer from 0 to 127"),
        ('[[notes]]\nnote = 36\naction = "explode"\n', "notes[0].action", "generate, continue"),
        ('[[notes]]\nnote = 36\naction = "generate"\nvelocity = "loudness"\n', "notes[0].velocity", "unknown setting"),
        ('[[notes]]\nnote = 36\naction = "generate"\npreset = "nope"\n', "notes[0].preset", "unknown preset"),
        ('[[notes]]\nnote = 36\naction = "generate"\n[[notes]]\nnote = 36\naction = "cancel"\n', "notes[1].note",
         "mapped twice"),
        ('[[cc]]\ncc = 1\nsetting = "temperature"\nmax = 99\n', "cc[0].max", "temperature's range"),
        ('[[cc]]\ncc = 1\nsetting = "temperature"\nmax = 4.5\n', "cc[0].max", "range 0.05 to 4"),  # OSC refuses 4.5
        ('[[notes]]\nnote = 36\naction = "generate"\nvelocity = "seed"\nvmax = 4294967295\n', "notes[0].vmax",
         "seed's range 0 to 2.14748e+09"),
        ('[[cc]]\ncc = 1\nsetting = "volume"\n', "cc[0].setting", "unknown setting"),
        ('[programs]\n300 = "default"\n', "programs.300", "0..127"),
        ("channel = 16\n", "channel", "0 to 15"),
        ("bars = 300.0\n", "bars", "must be from 0.25 to 256 bars"),  # the schema's bars range
        ("tempo = 3\n", "tempo", "unknown key"),
        ("bars = [\n", "toml", ""),
    ],
)
def test_map_errors_name_file_key_and_reason(tmp_path, text, key, reason):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PresetError) as caught:
        load_midi_maps([tmp_path], PRESETS)
    assert any(line.startswith(f"{path}: {key}: ") and reason in line for line in caught.value.problems), \
        caught.value.problems


@pytest.mark.parametrize("setting", PRESET_SETTINGS)
def test_a_knob_spans_exactly_the_schemas_range(tmp_path, setting):
    (tmp_path / "knobs.toml").write_text(f'[[cc]]\ncc = 1\nsetting = "{setting}"\n'
                                         f'[[notes]]\nnote = 36\naction = "generate"\nvelocity = "{setting}"\n')
    spec = load_schema().setting(setting)
    recorder = Recorder()
    midi = controller(load_midi_maps([tmp_path])["knobs"], recorder)
    for value, velocity, expected in ((0, 1, spec.min), (127, 127, spec.max)):
        midi.feed(mido.Message("control_change", control=1, value=value))
        assert midi.settings[setting] == expected and type(midi.settings[setting]) is type(spec.coerce(expected))
        midi.feed(mido.Message("note_on", note=36, velocity=velocity))
        assert recorder.jobs[-1]["settings"][setting] == expected
        assert SCHEMA.parse("/continuo/generate", ["job-1", "default", "x", 1.0, setting, expected]).settings == {
            setting: expected}  # what a knob sends, OSC accepts


def test_opening_a_port_without_a_backend_or_port_is_a_clear_error(default_map):
    midi = MidiController(default_map, submit=Recorder().submit, sender=("127.0.0.1", 9001))
    with pytest.raises(ConfigError, match="midi: "):
        open_midi_input("No Such Controller", midi)


class HeldLock:
    """A lock that records whether it was held at each call the controller made through it."""

    def __init__(self) -> None:
        self.held = False

    def __enter__(self) -> None:
        assert not self.held
        self.held = True

    def __exit__(self, *exc_info) -> None:
        self.held = False


def test_calls_out_hold_the_shared_lock_and_result_lookups_do_not(default_map):
    lock, seen = HeldLock(), []
    midi = MidiController(
        default_map, sender=("127.0.0.1", 9001), lock=lock,
        submit=lambda *a, **k: seen.append(("submit", lock.held)),
        set_tempo=lambda bpm: seen.append(("tempo", lock.held)),
        cancel=lambda job_id: seen.append(("cancel", lock.held)),
        result_path=lambda job_id: seen.append(("result", lock.held)),
    )
    midi.feed(mido.Message("note_on", note=36, velocity=100))  # generate, slot 1
    for tick in range(TICKS_PER_BEAT):
        midi.feed(mido.Message("clock"), 10.0 + tick * 0.02)
    midi.feed(mido.Message("note_on", note=40, velocity=100))  # continue: looks up results first
    midi.feed(mido.Message("note_on", note=42, velocity=100))  # cancel slot 1
    assert {name: held for name, held in seen} == {"submit": True, "tempo": True, "result": False, "cancel": True}
    assert not lock.held


def test_an_unknown_map_name_lists_the_known_ones(default_map):
    assert pick_midi_map({"default": default_map}, "default") is default_map
    with pytest.raises(ConfigError, match=r"no MIDI map named 'pads'; known: default"):
        pick_midi_map({"default": default_map}, "pads")


def test_mix_path_is_the_mix_of_a_finished_record_only(tmp_path):
    from bridge.jobs.journal import Journal, OutputRecord
    from bridge.jobs.queue import JobStatus

    journal = Journal(tmp_path / "j.sqlite3")
    journal.insert_job("m1", "generate", {"bars": 1.0}, ("127.0.0.1", 9001))
    journal.add_output("m1", OutputRecord("drums", "/r/m1/drums.wav", 48000, 2, 2.0, 1.0, -14, -1))
    journal.add_output("m1", OutputRecord("mix", "/r/m1/mix.wav", 48000, 2, 2.0, 1.0, -14, -1))
    assert mix_path(journal.get("m1")) is None  # still queued
    journal.finish("m1", JobStatus.DONE, seed=1, elapsed_s=1.0)
    assert mix_path(journal.get("m1")) == "/r/m1/mix.wav" and mix_path(None) is None
    journal.close()
