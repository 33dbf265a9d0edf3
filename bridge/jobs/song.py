"""What a song model (ACE-Step) gets beyond MusicGen's request, and the edits of given audio it renders.

``song_fields``: the plan's lyrics, vocal language and instrumental flag, its LoRA adapter (name, the path
admission found, weight), and the session's tempo, metre and key as the model's metadata (bpm, timesignature,
keyscale). A MusicGen engine ignores the metadata and refuses
the rest by capability. ``render_repaint``: /continuo/repaint on the worker: the model regenerates the range,
the render chain (resample, effects, loudness) runs on its take, and the take is spliced into the input so the
audio outside the range stays the input's, sample for sample, with crossfades inside the range.
``render_extract``: /continuo/extract: the model's own take of one track of the input; ``render_layer``:
/continuo/layer, a new track over the input (ACE-Step lego), alone and mixed with it; ``render_cover``:
/continuo/cover, the input restyled by the prompt setting (``render_edit``: the whole input edited by the model,
through the render chain, as long as the input).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from bridge.audio.files import read_audio
from bridge.audio.render import RenderedAudio, map_channels, measured, render_mix, resample
from bridge.audio.splice import SEAM_CROSSFADE_S, match_level, splice_range
from bridge.jobs.journal import OutputRecord
from bridge.jobs.plan import RenderPlan
from bridge.jobs.queue import Job
from inference.api import AudioEdit, Engine, GenerationRequest, LoraAdapter

log = logging.getLogger("continuo.worker")

KEY_PATTERN = re.compile(r"^([A-Ga-g])([#b]?)\s*(major|minor|maj|min|m)?$")
OUTPUT_CHANNELS = 2  # render_mix's default: every output is stereo


class Worker(Protocol):
    """What an edit needs of bridge.jobs.worker.Worker (which imports this module)."""

    engine: Engine

    def progress(self, job: Job, stage: str, fraction: float) -> None: ...

    def stopped(self, job: Job) -> bool: ...

    def engine_call(self, function: Callable[[], Any]) -> Any: ...

    def write_all(self, job: Job, plan: RenderPlan, rendered: Mapping[str, object]) -> list[OutputRecord]: ...


def keyscale(key: str) -> str:
    """The session key as ACE-Step writes it: "Bbm" -> "Bb minor", "F#" -> "F# major", "" -> ""."""
    match = KEY_PATTERN.match(key.strip())
    if not match:
        return ""
    root, accidental, mode = match.groups()
    return f"{root.upper()}{accidental} {'minor' if mode in ('minor', 'min', 'm') else 'major'}"


def song_fields(plan: RenderPlan) -> dict[str, Any]:
    """GenerationRequest fields from the plan's song settings and its musical context."""
    context = plan.context
    adapter = LoraAdapter(plan.lora, plan.lora_path, plan.lora_weight) if plan.lora_path is not None else None
    return {"lyrics": plan.lyrics, "vocal_language": plan.vocal_language, "instrumental": plan.instrumental,
            "bpm": float(context.bpm), "keyscale": keyscale(context.key),
            "timesignature": str(context.beats_per_bar), "adapter": adapter}


