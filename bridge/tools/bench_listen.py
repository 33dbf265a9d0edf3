"""`continuo bench listen`: how well and how fast the daemon listens, against signals of exact truth.

One JSON line per part (bridge/tools/listen_truth.py builds every signal):

- ``rhythm``: clicks and drum patterns in 4/4, 3/4 and 6/8 at 60 to 180 BPM (every 10; ``--quick`` every 30):
  tempo within 2 % (``exact``), within 2 % of x2, x1/2, x3, x1/3, x3/2 or x2/3 (``octave``, counted apart) or
  ``wrong``; the metre; downbeat F1 at 30 ms (a case passes at 0.9 or more); per metre and kind.
- ``key``: chord progressions in all 24 keys (two progressions each, and a natural-minor one that never plays the
  leading tone): exact, relative (the relative major or minor), a fifth off, other.
- ``notes``: Basic Pitch's note F1 at 50 ms onset tolerance on melodies, bass lines and four-voice chords of
  harmonic tones; ``drums``: kick, snare and hat F1 at 50 ms on the drum patterns.
- ``sampled``: the same measures on recorded instruments (a GM SoundFont played by fluidsynth: drums, a fingered
  bass, a piano) and on full mixes (drums + bass + piano chords, in a key); only where fluidsynth and a SoundFont
  are installed (Debian: fluidsynth, fluid-soundfont-gm; MIT), else the line says so.
- ``speed``: CPU seconds to analyse 30 s (the median of 3, one thread: analysis is numpy), and the wall and CPU
  seconds to transcribe a 30 s stem with onnxruntime on 2 threads and on 1, and drums; with the load average.
- ``real``: with ``--real DIR``, each audio file there (its first 30 s): what was found and how long it took.
  No truth: a smoke check that real recordings go through, with the confidence each figure carries.
- ``grid``: the musical-fit claim as a number. A real `continuo serve` (``--model``, else a tiny random smoke
  checkpoint built for the run) renders a set of takes at several tempos and metres; each manifest holds the
  render's grid check (bridge/audio/analysis.py:check_grid: the tempo heard against the asked one, octave errors
  apart, and the median offset of the downbeats heard from the asked bar lines); the line sums them up. On the
  smoke model the takes are noise, not music: there the figures only prove that every render is checked, not
  that a model keeps time (``smoke_model`` says which). Beside them the checker's controls: a click track on the
  asked grid (error ~0) and the same clicks asked 5 % slower (error ~5 %). ``--renders DIR`` sums up the grid
  checks already in the manifests under DIR instead (a daemon's output root: a real model's renders).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridge.audio.analysis import analyze, check_grid
from bridge.audio.context import MusicalContext
from bridge.audio.drums import GM_DRUMS, transcribe_drums
from bridge.audio.files import read_audio
from bridge.tools import listen_truth as truth_sets
from bridge.tools.machine import machine
from inference.transcription.model import BasicPitch

Emit = Callable[[dict], None]
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


def run_listen_bench(*, quick: bool, emit: Emit, real_dir: Path | None = None, renders_dir: Path | None = None,
                     model_path: str | None = None, progress: Callable[[str], None] = lambda text: None) -> None:
    common = {"suite": "listen", "machine": machine()}
    model = BasicPitch(threads=2)
    parts: list[tuple[str, Callable[[], dict]]] = [
        ("rhythm", lambda: bench_rhythm(quick)), ("key", lambda: bench_keys(quick)),
        ("notes", lambda: bench_notes(model, quick)), ("drums", lambda: bench_drums(quick)),
        ("sampled", lambda: bench_sampled(model, quick)), ("speed", lambda: bench_speed(quick)),
    ]
    if real_dir is not None:
        parts.append(("real", lambda: bench_real(real_dir, model)))
    parts.append(("grid", lambda: bench_grid(quick, renders_dir=renders_dir, model_path=model_path)))
    for name, part in parts:
        progress(name)
        load_before = os.getloadavg()[0]
        result = part()
        emit({**common, "part": name, **result, "load_before": round(load_before, 2),
              "load_after": round(os.getloadavg()[0], 2)})


def rhythm_cases(quick: bool) -> list[tuple[str, str, float]]:
    tempos = range(60, 181, 30 if quick else 10)
    return [(kind, metre, float(bpm)) for kind in ("click", "drums") for metre in truth_sets.METRES
            for bpm in tempos]


def bench_rhythm(quick: bool) -> dict:
    rows = []
    for kind, metre, bpm in rhythm_cases(quick):
        truth = (truth_sets.click_track if kind == "click" else truth_sets.drum_pattern)(bpm, metre, bars=8)
        found = analyze(truth.audio, truth.sample_rate)
        score = truth_sets.score_rhythm(found.bpm, found.metre, found.downbeats_s, truth)
        rows.append({"kind": kind, "metre": metre, "bpm": bpm, "found_bpm": round(found.bpm, 3),
                     "found_metre": found.metre, "tempo": score.tempo, "downbeat_f1": round(score.downbeat_f1, 3),
                     "passed": score.passed, "error_pct": round(100 * abs(found.bpm / bpm - 1), 3)})
    return {**_rhythm_summary(rows), "by_metre": {metre: _rhythm_summary([r for r in rows if r["metre"] == metre])
                                                  for metre in truth_sets.METRES},
            "failures": [r for r in rows if not r["passed"]]}


def _rhythm_summary(rows: list[dict]) -> dict:
    tempo = Counter(row["tempo"] for row in rows)
    exact = [row["error_pct"] for row in rows if row["tempo"] == "exact"]
    return {"cases": len(rows), "tempo_exact": tempo["exact"], "tempo_octave": tempo["octave"],
            "tempo_wrong": tempo["wrong"], "tempo_error_pct_median": round(statistics.median(exact), 4) if exact
            else None, "metre_right": sum(row["found_metre"] == row["metre"] for row in rows),
            "downbeat_f1_mean": round(float(np.mean([row["downbeat_f1"] for row in rows])), 3),
            "passed": sum(row["passed"] for row in rows)}


def key_cases(quick: bool) -> list[tuple[int, str, str]]:
    """(tonic, mode, progression): two progressions per key, and natural minor's i-VII-VI-VII."""
    tonics = range(0, 12, 3) if quick else range(12)
    return [(tonic, mode, variant) for tonic in tonics for mode in ("major", "minor")
            for variant in ("cadence", "pop")] + [(tonic, "minor", "aeolian") for tonic in tonics]


