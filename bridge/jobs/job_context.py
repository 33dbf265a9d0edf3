"""What a renderer gets of its job: `JobContext`, one per job (bridge/jobs/worker.py:Worker.context builds it).

A renderer (bridge/jobs/takes.py, bridge/jobs/song.py) is ``(JobContext, RenderPlan) -> outputs``, picked from
the worker's op table (bridge/jobs/worker.py:RENDERERS). It reads its inputs through bridge/audio/prompts.py,
asks the engine for a take with the job's progress and cancel, renders it (bridge/audio/), and hands the result
to ``write_all``. It never sees the worker: progress, cancel, previews, the stems separator on the compute thread
and the outputs' writer reach it as these callables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.audio.render import RenderedAudio
from bridge.jobs.journal import OutputRecord
from bridge.jobs.plan import RenderPlan
from bridge.jobs.preview import PreviewWriter
from bridge.jobs.queue import Job
from inference.api import Engine, GeneratedAudio, GenerationRequest
from inference.stems.separator import StemSeparator

# A separation: (separator, on_progress(fraction), should_cancel()) -> stems; run on the compute thread
Separation = Callable[[StemSeparator, Callable[[float], None], Callable[[], bool]], dict[str, RenderedAudio]]


@dataclass(frozen=True)
class JobContext:
    job: Job
    engine: Engine  # the engine the job started on (a model switch waits for the running jobs)
    progress: Callable[[str, float], None]  # (stage, fraction of it): one event; raises once the job should stop
    stopped: Callable[[], bool]  # cancelled by its client, or the daemon stopping
    preview: Callable[[RenderPlan, str], PreviewWriter]  # a stream's chunk writer: "" for the take, or its name
    separate: Callable[[Separation], dict[str, RenderedAudio]]  # stems, with the `preparing`/`separating` stages
    write_all: Callable[..., list[OutputRecord]]  # (plan, rendered, *, midi={}, checks={}): files, journal, events

    def generate(self, request: GenerationRequest, **chunks: Any) -> GeneratedAudio:
        """engine.generate with the job's progress and cancel (and on_chunk when given)."""
        return self.engine.generate(request, on_progress=self.on_progress, should_cancel=self.stopped, **chunks)

    def generate_batch(self, request: GenerationRequest, seeds: Sequence[int], **chunks: Any) -> list[GeneratedAudio]:
        """engine.generate_batch (one take per seed) with the job's progress and cancel."""
        return self.engine.generate_batch(request, seeds, on_progress=self.on_progress, should_cancel=self.stopped,
                                          **chunks)

    def on_progress(self, fraction: float, stage: str) -> None:
        """The engine's progress callback (fraction, stage) as the job's progress."""
        self.progress(stage, fraction)
