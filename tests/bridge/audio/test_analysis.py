"""Listening against signals whose truth is exact (bridge/tools/listen_truth.py): tempo within 2 %, the metre,
downbeats within 30 ms, the key (exact or relative). Each check has a control that must fail it: a click at
another tempo, a truth in another metre or key, downbeats a beat late. Accuracy over the whole set is
`continuo bench listen` (docs/benchmarks.md); here, a spread of cases and bounds."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.analysis import analyze, check_grid, estimate_key, fit_grid
from bridge.audio.context import MusicalContext
from bridge.audio.loudness import measure_lufs
from bridge.audio.render import resample
from bridge.tools import listen_truth as truth_sets
from bridge.tools.listen_truth import Truth, click_track, drum_pattern, score_rhythm

CASES = [("click", "4/4", 60), ("click", "4/4", 180), ("click", "3/4", 75), ("click", "3/4", 165),
         ("click", "6/8", 60), ("click", "6/8", 150), ("drums", "4/4", 90), ("drums", "4/4", 135),
         ("drums", "3/4", 120), ("drums", "6/8", 105), ("drums", "6/8", 180)]


def build(kind: str, metre: str, bpm: float, **kwargs) -> Truth:
    return (click_track if kind == "click" else drum_pattern)(bpm, metre, **kwargs)


@pytest.mark.parametrize(("kind", "metre", "bpm"), CASES)
def test_tempo_metre_and_downbeats_of_clicks_and_drums(kind, metre, bpm):
    truth = build(kind, metre, bpm, bars=6)
    found = analyze(truth.audio, truth.sample_rate)
    score = score_rhythm(found.bpm, found.metre, found.downbeats_s, truth)
    assert score.passed, (found.bpm, found.metre, score)
    assert abs(found.bpm / bpm - 1) < 0.002  # the line through the beats: far inside the 2 % bound
    assert found.bpm_confidence > 0.3 and found.metre_confidence > 0.3
    per_bar, unit = truth_sets.METRES[metre]
    assert found.bars == pytest.approx(found.seconds / (per_bar * 60 / bpm * 4 / unit), rel=0.01)
    assert len(found.beats_s) >= per_bar * 5  # beats are beat_unit notes: eighths in 6/8
    assert np.allclose(np.diff(found.beats_s), 60 / bpm * 4 / unit, rtol=0.05)


def test_the_rhythm_check_fails_on_a_wrong_tempo_metre_or_downbeat():
    """Controls: the analysis of a 126 BPM click is not a 120 BPM click; a 4/4 answer is not 3/4; downbeats a
    beat late are not downbeats; a double-time answer is an octave error, counted apart."""
    asked = click_track(120, "4/4", bars=6)
    other = analyze(click_track(126, "4/4", bars=6).audio, asked.sample_rate)
    assert score_rhythm(other.bpm, other.metre, other.downbeats_s, asked).tempo == "wrong"
    found = analyze(asked.audio, asked.sample_rate)
    assert score_rhythm(found.bpm, found.metre, found.downbeats_s, asked).passed
    assert not score_rhythm(found.bpm, "3/4", found.downbeats_s, asked).passed
    late = tuple(t + 0.5 for t in found.downbeats_s)
    assert score_rhythm(found.bpm, found.metre, late, asked).downbeat_f1 < 0.2
    assert score_rhythm(found.bpm * 2, found.metre, found.downbeats_s, asked).tempo == "octave"


def test_the_grid_line_gives_tempo_to_hundredths_of_a_bpm():
    truth = click_track(123.4, "4/4", bars=8)
    assert analyze(truth.audio, truth.sample_rate).bpm == pytest.approx(123.4, abs=0.05)


def test_the_grid_line_ignores_an_outlying_beat():
    beats = 0.1 + 0.5 * np.arange(12)
    beats[5] += 0.2  # a beat the tracker put on a stray hit
    grid = fit_grid(beats, 0.49)
    assert grid.period_s == pytest.approx(0.5, abs=1e-6)
    assert grid.inliers == pytest.approx(11 / 12)


def test_stereo_48k_and_mono_44k_agree():
    truth = drum_pattern(100, "4/4", bars=6)
    mono = analyze(truth.audio, truth.sample_rate)
    stereo = resample(np.vstack([truth.audio, 0.5 * truth.audio]), truth.sample_rate, 48000)
    other = analyze(stereo, 48000)
    assert other.bpm == pytest.approx(mono.bpm, rel=0.002)
    assert other.metre == mono.metre
    assert np.allclose(other.downbeats_s[:4], mono.downbeats_s[:4], atol=0.01)


def test_loudness_is_the_loudness_module_s():
    truth = click_track(90, "3/4", bars=4)
    assert analyze(truth.audio, truth.sample_rate).lufs == pytest.approx(measure_lufs(truth.audio, 44100))


def test_silence_and_a_short_clip_have_no_tempo():
    silent = analyze(np.zeros((2, 44100 * 4), np.float32), 44100)
    assert (silent.bpm, silent.beats_s, silent.key, silent.bars) == (0.0, (), "", 0.0)
    short = click_track(120, "4/4", bars=1, lead_beats=0)  # 2 s and a little
    clipped = analyze(short.audio[:, : int(1.5 * 44100)], 44100)
    assert clipped.bpm == 0.0 and clipped.bpm_confidence == 0.0


KEYS = [(0, "major"), (9, "minor"), (6, "major"), (3, "minor"), (10, "major"), (4, "minor")]


@pytest.mark.parametrize(("tonic", "mode"), KEYS)
def test_key_of_chord_progressions(tonic, mode):
    progression = truth_sets.chord_progression(tonic, mode, variant=tonic % 2)
    found = analyze(progression.audio, progression.sample_rate)
    assert found.key in (progression.key, truth_sets.relative_key(progression.key))
    assert found.key == progression.key  # these progressions carry their tonic: the exact key
    assert found.key_confidence > 0.6


def test_the_key_check_fails_on_another_key():
    """Control: C major's progression is not in F# major (nor its relative), and a key a fifth away is wrong."""
    found = analyze(truth_sets.chord_progression(0, "major").audio, 44100)
    assert found.key == "C major"
    assert found.key not in ("F# major", truth_sets.relative_key("F# major"), "G major")


