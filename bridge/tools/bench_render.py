"""`continuo bench render`: time spent outside the model per request, against the generation time.

For ``bars`` bars at 120 BPM, 4/4, rendered for a 48 kHz stereo session from
model-rate (32 kHz) audio, one JSON line with the seconds of each step:

- ``resample_s``: channel map + soxr VHQ 32 -> 48 kHz;
- ``effects_s``: the master chain of ``default`` (highpass + compressor) with its tail,
  and ``effects_reverb_s``: the ``stem_pack`` reverb chain on one stem;
- ``loudness_s``: BS.1770 normalisation with the true-peak limiter, plus the measurements;
- ``render_mix_s``: all of the above as the worker runs them (``render_mix``);
- ``separation_s`` and ``separation_s_per_audio_s``: HDemucs (``stems_size``; random
  weights cost the same as trained ones) over the whole mix, chunked, on the path ``auto``
  picks here (``stems_path``);
- ``stems_<path>_s_per_audio_s`` for every separation path (``inference.stems.paths.PATHS``,
  today's ``fp32`` included) usable here, timed side by side in the same run (interleaved
  rounds; ``_spread`` is the slowest round over the fastest), with ``stems_<path>_build_s``
  (export/compile, not in the time) and ``stems_<path>_error_db`` (the worst stem's error
  energy relative to fp32, dB); ``stems_speedup`` is fp32 over the chosen path, both from
  those same rounds;
  ``load_before`` / ``load_after`` are the 1-minute load averages and ``machine`` the CPU;
- ``write_s``: five 24-bit WAVs (mix + four stems), atomic with fsync;
- ``generate_s``: the engine generating the same length (the tiny smoke model unless
  ``--model`` names a checkpoint), so the overhead can be read against it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bridge.audio.context import MusicalContext
from bridge.audio.effects import apply_chain
from bridge.audio.files import write_wav_atomic
from bridge.audio.loudness import measure_lufs, normalize_loudness, true_peak_db
from bridge.audio.presets import builtin_presets_dir, load_presets
from bridge.audio.render import TAIL_S, map_channels, render_mix, resample
from bridge.tools.machine import load_average, machine

MODEL_RATE = 32000


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench_render(bars: float, *, quick: bool, model: str | None, stems_size: str = "high") -> dict:
    import torch

    from inference.stems.separator import SeparatorConfig, load_separator, pick_path

    repeats = 1 if quick else 3
    load_before = load_average()
    presets = load_presets([builtin_presets_dir()])
    context = MusicalContext(bpm=120.0, sample_rate=48000)
    frames, seconds = context.frames_for_bars(bars), context.seconds_for_bars(bars)
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * MODEL_RATE)) / MODEL_RATE
    source = (0.3 * np.sin(2 * np.pi * 110 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)[None]

    resample_s, mixed = timed(lambda: resample(map_channels(source, 2), MODEL_RATE, 48000), repeats)
    chain = presets["default"].master
    effects_s, processed = timed(lambda: apply_chain(mixed, 48000, chain, tail_s=0.05), repeats)
    reverb = presets["stem_pack"].stem_chains["other"]
    effects_reverb_s, _ = timed(lambda: apply_chain(mixed, 48000, reverb, tail_s=TAIL_S), repeats)
    loudness_s, final = timed(lambda: _loudness(processed[:, :frames], presets["default"]), repeats)
    render_mix_s, rendered = timed(lambda: render_mix(source, MODEL_RATE, frames=frames, sample_rate=48000,
                                                      preset=presets["default"]), repeats)
    # the path auto picks here for trained weights (auto skips OpenVINO for random ones: no export in tests)
    separator = load_separator(SeparatorConfig(weights="random", size=stems_size, path=pick_path("auto")))
    separator.segment_fn()  # the chosen path's one-time export/compile is not separation time
    separation_s, stems = timed(lambda: separator.separate(rendered.audio, 48000), 1)
    paths = bench_stem_paths(rendered.audio, seconds, stems_size, rounds=2 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="continuo-bench-") as tmp:
        outputs = {"mix": rendered.audio, **stems}
        write_s, _ = timed(lambda: [write_wav_atomic(Path(tmp) / f"{name}.wav", audio, 48000, bit_depth=24)
                                    for name, audio in outputs.items()], repeats)
    generate_s, engine_name = _generate(seconds, model)
    outside_s = render_mix_s + separation_s + write_s
    return {
        "suite": "render", "bars": bars, "bpm": 120, "sample_rate": 48000, "channels": 2, "audio_s": seconds,
        "resample_s": round(resample_s, 4), "effects_s": round(effects_s, 4),
        "effects_reverb_s": round(effects_reverb_s, 4), "loudness_s": round(loudness_s, 4),
        "render_mix_s": round(render_mix_s, 4), "stems_model": f"hdemucs_{stems_size}",
        "separation_s": round(separation_s, 3), "separation_s_per_audio_s": round(separation_s / seconds, 4),
        "write_s": round(write_s, 4), "outside_model_s": round(outside_s, 3),
        "outside_model_without_stems_s": round(render_mix_s + write_s / 5, 4),
        "generate_s": round(generate_s, 2), "generate_model": engine_name, "torch_threads": torch.get_num_threads(),
        "stems_path": separator.path, **paths,
        "stems_speedup": round(paths["stems_fp32_s_per_audio_s"] / paths[f"stems_{separator.path}_s_per_audio_s"], 2),
        "machine": machine(), "load_before": load_before, "load_after": load_average(),
    }


def bench_stem_paths(audio: np.ndarray, seconds: float, size: str, *, rounds: int) -> dict:
    """Every separation path usable here on the same mix, interleaved round by round (best of ``rounds``)."""
    from inference.stems.paths import PATHS
    from inference.stems.separator import SeparatorConfig, build_path, load_separator

    separators, out = {}, {}
    for path in PATHS:
        separator = load_separator(SeparatorConfig(weights="random", size=size, path=path))
        started = time.perf_counter()
        try:
            separator._segment_fn = build_path(path, separator.model, separator.config)
        except Exception as exc:  # a path this machine cannot run is reported, not fatal
            out[f"stems_{path}_unavailable"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            continue
        separator.path = path
        out[f"stems_{path}_build_s"] = round(time.perf_counter() - started, 2)
        separators[path] = separator
    times: dict[str, list[float]] = {path: [] for path in separators}
    results: dict[str, dict] = {}
    for _ in range(rounds):
        for path, separator in separators.items():
            started = time.perf_counter()
            results[path] = separator.separate(audio, 48000)
            times[path].append(time.perf_counter() - started)
    for path, spent in times.items():
        out[f"stems_{path}_s_per_audio_s"] = round(min(spent) / seconds, 4)
        out[f"stems_{path}_spread"] = round(max(spent) / min(spent), 2)
        if path != "fp32":
            out[f"stems_{path}_error_db"] = round(max(_error_db(results[path][name], results["fp32"][name])
                                                      for name in results["fp32"]), 1)
    return out


def _error_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    noise = float(np.sum((estimate.astype(np.float64) - reference) ** 2))
    return 10 * np.log10(max(noise, 1e-30) / max(float(np.sum(reference.astype(np.float64) ** 2)), 1e-30))


def _loudness(audio: np.ndarray, preset) -> np.ndarray:
    final = normalize_loudness(audio, 48000, target_lufs=preset.target_lufs, true_peak_db=preset.true_peak_db)
    measure_lufs(final, 48000)
    true_peak_db(final, 48000)
    return final


def _generate(seconds: float, model: str | None) -> tuple[float, str]:
    from inference.api import GenerationRequest
    from inference.loading import load_engine, resolve_model

    with tempfile.TemporaryDirectory(prefix="continuo-bench-tiny-") as tmp:
        source = resolve_model(model or "facebook/musicgen-small", tiny_dir=Path(tmp) / "tiny",
                               allow_tiny_fallback=True)
        engine = load_engine(source, device="cpu")
        started = time.perf_counter()
        engine.generate(GenerationRequest(prompt="warm lo-fi piano", duration_s=seconds, seed=0))
        return time.perf_counter() - started, engine.info.name
