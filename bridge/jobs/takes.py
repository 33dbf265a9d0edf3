"""The renderers of the model's own takes, and of an input's stems (the worker's op table picks them).

``render_take``: /continuo/generate and /continuo/continue. One request (a continuation's prompt is the input's
last prompt_seconds, bridge/audio/prompts.py), one take, the render chain (bridge/audio/render.py:render_mix:
resample, effects, bar-exact length, loudness), the stems of the delivered mix when asked, then the files.
``render_variations``: /continuo/variations, count takes of one request (seeds seed, seed + 1, ...) named
variation-1..N: our engine decodes them as one batch, the reference one after another.
``render_input_stems``: /continuo/stems, the input file's stems at the session rate and the input's level.
"""

from __future__ import annotations

import logging

from bridge.audio.files import read_audio
from bridge.audio.prompts import load_prompt
from bridge.audio.render import LOOP_CROSSFADE_S, measured, render_mix
from bridge.audio.stems import input_stems, stem_outputs
from bridge.jobs.job_context import JobContext
from bridge.jobs.journal import OutputRecord
from bridge.jobs.plan import RenderPlan, song_fields
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
        prompt = load_prompt(plan.input_path, sample_rate=info.sample_rate, channels=info.channels,
                             tail_s=plan.preset.prompt_seconds)
        ctx.progress("loading", 1.0)
        audio_prompt = prompt.audio
        lead_frames = plan.context.frames_to_next_downbeat(prompt.source_frames_at(plan.context.sample_rate))
    melody = load_prompt(plan.melody_path, sample_rate=info.sample_rate) if plan.melody_path is not None else None
    extra_s = lead_frames / plan.context.sample_rate + (LOOP_CROSSFADE_S if plan.loop else 0.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=plan.duration_s + extra_s, seed=plan.seed,
        temperature=plan.preset.temperature, top_k=plan.preset.top_k, top_p=plan.preset.top_p,
        guidance_scale=plan.preset.guidance_scale, audio_prompt=audio_prompt, styles=plan.styles,
        melody=melody.audio if melody is not None else None, **fields,
    )
    return request, lead_frames


def render_take(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """One take through the render chain: mix (and mix-tail), then its stems when asked."""
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
    return ctx.write_all(plan, {"mix": rendered, **extra})


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
    return ctx.write_all(plan, rendered)


def render_input_stems(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """The input's stems at the session rate and its level: no effects, no normalisation, so they sum to it."""
    assert plan.input_path is not None
    ctx.progress("loading", 0.0)
    audio, rate = read_audio(plan.input_path)
    stems = ctx.separate(lambda separator, progress, cancel: input_stems(
        separator, audio, rate, sample_rate=plan.context.sample_rate, stems=plan.stems,
        source=str(plan.input_path), on_progress=progress, should_cancel=cancel))
    return ctx.write_all(plan, stems)
