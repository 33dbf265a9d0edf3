"""A job's files in ``<output_root>/<job_id>/``: each output, then manifest.json.

Each output is written atomically as ``<name>.wav`` (the stable name that events, the journal and /continuo/get
carry), linked (or copied) to its DAW name ``<job>_<name>_<bars>bars_<bpm>bpm_<key>.wav`` before its event, so
both names are there when the client hears of it, journalled, and only then announced with /continuo/output.
The manifest follows the outputs: the request as journalled (``params``), so /continuo/get and a resent id find
the job there once the journal has forgotten it (bridge/jobs/retention.py), the model that rendered it, and a
loud warning when that was the random smoke model. Every write is bridge/audio/files.py's: atomic, and a full
disk is ``disk_full`` with nothing half-written under a final name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from bridge.audio.files import daw_file_name, link_or_copy_atomic, write_bytes_atomic, write_wav_atomic
from bridge.audio.render import RenderedAudio
from bridge.jobs.events import EventSink
from bridge.jobs.journal import Journal, OutputRecord
from bridge.jobs.plan import RenderPlan
from bridge.jobs.queue import Job
from bridge.jobs.storage import MANIFEST
from inference.api import ModelInfo

log = logging.getLogger("continuo.worker")


class Outputs:
    """Writes, journals and announces a job's outputs, then its manifest."""

    def __init__(self, output_root: Path, journal: Journal, events: EventSink) -> None:
        self.output_root, self.journal, self.events = output_root, journal, events

    def write_all(self, job: Job, plan: RenderPlan, rendered: Mapping[str, RenderedAudio], *,
                  model: ModelInfo) -> list[OutputRecord]:
        """Each output (journalled before its /continuo/output), then the manifest. An output as long as the plan
        is plan.bars long; any other (a tail, an input's stems) is counted in bars of the session's tempo."""
        bar_s = plan.context.seconds_for_bars(1)
        outputs = [self.write_output(job, plan, name, audio, bars=plan.bars if plan.bars and audio.frames == plan.frames
                                     else audio.seconds / bar_s) for name, audio in rendered.items()]
        self.write_manifest(job, plan, outputs, model)
        return outputs

    def write_output(self, job: Job, plan: RenderPlan, name: str, rendered: RenderedAudio, *,
                     bars: float) -> OutputRecord:
        path = self.output_root / job.job_id / f"{name}.wav"
        record = OutputRecord(
            name=name, path=path.as_posix(), sample_rate=rendered.sample_rate, channels=rendered.audio.shape[0],
            seconds=rendered.audio.shape[1] / rendered.sample_rate, bars=bars, lufs=rendered.lufs,
            peak_db=rendered.peak_db,
        )
        daw = daw_path(job, plan, record)
        write_wav_atomic(path, rendered.audio, rendered.sample_rate, bit_depth=plan.preset.bit_depth)
        link_or_copy_atomic(path, daw)  # before the event: both names are there
        self.journal.add_output(job.job_id, record)
        self.events.output(job.reply_to, job.job_id, record)
        log.info("job=%s output name=%s path=%s lufs=%.1f peak_db=%.1f", job.job_id, name, record.path,
                 record.lufs, record.peak_db)
        return record

    def write_manifest(self, job: Job, plan: RenderPlan, outputs: list[OutputRecord], model: ModelInfo) -> None:
        manifest = {
            "job_id": job.job_id,
            "op": job.op,
            "preset": plan.preset.name,
            "prompt": plan.prompt,
            "bars": plan.bars,
            "seed": plan.seed,
            "context": {"bpm": plan.context.bpm, "metre": plan.context.metre, "key": plan.context.key,
                        "sample_rate": plan.context.sample_rate},
            "input_path": plan.input_path.as_posix() if plan.input_path else None,
            "model": {"name": model.name, "source": model.source_kind, "smoke_model": model.is_random,
                      "modes": model.modes},  # weights, cache, calibration figures, DiT linear plan
            "outputs": [{**o.__dict__, "daw_path": daw_path(job, plan, o).as_posix()} for o in outputs],
            "params": job.params,  # the request as journalled
        }
        if plan.op == "variations":
            manifest["variation_seeds"] = {f"variation-{i + 1}": plan.seed + i for i in range(plan.count)}
        if model.is_random:
            manifest["warning"] = "rendered by a tiny RANDOM smoke model: this is noise, not music"
        write_bytes_atomic(self.output_root / job.job_id / MANIFEST, json.dumps(manifest, indent=2).encode())


def daw_path(job: Job, plan: RenderPlan, record: OutputRecord) -> Path:
    """The output's second name, for dropping into a DAW, beside the stable <name>.wav."""
    return Path(record.path).with_name(daw_file_name(job.job_id, record.name, bars=record.bars,
                                                     bpm=plan.context.bpm, key=plan.context.key))
