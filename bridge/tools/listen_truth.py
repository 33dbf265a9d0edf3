"""Signals whose musical truth is exact, for the listening tests and `continuo bench listen`.

Each builder returns the audio (C, T) float32 and what a listener should find in it: beat and downbeat times,
the tempo in quarter notes per minute (the session's bpm), the metre, the key, the notes. Nothing here is
recorded: clicks, drum hits, harmonic tones and chords are synthesised sample-exactly, so a test can assert a
bound against the truth and a control (the same signal with a wrong truth) must fail it.

Metres are written the way the session writes them (bridge/audio/context.py): bpm counts quarter notes, a 6/8
bar is six eighths (three quarters' time), a "beat" is one beat_unit note. Accents: the downbeat loudest, the
metre's secondary strong beat (beat 3 of 4/4, the fourth eighth of 6/8) next, the rest soft.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.transcription.notes import Note  # the truth's notes are the transcriber's kind: one Note

SAMPLE_RATE = 44100
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
METRES: dict[str, tuple[int, int]] = {"4/4": (4, 4), "3/4": (3, 4), "6/8": (6, 8)}
# Accent per beat of the bar: downbeat, secondary strong beat, the rest.
ACCENTS: dict[str, tuple[float, ...]] = {
    "4/4": (1.0, 0.35, 0.6, 0.35),
    "3/4": (1.0, 0.35, 0.35),
    "6/8": (1.0, 0.3, 0.3, 0.6, 0.3, 0.3),
}


@dataclass
class Truth:
    """What a listener should find in a built signal."""

    audio: np.ndarray  # (C, T) float32
    sample_rate: int
    bpm: float = 0.0  # quarter notes per minute
    metre: str = ""
    beats_s: tuple[float, ...] = ()  # every beat_unit note
    downbeats_s: tuple[float, ...] = ()
    key: str = ""  # "A minor"
    notes: tuple[Note, ...] = ()
    drums: dict[str, tuple[float, ...]] = field(default_factory=dict)  # kick/snare/hat -> onset times


def beat_seconds(bpm: float, metre: str) -> float:
    """One beat_unit note at bpm quarter notes per minute."""
    return 60.0 / bpm * 4.0 / METRES[metre][1]


def _grid(bpm: float, metre: str, bars: int, lead_beats: int) -> tuple[np.ndarray, np.ndarray]:
    """Beat times and their position in the bar, starting lead_beats before the first downbeat (a pickup)."""
    per_bar = METRES[metre][0]
    step = beat_seconds(bpm, metre)
    count = bars * per_bar + lead_beats
    onset_s = 0.05  # a little silence first, as a clip cut just before a hit
    times = onset_s + step * np.arange(count)
    positions = (np.arange(count) - lead_beats) % per_bar
    return times, positions


def click(sample_rate: int, frequency_hz: float = 1500.0, decay_s: float = 0.012) -> np.ndarray:
    """A short decaying sine burst: the metronome's tick."""
    t = np.arange(int(sample_rate * 6 * decay_s)) / sample_rate
    return (np.sin(2 * np.pi * frequency_hz * t) * np.exp(-t / decay_s)).astype(np.float32)


def _place(out: np.ndarray, sound: np.ndarray, time_s: float, gain: float, sample_rate: int) -> None:
    start = int(round(time_s * sample_rate))
    end = min(out.shape[-1], start + sound.shape[-1])
    if start < end:
        out[..., start:end] += gain * sound[..., : end - start]


def click_track(bpm: float, metre: str, *, bars: int = 8, lead_beats: int = 1, noise_db: float = -60.0,
                sample_rate: int = SAMPLE_RATE, seed: int = 0) -> Truth:
    """A metronome at bpm in metre: every beat clicked, downbeats accented (louder, and a higher tick)."""
    times, positions = _grid(bpm, metre, bars, lead_beats)
    total = int((times[-1] + beat_seconds(bpm, metre) + 0.1) * sample_rate)
    out = _noise(total, noise_db, seed)
    accents = ACCENTS[metre]
    for time_s, position in zip(times, positions, strict=True):
        tick = click(sample_rate, 2000.0 if position == 0 else 1500.0)
        _place(out, tick, time_s, 0.8 * accents[position], sample_rate)
    return Truth(audio=out[None, :], sample_rate=sample_rate, bpm=bpm, metre=metre,
                 beats_s=tuple(times), downbeats_s=tuple(times[positions == 0]))