def test_key_needs_pitch_content():
    assert estimate_key(np.zeros((12, 10))) == ("", 0.0)
    assert estimate_key(np.ones((12, 10))) == ("", 0.0)  # every pitch class alike: no key


def test_analysis_json_is_plain_and_rounded():
    truth = click_track(120, "4/4", bars=4)
    data = analyze(truth.audio, truth.sample_rate).to_json()
    assert data["metre"] == "4/4" and data["bpm"] == pytest.approx(120, abs=0.05)
    assert isinstance(data["beats_s"], list) and data["first_downbeat_s"] == data["downbeats_s"][0]
    assert all(isinstance(value, (int, float, str, list)) for value in data.values())


@pytest.mark.skipif(truth_sets.find_soundfont() is None,
                    reason="fluidsynth and a GM SoundFont are not installed (apt-get install fluidsynth "
                           "fluid-soundfont-gm): recorded instruments are checked where they are")
def test_a_mix_of_recorded_instruments_in_a_minor_key():
    """Drums, a fingered bass and piano chords from FluidR3: the tempo, metre, downbeats and the minor key (the
    bass's fifth partial feeds the major third; Krumhansl-Kessler's profile took it for A major)."""
    truth, _stems = truth_sets.sampled_song(9, "minor", bpm=128.0, soundfont=truth_sets.find_soundfont())
    found = analyze(truth.audio, truth.sample_rate)
    assert score_rhythm(found.bpm, found.metre, found.downbeats_s, truth).passed
    assert found.key == "A minor"


def test_the_grid_check_measures_a_render_against_the_asked_grid():
    truth = truth_sets.click_track(120.0, "4/4", bars=8, lead_beats=0)  # bar 0 at 0.05 s
    on_grid = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0), origin_s=0.05)
    assert abs(on_grid.tempo_error_pct) < 0.5 and on_grid.octave == "" and on_grid.against == "downbeats"
    assert abs(on_grid.offset_ms) < 15.0
    assert check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0)).offset_ms == pytest.approx(50, abs=15)
    # controls: a take 5 % fast, one 100 ms late, one asked at half its tempo, one in another metre
    fast = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0 / 1.05))
    assert fast.tempo_error_pct == pytest.approx(5.0, abs=0.5)
    late = np.concatenate([np.zeros((1, 4410), np.float32), truth.audio], axis=1)
    assert check_grid(late, truth.sample_rate, MusicalContext(bpm=120.0), origin_s=0.05).offset_ms == pytest.approx(
        100.0, abs=15)
    half = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=60.0))
    assert half.octave == "2" and abs(half.tempo_error_pct) < 0.5
    waltz = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0, beats_per_bar=3), origin_s=0.05)
    assert waltz.against == "beats" and abs(waltz.offset_ms) < 15.0
    assert check_grid(np.zeros((1, 44100), np.float32), 44100, MusicalContext()).tempo_error_pct is None


def test_the_bench_sums_up_grid_checks_and_its_controls_move():
    from bridge.tools.bench_listen import grid_controls, summarize_grid

    entry = {"bpm_heard": 120.0, "bpm_confidence": 0.8, "tempo_error_pct": 0.4, "octave": "", "offset_ms": 12.0,
             "against": "downbeats"}
    entries = [entry, {**entry, "tempo_error_pct": 0.1, "octave": "2", "offset_ms": -40.0},
               {**entry, "tempo_error_pct": 9.0}, {**entry, "tempo_error_pct": None, "offset_ms": None}]
    summary = summarize_grid(entries)
    assert (summary["renders"], summary["tempo_heard"], summary["tempo_within_2pct"], summary["tempo_octave"],
            summary["tempo_wrong"], summary["offset_within_30ms"]) == (4, 3, 1, 1, 1, 2)
    controls = grid_controls()
    assert abs(controls["control_on_grid_error_pct"]) < 0.5
    assert controls["control_asked_5pct_slower_error_pct"] == pytest.approx(5.0, abs=0.5)
