"""Notes as MIDI outputs: the /continuo/midi renderer, and the MIDI files a take or a stems job adds with midi 1.

``render_midi``: the input file as it is (``mix``: Basic Pitch over the whole file) and/or its stems (separated
first, as /continuo/stems separates: at the session rate and the input's level), each transcribed
(bridge/audio/transcription.py: drums by onset and band, the others by Basic Pitch within the stem's range) and
written as ``<stem>.mid`` (output ``<stem>-midi``) at the session's tempo and metre, quantised from the input's
first downbeat when the tempo was heard there (bridge/jobs/listening.py), else from the file's start.
``midi_of``: the same for a job's rendered stems or mix (bar-exact from 0: the grid starts at the file's start).

The model runs on the worker's thread (onnxruntime, no torch: not the compute thread) with one thread of its own:
on this machine one thread transcribed a 60 s stem as fast as two (1.76 s against 1.77 s, the machine busy), and
the second core is the decoder's (docs/benchmarks.md, "Listen").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from bridge.audio.files import read_audio
from bridge.audio.render import RenderedAudio
from bridge.audio.stems import input_stems
from bridge.audio.transcription import StemMidi, stem_midi
from bridge.jobs.job_context import JobContext
from bridge.jobs.journal import OutputRecord
from bridge.jobs.plan import RenderPlan
from inference.transcription.model import BasicPitch

log = logging.getLogger("continuo.worker")

TRANSCRIBE_THREADS = 1


def render_midi(ctx: JobContext, plan: RenderPlan) -> list[OutputRecord]:
    """/continuo/midi: the mix and/or the stems of the input, as MIDI files."""
    assert plan.input_path is not None
    ctx.progress("loading", 0.0)
    audio, rate = read_audio(plan.input_path)
    sources: dict[str, RenderedAudio] = {}
    if "mix" in plan.midi_stems:
        sources["mix"] = RenderedAudio(audio=audio, sample_rate=rate, lufs=-120.0, peak_db=-120.0)
    if plan.stems:
        sources.update(ctx.separate(lambda separator, progress, cancel: input_stems(
            separator, audio, rate, sample_rate=plan.context.sample_rate, stems=plan.stems,
            source=str(plan.input_path), on_progress=progress, should_cancel=cancel)))
    midi = midi_of(ctx, plan, sources, origin_s=plan.input_downbeat_s or 0.0)
    return ctx.write_all(plan, {}, midi=midi)


def midi_of(ctx: JobContext, plan: RenderPlan, sources: Mapping[str, RenderedAudio], *,
            origin_s: float = 0.0) -> dict[str, StemMidi]:
    """Each source's notes as a MIDI file at the session's tempo (the stage `transcribing`, cancellable)."""
    model = BasicPitch(threads=TRANSCRIBE_THREADS) if any(name != "drums" for name in sources) else None
    results: dict[str, StemMidi] = {}
    for index, (name, source) in enumerate(sources.items()):
        ctx.progress("transcribing", index / len(sources))
        started = time.monotonic()
        results[name] = stem_midi(source.audio, source.sample_rate, name, context=plan.context, model=model,
                                  grid=plan.quantize, origin_s=origin_s, should_cancel=ctx.stopped)
        log.info("job=%s transcribed %s notes=%d transcribing_s=%.2f", ctx.job.job_id, name,
                 len(results[name].notes), time.monotonic() - started)
    return results
