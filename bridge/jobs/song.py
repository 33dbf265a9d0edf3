"""The edits of given audio a song model (ACE-Step) renders; what it gets beyond MusicGen's request is the plan's
(bridge/jobs/plan.py:song_fields).

The renderers (the worker's op table picks them; each gets a bridge/jobs/job_context.py:JobContext):
``render_repaint``: /continuo/repaint, the model regenerates the range, the render chain (resample, effects,
loudness) runs on its take, and the take is spliced into the input so the audio outside the range stays the
input's, sample for sample, with crossfades inside the range. ``render_extract``: /continuo/extract, the model's
own take of one track of the input; ``render_layer``: /continuo/layer, a new track over the input (ACE-Step
lego), alone and mixed with it; ``render_cover``: /continuo/cover, the input restyled by the prompt setting
(``render_edit``: the whole input edited by the model, through the render chain, as long as the input). Each mix
is beat-tracked against the input's grid (``edit_checks``) for the manifest, as a take is.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.audio.analysis import GridCheck
from bridge.audio.prompts import load_prompt
from bridge.audio.render import RenderedAudio, measured, render_mix
from bridge.audio.splice import SEAM_CROSSFADE_S, match_level, splice_range
from bridge.jobs.job_context import JobContext
from bridge.jobs.journal import OutputRecord
from bridge.jobs.plan import RenderPlan, song_fields
from bridge.jobs.takes import grid_checks
from inference.api import AudioEdit, GenerationRequest

log = logging.getLogger("continuo.worker")

OUTPUT_CHANNELS = 2  # render_mix's default: every output is stereo


def render_repaint(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """Regenerate plan.range_beats of the input; the rest of the clip is the input's own samples."""
    assert plan.input_path is not None and plan.range_beats is not None
    ctx.progress("loading", 0.0)
    info, fields = ctx.engine.info, song_fields(plan)
    original = load_prompt(plan.input_path, sample_rate=plan.context.sample_rate, channels=OUTPUT_CHANNELS,
                           frames=plan.frames).audio
    source = load_prompt(plan.input_path, sample_rate=info.sample_rate, channels=info.channels)
    start_beat, end_beat = plan.range_beats
    start_s, end_s = plan.context.seconds_for_beats(start_beat), plan.context.seconds_for_beats(end_beat)
    ctx.progress("loading", 1.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=source.seconds, seed=plan.seed, guidance_scale=plan.preset.guidance_scale,
        **fields, edit=AudioEdit("repaint", source.audio, start_s=start_s, end_s=min(end_s, source.seconds)),
    )
    generated = ctx.generate(request)
    ctx.progress("effects", 0.0)
    take = render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                      sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)
    start, end = plan.context.frames_for_beats(start_beat), min(plan.context.frames_for_beats(end_beat), plan.frames)
    take_audio = match_level(original[:, start:end], take.audio[:, start:end])
    replacement = original.copy()
    replacement[:, start:end] = take_audio
    spliced = splice_range(original, replacement, start, end,
                           crossfade_frames=round(SEAM_CROSSFADE_S * plan.context.sample_rate))
    log.info("job=%s repainted beats=%g-%g frames=%d-%d of %d", ctx.job.job_id, start_beat, end_beat, start, end,
             plan.frames)
    rendered = {"mix": measured(spliced, plan.context.sample_rate)}
    return ctx.write_all(plan, rendered, checks=edit_checks(plan, rendered))


def render_extract(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/extract: the model's take of plan.track alone, as long as the input, one output named by it."""
    stem = render_edit(ctx, plan, task="extract")
    log.info("job=%s extracted track=%s frames=%d", ctx.job.job_id, plan.track, plan.frames)
    return ctx.write_all(plan, {plan.track: stem})


def render_layer(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/layer: a new plan.track over the input (ACE-Step lego), returned alone and mixed with the input.
    The stem is level-matched to the input before the sum, and the mix goes through the render chain again."""
    stem = render_edit(ctx, plan, task="lego")
    original = load_prompt(plan.input_path, sample_rate=plan.context.sample_rate, channels=OUTPUT_CHANNELS,
                           frames=plan.frames).audio
    mix = render_mix(original + match_level(original, stem.audio), plan.context.sample_rate, frames=plan.frames,
                     sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)
    log.info("job=%s layered track=%s frames=%d", ctx.job.job_id, plan.track, plan.frames)
    return ctx.write_all(plan, {"mix": mix, plan.track: stem}, checks=edit_checks(plan, {"mix": mix}))


def render_cover(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/cover: the input restyled by the prompt setting, keeping plan.strength of its structure."""
    take = render_edit(ctx, plan, task="cover", strength=plan.strength)
    log.info("job=%s covered strength=%g frames=%d", ctx.job.job_id, plan.strength, plan.frames)
    return ctx.write_all(plan, {"mix": take}, checks=edit_checks(plan, {"mix": take}))


def edit_checks(plan: RenderPlan, rendered: dict[str, RenderedAudio]) -> dict[str, GridCheck]:
    """The grid check of an edit's mix: against the input's own grid (its first downbeat where it was heard)."""
    return grid_checks(plan, rendered, origin_s=plan.input_downbeat_s or 0.0)


def render_edit(ctx: JobContext, plan: RenderPlan, *, task: str, **edit: Any) -> RenderedAudio:
    """The model's edit (task) of the whole input, through the render chain to exactly plan.frames at the
    session rate: the input's own length, so the take lines up with the clip bar for bar."""
    assert plan.input_path is not None
    ctx.progress("loading", 0.0)
    info, fields = ctx.engine.info, song_fields(plan)
    source = load_prompt(plan.input_path, sample_rate=info.sample_rate, channels=info.channels)
    ctx.progress("loading", 1.0)
    request = GenerationRequest(
        prompt=plan.prompt, duration_s=source.seconds, seed=plan.seed, guidance_scale=plan.preset.guidance_scale,
        **fields, edit=AudioEdit(task, source.audio, track=plan.track, **edit),
    )
    generated = ctx.generate(request)
    ctx.progress("effects", 0.0)
    return render_mix(generated.audio, generated.sample_rate, frames=plan.frames,
                      sample_rate=plan.context.sample_rate, preset=plan.preset, hard_cut=True)
