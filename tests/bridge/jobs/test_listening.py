"""The daemon listens (bridge/jobs/listening.py): /continuo/analyze, the tempo, metre and downbeat a request without
a tempo renders at, the key with heard_key 1, and the grid check in every manifest. Signals of exact truth
(bridge/tools/listen_truth.py), the tiny random model (its takes are noise: only the plumbing of their check)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import soundfile as sf

from bridge.audio.midi_files import read_midi_notes
from bridge.jobs.takes import prompt_tail_s
from bridge.tools.listen_truth import chord_progression, drum_pattern, melody, note_f1, onset_f1

SENDER = ("127.0.0.1", 41000)


@pytest.fixture
def daemon(make_daemon_in_process):
    return make_daemon_in_process()


def inbox_file(daemon, name: str, truth) -> Path:
    inbox = daemon.settings.output_root.parent / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    sf.write(path, truth.audio.T, truth.sample_rate)
    return path


def manifest(daemon, job_id: str) -> dict:
    return json.loads((daemon.settings.output_root / job_id / "manifest.json").read_text())


def events_of(daemon, address: str) -> list[list]:
    return [args for name, args in daemon.sent if name == address]


def test_analyze_answers_with_the_tempo_metre_key_and_every_downbeat(daemon):
    truth = drum_pattern(100.0, "3/4", bars=6)
    path = inbox_file(daemon, "waltz.wav", truth)
    daemon.on_message("/continuo/analyze", [str(path)], SENDER)
    (analysis,) = events_of(daemon, "/continuo/analysis")
    assert analysis[0] == "" and analysis[1] == path.as_posix()
    assert analysis[2] == pytest.approx(100.0, rel=0.02) and analysis[4:6] == [3, 4]
    assert analysis[8] == pytest.approx(truth.audio.shape[1] / truth.sample_rate / 1.8, rel=0.03)  # bars at 100
    beats = {kind: [float(t) for t in times.split(",")] for _, kind, _, times in events_of(daemon, "/continuo/beats")}
    assert onset_f1(beats["downbeat"], truth.downbeats_s, tolerance_s=0.03) >= 0.9
    assert onset_f1(beats["beat"], truth.beats_s, tolerance_s=0.03) >= 0.9
    # control: the same downbeats a beat late do not pass the bound
    assert onset_f1([t + 0.6 for t in beats["downbeat"]], truth.downbeats_s, tolerance_s=0.03) < 0.5


def test_analyze_of_a_file_outside_the_input_roots_is_refused(daemon, tmp_path):
    outside = tmp_path / "elsewhere.wav"
    sf.write(outside, drum_pattern(100.0, "4/4", bars=2).audio.T, 44100)
    daemon.on_message("/continuo/analyze", [str(outside)], SENDER)
    assert not events_of(daemon, "/continuo/analysis")
    (error,) = events_of(daemon, "/continuo/error")
    assert error[1] in ("not_found", "bad_request") and "input" in error[2]


@pytest.mark.slow
def test_a_continuation_without_a_tempo_renders_bar_exact_at_the_tempo_heard(daemon):
    path = inbox_file(daemon, "waltz.wav", drum_pattern(100.0, "3/4", bars=6))
    daemon.on_message("/continuo/continue", ["heard-1", "default", str(path), 1.0], SENDER)
    assert daemon.sent.wait_terminal("heard-1")[0] == "/continuo/done"
    told = [name for name, args in daemon.sent.of("heard-1")]
    assert told[:2] == ["/continuo/queued", "/continuo/analysis"]  # what was inferred, right after queued
    (analysis,) = [args for args in events_of(daemon, "/continuo/analysis") if args[0] == "heard-1"]
    assert analysis[2] == pytest.approx(100.0, rel=0.02) and analysis[4:6] == [3, 4]
    found = manifest(daemon, "heard-1")
    assert found["inferred"]["bpm"] == pytest.approx(100.0, rel=0.02) and found["context"]["metre"] == "3/4"
    assert found["context"]["key"] == ""  # heard_key 0: the key heard is reported, not used (none invented)
    (mix,) = [o for o in found["outputs"] if o["name"] == "mix"]
    bar_s = 3 * 60.0 / found["inferred"]["bpm"]
    assert mix["seconds"] == pytest.approx(bar_s, abs=1e-3) and mix["bars"] == 1.0
    assert set(mix["grid"]) == {"bpm_heard", "bpm_confidence", "tempo_error_pct", "octave", "offset_ms", "against"}
    # control: an explicit bpm wins, and nothing is inferred
    daemon.on_message("/continuo/continue", ["told-1", "default", str(path), 1.0, "bpm", 120.0], SENDER)
    assert daemon.sent.wait_terminal("told-1")[0] == "/continuo/done"
    assert "/continuo/analysis" not in [name for name, _ in daemon.sent.of("told-1")]
    told = manifest(daemon, "told-1")
    assert "inferred" not in told and told["outputs"][0]["seconds"] == pytest.approx(2.0, abs=1e-3)  # 4/4 at 120


def test_a_session_tempo_is_not_second_guessed_and_heard_key_takes_the_key(daemon):
    path = inbox_file(daemon, "song.wav", chord_progression(9, "minor", bpm=100.0))
    daemon.on_message("/continuo/context", [90.0, 4, 4, "C major", 48000], SENDER)
    daemon.on_message("/continuo/continue", ["keyed-1", "default", str(path), 1.0, "heard_key", 1], SENDER)
    daemon.on_message("/continuo/continue", ["plain-1", "default", str(path), 1.0], SENDER)
    for job_id in ("keyed-1", "plain-1"):
        assert daemon.sent.wait_terminal(job_id)[0] == "/continuo/done"
    keyed, plain = manifest(daemon, "keyed-1"), manifest(daemon, "plain-1")
    assert keyed["context"]["bpm"] == plain["context"]["bpm"] == 90.0  # the session's tempo, not the heard one
    assert keyed["context"]["key"] == "A minor" and "A minor" in keyed["prompt"]
    assert keyed["inferred"] == {"key": "A minor", "key_heard": "A minor",
                                 "key_confidence": keyed["inferred"]["key_confidence"]}
    assert "Amin" in Path(keyed["outputs"][0]["daw_path"]).name
    # control: without heard_key the session's key stands and nothing is inferred
    assert plain["context"]["key"] == "C major" and "inferred" not in plain


def test_the_prompt_of_a_heard_input_starts_on_a_downbeat():
    # 10 s clip, downbeats at 0.5, 2.5, 4.5, 6.5 and 8.5 s, 5 s of prompt: from 6.5 s, the first within 5 s
    assert prompt_tail_s(10.0, 5.0, 0.5, 2.0) == pytest.approx(3.5)
    assert prompt_tail_s(10.0, 5.0, 1.0, 2.0) == pytest.approx(5.0)  # a bar line exactly 5 s before the end
    assert prompt_tail_s(3.0, 5.0, 0.5, 2.0) == pytest.approx(2.5)  # a short clip: from its first downbeat
    assert prompt_tail_s(1.0, 5.0, 1.5, 2.0) == pytest.approx(5.0)  # no downbeat in the clip: as asked


def midi_pairs(path: Path) -> tuple[list[tuple[int, float]], float]:
    notes, bpm = read_midi_notes(path)
    return [(note.pitch, note.start_s) for note in notes], bpm


def test_midi_of_a_file_is_a_standard_midi_file_named_for_the_daw(daemon):
    truth = melody(seed=3, count=12, bpm=110.0)
    path = inbox_file(daemon, "line.wav", truth)
    daemon.on_message("/continuo/context", [110.0, 4, 4, "C major", 48000], SENDER)
    daemon.on_message("/continuo/midi", ["notes-1", str(path), "mix"], SENDER)
    assert daemon.sent.wait_terminal("notes-1")[0] == "/continuo/done"
    (output,) = [args for name, args in daemon.sent.of("notes-1") if name == "/continuo/output"]
    assert output[1] == "mix-midi" and output[2].endswith("/notes-1/mix.mid")
    assert "transcribing" in {args[2] for name, args in daemon.sent.of("notes-1") if name == "/continuo/progress"}
    found, bpm = midi_pairs(Path(output[2]))
    assert bpm == pytest.approx(110.0)  # the session's tempo
    want = [(note.pitch, note.start_s) for note in truth.notes]
    assert note_f1(found, want) >= 0.8
    assert note_f1(found, [(pitch + 1, start) for pitch, start in want]) < 0.2  # control: a semitone off fails
    (entry,) = manifest(daemon, "notes-1")["outputs"]
    assert re.fullmatch(r"notes-1_mix_[0-9.]+bars_110bpm_Cmaj\.mid", Path(entry["daw_path"]).name)
    assert Path(entry["daw_path"]).read_bytes() == Path(output[2]).read_bytes()


def test_midi_refuses_what_it_cannot_do(daemon, tmp_path):
    path = inbox_file(daemon, "line.wav", melody(seed=1, count=4))
    daemon.on_message("/continuo/midi", ["bad-1", str(path), "mix", "prompt", "jazz"], SENDER)
    daemon.on_message("/continuo/generate", ["bad-2", "default", "x", 1.0, "quantize", 16], SENDER)
    daemon.on_message("/continuo/variations", ["bad-3", "default", "", 2, 1.0, "midi", 1], SENDER)
    daemon.on_message("/continuo/midi", ["bad-4", str(path), "mix", "quantize", 5], SENDER)
    errors = {args[0]: args for args in events_of(daemon, "/continuo/error")}
    assert "generates nothing" in errors["bad-1"][2] and "prompt" in errors["bad-1"][2]
    assert "midi 1" in errors["bad-2"][2]
    assert "/continuo/midi" in errors["bad-3"][2]
    assert "not a grid" in errors["bad-4"][2]
    assert all(error[1] == "bad_request" for error in errors.values())


@pytest.mark.slow
def test_stems_with_midi_write_a_midi_file_beside_each_stem(make_daemon_in_process):
    daemon = make_daemon_in_process(stems_weights="random", stems_model_size="low")
    path = inbox_file(daemon, "beat.wav", drum_pattern(120.0, "4/4", bars=2))
    daemon.on_message("/continuo/stems", ["split-1", str(path), "drums,bass", 1], SENDER)
    assert daemon.sent.wait_terminal("split-1")[0] == "/continuo/done"
    names = [args[1] for name, args in daemon.sent.of("split-1") if name == "/continuo/output"]
    assert names == ["drums", "bass", "drums-midi", "bass-midi"]
    folder = daemon.settings.output_root / "split-1"
    for stem in ("drums", "bass"):
        wav, mid = sorted(folder.glob(f"split-1_{stem}_*.wav")), sorted(folder.glob(f"split-1_{stem}_*.mid"))
        assert len(wav) == len(mid) == 1 and wav[0].stem == mid[0].stem  # one DAW name, two files
        assert read_midi_notes(folder / f"{stem}.mid")[1] == pytest.approx(120.0, rel=0.02)  # the tempo heard