def kick(sample_rate: int) -> np.ndarray:
    t = np.arange(int(0.35 * sample_rate)) / sample_rate
    frequency = 50.0 + 90.0 * np.exp(-t / 0.04)
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    return _faded(np.sin(phase) * np.exp(-t / 0.12), sample_rate)


def snare(sample_rate: int, seed: int = 1) -> np.ndarray:
    t = np.arange(int(0.2 * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    noise = np.diff(noise, prepend=0.0)  # brighter than white
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.03)
    return _faded(0.35 * noise * np.exp(-t / 0.05) + 0.6 * body, sample_rate)


def hat(sample_rate: int, seed: int = 2) -> np.ndarray:
    t = np.arange(int(0.06 * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    noise = np.diff(np.diff(noise, prepend=0.0), prepend=0.0)  # high-passed
    return _faded(0.15 * noise * np.exp(-t / 0.012), sample_rate)


def _faded(sound: np.ndarray, sample_rate: int, fade_s: float = 0.02) -> np.ndarray:
    """sound with a raised-cosine fade over its last fade_s: a cut would click (an onset of its own)."""
    frames = min(sound.size, int(fade_s * sample_rate))
    sound = sound.copy()
    sound[-frames:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, frames)))
    return sound.astype(np.float32)


# Which drum plays where, per eighth note of the bar (6/8: per eighth; 3/4 and 4/4: two per beat).
DRUM_PATTERNS: dict[str, dict[str, tuple[int, ...]]] = {
    "4/4": {"kick": (0, 5), "snare": (2, 6), "hat": tuple(range(8))},
    "3/4": {"kick": (0,), "snare": (2, 4), "hat": tuple(range(6))},
    "6/8": {"kick": (0,), "snare": (3,), "hat": tuple(range(6))},
}


def drum_pattern(bpm: float, metre: str, *, bars: int = 8, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> Truth:
    """Kick, snare and closed hat in a pattern of the metre, hats on every eighth, the downbeat's kick loudest.

    4/4: kick on 1 and the "and" of 3, snare on 2 and 4; 3/4: kick on 1, snare on 2 and 3; 6/8: kick on 1,
    snare on 4. The truth holds every hit per drum, the beats and the downbeats.
    """
    per_bar, unit = METRES[metre]
    eighth_s = 30.0 / bpm
    eighths_per_bar = per_bar * (8 // unit)
    lead_s = 0.05 + eighth_s * eighths_per_bar / 2  # a half-bar pickup (hats and the last snare)
    total_s = lead_s + bars * eighths_per_bar * eighth_s + 0.4
    out = _noise(int(total_s * sample_rate), -70.0, seed)
    sounds = {"kick": kick(sample_rate), "snare": snare(sample_rate, seed + 1), "hat": hat(sample_rate, seed + 2)}
    hits: dict[str, list[float]] = {name: [] for name in sounds}
    first_eighth = -eighths_per_bar // 2
    for index in range(first_eighth, bars * eighths_per_bar):
        position = index % eighths_per_bar
        time_s = lead_s + index * eighth_s
        for name, places in DRUM_PATTERNS[metre].items():
            if position in places:
                gain = 1.0 if (name == "kick" and position == 0) else 0.7 if name != "hat" else 0.8
                if name == "hat" and position % (3 if metre == "6/8" else 2):
                    gain = 0.5  # the hats lean on the beats: quarters, or 6/8's dotted quarters
                _place(out, sounds[name], time_s, gain, sample_rate)
                hits[name].append(time_s)
    beat_s = beat_seconds(bpm, metre)
    beats = lead_s + beat_s * np.arange(-math.ceil(lead_s / beat_s), bars * per_bar)
    beats = beats[beats >= 0.04]
    downbeats = lead_s + per_bar * beat_s * np.arange(bars)
    return Truth(audio=out[None, :], sample_rate=sample_rate, bpm=bpm, metre=metre, beats_s=tuple(beats),
                 downbeats_s=tuple(downbeats), drums={name: tuple(t) for name, t in hits.items()})


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def tone(pitch: float, seconds: float, sample_rate: int, *, partials: int = 6, brightness: float = 0.7,
         attack_s: float = 0.01, release_s: float = 0.05) -> np.ndarray:
    """A harmonic tone (partial n at brightness**(n-1)), with an attack and a release inside its length."""
    frames = max(1, int(round(seconds * sample_rate)))
    t = np.arange(frames) / sample_rate
    f0 = midi_hz(pitch)
    wave = np.zeros(frames)
    for n in range(1, partials + 1):
        if n * f0 < sample_rate / 2 * 0.9:
            wave += brightness ** (n - 1) * np.sin(2 * np.pi * n * f0 * t)
    envelope = np.minimum(1.0, t / attack_s) * np.exp(-t / max(seconds * 2, 0.2))
    tail = np.clip((seconds - t) / release_s, 0.0, 1.0)
    return (wave * envelope * tail / partials ** 0.5).astype(np.float32)


def render_notes(notes: list[Note], *, sample_rate: int = SAMPLE_RATE, partials: int = 6, brightness: float = 0.7,
                 noise_db: float = -70.0, seed: int = 0) -> np.ndarray:
    """notes as harmonic tones (C=1, T), loudness following velocity."""
    total = int((max(n.end_s for n in notes) + 0.3) * sample_rate)
    out = _noise(total, noise_db, seed)
    for note in notes:
        sound = tone(note.pitch, note.end_s - note.start_s, sample_rate, partials=partials, brightness=brightness)
        _place(out, sound, note.start_s, 0.3 * note.velocity / 127.0, sample_rate)
    return out[None, :]


def melody(*, seed: int = 0, count: int = 16, low: int = 60, high: int = 79, bpm: float = 110.0,
           sample_rate: int = SAMPLE_RATE, partials: int = 6, legato: float = 0.9) -> Truth:
    """A monophonic line of count notes from a major scale between low and high, eighths and quarters."""
    rng = np.random.default_rng(seed)
    scale = [p for p in range(low, high + 1) if (p - low) % 12 in (0, 2, 4, 5, 7, 9, 11)]
    eighth = 30.0 / bpm
    notes, time_s = [], 0.1
    for _ in range(count):
        length = eighth * rng.choice([1, 2, 2, 3])
        notes.append(Note(int(rng.choice(scale)), time_s, time_s + length * legato, int(rng.integers(70, 120))))
        time_s += length
    audio = render_notes(notes, sample_rate=sample_rate, partials=partials, seed=seed)
    return Truth(audio=audio, sample_rate=sample_rate, bpm=bpm, notes=tuple(notes))


def bass_line(*, seed: int = 0, count: int = 16, bpm: float = 100.0, sample_rate: int = SAMPLE_RATE) -> Truth:
    """A bass line (E1..E3) of bright sawtooth-like tones: the model's hardest register."""
    return melody(seed=seed, count=count, low=28, high=52, bpm=bpm, sample_rate=sample_rate, partials=10)


MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 11)
# Degrees (0-based) of each chord's root; triads stacked in the scale.
PROGRESSIONS = {"major": ((0, 3, 4, 0), (0, 5, 3, 4)), "minor": ((0, 3, 4, 0), (0, 5, 3, 4))}


def chord_progression(tonic: int, mode: str, *, variant: int = 0, bpm: float = 100.0, repeats: int = 2,
                      sample_rate: int = SAMPLE_RATE, seed: int = 0) -> Truth:
    """I-IV-V-I (or I-vi-IV-V) in major, i-iv-V-i (or i-VI-iv-V) in harmonic minor: a bass root an octave down,
    a close triad over it, one chord per bar of 4/4."""
    steps = MAJOR_STEPS if mode == "major" else HARMONIC_MINOR_STEPS
    base = 48 + tonic % 12
    bar_s = 4 * 60.0 / bpm
    notes, time_s = [], 0.1
    for _ in range(repeats):
        for degree in PROGRESSIONS[mode][variant % 2]:
            chord = [base + steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
            voices = [chord[0] - 12, *chord]
            notes.extend(Note(p, time_s, time_s + bar_s * 0.95, 90) for p in voices)
            time_s += bar_s
    audio = render_notes(notes, sample_rate=sample_rate, seed=seed)
    return Truth(audio=audio, sample_rate=sample_rate, bpm=bpm, metre="4/4",
                 key=f"{PITCH_CLASSES[tonic % 12]} {mode}", notes=tuple(notes))


def _noise(frames: int, level_db: float, seed: int) -> np.ndarray:
    return (10.0 ** (level_db / 20.0) * np.random.default_rng(seed).standard_normal(frames)).astype(np.float32)


def relative_key(key: str) -> str:
    """"A minor" -> "C major", "C major" -> "A minor"."""
    name, mode = key.split()
    index = PITCH_CLASSES.index(name)
    if mode == "minor":
        return f"{PITCH_CLASSES[(index + 3) % 12]} major"
    return f"{PITCH_CLASSES[(index - 3) % 12]} minor"


def tempo_octave(found: float, truth: float, tolerance: float = 0.02) -> str:
    """"exact" within tolerance, "octave" within it at x2, x1/2, x3 or x1/3 (or 3/2, 2/3), else "wrong"."""
    if abs(found / truth - 1.0) <= tolerance:
        return "exact"
    for ratio in (2.0, 0.5, 3.0, 1 / 3, 1.5, 2 / 3):
        if abs(found / (truth * ratio) - 1.0) <= tolerance:
            return "octave"
    return "wrong"


def note_f1(found: list[tuple[int, float]], truth: list[tuple[int, float]], tolerance_s: float = 0.05) -> float:
    """F1 of (pitch, onset) pairs: a found note matches one unmatched true note of its pitch within tolerance_s
    (greedy by distance, as mir_eval's onset-only transcription measure does)."""
    if not found and not truth:
        return 1.0
    pairs = sorted((abs(f[1] - t[1]), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)
                   if f[0] == t[0] and abs(f[1] - t[1]) <= tolerance_s)
    used_f, used_t, hits = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            hits += 1
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def onset_f1(found: tuple[float, ...] | list[float], truth: tuple[float, ...] | list[float],
             tolerance_s: float = 0.03) -> float:
    """F1 of event times: each found time matches at most one true time within tolerance_s."""
    return note_f1([(0, t) for t in found], [(0, t) for t in truth], tolerance_s)


@dataclass(frozen=True)
class RhythmScore:
    """How a found tempo, metre and downbeats compare with the truth."""

    tempo: str  # exact (within 2 %), octave (within 2 % of x2, x1/2, x3, x1/3, x3/2, x2/3), wrong
    metre_ok: bool
    downbeat_f1: float  # at DOWNBEAT_TOLERANCE_S

    @property
    def passed(self) -> bool:
        return self.tempo == "exact" and self.metre_ok and self.downbeat_f1 >= 0.9


DOWNBEAT_TOLERANCE_S = 0.03


def score_rhythm(bpm: float, metre: str, downbeats_s: tuple[float, ...], truth: Truth) -> RhythmScore:
    return RhythmScore(tempo=tempo_octave(bpm, truth.bpm), metre_ok=metre == truth.metre,
                       downbeat_f1=onset_f1(downbeats_s, truth.downbeats_s, DOWNBEAT_TOLERANCE_S))


SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/default-GM.sf2"))


def find_soundfont() -> Path | None:
    """A General MIDI SoundFont and fluidsynth to play it (Debian: fluidsynth, fluid-soundfont-gm, MIT), or None."""
    if shutil.which("fluidsynth") is None:
        return None
    return next((path for path in SOUNDFONTS if path.is_file()), None)


def render_sampled(notes: list[Note], *, bpm: float, soundfont: Path, program: str = "other", drums: bool = False,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """notes played by recorded instruments (fluidsynth and a GM SoundFont): (C, T) float32. The truth stays the
    notes; the timbres are real samples (a piano, a fingered bass, a drum kit), attacks and all."""
    from bridge.audio.files import read_audio
    from bridge.audio.midi_files import MidiTrack, midi_bytes

    track = MidiTrack(name=program, bpm=bpm, drums=drums)
    with tempfile.TemporaryDirectory(prefix="continuo-truth-") as folder:
        midi, wav = Path(folder) / "notes.mid", Path(folder) / "notes.wav"
        midi.write_bytes(midi_bytes(notes, track))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(wav),
                        str(soundfont), str(midi)], check=True, capture_output=True, timeout=120)
        audio, _rate = read_audio(wav)
    return audio


def drum_notes(truth: Truth) -> list[Note]:
    """A drum pattern's hits as General MIDI drum notes (kick 36, snare 38, closed hat 42), the downbeat's kick
    loudest."""
    pitches = {"kick": 36, "snare": 38, "hat": 42}
    first_downbeats = set(round(t, 6) for t in truth.downbeats_s)
    notes = []
    for name, times in truth.drums.items():
        for time_s in times:
            velocity = 120 if name == "kick" and round(time_s, 6) in first_downbeats else 70 if name == "hat" else 100
            notes.append(Note(pitches[name], time_s, time_s + 0.1, velocity))
    return sorted(notes, key=lambda n: (n.start_s, n.pitch))


def sampled_song(tonic: int, mode: str, *, bpm: float, metre: str = "4/4", bars: int = 8,
                 soundfont: Path, sample_rate: int = SAMPLE_RATE) -> tuple[Truth, dict[str, np.ndarray]]:
    """Drums, a bass on the chord roots and piano chords, each played from the SoundFont: (the mix's truth, the
    stems). The drums start half a bar early (a pickup); chords change on the downbeats."""
    kit = drum_pattern(bpm, metre, bars=bars, sample_rate=sample_rate)
    steps = MAJOR_STEPS if mode == "major" else HARMONIC_MINOR_STEPS
    per_bar, unit = METRES[metre]
    bar_s = per_bar * beat_seconds(bpm, metre)
    chords, bass = [], []
    for index, downbeat in enumerate(kit.downbeats_s):
        degree = PROGRESSIONS[mode][0][index % 4]
        root = 48 + tonic % 12 + steps[degree]
        triad = [48 + tonic % 12 + steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        chords.extend(Note(p + 12, downbeat, downbeat + bar_s * 0.95, 75) for p in triad)
        bass.append(Note(root - 24 if root - 24 >= 28 else root - 12, downbeat, downbeat + bar_s * 0.45, 100))
        bass.append(Note(root - 24 if root - 24 >= 28 else root - 12, downbeat + bar_s / 2,
                         downbeat + bar_s * 0.95, 90))
    stems = {"drums": render_sampled(drum_notes(kit), bpm=bpm, soundfont=soundfont, drums=True,
                                     sample_rate=sample_rate),
             "bass": render_sampled(bass, bpm=bpm, soundfont=soundfont, program="bass", sample_rate=sample_rate),
             "other": render_sampled(chords, bpm=bpm, soundfont=soundfont, sample_rate=sample_rate)}
    frames = max(stem.shape[1] for stem in stems.values())
    mix = sum(np.pad(stem, ((0, 0), (0, frames - stem.shape[1]))) for stem in stems.values())
    truth = Truth(audio=mix.astype(np.float32), sample_rate=sample_rate, bpm=bpm, metre=metre,
                  beats_s=kit.beats_s, downbeats_s=kit.downbeats_s, key=f"{PITCH_CLASSES[tonic % 12]} {mode}",
                  notes=tuple(sorted(bass + chords, key=lambda n: (n.start_s, n.pitch))), drums=kit.drums)
    return truth, stems
