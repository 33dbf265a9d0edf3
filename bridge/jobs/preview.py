"""Streamed previews: the engine's audio chunks, as files, while the job still renders.

With the request setting ``stream 1`` each chunk the engine decodes (about one
second; seams already crossfaded by inference/musicgen/streaming.py) is resampled to the
session rate with one continuous soxr stream, written as
``<job>/preview/chunk-NNNN.wav`` (16-bit, atomic) and announced with
``/continuo/partial job_id index path start_s seconds``. Played back to back the
chunks are the raw take: no effects, no loudness, not bar-trimmed. The final
``/continuo/output`` files replace them; time to first audio is one chunk.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soxr

from bridge.audio.files import write_wav_atomic
from bridge.audio.render import RESAMPLE_QUALITY, map_channels
from bridge.jobs.events import EventSink
from bridge.jobs.queue import Job

log = logging.getLogger("continuo.preview")

PREVIEW_BIT_DEPTH = 16


class PreviewWriter:
    """Called with each chunk (C, samples) at the model rate, in order."""

    def __init__(self, job: Job, events: EventSink, folder: Path, *, model_rate: int, sample_rate: int,
                 channels: int = 2) -> None:
        self.job, self.events, self.folder = job, events, folder
        self.sample_rate, self.channels = sample_rate, channels
        self.model_rate = model_rate
        self.stream = None if model_rate == sample_rate else soxr.ResampleStream(
            model_rate, sample_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
        self.index = 0
        self.written_frames = 0

    def __call__(self, chunk: np.ndarray) -> None:
        audio = map_channels(np.asarray(chunk, dtype=np.float32), self.channels)  # (C, samples)
        if self.stream is not None:
            audio = self.stream.resample_chunk(np.ascontiguousarray(audio.T)).reshape(-1, self.channels).T
        self.write(audio)

    def finish(self) -> None:
        """Flush what the resampler still holds as the last chunk."""
        if self.stream is not None and self.index:
            empty = np.zeros((0, self.channels), dtype=np.float32)
            self.write(self.stream.resample_chunk(empty, last=True).reshape(-1, self.channels).T)

    def write(self, audio: np.ndarray) -> None:
        if audio.shape[1] == 0:
            return
        self.index += 1
        path = self.folder / f"chunk-{self.index:04d}.wav"
        write_wav_atomic(path, audio, self.sample_rate, bit_depth=PREVIEW_BIT_DEPTH)
        start_s = self.written_frames / self.sample_rate
        self.written_frames += audio.shape[1]
        self.events.partial(self.job.reply_to, self.job.job_id, self.index, path.as_posix(), start_s,
                            audio.shape[1] / self.sample_rate)
        log.debug("job=%s preview chunk=%d start_s=%.2f", self.job.job_id, self.index, start_s)