def render_repaint(worker: Worker, job: Job, plan: RenderPlan) -> list[OutputRecord]:
    """Regenerate plan.range_beats of the input; the rest of the clip is the input's own samples."""
    assert plan.input_path is not None and plan.range_beats is not None
    worker.progress(job, "loading", 0.0)
    audio, rate = read_audio(plan.input_path)
    info = worker.engine.info
    original = fit_frames(map_channels(resample(audio, rate, plan.context.sample_rate), OUTPUT_CHANNELS),
                          plan.frames)
    source = np.ascontiguousarray(map_channels(resample(audio, rate, info.sample_rate), info.channels))
    start_beat, end_beat = plan.range_beats
    start_s, end_s = plan.context.seconds_for_beats(start_beat), plan.context.seconds_for_beats(end_beat)
    worker.progress(job, "loading", 1.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=source.shape[1] / info.sample_rate, seed=plan.seed,
        guidance_scale=plan.preset.guidance_scale, **song_fields(plan),
        edit=AudioEdit("repaint", source, start_s=start_s, end_s=min(end_s, source.shape[1] / info.sample_rate)),
    )
    generated = worker.engine_call(lambda: worker.engine.generate(
        request, should_cancel=lambda: worker.stopped(job),
        on_progress=lambda fraction, stage: worker.progress(job, stage, fraction)))
    worker.progress(job, "effects", 0.0)
    take = render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                      sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)
    start, end = plan.context.frames_for_beats(start_beat), min(plan.context.frames_for_beats(end_beat), plan.frames)
    take_audio = match_level(original[:, start:end], take.audio[:, start:end])
    replacement = original.copy()
    replacement[:, start:end] = take_audio
    spliced = splice_range(original, replacement, start, end,
                           crossfade_frames=round(SEAM_CROSSFADE_S * plan.context.sample_rate))
    log.info("job=%s repainted beats=%g-%g frames=%d-%d of %d", job.job_id, start_beat, end_beat, start, end,
             plan.frames)
    return worker.write_all(job, plan, {"mix": measured(spliced, plan.context.sample_rate)})


def render_extract(worker: Worker, job: Job, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/extract: the model's take of plan.track alone, as long as the input, one output named by it."""
    stem = render_edit(worker, job, plan, task="extract")
    log.info("job=%s extracted track=%s frames=%d", job.job_id, plan.track, plan.frames)
    return worker.write_all(job, plan, {plan.track: stem})


def render_layer(worker: Worker, job: Job, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/layer: a new plan.track over the input (ACE-Step lego), returned alone and mixed with the input.
    The stem is level-matched to the input before the sum, and the mix goes through the render chain again."""
    stem = render_edit(worker, job, plan, task="lego")
    audio, rate = read_audio(plan.input_path)
    original = fit_frames(map_channels(resample(audio, rate, plan.context.sample_rate), OUTPUT_CHANNELS),
                          plan.frames)
    mix = render_mix(original + match_level(original, stem.audio), plan.context.sample_rate, frames=plan.frames,
                     sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)
    log.info("job=%s layered track=%s frames=%d", job.job_id, plan.track, plan.frames)
    return worker.write_all(job, plan, {"mix": mix, plan.track: stem})


def render_cover(worker: Worker, job: Job, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/cover: the input restyled by the prompt setting, keeping plan.strength of its structure."""
    take = render_edit(worker, job, plan, task="cover", strength=plan.strength)
    log.info("job=%s covered strength=%g frames=%d", job.job_id, plan.strength, plan.frames)
    return worker.write_all(job, plan, {"mix": take})


def render_edit(worker: Worker, job: Job, plan: RenderPlan, *, task: str, **edit: Any) -> RenderedAudio:
    """The model's edit (task) of the whole input, through the render chain to exactly plan.frames at the
    session rate: the input's own length, so the take lines up with the clip bar for bar."""
    assert plan.input_path is not None
    worker.progress(job, "loading", 0.0)
    audio, rate = read_audio(plan.input_path)
    info = worker.engine.info
    source = np.ascontiguousarray(map_channels(resample(audio, rate, info.sample_rate), info.channels))
    worker.progress(job, "loading", 1.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=source.shape[1] / info.sample_rate, seed=plan.seed,
        guidance_scale=plan.preset.guidance_scale, **song_fields(plan),
        edit=AudioEdit(task, source, track=plan.track, **edit),
    )
    generated = worker.engine_call(lambda: worker.engine.generate(
        request, should_cancel=lambda: worker.stopped(job),
        on_progress=lambda fraction, stage: worker.progress(job, stage, fraction)))
    worker.progress(job, "effects", 0.0)
    return render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                      sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)


def fit_frames(audio: np.ndarray, frames: int) -> np.ndarray:
    """(C, T) cut or zero-padded to exactly frames (a resampler may land a frame off)."""
    if audio.shape[1] >= frames:
        return np.ascontiguousarray(audio[:, :frames], dtype=np.float32)
    return np.pad(audio, ((0, 0), (0, frames - audio.shape[1]))).astype(np.float32)
