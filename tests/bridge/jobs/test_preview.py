"""Streamed previews: chunks resampled by one continuous stream, written and announced in order."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.jobs.preview import PreviewWriter
from bridge.jobs.queue import Job


class Recorder:
    def __init__(self):
        self.partials = []

    def partial(self, dest, job_id, index, path, start_s, seconds):
        self.partials.append((job_id, index, path, start_s, seconds))


@pytest.mark.parametrize("sample_rate", [32000, 44100, 48000])
def test_chunks_join_into_the_take_at_the_session_rate(tmp_path, sample_rate):
    job = Job(job_id="p-1", op="generate", params={}, reply_to=("127.0.0.1", 1), client_key=("127.0.0.1", 1))
    events = Recorder()
    writer = PreviewWriter(job, events, tmp_path / "preview", model_rate=32000, sample_rate=sample_rate)
    t = np.arange(32000 * 3) / 32000
    take = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]  # mono, like the model
    for start in range(0, take.shape[1], 32000):  # one-second chunks
        writer(take[:, start:start + 32000])
    writer.finish()

    indexes = [p[1] for p in events.partials]
    assert indexes == list(range(1, len(indexes) + 1))
    for (_, _, _, start, seconds), (_, _, _, following, _) in zip(events.partials, events.partials[1:]):
        assert following == pytest.approx(start + seconds)
    audio = np.concatenate([sf.read(p[2], dtype="float32", always_2d=True)[0] for p in events.partials])
    assert audio.shape[1] == 2 and abs(audio.shape[0] - 3 * sample_rate) <= 2
    middle = audio[sample_rate // 2: -sample_rate // 2, 0]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    assert np.fft.rfftfreq(middle.size, 1 / sample_rate)[spectrum.argmax()] == pytest.approx(440, abs=1.0)
    seams = np.abs(np.diff(audio[:, 0]))
    assert seams.max() < 2 * np.abs(np.diff(take[0])).max() + 1e-3  # no click where two chunks meet