def aeolian(tonic: int) -> truth_sets.Truth:
    """i-VII-VI-VII in natural minor (no leading tone: the relative major's notes exactly)."""
    steps = (0, 2, 3, 5, 7, 8, 10)
    bar_s, notes, time_s = 2.4, [], 0.1
    for _ in range(2):
        for degree in (0, 6, 5, 6):
            chord = [48 + tonic + steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
            notes.extend(truth_sets.Note(p, time_s, time_s + bar_s * 0.95, 90) for p in [chord[0] - 12, *chord])
            time_s += bar_s
    audio = truth_sets.render_notes(notes)
    return truth_sets.Truth(audio=audio, sample_rate=truth_sets.SAMPLE_RATE,
                            key=f"{truth_sets.PITCH_CLASSES[tonic]} minor", notes=tuple(notes))


def bench_keys(quick: bool) -> dict:
    outcome: Counter = Counter()
    by_variant: dict[str, Counter] = {}
    for tonic, mode, variant in key_cases(quick):
        if variant == "aeolian":
            truth = aeolian(tonic)
        else:
            truth = truth_sets.chord_progression(tonic, mode, variant=0 if variant == "cadence" else 1)
        found = analyze(truth.audio, truth.sample_rate).key
        result = key_outcome(found, truth.key)
        outcome[result] += 1
        by_variant.setdefault(variant, Counter())[result] += 1
    return {"cases": sum(outcome.values()), **dict(outcome), "by_progression": {k: dict(v) for k, v in
                                                                                by_variant.items()}}


def key_outcome(found: str, truth: str) -> str:
    if found == truth:
        return "exact"
    if found == truth_sets.relative_key(truth):
        return "relative"
    if not found:
        return "none"
    names = truth_sets.PITCH_CLASSES
    fifth = abs(names.index(found.split()[0]) - names.index(truth.split()[0])) in (5, 7)
    return "fifth" if fifth and found.split()[1] == truth.split()[1] else "other"


def bench_notes(model: BasicPitch, quick: bool) -> dict:
    seeds = range(3 if quick else 8)
    sets = {"melody": [truth_sets.melody(seed=s, count=24) for s in seeds],
            "bass": [truth_sets.bass_line(seed=s, count=24) for s in seeds],
            "chords": [truth_sets.chord_progression(t, m, variant=t % 2)
                       for t, m in ((0, "major"), (9, "minor"), (5, "major"), (2, "minor"))[: 2 if quick else 4]]}
    return {name: _note_scores(model, truths) for name, truths in sets.items()}


def _note_scores(model: BasicPitch, truths: list[truth_sets.Truth], audios: list[np.ndarray] | None = None) -> dict:
    scores, offsets = [], []
    for index, truth in enumerate(truths):
        audio = truth.audio if audios is None else audios[index]
        found = model.transcribe(audio, truth.sample_rate)
        pairs = [(n.pitch, n.start_s) for n in found]
        scores.append(truth_sets.note_f1(pairs, [(n.pitch, n.start_s) for n in truth.notes], 0.05))
        for note in truth.notes:
            near = [f.start_s - note.start_s for f in found if f.pitch == note.pitch
                    and abs(f.start_s - note.start_s) < 0.05]
            if near:
                offsets.append(min(near, key=abs))
    return {"clips": len(truths), "f1_mean": round(float(np.mean(scores)), 3), "f1_min": round(min(scores), 3),
            "onset_offset_ms_mean": round(1000 * float(np.mean(offsets)), 1) if offsets else None}


def bench_drums(quick: bool, soundfont: Path | None = None) -> dict:
    tempos = (80, 140) if quick else (70, 100, 130, 160)
    scores: dict[str, list[float]] = {name: [] for name in GM_DRUMS}
    hats_open: list[float] = []
    for metre in truth_sets.METRES:
        for bpm in tempos:
            truth = truth_sets.drum_pattern(bpm, metre, bars=4)
            audio = truth.audio if soundfont is None else truth_sets.render_sampled(
                truth_sets.drum_notes(truth), bpm=bpm, soundfont=soundfont, drums=True)
            found = transcribe_drums(audio, truth.sample_rate)
            for name, pitch in GM_DRUMS.items():
                times = [n.start_s for n in found if n.pitch == pitch]
                scores[name].append(truth_sets.onset_f1(times, truth.drums[name], 0.05))
            alone = [t for t in truth.drums["hat"] if min(abs(t - s) for s in truth.drums["snare"]) > 0.01]
            hats_open.append(truth_sets.onset_f1([n.start_s for n in found if n.pitch == GM_DRUMS["hat"]], alone,
                                                 0.05))
    return {"clips": len(scores["kick"]), **{f"{name}_f1": round(float(np.mean(v)), 3) for name, v in scores.items()},
            "hat_f1_without_hats_under_snares": round(float(np.mean(hats_open)), 3)}


def bench_sampled(model: BasicPitch, quick: bool) -> dict:
    soundfont = truth_sets.find_soundfont()
    if soundfont is None:
        return {"skipped": "fluidsynth and a GM SoundFont are not installed (Debian: apt-get install fluidsynth "
                           "fluid-soundfont-gm)"}
    melodies = [truth_sets.melody(seed=s, count=24) for s in range(2 if quick else 4)]
    basses = [truth_sets.bass_line(seed=s, count=24) for s in range(2 if quick else 4)]
    notes = {
        "piano_melody": _note_scores(model, melodies, [truth_sets.render_sampled(list(t.notes), bpm=t.bpm,
                                                                                 soundfont=soundfont)
                                                       for t in melodies]),
        "fingered_bass": _note_scores(model, basses, [truth_sets.render_sampled(list(t.notes), bpm=t.bpm,
                                                                                soundfont=soundfont, program="bass")
                                                      for t in basses]),
    }
    songs = []
    cases = [(0, "major", 96.0, "4/4"), (9, "minor", 128.0, "4/4"), (7, "major", 84.0, "3/4"),
             (2, "minor", 110.0, "6/8"), (5, "major", 150.0, "4/4"), (4, "minor", 72.0, "6/8")]
    for tonic, mode, bpm, metre in cases[: 3 if quick else 6]:
        truth, _stems = truth_sets.sampled_song(tonic, mode, bpm=bpm, metre=metre, soundfont=soundfont)
        found = analyze(truth.audio, truth.sample_rate)
        score = truth_sets.score_rhythm(found.bpm, found.metre, found.downbeats_s, truth)
        songs.append({"key": truth.key, "bpm": bpm, "metre": metre, "found_bpm": round(found.bpm, 2),
                      "found_metre": found.metre, "tempo": score.tempo, "downbeat_f1": round(score.downbeat_f1, 3),
                      "found_key": found.key, "key_outcome": key_outcome(found.key, truth.key),
                      "passed": score.passed})
    return {"soundfont": soundfont.name, "notes": notes, "drums": bench_drums(quick, soundfont),
            "mixes": {"cases": len(songs), "rhythm_passed": sum(s["passed"] for s in songs),
                      "key_exact": sum(s["key_outcome"] == "exact" for s in songs),
                      "key_relative": sum(s["key_outcome"] == "relative" for s in songs), "songs": songs}}


def bench_speed(quick: bool) -> dict:
    clip = truth_sets.drum_pattern(120, "4/4", bars=15)  # 30.8 s
    audio = np.vstack([clip.audio, clip.audio])
    repeats = 1 if quick else 3
    analysis = [_cpu_s(lambda: analyze(audio, clip.sample_rate)) for _ in range(repeats)]
    stem = truth_sets.bass_line(seed=0, count=48, bpm=100.0)  # 30.3 s
    stem_s = stem.audio.shape[1] / stem.sample_rate
    timings = {}
    for threads in (2, 1):
        model = BasicPitch(threads=threads)
        model.transcribe(stem.audio[:, : stem.sample_rate * 3], stem.sample_rate)  # warm the session
        wall, cpu = _wall_and_cpu(lambda: model.transcribe(stem.audio, stem.sample_rate))
        timings[f"transcribe_{threads}_threads_wall_s"] = round(wall, 3)
        timings[f"transcribe_{threads}_threads_cpu_s"] = round(cpu, 3)
    drums_wall, drums_cpu = _wall_and_cpu(lambda: transcribe_drums(audio, clip.sample_rate))
    return {"analysis_clip_s": round(audio.shape[1] / clip.sample_rate, 1),
            "analysis_cpu_s_median": round(statistics.median(analysis), 3), "transcribe_stem_s": round(stem_s, 1),
            **timings, "drums_wall_s": round(drums_wall, 3), "drums_cpu_s": round(drums_cpu, 3)}


def bench_real(folder: Path, model: BasicPitch) -> dict:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    rows = []
    for path in files:
        audio, rate = read_audio(path)
        audio = audio[:, : rate * 30]
        started = time.process_time()
        found = analyze(audio, rate)
        analysis_cpu = time.process_time() - started
        started = time.perf_counter()
        notes = model.transcribe(audio, rate)
        rows.append({"file": path.name, "seconds": round(audio.shape[1] / rate, 1), "bpm": round(found.bpm, 2),
                     "bpm_confidence": round(found.bpm_confidence, 2), "metre": found.metre,
                     "metre_confidence": round(found.metre_confidence, 2), "key": found.key,
                     "key_confidence": round(found.key_confidence, 2), "lufs": round(found.lufs, 1),
                     "analysis_cpu_s": round(analysis_cpu, 3), "notes": len(notes),
                     "transcribe_wall_s": round(time.perf_counter() - started, 2)})
    return {"folder": folder.as_posix(), "files": rows}


GRID_CASES = [(bpm, metre) for metre in ("4/4", "3/4", "6/8") for bpm in (80.0, 100.0, 120.0, 140.0, 170.0)]


def bench_grid(quick: bool, *, renders_dir: Path | None = None, model_path: str | None = None) -> dict:
    """Grid checks over a set of renders: rendered here by a real daemon, or read from renders_dir's manifests."""
    controls = grid_controls()
    if renders_dir is not None:
        entries, smoke = manifest_grid_entries(sorted(renders_dir.glob("*/manifest.json")))
        return {"source": renders_dir.as_posix(), "smoke_model": smoke, **summarize_grid(entries), **controls}
    with tempfile.TemporaryDirectory(prefix="continuo-bench-grid-") as tmp:
        root = Path(tmp)
        if model_path is None:
            from inference.musicgen.tiny import build_tiny_musicgen

            model_path = str(build_tiny_musicgen(root / "smoke", seed=0))
        cases = GRID_CASES[::5] if quick else GRID_CASES
        manifests = render_grid_set(model_path, root, cases)
        entries, smoke = manifest_grid_entries(manifests)
    note = ("smoke model: its renders are noise, not music; these figures prove only that every render is "
            "beat-tracked and checked, not that a model keeps time") if smoke else "a real model's renders"
    return {"source": "rendered", "model": model_path, "smoke_model": smoke, "note": note, "bars": 2,
            **summarize_grid(entries), **controls}


def render_grid_set(model_path: str, root: Path, cases: list[tuple[float, str]]) -> list[Path]:
    """2-bar generates at each (bpm, metre) by `continuo serve`; the paths of their manifests."""
    from bridge.clients.osc import OscClient
    from bridge.clients.process import DaemonProcess

    flags = ["--model", model_path, "--osc-port", "0", "--zmq-port", "-1", "--http-port", "-1",
             "--output-root", str(root / "renders"), "--user-presets-dir", str(root / "presets")]
    manifests = []
    with DaemonProcess(flags) as daemon, OscClient(daemon.host, daemon.port) as client:
        client.hello()
        for index, (bpm, metre) in enumerate(cases):
            beats_per_bar, beat_unit = truth_sets.METRES[metre]
            job_id = f"grid-{index}"
            client.send("/continuo/generate", job_id, "default", "drums and bass", 2.0, "bpm", bpm,
                        "beats_per_bar", beats_per_bar, "beat_unit", beat_unit, "seed", index)
            events = client.wait_job(job_id, timeout_s=600, ack=True)
            if events[-1][0] != "/continuo/done":
                raise RuntimeError(f"the grid render {job_id} failed: {events[-1]}")
            manifests.append(root / "renders" / job_id / "manifest.json")
    return manifests


def manifest_grid_entries(manifests: list[Path]) -> tuple[list[dict], bool]:
    """Every output's grid check in the manifests (with the tempo asked), and whether any came from a smoke model."""
    entries, smoke = [], False
    for path in manifests:
        manifest = json.loads(path.read_text())
        smoke = smoke or bool(manifest.get("model", {}).get("smoke_model"))
        for output in manifest.get("outputs", []):
            if "grid" in output:
                entries.append({**output["grid"], "asked_bpm": manifest["context"]["bpm"],
                                "metre": manifest["context"]["metre"], "job_id": manifest["job_id"]})
    return entries, smoke


def summarize_grid(entries: list[dict]) -> dict:
    heard = [e for e in entries if e["tempo_error_pct"] is not None]
    on_tempo = [e for e in heard if not e["octave"] and abs(e["tempo_error_pct"]) <= 2.0]
    octave = [e for e in heard if e["octave"]]
    offsets = [abs(e["offset_ms"]) for e in heard if e["offset_ms"] is not None]
    return {"renders": len(entries), "tempo_heard": len(heard), "tempo_within_2pct": len(on_tempo),
            "tempo_octave": len(octave), "tempo_wrong": len(heard) - len(on_tempo) - len(octave),
            "tempo_error_pct_median": round(statistics.median(abs(e["tempo_error_pct"]) for e in heard), 3)
            if heard else None,
            "offset_ms_median": round(statistics.median(offsets), 1) if offsets else None,
            "offset_within_30ms": sum(offset <= 30.0 for offset in offsets),
            "against_downbeats": sum(e["against"] == "downbeats" for e in heard)}


def grid_controls() -> dict:
    """The checker against known truth: clicks on the asked grid, and the same clicks asked 5 % slower."""
    truth = truth_sets.click_track(120.0, "4/4", bars=8, lead_beats=0)
    on = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0), origin_s=0.05)
    slow = check_grid(truth.audio, truth.sample_rate, MusicalContext(bpm=120.0 / 1.05), origin_s=0.05)
    return {"control_on_grid_error_pct": round(on.tempo_error_pct or 0.0, 3),
            "control_on_grid_offset_ms": round(on.offset_ms or 0.0, 1), "control_asked_5pct_slower_error_pct":
            round(slow.tempo_error_pct or 0.0, 3)}


def _cpu_s(function: Callable[[], object]) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def _wall_and_cpu(function: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu
