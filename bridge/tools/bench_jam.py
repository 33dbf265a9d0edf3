"""`continuo bench jam`: a live jam on this machine, on the tiny model and on the musicgen-small shape (random weights
of the real size: noise, never music), against the internal clock at 120 BPM.

Per model, one JSON line: what the jam said before it started (`told`: engine.measured_speed through
bridge/jobs/jam.py:check_speed), underruns per minute (bars the model missed, each a held bar; and chunks handed out
after their bar line had passed, which a device would have played as silence), the lead (how far ahead of the
playhead each bar was handed out: min and median), the measured RTF and the lookahead it kept, the
control-to-heard latency (a prompt change every few bars at a random moment: bars and seconds from the control to
the line of the first bar made with it; held bars delay it past the bar /continuo/jam/scheduled named), the
bar-boundary error (each bar's first sample against where the clock puts its bar line, in samples: target 0), and
the beat tracker's tempo on the take (bridge/audio/analysis.py: on random weights the output is noise, so this
figure is the tracker's on noise, not a tempo lock). The machine's load is recorded beside every figure: the jam
shares the CPU with whatever else runs.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridge.audio.analysis import analyze
from bridge.audio.clocks import make_clock
from bridge.audio.playback import JamChunk
from bridge.audio.presets import Preset
from bridge.jobs.jam import JamRecording, JamSession, JamSettings, check_speed
from bridge.tools.machine import load_average, machine

BPM = 120.0
BEATS_PER_BAR = 4
PROMPTS = ("dark techno, driving kick", "ambient pad, slow strings")
CONTROL_EVERY_BARS = 4


class MeasureSink:
    """Every chunk with the clock time it arrived at (its lead: its bar line's time minus that)."""

    name = "measure"

    def __init__(self, clock) -> None:
        self.clock = clock
        self.chunks: list[tuple[float, JamChunk]] = []
        self.lock = threading.Lock()

    def play(self, chunk: JamChunk) -> None:
        with self.lock:
            self.chunks.append((time.monotonic(), chunk))

    def stop_after(self, bar: int) -> None:
        pass  # every chunk is measured, those past a stop too

    def close(self) -> None:
        pass


def build_engine(shape: str, folder: Path):
    """(engine, what it is): the tiny random model, or musicgen-small's shape with random weights; warmed up (its
    measured speed set)."""
    from inference.loading import load_engine, resolve_model

    if shape == "tiny":
        from inference.musicgen.tiny import build_tiny_musicgen

        directory = build_tiny_musicgen(folder / "tiny", seed=0)
        engine = load_engine(resolve_model(str(directory), tiny_dir=folder / "unused"), device="cpu", warm_up=True)
        return engine
    from inference.bench.musicgen import build_random_musicgen
    from inference.musicgen.engine import EngineOptions, engine_from_hf_model, int4_available

    model, tokenizer = build_random_musicgen(shape)
    # named modes, as bench throughput does: on random weights auto's calibration measures noise (it kept an fp32
    # cache there); int4/int8 weights with int8 LM heads and the int8 cache is what auto resolves to on the quality
    # harness (docs/benchmarks.md)
    options = EngineOptions(weights="int4" if int4_available() else "int8", kv_cache="int8", heads="int8")
    engine = engine_from_hf_model(model, tokenizer, options=options, device="cpu",
                                  name=f"{shape} (random weights: noise)", is_random=True)
    del model
    engine.warm_up()
    return engine


def bench_one(engine, shape: str, seconds: float, folder: Path, progress: Callable[[str], None],
              context_bars: int = JamSettings.context_bars, keep_cache: bool = True) -> dict:
    """The jam, its controls and its figures on a thread of their own, while this (main) thread serves the engine's
    compute thread, as `continuo serve` does: a jam thread driving torch itself would make a second OpenMP team
    (half speed on 2 cores: inference/runtime/compute.py). Measured: without it the small shape's jam ran at RTF
    3.45 where its warm-up take (main thread) measured 0.995."""
    result: dict = {}
    done = threading.Event()

    def drive() -> None:
        try:
            result.update(jam_and_measure(engine, shape, seconds, folder, progress, context_bars, keep_cache))
        finally:
            done.set()

    thread = threading.Thread(target=drive, name="bench-jam", daemon=True)
    compute = engine.compute
    if compute is None:
        drive()
    else:
        compute.serve(done, on_ready=thread.start)
        thread.join()
    if not result:
        raise RuntimeError(f"bench jam on {shape} failed (see the log above)")
    return result


def jam_and_measure(engine, shape: str, seconds: float, folder: Path, progress: Callable[[str], None],
                    context_bars: int = JamSettings.context_bars, keep_cache: bool = True) -> dict:
    told = check_speed(engine, BPM, BEATS_PER_BAR)
    clock = make_clock("internal", bpm=BPM, beats_per_bar=BEATS_PER_BAR)
    sink = MeasureSink(clock)
    settings = JamSettings(jam_id=f"bench-{shape}", prompt=PROMPTS[0], preset=Preset(name="bench", path=Path()),
                           bpm=BPM, beats_per_bar=BEATS_PER_BAR, seed=1, context_bars=context_bars,
                           keep_cache=keep_cache)
    recording = JamRecording(folder / f"jam-{shape}-{context_bars}-{time.monotonic_ns()}", engine.info.sample_rate,
                             engine.info.channels)
    session = JamSession(settings, engine, clock, [sink], recording=recording)
    load_before = load_average()
    started = time.monotonic()
    session.start()
    controls: list[tuple[float, int, int]] = []  # (time sent, bar playing then, bar it lands on)
    rng = random.Random(0)
    bar_s = BEATS_PER_BAR * 60.0 / BPM
    next_control = started + CONTROL_EVERY_BARS * bar_s + rng.uniform(0, bar_s)
    while time.monotonic() - started < seconds:
        time.sleep(0.05)
        now = time.monotonic()
        reading = session.clock.reading(now)
        playing = None if session.origin_bar is None else reading.bar_of(reading.beat) - session.origin_bar
        if now >= next_control and playing is not None and playing >= 0:
            landing = session.control("prompt", PROMPTS[(len(controls) + 1) % 2])
            controls.append((now, playing, landing))
            next_control = now + CONTROL_EVERY_BARS * bar_s + rng.uniform(0, bar_s)
            progress(f"{shape}: control at bar {playing} lands at bar {landing}")
    session.stop()
    session.wait(max(120.0, 20 * bar_s))
    status = session.status()
    stream = session.code_stream
    kept = {"keep_cache": stream is not None, "stream_starts": None if stream is None else stream.starts,
            "stream_continued": None if stream is None else stream.continued,
            "stream_plain": None if stream is None else stream.plain,
            "stream_cache_peak_mb": None if stream is None else round(stream.peak_bytes / 2**20, 1)}
    return summarise(shape, engine, told, session, status, sink, controls, seconds, load_before) | {
        "context_bars": context_bars} | kept


def summarise(shape, engine, told, session, status, sink, controls, seconds, load_before) -> dict:
    rate = engine.info.sample_rate
    chunks = sink.chunks
    leads = [session.clock.reading(arrived).time_of_beat(chunk.start_beat) - arrived for arrived, chunk in chunks]
    late = sum(1 for lead in leads if lead < 0)
    first_beat = chunks[0][1].start_beat if chunks else 0.0
    reading = session.clock.reading()
    boundary = []
    done = 0
    for _, chunk in chunks:
        expected = round((reading.time_of_beat(chunk.start_beat) - reading.time_of_beat(first_beat)) * rate)
        boundary.append(abs(done - expected))
        done += chunk.audio.shape[-1]
    heard = []  # the k-th control is heard from the first bar made with prompt_id k + 1 (held bars may delay it)
    for index, (sent, playing, _landing) in enumerate(controls):
        first = next((chunk for _, chunk in chunks if chunk.prompt_id >= index + 1), None)
        if first is not None:
            heard.append((first.bar - playing, reading.time_of_beat(first.start_beat) - sent))
    minutes = max(1e-9, done / rate / 60.0)
    take = np.concatenate([chunk.audio for _, chunk in chunks], axis=-1) if chunks else np.zeros((1, 0), np.float32)
    tempo = analyze(take, rate).bpm if take.shape[-1] > 8 * rate else 0.0
    return {
        "suite": "jam", "model": engine.info.name, "shape": shape, "random_weights": engine.info.is_random,
        "bpm": BPM, "seconds_asked": seconds, "bars": len(chunks),
        "told_before_start": told or "keeps up", "measured_speed_rtf": getattr(engine.measured_speed, "rtf", None),
        "rtf_jam": status.rtf, "lookahead_bars": status.lookahead_bars,
        "underruns": status.underruns, "late_chunks": late,
        "underruns_per_min": round((status.underruns + late) / minutes, 2),
        "held_bars": status.held_bars,
        "lead_s_min": round(min(leads), 3) if leads else None,
        "lead_s_median": round(statistics.median(leads), 3) if leads else None,
        "control_to_heard_bars_median": statistics.median([bars for bars, _ in heard]) if heard else None,
        "control_to_heard_s_median": round(statistics.median([s for _, s in heard]), 2) if heard else None,
        "controls": len(controls),
        "bar_boundary_error_samples_max": max(boundary) if boundary else None,
        "tempo_heard_bpm": round(tempo, 2), "tempo_error_bpm": round(tempo - BPM, 2) if tempo else None,
        "take": str(status.take_path), "machine": machine(), "threads": _threads(),
        "load_1min_before": load_before, "load_1min_after": load_average(), "cpus": os.cpu_count(),
    }


def bar_costs(engine, shape: str, bars: int = 8, context_bars: int = JamSettings.context_bars) -> dict:
    """What one jam bar costs each way, A/B on one engine, alternating bar by bar (first one way, then the other,
    the order swapped every bar) so both meet the same load: the same request (a 2 s bar at 120 BPM plus the
    overhang, its context the last context_bars of the stream, CFG 3, sampled) made by the engine's kept stream
    (inference/musicgen/code_stream.py) and as a request of its own that prefills the context (the path before it).
    Wall seconds and the process's CPU seconds per bar; on a machine shared with other work, the CPU seconds at
    one thread are the figure load moves least (two OpenMP threads spin at every barrier for a core another
    process holds). Run from the thread that drives the engine's compute."""
    from dataclasses import replace

    from inference.api import GenerationRequest

    frame_rate = engine.info.frame_rate
    bar_frames = BEATS_PER_BAR * 60.0 / BPM * frame_rate
    need = math.ceil(bar_frames) + 1  # the jam's overhang past the bar's end
    context = round(context_bars * bar_frames)
    bar_s = bar_frames / frame_rate
    request = GenerationRequest(prompt=PROMPTS[0], duration_s=need / frame_rate, seed=1, temperature=1.0,
                                top_k=250, guidance_scale=3.0)
    stream = engine.open_stream()
    codes = stream.generate(request).codes
    costs: dict[str, list[tuple[float, float]]] = {"kept": [], "prefilled": []}
    load_before = load_average()
    for bar in range(bars):
        ask = replace(request, seed=2 + bar, prompt_codes=codes[:, -context:])
        for way in (("kept", "prefilled") if bar % 2 else ("prefilled", "kept")):
            wall, cpu = time.perf_counter(), time.process_time()
            out = stream.generate(ask) if way == "kept" else engine.generate(ask)
            costs[way].append((time.perf_counter() - wall, time.process_time() - cpu))
            if way == "kept":
                codes = np.concatenate([codes, out.codes], axis=1)
    result = {"suite": "jam-bar-cost", "shape": shape, "bars_each": bars, "context_bars": context_bars,
              "frames_per_bar": need, "stream_frames_at_end": int(codes.shape[1]),
              "stream_starts": stream.starts, "stream_continued": stream.continued, "stream_plain": stream.plain,
              "stream_cache_peak_mb": round(stream.peak_bytes / 2**20, 1)}
    for way, pairs in costs.items():
        result[f"rtf_{way}_median"] = round(statistics.median(w for w, _ in pairs) / bar_s, 3)
        result[f"cpu_s_per_bar_{way}_median"] = round(statistics.median(c for _, c in pairs), 3)
        result[f"wall_s_{way}"] = [round(w, 2) for w, _ in pairs]
    stream.close()
    return result | {"machine": machine(), "threads": _threads(), "load_1min_before": load_before,
                     "load_1min_after": load_average()}


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_jam_bench(*, quick: bool, emit: Callable[[dict], None], progress: Callable[[str], None],
                  shapes: tuple[str, ...] = ("tiny", "musicgen-small")) -> list[dict]:
    seconds = 30.0 if quick else 90.0
    results = []
    with tempfile.TemporaryDirectory(prefix="continuo-bench-jam-") as tmp:
        for shape in shapes:
            progress(f"{shape}: building and warming up")
            engine = build_engine(shape, Path(tmp))
            for keep_cache in (False, True):  # back to back on one engine: the context prefilled per bar, then kept
                how = "the context's KV cache kept" if keep_cache else "the context prefilled every bar"
                progress(f"{shape}: jamming {seconds:g} s at {BPM:g} BPM, {how}")
                result = bench_one(engine, shape, seconds, Path(tmp), progress, keep_cache=keep_cache)
                emit(result)
                results.append(result)
            progress(f"{shape}: one bar's cost, kept stream against a prefill per bar, alternating")
            result = bar_costs(engine, shape, bars=4 if quick else 8)
            emit(result)
            results.append(result)
            del engine
    return results
