"""Drums to notes by onset and band, against synthetic kits of exact truth: each drum alone is only that drum, a
pattern's kicks and snares are all found (hats too, but those struck with a snare, which the snare holds), and a
check with the drums' labels swapped fails."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.drums import GM_DRUMS, transcribe_drums
from bridge.tools import listen_truth as truth_sets

SR = 44100


def hits_of(sound: np.ndarray, times: list[float], seconds: float = 4.0) -> np.ndarray:
    out = np.zeros(int(seconds * SR), np.float32)
    for k, time_s in enumerate(times):
        start = int(time_s * SR)
        length = min(sound.size, out.size - start)
        out[start: start + length] += (0.6 + 0.05 * k) * sound[:length]
    return out[None, :]


@pytest.mark.parametrize("name", ["kick", "snare", "hat"])
def test_each_drum_alone_is_that_drum_only(name):
    sound = {"kick": truth_sets.kick, "snare": truth_sets.snare, "hat": truth_sets.hat}[name](SR)
    times = [0.1 + 0.45 * k for k in range(8)]
    notes = transcribe_drums(hits_of(sound, times), SR)
    assert [note.pitch for note in notes] == [GM_DRUMS[name]] * 8
    assert truth_sets.onset_f1([note.start_s for note in notes], times, 0.02) == 1.0
    assert all(note.end_s > note.start_s and 40 <= note.velocity <= 127 for note in notes)


@pytest.mark.parametrize(("metre", "bpm"), [("4/4", 100), ("3/4", 150), ("6/8", 80)])
def test_a_pattern_s_kicks_snares_and_hats(metre, bpm):
    truth = truth_sets.drum_pattern(bpm, metre, bars=3)
    notes = transcribe_drums(truth.audio, truth.sample_rate)
    found = {name: [n.start_s for n in notes if n.pitch == pitch] for name, pitch in GM_DRUMS.items()}
    assert truth_sets.onset_f1(found["kick"], truth.drums["kick"], 0.05) == 1.0
    assert truth_sets.onset_f1(found["snare"], truth.drums["snare"], 0.05) == 1.0
    open_hats = [t for t in truth.drums["hat"] if min(abs(t - s) for s in truth.drums["snare"]) > 0.01]
    assert truth_sets.onset_f1(found["hat"], open_hats, 0.05) == 1.0  # a hat under a snare is the snare's
    # control: the same notes under each other's labels do not pass
    assert truth_sets.onset_f1(found["kick"], truth.drums["snare"], 0.05) < 0.5


def test_silence_has_no_drums():
    assert transcribe_drums(np.zeros((1, SR * 2), np.float32), SR) == []
