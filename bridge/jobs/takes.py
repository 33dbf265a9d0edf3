"""The renderers of the model's own takes, and of an input's stems (the worker's op table picks them).

``render_take``: /continuo/generate and /continuo/continue. One request (a continuation's prompt is the input's
last prompt_seconds, bridge/audio/prompts.py), one take, the render chain (bridge/audio/render.py:render_mix:
resample, effects, bar-exact length, loudness), the stems of the delivered mix when asked, then the files.
``render_variations``: /continuo/variations, count takes of one request (seeds seed, seed + 1, ...) named
variation-1..N: our engine decodes them as one batch, the reference one after another.
``render_input_stems``: /continuo/stems, the input file's stems at the session rate and the input's level.
Every take is beat-tracked against the grid it was asked for (``grid_checks``: the tempo heard and the downbeats'
offset, in the manifest), and with midi 1 the stems (or the mix) are written as MIDI files too
(bridge/jobs/notes.py). A continuation whose input's tempo was heard (bridge/jobs/listening.py) takes its prompt
from a downbeat and starts its output on the next downbeat of the input's own grid (``take_request``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from bridge.audio.analysis import GridCheck, check_grid
from bridge.audio.files import read_audio
from bridge.audio.prompts import load_prompt
from bridge.audio.render import LOOP_CROSSFADE_S, RenderedAudio, measured, render_mix
from bridge.audio.stems import input_stems, stem_outputs
from bridge.jobs.job_context import JobContext
from bridge.jobs.journal import OutputRecord
from bridge.jobs.notes import midi_of
from bridge.jobs.plan import RenderPlan, input_frames, song_fields
from inference.api import GenerationRequest

log = logging.getLogger("continuo.worker")


def take_request(ctx: JobContext, plan: RenderPlan) -> tuple[GenerationRequest, int]:
    """The engine's request for plan, and the lead: how many session-rate frames lie between a continued input's
    end and the next downbeat (the input is taken to start on a downbeat). The job generates them too and drops
    them, so the output starts on that downbeat."""
    info, fields = ctx.engine.info, song_fields(plan)
    audio_prompt, lead_frames = None, 0
    if plan.input_path is not None:
        ctx.progress("loading", 0.0)
        rate = plan.context.sample_rate
        downbeat_s = plan.input_downbeat_s or 0.0
        tail_s = plan.preset.prompt_seconds
        if plan.input_downbeat_s is not None:  # heard in the input: the prompt starts on a downbeat
            tail_s = prompt_tail_s(input_frames(plan.input_path, rate) / rate, tail_s, downbeat_s,
                                   plan.context.seconds_for_bars(1))
        prompt = load_prompt(plan.input_path, sample_rate=info.sample_rate, channels=info.channels, tail_s=tail_s)
        ctx.progress("loading", 1.0)
        audio_prompt = prompt.audio
        past_downbeat = max(0, prompt.source_frames_at(rate) - round(downbeat_s * rate))
        lead_frames = plan.context.frames_to_next_downbeat(past_downbeat)
    melody = load_prompt(plan.melody_path, sample_rate=info.sample_rate) if plan.melody_path is not None else None
    extra_s = lead_frames / plan.context.sample_rate + (LOOP_CROSSFADE_S if plan.loop else 0.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=plan.duration_s + extra_s, seed=plan.seed,
        temperature=plan.preset.temperature, top_k=plan.preset.top_k, top_p=plan.preset.top_p,
        guidance_scale=plan.preset.guidance_scale, audio_prompt=audio_prompt, styles=plan.styles,
        melody=melody.audio if melody is not None else None, **fields,
    )
    return request, lead_frames


def prompt_tail_s(duration_s: float, prompt_s: float, downbeat_s: float, bar_s: float) -> float:
    """How much of an input's end the prompt takes: from the first downbeat (downbeat_s + n * bar_s) at most
    prompt_s before the end, so the model hears whole bars; prompt_s itself where no downbeat lies in that span."""
    start = downbeat_s + math.ceil((duration_s - prompt_s - downbeat_s) / bar_s - 1e-9) * bar_s
    if start < 0:
        start += math.ceil(-start / bar_s) * bar_s
    return duration_s - start if start < duration_s - 1e-6 else prompt_s


def grid_checks(plan: RenderPlan, rendered: Mapping[str, RenderedAudio], *,
                origin_s: float = 0.0) -> dict[str, GridCheck]:
    """Each render beat-tracked against the grid it was asked for (bridge/audio/analysis.py:check_grid; bar 0 at
    origin_s), for the manifest; one log line each."""
    checks = {}
    for name, audio in rendered.items():
        checks[name] = check = check_grid(audio.audio, audio.sample_rate, plan.context, origin_s=origin_s)
        log.info("grid check %s: heard %.2f bpm (asked %.2f, error %s %%%s), offset %s ms against the %s", name,
                 check.bpm_heard, plan.context.bpm, "-" if check.tempo_error_pct is None else
                 f"{check.tempo_error_pct:+.2f}", f", x{check.octave}" if check.octave else "",
                 "-" if check.offset_ms is None else f"{check.offset_ms:+.1f}", check.against or "grid")
    return checks


def render_take(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """One take through the render chain: mix (and mix-tail), then its stems when asked, the grid check of the mix,
    and MIDI files of the stems (or of the mix) with midi 1."""
    request, lead_frames = take_request(ctx, plan)
    preview = ctx.preview(plan, "") if plan.stream else None
    generated = ctx.generate(request, on_chunk=preview)
    if preview is not None:
        preview.finish()
    ctx.progress("effects", 0.0)
    rendered = render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                          sample_rate=plan.context.sample_rate, preset=plan.preset, loop=plan.loop,
                          hard_cut=plan.hard_cut, lead_frames=lead_frames)
    del generated
    extra = {"mix-tail": measured(rendered.tail, rendered.sample_rate)} if rendered.tail is not None else {}
    if plan.stems:
        extra.update(ctx.separate(lambda separator, progress, cancel: stem_outputs(
            separator, rendered, stems=plan.stems, chains=plan.preset.stem_chains, loop=plan.loop,
            hard_cut=plan.hard_cut, on_progress=progress, should_cancel=cancel)))
    midi = midi_of(ctx, plan, {name: extra[name] for name in plan.stems} if plan.stems else {"mix": rendered}) \
        if plan.midi else {}
    return ctx.write_all(plan, {"mix": rendered, **extra}, midi=midi, checks=grid_checks(plan, {"mix": rendered}))


def render_variations(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """count takes of one request, each through the render chain, with a preview stream each when streaming."""
    request, lead_frames = take_request(ctx, plan)
    seeds = [plan.seed + index for index in range(plan.count)]
    previews = [ctx.preview(plan, f"variation-{index}") for index in range(1, plan.count + 1)] if plan.stream else []
    chunks = {}
    if previews:  # one preview stream per variation: the batch's chunks arrive together, (B, C, samples)
        chunks["on_chunk"] = lambda audio: [writer(audio[b]) for b, writer in enumerate(previews)]
    takes = ctx.generate_batch(request, seeds, **chunks)
    for writer in previews:
        writer.finish()
    ctx.progress("effects", 0.0)
    rendered = {f"variation-{index}": render_mix(
        take.audio, take.sample_rate, frames=plan.frames, sample_rate=plan.context.sample_rate,
        preset=plan.preset, loop=plan.loop, hard_cut=plan.hard_cut, lead_frames=lead_frames)
        for index, take in enumerate(takes, start=1)}
    return ctx.write_all(plan, rendered, checks=grid_checks(plan, rendered))


def render_input_stems(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """The input's stems at the session rate and its level: no effects, no normalisation, so they sum to it."""
    assert plan.input_path is not None
    ctx.progress("loading", 0.0)
    audio, rate = read_audio(plan.input_path)
    stems = ctx.separate(lambda separator, progress, cancel: input_stems(
        separator, audio, rate, sample_rate=plan.context.sample_rate, stems=plan.stems,
        source=str(plan.input_path), on_progress=progress, should_cancel=cancel))
    midi = midi_of(ctx, plan, stems, origin_s=plan.input_downbeat_s or 0.0) if plan.midi else {}
    return ctx.write_all(plan, stems, midi=midi)
